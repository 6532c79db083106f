"""Hostile and broken images: one clear line and exit 2, or exit 0 with the problem reported; never a
traceback, never unbounded memory or recursion, nothing written outside the output file."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import synth

from slimscope.analysis import analyze
from slimscope.errors import FormatError
from slimscope.sources import load_image


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimscope", *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def write(tmp_path: Path, layers: list[synth.Layer], name: str = "img.tar") -> Path:
    path = tmp_path / name
    synth.write_archive(path, synth.Image(layers), "docker-oci")
    return path


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], starts: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"slimscope: error: {starts}"), proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and "\x1b" not in proc.stderr


def test_dot_dot_and_absolute_member_names_are_reported(tmp_path: Path) -> None:
    layer = synth.Layer([synth.file("../../etc/evil", b"x"), synth.file("/abs/file", b"y")])
    analysis = analyze(load_image(str(write(tmp_path, [layer]))))
    assert analysis.fs.lookup(b"etc/evil") is not None
    assert analysis.fs.lookup(b"abs/file") is not None
    assert any("climbs out of the image root" in p for p in analysis.problems)


def test_symlink_loops_and_escaping_links_are_harmless(tmp_path: Path) -> None:
    layer = synth.Layer(
        [
            synth.symlink("loop/a", "b"),
            synth.symlink("loop/b", "a"),
            synth.symlink("out", "../../../../etc/shadow"),
            synth.file("ok", b"1"),
        ]
    )
    path = write(tmp_path, [layer])
    proc = run(str(path), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["filesystem"]["symlinks"] == 3


def test_hard_link_to_missing_target_exits_0_with_problem(tmp_path: Path) -> None:
    path = write(tmp_path, [synth.Layer([synth.hardlink("dangling", "nowhere")])])
    proc = run(str(path), "--summary")
    assert proc.returncode == 0
    assert "hard link dangling points to a missing file nowhere" in proc.stdout


def test_whiteouts_in_first_layer_and_of_the_root(tmp_path: Path) -> None:
    first = synth.Layer([synth.whiteout("etc/passwd"), synth.file("a", b"1"), synth.file(".wh.", b"")])
    analysis = analyze(load_image(str(write(tmp_path, [first]))))
    assert analysis.stats.files == 1
    assert "layer 0: a whiteout names the root; ignored" in analysis.problems


def test_huge_claimed_size_is_bounded(tmp_path: Path) -> None:
    """A header claiming a 1 TB file with a few bytes behind it: truncated, never read into memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("big")
        info.size = 10
        tf.addfile(info, io.BytesIO(b"0123456789"))
    data = bytearray(buf.getvalue())
    data[124:136] = b"\x80" + (10**12).to_bytes(11, "big")  # base-256 size: 1 TB
    data[148:156] = b"        "
    data[148:156] = b"%06o\0 " % sum(data[:512])
    layer_path = tmp_path / "layer.tar"
    layer_path.write_bytes(bytes(data))
    from slimscope.image.blobs import scan_layer

    with open(layer_path, "rb") as handle, pytest.raises(FormatError, match="truncated tar"):
        scan_layer(handle.read)


def test_deep_paths_do_not_recurse(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 20000) + "/leaf"
    analysis = analyze(
        load_image(str(write(tmp_path, [synth.Layer([synth.file(deep, b"x", long_name="pax")])])))
    )
    assert analysis.stats.dirs == 20000
    assert analysis.stats.files == 1


def test_many_files_in_one_folder_and_many_layers(tmp_path: Path) -> None:
    wide = synth.Layer([synth.file(f"wide/f{i:06d}", b"") for i in range(100_000)])
    assert analyze(load_image(str(write(tmp_path, [wide], "wide.tar")))).stats.files == 100_000
    layers = [synth.Layer([synth.file(f"l{i}", b"x")]) for i in range(1000)]
    doc = run(str(write(tmp_path, layers, "deep.tar")), "--json", "-")
    assert doc.returncode == 0, doc.stderr
    assert len(json.loads(doc.stdout)["layers"]) == 1000


def test_hostile_names_stay_inert_in_the_text_summary(tmp_path: Path) -> None:
    names = [
        b"esc-\x1b[31mred",
        b"new\nline",
        "c1-\u009bx".encode(),
        "bidi-\u202etxt.exe".encode(),
        b"[@click=app.quit()]x",
        b"a[/]b",
        b"bad-\xff-byte",
    ]
    layer = synth.Layer([synth.file(b"app/" + n, b"x" * 10) for n in names] + [synth.file(b"app/.env", b"S")])
    proc = run(str(write(tmp_path, [layer])), "--summary")
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\u009b" not in proc.stdout and "\u202e" not in proc.stdout
    doc = json.loads(run(str(write(tmp_path, [layer])), "--json", "-").stdout)
    assert doc["filesystem"]["files"] == len(names) + 1


def test_manifest_pointing_outside_the_archive(tmp_path: Path) -> None:
    path = write(tmp_path, [synth.Layer([synth.file("a", b"1")])])
    with tarfile.open(path) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    manifest = json.loads(members["manifest.json"])
    manifest[0]["Layers"] = ["../../../../etc/passwd"]
    members["manifest.json"] = json.dumps(manifest).encode()
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert_one_line_exit_2(run(str(bad)), "layer 0 (../../../../etc/passwd) is missing from the archive")


def test_oci_layout_pointing_outside_itself(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    synth.write_archive(layout, synth.Image([synth.Layer([synth.file("a", b"1")])]), "oci-dir")
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:" + "0" * 64
    (layout / "index.json").write_text(json.dumps(index))
    assert_one_line_exit_2(run(f"oci:{layout}"), "the manifest blob sha256:0000")


@pytest.mark.parametrize("payload", [b"[" * 100_000, b'{"a": ' * 50_000], ids=["lists", "objects"])
def test_deeply_nested_json(tmp_path: Path, payload: bytes) -> None:
    path = write(tmp_path, [synth.Layer([synth.file("a", b"1")])])
    with tarfile.open(path) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    members["manifest.json"] = payload
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert_one_line_exit_2(run(str(bad)), "manifest.json is not valid JSON")


def test_nothing_written_besides_the_output(tmp_path: Path) -> None:
    path = write(tmp_path, [synth.Layer([synth.file("../../x", b"1")])])
    before = set(os.listdir(tmp_path))
    proc = run(str(path), "--json", "out.json", cwd=tmp_path)
    assert proc.returncode == 0
    assert set(os.listdir(tmp_path)) == before | {"out.json"}


def _header_with(field: slice, value: bytes, typeflag: bytes = b"0") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("f")
        info.size = 0
        tf.addfile(info)
    block = bytearray(buf.getvalue()[:512])
    block[field] = value
    block[156:157] = typeflag
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@pytest.mark.parametrize(
    ("field", "value", "typeflag", "message"),
    [
        (slice(136, 148), b"\x80" + b"\xff" * 11, b"0", "number out of range"),  # fuzz: mtime past 2**63
        (slice(483, 495), b"\x010000021144", b"S", "corrupt GNU sparse header"),  # fuzz: bad sparse size
    ],
)
def test_fuzz_regressions(field: slice, value: bytes, typeflag: bytes, message: str) -> None:
    from slimscope.image.tarstream import TarStream

    stream = TarStream()
    with pytest.raises(FormatError, match=message):
        stream.feed(_header_with(field, value, typeflag) + bytes(1024))
