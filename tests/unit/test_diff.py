"""`slimscope diff` on synthetic archives: files, moves, rollups, ignores, packages, config, findings,
shared layers read once, the JSON document, the text, exit codes and bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import synth

import slimscope.image.blobs as blobs
import slimscope.sources as sources
import slimscope.sources.archive as archive
from slimscope.analysis import analyze
from slimscope.analysis.diff import (
    DEFAULT_IGNORES,
    Diff,
    compare_versions,
    diff_analyses,
    diff_images,
    document,
    dpkg_compare,
    glob_regex,
    ignore_matcher,
    rollup,
    schema,
    top_directories,
)
from slimscope.cli import main
from slimscope.commands.diff import load_pair
from slimscope.image.model import Image
from slimscope.sources import load_image

REF_FORMATS = ("docker-legacy", "docker-oci", "oci-archive", "oci-dir")


# -- helpers --------------------------------------------------------------------------------------
def layer(*entries: synth.Entry, **kw: Any) -> synth.Layer:
    return synth.Layer(synth.with_parents(entries), **kw)


def write(tmp: Path, name: str, image: synth.Image, fmt: str = "docker-oci") -> str:
    path = tmp / (name if fmt == "oci-dir" else f"{name}.tar")
    synth.write_archive(path, image, fmt)
    return str(path)


def valid(diff: Diff) -> dict[str, Any]:
    doc = document(diff)
    jsonschema.validate(doc, schema())
    return doc


def compare(old: str, new: str, ignore: tuple[str, ...] | list[str] = DEFAULT_IGNORES) -> Diff:
    old_image, new_image = load_pair(old, new)
    diff = diff_analyses(analyze(old_image), analyze(new_image), ignore=ignore)
    valid(diff)
    return diff


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["diff", *args, "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def kinds(diff: Diff) -> dict[str, str]:
    return {c.path.decode(): c.kind for c in diff.changes}


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The diff_ids of every layer blob decompressed and parsed (`scan_layer` calls)."""
    seen: list[str] = []
    real = blobs.scan_layer

    def counting(*args: Any, **kw: Any) -> blobs.LayerScan:
        scan = real(*args, **kw)
        seen.append(scan.diff_id)
        return scan

    for module in (blobs, archive, sources):
        monkeypatch.setattr(module, "scan_layer", counting)
    return seen


BASE = layer(
    synth.file("bin/tool", b"\x7fELF" + b"t" * 996),
    synth.file("etc/os-release", b"ID=synth\n"),
    synth.symlink("bin/sh", "tool"),
)
MIDDLE = layer(synth.file("usr/share/data.bin", b"d" * 5000))


# -- shared layers are read once ------------------------------------------------------------------
@pytest.mark.parametrize("fmt", REF_FORMATS)
def test_shared_layers_are_scanned_once(tmp_path: Path, scans: list[str], fmt: str) -> None:
    old_top = layer(synth.file("app/version", b"1\n"))
    new_top = layer(synth.file("app/version", b"22\n"))
    old_ref = write(tmp_path, "old", synth.Image([BASE, MIDDLE, old_top]), fmt)
    new_ref = write(tmp_path, "new", synth.Image([BASE, MIDDLE, new_top]), fmt)
    old, new = load_pair(old_ref, new_ref)
    assert len(scans) == 4  # three for OLD, only the top one for NEW
    assert scans[3] == new.layers[2].diff_id
    assert new.layers[0].entries is old.layers[0].entries
    assert new.layers[1].entries is old.layers[1].entries
    assert new.layers[2].entries is not old.layers[2].entries
    for reused, fresh in zip(new.layers, load_image(new_ref).layers):  # the same as a fresh read
        assert (reused.diff_id, reused.digest, reused.compressed_bytes, reused.compression) == (
            fresh.diff_id,
            fresh.digest,
            fresh.compressed_bytes,
            fresh.compression,
        )
        assert reused.entries.paths == fresh.entries.paths
    diff = diff_images(old, new)
    assert [la.index for la in diff.layers.shared] == [0, 1]
    assert diff.layers.diverged_at == 2
    assert diff.layers.reused == 2
    assert kinds(diff) == {"app/version": "modified"}


def test_self_diff_reads_nothing_twice_and_is_identical(
    tmp_path: Path, scans: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = write(tmp_path, "img", synth.Image([BASE, MIDDLE]), "docker-legacy")
    code, out, err = cli(capsys, ref, ref)
    assert (code, err) == (0, "")
    assert len(scans) == 2
    assert "Layers: all 2 layers shared (each read once)" in out
    assert "No differences." in out
    code, out, _ = cli(capsys, ref, ref, "--json", "-")
    doc = json.loads(out)
    jsonschema.validate(doc, schema())
    assert code == 0
    assert doc["summary"]["identical"] is True
    assert doc["files"] == {
        "added": [],
        "removed": [],
        "modified": [],
        "moved": [],
        "directories": [],
        "directories_total": 0,
        "ignored": {"count": 0, "bytes_delta": 0},
    }
    assert doc["packages"] == {k: [] for k in ("added", "removed", "upgraded", "downgraded", "changed")}
    assert doc["config"]["changes"] == []
    assert doc["findings"]["rules"] == []
    assert doc["summary"]["bytes_delta"] == doc["summary"]["files_delta"] == 0
    assert [la["index"] for la in doc["shared_layers"]] == [0, 1]
    assert doc["layers"]["diverged_at"] is None


def test_shared_layers_each_image_read_for_itself_are_not_called_read_once(tmp_path: Path) -> None:
    """Two separate reads (as two engine images from the layer cache are): each took its own copy."""
    import io

    from rich.console import Console

    from slimscope.report.diff_text import render

    ref = write(tmp_path, "img", synth.Image([BASE, MIDDLE]), "docker-legacy")
    diff = diff_images(load_image(ref), load_image(ref))
    assert diff.layers.reused == 0
    out = io.StringIO()
    render(diff, Console(file=out, width=200, color_system=None))
    assert "Layers: all 2 layers shared (read for each image)" in out.getvalue()


def test_same_image_in_other_formats_is_identical(tmp_path: Path, scans: list[str]) -> None:
    image = synth.Image([BASE, MIDDLE])
    oci = write(tmp_path, "gz", image, "oci-archive")  # gzip blobs, named by their compressed digest
    plain = write(tmp_path, "plain", image, "docker-oci")  # uncompressed blobs, named by their diff_id
    diff = compare(oci, plain)
    assert diff.identical
    assert len(scans) == 2  # NEW's blobs are recognised by diff_id and only hashed
    diff = compare(plain, oci)
    assert diff.identical
    assert len(scans) == 2 + 2 + 2  # gzip blobs named by a digest OLD never saw must be read
    assert (len(diff.layers.shared), diff.layers.reused) == (2, 0)


def test_a_blob_that_is_not_the_promised_layer_is_read_again(tmp_path: Path, scans: list[str]) -> None:
    old = load_image(write(tmp_path, "old", synth.Image([BASE]), "docker-legacy"))
    new_ref = write(tmp_path, "new", synth.Image([MIDDLE]), "docker-legacy")
    truth = load_image(new_ref)
    scans.clear()
    forged = dataclasses.replace(old.layers[0], blob=truth.layers[0].blob)  # same name, other content
    new = load_image(new_ref, known_layers=[forged])
    assert new.layers[0].diff_id == truth.layers[0].diff_id
    assert new.layers[0].entries.paths == truth.layers[0].entries.paths
    assert len(scans) == 1  # hashed under the false promise, then read again in full


def test_layers_history_and_divergence(tmp_path: Path) -> None:
    old_ref = write(tmp_path, "old", synth.Image([BASE, layer(synth.file("a", b"1"))], env=["A=1"]))
    new_ref = write(
        tmp_path, "new", synth.Image([BASE, layer(synth.file("a", b"2")), MIDDLE], env=["A=2"], cmd=["run"])
    )
    diff = compare(old_ref, new_ref)
    assert diff.layers.diverged_at == 1
    assert [la.index for la in diff.layers.old] == [1]
    assert [la.index for la in diff.layers.new] == [1, 2]
    assert [h.line for h in diff.layers.old_history] == ["ENV A=1", "RUN synth-step-1", 'CMD ["/bin/sh"]']
    assert [h.line for h in diff.layers.new_history] == [
        "ENV A=2",
        "RUN synth-step-1",
        "RUN synth-step-2",
        'CMD ["run"]',
    ]


# -- files ----------------------------------------------------------------------------------------
def test_added_removed_modified_with_deltas(tmp_path: Path) -> None:
    old = layer(
        synth.file("keep", b"k" * 10),
        synth.file("grow", b"g" * 100),
        synth.file("chmod", b"c" * 7, mode=0o644),
        synth.file("chown", b"o" * 3),
        synth.file("gone/a", b"a" * 40),
        synth.symlink("link", "keep"),
        synth.file("became-dir", b"x" * 5),
        synth.directory("dir-mode", mode=0o755),
    )
    new = layer(
        synth.file("keep", b"k" * 10),
        synth.file("grow", b"G" * 250),
        synth.file("chmod", b"c" * 7, mode=0o755),
        synth.file("chown", b"o" * 3, uid=1000, gid=1000),
        synth.symlink("link", "grow"),
        synth.file("became-dir/inner", b"i" * 9),
        synth.file("new/file", b"n" * 30),
        synth.directory("dir-mode", mode=0o700),
    )
    diff = compare(write(tmp_path, "old", synth.Image([old])), write(tmp_path, "new", synth.Image([new])))
    got = {c.path.decode(): (c.kind, c.type, c.old_size, c.new_size, c.delta, c.what) for c in diff.changes}
    assert got == {
        "grow": ("modified", "file", 100, 250, 150, ("content",)),
        "chmod": ("modified", "file", 7, 7, 0, ("mode",)),
        "chown": ("modified", "file", 3, 3, 0, ("owner",)),
        "link": ("modified", "symlink", 0, 0, 0, ("link",)),
        "became-dir": ("modified", "dir", 5, 0, -5, ("type", "mode")),
        "became-dir/inner": ("added", "file", None, 9, 9, ()),
        "dir-mode": ("modified", "dir", 0, 0, 0, ("mode",)),
        "gone": ("removed", "dir", 0, None, 0, ()),
        "gone/a": ("removed", "file", 40, None, -40, ()),
        "new": ("added", "dir", None, 0, 0, ()),
        "new/file": ("added", "file", None, 30, 30, ()),
    }
    s = diff.summary
    assert (s.added, s.removed, s.modified, s.moved) == (2, 1, 6, 0)
    assert s.bytes_delta == 150 - 5 + 9 - 40 + 30
    assert s.files_delta == 0
    assert (s.added_bytes, s.removed_bytes) == (189, 45)
    doc = valid(diff)
    assert doc["files"]["modified"][0] == {
        "path": "grow",
        "type": "file",
        "old_type": "file",
        "old_size": 100,
        "new_size": 250,
        "delta": 150,
        "changed": ["content"],
        "old_mode": "0644",
        "new_mode": "0644",
        "old_owner": "0:0",
        "new_owner": "0:0",
        "old_digest": synth.sha256(b"g" * 100),
        "new_digest": synth.sha256(b"G" * 250),
    }
    assert doc["summary"]["bytes_delta"] == s.bytes_delta


def test_moves(tmp_path: Path) -> None:
    same = b"print('hello')\n" * 30
    dup = b"D" * 1000
    old = layer(
        synth.file("src/app.py", same),
        synth.file("x/conf.ini", b"c=1\n" * 10),
        synth.file("y/settings.ini", b"c=1\n" * 10),
        synth.file("data/one.bin", dup),
        synth.file("data/two.bin", dup),
        synth.file("empty/a"),
    )
    new = layer(
        synth.file("app/app.py", same, mode=0o755),
        synth.file("z/settings.ini", b"c=1\n" * 10),
        synth.file("data2/one.bin", dup),
        synth.file("empty/b"),
    )
    diff = compare(write(tmp_path, "old", synth.Image([old])), write(tmp_path, "new", synth.Image([new])))
    moves = {c.old_path.decode(): (c.path.decode(), c.delta, c.what) for c in diff.of_kind("moved")}
    assert moves == {
        "src/app.py": ("app/app.py", 0, ("mode",)),
        "y/settings.ini": ("z/settings.ini", 0, ()),  # the same base name wins over x/conf.ini
        "data/one.bin": ("data2/one.bin", 0, ()),
    }
    assert sorted(c.path.decode() for c in diff.of_kind("removed") if c.type == "file") == [
        "data/two.bin",
        "empty/a",  # empty files are never paired
        "x/conf.ini",
    ]
    assert [c.path.decode() for c in diff.of_kind("added") if c.type == "file"] == ["empty/b"]
    assert diff.summary.moved == 3
    doc = valid(diff)
    moved = {m["old_path"]: m for m in doc["files"]["moved"]}
    assert moved["src/app.py"]["path"] == "app/app.py"
    assert moved["src/app.py"]["changed"] == ["mode"]
    assert moved["src/app.py"]["old_size"] == moved["src/app.py"]["new_size"] == len(same)


def test_rollups_per_directory(tmp_path: Path) -> None:
    old = layer(
        synth.file("a/b/c/big.bin", b"B" * 5000),
        synth.file("usr/lib/x.so", b"x" * 300),
        synth.file("usr/lib/y.so", b"y" * 200),
        synth.file("usr/bin/tool", b"t" * 100),
        synth.file("src/moved.txt", b"m" * 700),
    )
    new = layer(
        synth.file("usr/lib/x.so", b"x" * 900),
        synth.file("usr/bin/tool", b"t" * 100),
        synth.file("usr/bin/new", b"n" * 50),
        synth.file("dst/moved.txt", b"m" * 700),
    )
    diff = compare(write(tmp_path, "old", synth.Image([old])), write(tmp_path, "new", synth.Image([new])))
    folders = {d.path.decode(): d for d in rollup(diff.changes)}
    root = folders[""]
    assert root.delta == diff.summary.bytes_delta == -5000 + 600 - 200 + 50
    assert (root.added, root.removed, root.modified, root.moved) == (1, 2, 1, 1)
    usr = folders["usr"]
    assert (usr.delta, usr.bytes_added, usr.bytes_removed) == (450, 650, 200)
    assert (usr.added, usr.removed, usr.modified) == (1, 1, 1)
    assert (folders["src"].delta, folders["src"].moved) == (-700, 1)
    assert (folders["dst"].delta, folders["dst"].moved) == (700, 1)
    top = [(d.path.decode(), d.delta) for d in diff.directories()]
    # a and a/b only hold a/b/c's changes: the deepest folder stands for them; biggest |delta| first
    assert top == [
        ("a/b/c", -5000),
        ("dst", 700),
        ("src", -700),
        ("usr", 450),
        ("usr/lib", 400),
        ("usr/bin", 50),
    ]
    assert top_directories(rollup(diff.changes), 2) == diff.directories(2)
    doc = valid(diff)
    assert [d["path"] for d in doc["files"]["directories"]][:3] == ["a/b/c", "dst", "src"]


# -- ignores --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("**/*.pyc", "a.pyc", True),
        ("**/*.pyc", "usr/lib/x/a.pyc", True),
        ("**/*.pyc", "usr/lib/a.py", False),
        ("**/__pycache__/**", "usr/__pycache__", True),
        ("**/__pycache__/**", "usr/__pycache__/m.cpython-311.pyc", True),
        ("var/log/apt/**", "var/log/apt", True),
        ("var/log/apt/**", "var/log/apt/history.log", True),
        ("var/log/apt/**", "var/log/aptitude", False),
        ("/var/log/dpkg.log", "var/log/dpkg.log", True),
        ("var/lib/dpkg/*-old", "var/lib/dpkg/status-old", True),
        ("var/lib/dpkg/*-old", "var/lib/dpkg/sub/status-old", False),
        ("app/?.txt", "app/a.txt", True),
        ("app/?.txt", "app/ab.txt", False),
        ("app/[ab].txt", "app/b.txt", True),
        ("app/[!ab].txt", "app/b.txt", False),
        ("app/[!ab].txt", "app/c.txt", True),
        ("*.log", "x.log", True),
        ("*.log", "d/x.log", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/**", "a", True),
        ("a/**", "ab", False),
        ("**", "any/thing", True),
        ("app/[]x].txt", "app/].txt", True),
        ("app/[!]]x", "app/]x", False),
        ("a&b/[&~|]", "a&b/~", True),
    ],
)
def test_glob_patterns(pattern: str, path: str, hit: bool) -> None:
    assert ignore_matcher([pattern])(path.encode()) is hit, glob_regex(pattern)


def test_a_pattern_naming_a_folder_covers_its_contents() -> None:
    ignored = ignore_matcher(["app/.git"])
    assert ignored(b"app/.git")
    assert ignored(b"app/.git/objects/ab/cdef")
    assert not ignored(b"app/.github/workflow.yml")
    assert not ignore_matcher([])(b"anything")


def test_ignores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def image(version: bytes) -> synth.Image:
        return synth.Image(
            [
                layer(
                    synth.file("usr/lib/python3/__pycache__/m.cpython-311.pyc", b"pyc" + version),
                    synth.file("usr/lib/python3/m.pyc", b"pyc" + version),
                    synth.file("var/log/dpkg.log", b"log " + version),
                    synth.file("var/cache/ldconfig/aux-cache", b"aux" + version),
                    synth.file(f"var/lib/apt/lists/mirror_{version.decode()}_Packages", b"Package: x\n"),
                    synth.file("app/logs/run.log", b"started " + version),
                    synth.file("app/main.py", b"print(1)\n" if version == b"1" else b"print(2)\n"),
                )
            ]
        )

    old = write(tmp_path, "old", image(b"1"))
    new = write(tmp_path, "new", image(b"22"))
    diff = compare(old, new)
    assert kinds(diff) == {"app/logs/run.log": "modified", "app/main.py": "modified"}
    assert diff.summary.ignored == 6  # two bytecode files, the log, the cache, a list gone and one added
    assert diff.summary.ignored_bytes_delta == 4
    assert kinds(compare(old, new, [*DEFAULT_IGNORES, "app/logs"])) == {"app/main.py": "modified"}
    everything = compare(old, new, [])
    assert len(everything.changes) == 7
    (move,) = everything.of_kind("moved")  # the same list under a new name
    assert (move.old_path, move.path) == (
        b"var/lib/apt/lists/mirror_1_Packages",
        b"var/lib/apt/lists/mirror_22_Packages",
    )
    code, out, _ = cli(capsys, old, new, "--ignore", "app/**", "--json", "-")
    doc = json.loads(out)
    jsonschema.validate(doc, schema())
    assert (code, doc["summary"]["identical"], doc["files"]["ignored"]["count"]) == (0, True, 8)
    assert doc["ignore"] == [*DEFAULT_IGNORES, "app/**"]
    code, out, _ = cli(capsys, old, new, "--no-default-ignores", "--ignore", "app/**")
    assert code == 1
    assert "~ var/log/dpkg.log" in out
    code, out, _ = cli(capsys, old, new, "--ignore", "app")
    assert code == 0
    assert "No differences (ignoring 8 paths)." in out


def test_help_lists_the_default_ignores(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for pattern in DEFAULT_IGNORES:
        assert f"  {pattern}\n" in out
    for flag in ("--ignore GLOB", "--no-default-ignores", "--max-growth", "--max-new-files", "--json FILE"):
        assert flag in out


# -- packages -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("manager", "old", "new", "order"),
    [
        ("dpkg", "1.0-1", "1.0-2", 1),
        ("dpkg", "2.0", "1:1.0", 1),  # the epoch wins
        ("dpkg", "1.0", "1.0~rc1", -1),  # ~ sorts before everything, even the end
        ("dpkg", "2.36-9+deb12u4", "2.36-9+deb12u10", 1),
        ("dpkg", "1.0a", "1.0+", 1),  # letters before other characters
        ("dpkg", "12.2.0-14", "12.2.0-14", 0),
        ("dpkg", "1.01", "1.1", 0),
        ("pip", "1.9", "1.10", 1),
        ("pip", "1.0", "1.0rc1", -1),
        ("pip", "1.0", "1.0.post1", 1),
        ("pip", "1.0", "1.0.0", 0),
        ("pip", "2023.1-custom!x", "2023.10-custom!x", 1),  # not PEP 440: natural order
        ("npm", "1.2.0", "1.10.0", 1),
        ("npm", "1.0.0", "1.0.0-rc.1", -1),
        ("npm", "1.0.0-alpha", "1.0.0-alpha.1", 1),
        ("npm", "1.0.0-alpha.1", "1.0.0-alpha.beta", 1),  # numeric identifiers first
        ("npm", "1.0.0-beta.11", "1.0.0-beta.2", -1),
        ("npm", "1.0.0+build.1", "1.0.0+build.2", 0),
        ("apk", "1.2.3-r1", "1.2.3-r2", 1),
        ("apk", "1.2.3", "1.2.3_rc1", -1),
        ("apk", "1.2.3", "1.2.3_p1", 1),
        ("apk", "1.9.0-r0", "1.10.0-r0", 1),
        ("apk", "1.2a", "1.2b", 1),
    ],
)
def test_version_ordering(manager: str, old: str, new: str, order: int) -> None:
    assert compare_versions(manager, old, new) == order
    assert compare_versions(manager, new, old) == -order


def test_dpkg_compare_matches_dpkg_examples() -> None:
    versions = ["1.0~~", "1.0~~a", "1.0~", "1.0", "1.0-1", "1.0a", "1.0+", "1.0.1", "1:0.1"]
    for i, a in enumerate(versions):
        for b in versions[i + 1 :]:
            assert dpkg_compare(a, b) < 0 < dpkg_compare(b, a), (a, b)


def test_pep440_falls_back_without_packaging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "packaging.version", None)  # import fails
    assert compare_versions("pip", "1.9", "1.10") == 1
    assert compare_versions("pip", "1.10", "1.9.9") == -1


def _packaged(versions: dict[str, str], extra: int) -> synth.Image:
    """dpkg, apk, pip and npm databases naming the given versions; each package owns one file."""
    stanzas = "".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: {v}\nArchitecture: amd64\n\n"
        for name, v in versions.items()
        if name.startswith("deb-")
    )
    entries = [synth.file("var/lib/dpkg/status", stanzas)]
    for name in versions:
        if name.startswith("deb-"):
            entries.append(synth.file(f"var/lib/dpkg/info/{name}.list", f"/usr/share/{name}/data\n"))
            entries.append(
                synth.file(f"usr/share/{name}/data", b"d" * (100 + (extra if name == "deb-up" else 0)))
            )
    apk = "".join(
        f"P:{name}\nV:{v}\nA:x86_64\nF:usr/lib/{name}\nR:lib.so\n\n"
        for name, v in versions.items()
        if name.startswith("apk-")
    )
    entries.append(synth.file("lib/apk/db/installed", apk))
    for name in versions:
        if name.startswith("apk-"):
            entries.append(synth.file(f"usr/lib/{name}/lib.so", b"a" * 50))
    site = "usr/lib/python3/dist-packages"
    for name, v in versions.items():
        if name.startswith("py-"):
            info = f"{site}/{name}-{v}.dist-info"
            entries.append(
                synth.file(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {v}\n")
            )
            record = f"{name}/__init__.py,,\n{name}-{v}.dist-info/METADATA,,\n"
            entries.append(synth.file(f"{info}/RECORD", record))
            entries.append(synth.file(f"{site}/{name}/__init__.py", b"p" * 20))
        if name.startswith("js-"):
            entries.append(
                synth.file(f"app/node_modules/{name}/package.json", json.dumps({"name": name, "version": v}))
            )
    return synth.Image([layer(*entries)])


def test_packages(tmp_path: Path) -> None:
    old = _packaged(
        {
            "deb-up": "1.0-1",
            "deb-down": "1:1.0",
            "deb-gone": "3.0",
            "deb-same": "1.0",
            "apk-up": "1.2.3_rc1-r0",
            "py-up": "1.9",
            "js-up": "1.2.0",
            "js-down": "2.0.0",
        },
        0,
    )
    new = _packaged(
        {
            "deb-up": "1.0-2",
            "deb-down": "2.0",
            "deb-new": "0.1",
            "deb-same": "1.0",
            "apk-up": "1.2.3-r0",
            "py-up": "1.10",
            "js-up": "1.10.0",
            "js-down": "2.0.0-rc.1",
        },
        40,
    )
    diff = compare(write(tmp_path, "old", old), write(tmp_path, "new", new))
    got = {(p.manager, p.name): (p.kind, p.old_version, p.new_version, p.delta) for p in diff.packages}
    assert got == {
        ("dpkg", "deb-up"): ("upgraded", "1.0-1", "1.0-2", 40),
        ("dpkg", "deb-down"): ("downgraded", "1:1.0", "2.0", 0),
        ("dpkg", "deb-gone"): ("removed", "3.0", None, -100),
        ("dpkg", "deb-new"): ("added", None, "0.1", 100),
        ("apk", "apk-up"): ("upgraded", "1.2.3_rc1-r0", "1.2.3-r0", 0),
        ("pip", "py-up"): ("upgraded", "1.9", "1.10", 1),  # METADATA is one byte longer
        ("npm", "js-up"): ("upgraded", "1.2.0", "1.10.0", 1),
        ("npm", "js-down"): ("downgraded", "2.0.0", "2.0.0-rc.1", 5),
    }
    assert [p.name for p in diff.packages] == [  # biggest absolute delta first
        "deb-gone",
        "deb-new",
        "deb-up",
        "js-down",
        "js-up",
        "py-up",
        "apk-up",
        "deb-down",
    ]
    doc = valid(diff)
    assert doc["packages"]["upgraded"][0]["name"] == "deb-up"
    assert doc["summary"]["packages"] == {
        "added": 1,
        "removed": 1,
        "upgraded": 4,
        "downgraded": 2,
        "changed": 0,
    }
    assert not diff.identical


# -- config ---------------------------------------------------------------------------------------
def test_config(tmp_path: Path) -> None:
    common = [BASE]
    old = synth.Image(
        common,
        entrypoint=["/bin/tool"],
        cmd=["serve"],
        env=["PATH=/bin", "A=1", "GONE=x"],
        user="",
        workdir="/srv",
        exposed_ports=["80/tcp", "443/tcp"],
        labels={"keep": "1", "version": "1.0", "old": "y"},
    )
    new = synth.Image(
        common,
        architecture="arm64",
        entrypoint=["/bin/tool", "--verbose"],
        cmd=None,
        env=["PATH=/bin", "A=2", "NEW=z"],
        user="1000:1000",
        workdir="/srv",
        exposed_ports=["443/tcp", "8080/tcp"],
        labels={"keep": "1", "version": "2.0", "new": "n"},
    )
    diff = compare(write(tmp_path, "old", old), write(tmp_path, "new", new))
    got = [(c.field, c.kind, c.key, c.old, c.new) for c in diff.config]
    assert got == [
        ("entrypoint", "changed", None, ["/bin/tool"], ["/bin/tool", "--verbose"]),
        ("cmd", "removed", None, ["serve"], None),
        ("env", "changed", "A", "1", "2"),
        ("env", "removed", "GONE", "x", None),
        ("env", "added", "NEW", None, "z"),
        ("user", "added", None, "", "1000:1000"),
        ("exposed_ports", "removed", "80/tcp", "80/tcp", None),
        ("exposed_ports", "added", "8080/tcp", None, "8080/tcp"),
        ("labels", "added", "new", None, "n"),
        ("labels", "removed", "old", "y", None),
        ("labels", "changed", "version", "1.0", "2.0"),
        ("platform", "changed", None, "linux/amd64", "linux/arm64"),
    ]
    assert diff.changes == []
    assert not diff.identical
    doc = valid(diff)
    assert doc["config"]["old"]["env"] == {"PATH": "/bin", "A": "1", "GONE": "x"}
    assert doc["config"]["new"]["platform"] == "linux/arm64"


# -- findings -------------------------------------------------------------------------------------
def test_findings_introduced_fixed_and_net_per_category(tmp_path: Path) -> None:
    old = synth.Image(
        [
            layer(
                synth.file("usr/bin/gcc-12", b"\x7fELF" + b"g" * 996),
                synth.directory("root/.cache/pip"),
                synth.file("root/.cache/pip/wheel.whl", b"w" * 500),
                synth.file("tmp-big", b"t" * 3000),
            ),
            layer(synth.whiteout("tmp-big")),
        ]
    )
    new = synth.Image(
        [
            layer(
                synth.directory("root/.cache/pip"),
                synth.file("root/.cache/pip/wheel.whl", b"w" * 800),
                synth.file("app/.env", b"TOKEN=x\n"),
            ),
        ]
    )
    diff = compare(write(tmp_path, "old", old), write(tmp_path, "new", new))
    f = diff.findings
    rules = {r.finding.rule.id: (r.status, r.old_bytes, r.new_bytes, r.introduced, r.fixed) for r in f.rules}
    assert rules == {
        "SS101": ("fixed", 1000, 0, [], [(b"usr/bin/gcc-12", 1000)]),
        "SS205": ("grew", 500, 800, [], []),
        "SS502": ("introduced", 0, 8, [(b"app/.env", 8)], []),
    }
    assert f.categories["toolchain"] == (1000, 0)
    assert f.categories["cache"] == (500, 800)
    assert f.categories["secret"] == (0, 8)
    assert f.hidden == (3000, 0)
    assert [(h.path, h.bytes, h.reason) for h in f.hidden_fixed] == [(b"tmp-big", 3000, "deleted")]
    assert f.hidden_introduced == []
    assert f.new_removable_bytes == diff.summary.new_removable_bytes == 300 + 8
    assert diff.summary.removable_bytes_delta == -1000 + 300 + 8
    doc = valid(diff)
    assert doc["findings"]["categories"]["toolchain"] == {"old": 1000, "new": 0, "delta": -1000}
    assert doc["findings"]["hidden"]["fixed"] == [
        {"path": "tmp-big", "reason": "deleted", "bytes": 3000, "layer": 0}
    ]
    assert "TOKEN" not in json.dumps(doc)


# -- output ---------------------------------------------------------------------------------------
def test_text_is_sanitized_and_names_that_are_not_utf8_are_lossless(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = synth.Image([layer(synth.file("ok", b"1"))], labels={"x": "a"})
    new = synth.Image(
        [layer(synth.file("ok", b"1"), synth.file(b"evil\x1b[31mred", b"e"), synth.file(b"raw\xff", b"r"))],
        labels={"x": "\x1b]0;pwned\x07"},
    )
    old_ref, new_ref = write(tmp_path, "old", old), write(tmp_path, "new", new)
    code, out, _ = cli(capsys, old_ref, new_ref, "--top", "5")
    assert code == 1
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[31mred" in out
    assert "raw\\xff" in out
    assert "\\x1b]0;pwned\\x07" in out
    code, out, _ = cli(capsys, old_ref, new_ref, "--json", "-")
    doc = json.loads(out)
    jsonschema.validate(doc, schema())
    added = {a["path"]: a for a in doc["files"]["added"]}
    assert added["raw\\xff"]["path_b64"] == "cmF3/w=="


def test_json_to_a_file_and_text_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_ref = write(tmp_path, "old", synth.Image([BASE]))
    new_ref = write(tmp_path, "new", synth.Image([BASE, MIDDLE]))
    target = tmp_path / "out" / "diff.json"
    target.parent.mkdir()
    code, out, err = cli(capsys, old_ref, new_ref, "--json", str(target))
    assert (code, out, err) == (1, "", "")
    doc = json.loads(target.read_text())
    jsonschema.validate(doc, schema())
    assert doc["summary"]["bytes_delta"] == 5000
    assert doc["summary"]["files_delta"] == 1
    assert [a["path"] for a in doc["files"]["added"]] == ["usr/share/data.bin", "usr", "usr/share"]
    code, out, _ = cli(capsys, old_ref, new_ref, "--json", str(target), "--summary")
    assert code == 1
    assert "Files: 1 added, 0 removed, 0 modified, 0 moved (+5.0 kB / 0 B)" in out
    assert "+5.0 kB  + usr/share/data.bin" in out


# -- exit codes and CI ----------------------------------------------------------------------------
@pytest.fixture
def grown(tmp_path: Path) -> tuple[str, str]:
    old = synth.Image([BASE])
    new = synth.Image(
        [BASE, layer(synth.file("usr/bin/gcc-12", b"\x7fELF" + b"g" * 1996), synth.file("a", b"x"))]
    )
    return write(tmp_path, "old", old), write(tmp_path, "new", new)


def test_exit_codes(grown: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    old, new = grown
    assert cli(capsys, old, old)[0] == 0
    assert cli(capsys, new, new)[0] == 0
    assert cli(capsys, old, new)[0] == 1
    assert cli(capsys, new, old)[0] == 1


def test_ci_thresholds(grown: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    old, new = grown
    code, out, _ = cli(capsys, old, new, "--ci", "--max-growth", "10kB", "--max-new-files", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[-3:] == [
        "PASS  max-growth: growth +2,001 B (+2.0 kB), at most 10,000 B",
        "PASS  max-new-files: 2 new paths, at most 2",
        "CI result: PASS (2 of 2 checks pass)",
    ]
    code, out, _ = cli(
        capsys, old, new, "--max-growth", "2000", "--max-new-files", "1", "--max-new-removable", "0"
    )
    assert code == 1
    assert out.splitlines()[-4:] == [
        "FAIL  max-growth: growth +2,001 B (+2.0 kB), at most 2,000 B",
        "FAIL  max-new-files: 2 new paths, at most 1",
        "FAIL  max-new-removable: new removable +2,000 B (+2.0 kB), at most 0 B",
        "CI result: FAIL (0 of 3 checks pass)",
    ]
    code, out, _ = cli(capsys, new, old, "--max-growth", "0", "--max-new-removable", "0")  # shrinking passes
    assert code == 0
    assert out.splitlines()[-1] == "CI result: PASS (2 of 2 checks pass)"
    code, out, err = cli(capsys, old, new, "--json", "-", "--max-growth", "0")
    assert code == 1
    assert json.loads(out)["summary"]["image_bytes_delta"] == 2001
    assert err.splitlines()[-1] == "CI result: FAIL (0 of 1 checks pass)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MISSING.tar", "{new}"], "slimscope: error: no such file: MISSING.tar"),
        (["{old}", "{bad}"], "slimscope: error: NEW ({bad}): the archive is truncated"),
        (["{bad}", "{new}"], "slimscope: error: OLD ({bad}): the archive is truncated"),
        (["{old}", "{new}", "--ci"], "slimscope: error: --ci needs a threshold"),
        (["{old}", "{new}", "--max-growth", "lots"], "slimscope: error: not a size: 'lots'"),
        (["{old}", "{new}", "--ignore", "a/[z-a]"], "slimscope: error: bad ignore pattern 'a/[z-a]'"),
        (["{old}", "{new}", "--top", "0"], "slimscope: error: --top takes a positive number"),
        (["{old}", "{new}", "--json", "-", "--summary"], "slimscope: error: --summary and --json - both"),
        (["{old}", "{new}", "--json", "/nonexistent/dir/x.json"], "slimscope: error: cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    grown: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    old, new = grown
    bad = tmp_path / "bad.tar"
    bad.write_bytes(Path(new).read_bytes()[:5000])
    missing = str(tmp_path / "MISSING.tar")
    argv = [a.format(old=old, new=new, bad=bad).replace("MISSING.tar", missing) for a in args]
    code, out, err = cli(capsys, *argv)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1, err
    assert err.startswith(message.replace("MISSING.tar", missing).format(bad=bad)), err


def test_the_command_line_end_to_end(grown: tuple[str, str]) -> None:
    old, new = grown
    proc = subprocess.run(
        [sys.executable, "-m", "slimscope", "diff", old, new, "--json", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema())
    assert doc["findings"]["rules"][0]["rule"] == "SS101"
    assert doc["findings"]["rules"][0]["status"] == "introduced"
    proc = subprocess.run(
        [sys.executable, "-m", "slimscope", "diff", old, str(Path(old).with_name("nope.tar"))],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("slimscope: error: no such file")


def test_diff_images_is_plain_data(tmp_path: Path) -> None:
    old = load_image(write(tmp_path, "old", synth.Image([BASE])))
    new = load_image(write(tmp_path, "new", synth.Image([BASE, MIDDLE])))
    diff = diff_images(old, new)
    assert isinstance(diff.old.image, Image)
    (change,) = [c for c in diff.changes if c.type == "file"]
    assert (change.path, change.kind, change.old_size, change.new_size, change.delta) == (
        b"usr/share/data.bin",
        "added",
        None,
        5000,
        5000,
    )
    code = (
        "import sys; import slimscope.analysis.diff, slimscope.report.diff_text, slimscope.commands.diff; "
        "assert 'textual' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_piped_text_keeps_long_lines_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not folded at 140 columns: a long path and its size stay on one line, for grep."""
    monkeypatch.delenv("COLUMNS", raising=False)
    deep = "/".join(["a-rather-long-folder-name"] * 7) + "/data.bin"
    old = write(tmp_path, "old", synth.Image([BASE]))
    new = write(tmp_path, "new", synth.Image([BASE, layer(synth.file(deep, b"x" * 3000))]))
    code, out, err = cli(capsys, old, new)
    assert (code, err) == (1, "")
    lines = [line for line in out.splitlines() if deep in line]
    assert lines and len(lines[0]) > 140 and "3.0 kB" in lines[0]
