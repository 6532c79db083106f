"""Issue 8's corpus of broken and hostile images (fixtures/hostile.py), each through the real command line.

For every case: the exit status, the exact message (exit 2: the whole stderr; exit 0: a line of the text
summary), no traceback, no raw terminal control in stdout or stderr, nothing left in $TMPDIR or the
working directory, the input untouched; when it exits 0, `--json -` is valid ASCII JSON as well.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hostile
import pytest
import synth

from slimscope.sanitize import visible

# C0 controls except newline, DEL, C1 controls, bidi embeddings/overrides/isolates and marks, and bytes
# that are not UTF-8 (decoded as surrogates).
CONTROLS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]"
)


def listing(root: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    )


def cli(target: str, *args: str, cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    # A layer cache of this test's own (outside cwd and tmp): the first read of an input is a real one.
    cache = tmp.parent / "cache"
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200", "SLIMSCOPE_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "slimscope", target, *args, "--no-progress"],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )


def summary_problems(stdout: str) -> list[str]:
    """The problem lines at the end of the text summary (checking the header's count); [] when none."""
    lines = stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if line.endswith(" problem(s) found while reading:")]
    if not heads:
        return []
    assert len(heads) == 1
    found = [line.removeprefix("  ") for line in lines[heads[0] + 1 :]]
    assert lines[heads[0]] == f"{len(found)} problem(s) found while reading:"
    return found


def assert_inert(proc: subprocess.CompletedProcess[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream
        assert not CONTROLS.search(stream), CONTROLS.findall(stream)


@pytest.mark.parametrize("case", hostile.CASES, ids=[c.name for c in hostile.CASES])
def test_corpus_case(tmp_path: Path, case: hostile.Case) -> None:
    made, cwd, tmp = tmp_path / "in", tmp_path / "cwd", tmp_path / "tmp"
    for d in (made, cwd, tmp):
        d.mkdir()
    target = case.make(made)
    before = listing(made)
    proc = cli(target, "--summary", cwd=cwd, tmp=tmp)
    assert proc.returncode == case.code, proc.stderr
    assert_inert(proc)
    message = case.message.format(dir=made)
    if case.code == 2:
        assert proc.stderr == f"slimscope: error: {message}\n"
        assert proc.stdout == ""
    else:
        assert proc.stderr == ""
        lines = [line.strip() for line in proc.stdout.splitlines()]
        assert message in lines, proc.stdout
        assert summary_problems(proc.stdout) == [visible(p) for p in case.problems]
        doc = cli(target, "--json", "-", cwd=cwd, tmp=tmp)
        assert doc.returncode == 0 and doc.stderr == ""
        assert doc.stdout.isascii()
        assert json.loads(doc.stdout)["schema_version"] == 1
        assert json.loads(doc.stdout)["problems"] == list(case.problems)  # raw text, JSON-escaped only
    assert listing(made) == before
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []


def test_every_issue_item_has_a_case() -> None:
    items = " | ".join(c.item for c in hostile.CASES)
    for wording in [
        "truncated outer tar", "truncated gzip", "corrupt gzip", "truncated zstd", "corrupt zstd",
        "not a tar", "missing blobs", "wrong digests", "bad JSON", "huge JSON", "pointing outside",
        "absolute member", "'..' member", "symlink loops", "symlinks out", "hard links to missing",
        "whiteouts in the first layer", "whiteout of /", "1 TB file (sparse)", "100,000 files",
        "1,000 layers", "ESC, C1, newline, bidi, markup, invalid UTF-8",
    ]:  # fmt: skip
        assert wording in items, wording


def test_json_keeps_hostile_names_losslessly(tmp_path: Path) -> None:
    """Every hostile name comes back byte for byte from --json: `path`, or `path_b64` when not UTF-8."""
    target = hostile.hostile_names(tmp_path)
    proc = cli(target, "--json", "-", cwd=tmp_path, tmp=tmp_path)
    assert proc.returncode == 0 and proc.stdout.isascii()
    hidden = json.loads(proc.stdout)["waste"]["hidden"]
    names = {base64.b64decode(h["path_b64"]) if "path_b64" in h else h["path"].encode() for h in hidden}
    assert names == {b"app/" + n for n in hostile.HOSTILE_NAMES}
    invalid = [h for h in hidden if "path_b64" in h]
    assert sorted(h["path"] for h in invalid) == ["app/bad-\\xff-byte", "app/raw-c1-\\x9b2J"]


def test_hostile_names_in_the_text_summary_are_escaped(tmp_path: Path) -> None:
    target = hostile.hostile_names(tmp_path)
    proc = cli(target, "--summary", cwd=tmp_path, tmp=tmp_path)
    assert proc.returncode == 0
    assert_inert(proc)
    assert r"app/tab\tname (10 B, overwritten in layer 1)" in proc.stdout
    assert r"app/bad-\xff-byte (10 B, overwritten in layer 1)" in proc.stdout
    assert "app/[@click=app.quit()]x, app/[link=https:evil]y, app/a[/]b" in proc.stdout


def test_problems_are_escaped_once_in_the_summary_and_raw_in_json(tmp_path: Path) -> None:
    """A name with ESC, a backslash and a byte that is not UTF-8 in problems of the tar reader and the fs."""
    name = b"esc-\x1b[31mred-back\\slash-bad-\xff"
    members = [synth.file(b"../" + name, b"x"), synth.hardlink(b"link-" + name, b"nowhere")]
    layer = synth.Layer([*members, synth.symlink(b"loop-" + name, b"loop-" + name)])
    target = str(tmp_path / "image.tar")
    synth.write_archive(target, synth.Image([layer]))
    proc = cli(target, "--summary", cwd=tmp_path, tmp=tmp_path)
    assert proc.returncode == 0
    assert_inert(proc)
    assert summary_problems(proc.stdout) == [
        r"layer 0: member ../esc-\x1b[31mred-back\\slash-bad-\xff climbs out of the image root with '..'; "
        r"read as /esc-\x1b[31mred-back\\slash-bad-\xff",
        r"layer 0: hard link link-esc-\x1b[31mred-back\\slash-bad-\xff points to a missing file nowhere",
        r"layer 0: symlink loop-esc-\x1b[31mred-back\\slash-bad-\xff -> "
        r"loop-esc-\x1b[31mred-back\\slash-bad-\xff "
        "never resolves (more than 40 levels of symbolic links: a loop)",
    ]
    doc = cli(target, "--json", "-", cwd=tmp_path, tmp=tmp_path)
    assert doc.returncode == 0 and doc.stdout.isascii()
    assert (
        r'"layer 0: hard link link-esc-\u001b[31mred-back\\slash-bad-\\xff points to a missing file nowhere"'
        in doc.stdout
    )
    assert json.loads(doc.stdout)["problems"][:2] == [
        "layer 0: member ../esc-\x1b[31mred-back\\slash-bad-\\xff climbs out of the image root with '..'; "
        "read as /esc-\x1b[31mred-back\\slash-bad-\\xff",
        "layer 0: hard link link-esc-\x1b[31mred-back\\slash-bad-\\xff points to a missing file nowhere",
    ]
