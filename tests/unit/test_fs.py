"""Merging layers: whiteouts, opaque directories, hard links and per-layer change sets."""

from __future__ import annotations

import io
import tarfile

import pytest

import slimscope.fs
from slimscope.fs import ADDED, IGNORED, META, MODIFIED, UNCHANGED, Dir, Filesystem
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import TarStream


@pytest.fixture(autouse=True, params=["compiled", "python"])
def merge_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the compiled merge loops and on the Python ones alone."""
    if request.param == "python":
        monkeypatch.setattr(slimscope.fs, "_fastfs", None)
    elif slimscope.fs._fastfs is None:
        pytest.skip("the compiled merge is not built")
    return request.param


def layer(*members: tuple) -> LayerEntries:
    """Build a layer from (name, kind, data_or_link, mode) tuples; kind in f d l h."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload, *rest in members:
            info = tarfile.TarInfo(name)
            info.mode = rest[0] if rest else 0o644
            if kind == "f":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            if kind in "lh":
                info.linkname = payload
            tf.addfile(info)
    stream = TarStream()
    stream.feed(buf.getvalue())
    stream.close()
    return stream.entries


def paths(fs: Filesystem) -> dict[bytes, str]:
    return {p: ("d" if type(n) is Dir else fs.entry(n).kind_name[0]) for p, n in fs.walk()}


def test_file_and_directory_whiteouts_remove_lower_paths() -> None:
    base = layer(
        ("etc/", "d", None),
        ("etc/passwd", "f", b"root"),
        ("opt/app/", "d", None),
        ("opt/app/a", "f", b"aaaa"),
        ("opt/app/sub/b", "f", b"bb"),
    )
    top = layer(("etc/.wh.passwd", "f", b""), ("opt/.wh.app", "f", b""))
    fs = Filesystem([base, top])
    assert paths(fs) == {b"etc": "d", b"opt": "d"}
    assert fs.changes[1].deleted.count == 1 + 4  # passwd; app, a, sub, sub/b
    assert fs.changes[1].deleted.bytes == 4 + 4 + 2
    assert fs.changes[1].removals == [(b"etc/passwd", 1, 4, "file"), (b"opt/app", 4, 6, "dir")]
    assert list(fs.changes[1].codes) == [IGNORED, IGNORED]
    assert fs.stats().files == 0


def test_opaque_directory_hides_lower_children_only() -> None:
    base = layer(("cache/", "d", None), ("cache/old1", "f", b"1"), ("cache/old2", "f", b"22"))
    top = layer(("cache/", "d", None), ("cache/new", "f", b"333"), ("cache/.wh..wh..opq", "f", b""))
    fs = Filesystem([base, top])
    assert paths(fs) == {b"cache": "d", b"cache/new": "f"}
    assert fs.changes[1].deleted.count == 2
    assert fs.changes[1].deleted.bytes == 3
    assert fs.stats().bytes == 3


def test_whiteout_then_recreate_in_same_layer() -> None:
    base = layer(("data/", "d", None), ("data/x", "f", b"old"))
    top = layer(("data/.wh.x", "f", b""), ("data/x", "f", b"new!"))
    fs = Filesystem([base, top])
    assert fs.entry(fs.lookup(b"data/x")).size == 4
    assert fs.changes[1].deleted.count == 1
    assert fs.changes[1].added.count == 1  # relative to the filesystem after the whiteout


def test_change_codes() -> None:
    base = layer(
        ("d/", "d", None, 0o755),
        ("d/same", "f", b"s"),
        ("d/chmod", "f", b"c"),
        ("d/edit", "f", b"e"),
        ("d/link", "l", "same"),
    )
    top = layer(
        ("d/", "d", None, 0o755),
        ("d/same", "f", b"s"),
        ("d/chmod", "f", b"c", 0o600),
        ("d/edit", "f", b"E2"),
        ("d/link", "l", "edit"),
        ("d/new", "f", b"n"),
        ("d2/", "d", None, 0o700),
    )
    fs = Filesystem([base, top])
    assert list(fs.changes[1].codes) == [UNCHANGED, META, META, MODIFIED, MODIFIED, ADDED, ADDED]
    c = fs.changes[1]
    assert (c.added.count, c.added.bytes) == (2, 1)
    assert (c.modified.count, c.modified.bytes) == (2, 2)
    assert (c.metadata_only.count, c.metadata_only.bytes) == (2, 2)


def test_hard_links_count_bytes_once() -> None:
    base = layer(("bin/", "d", None), ("bin/perl5.36", "f", b"p" * 1000), ("bin/perl", "h", "bin/perl5.36"))
    fs = Filesystem([base])
    stats = fs.stats()
    assert (stats.files, stats.bytes) == (2, 1000)
    link = fs.lookup(b"bin/perl")
    assert fs.data_ref(link) == fs.lookup(b"bin/perl5.36")
    # a later layer replaces one name: the old inode stays visible through the link
    top = layer(("bin/perl5.36", "f", b"q" * 10))
    fs = Filesystem([base, top])
    assert fs.stats().bytes == 1010


def test_hard_link_to_missing_target_is_a_problem_not_a_crash() -> None:
    fs = Filesystem([layer(("x", "h", "nowhere"))])
    assert fs.problems == ["layer 0: hard link x points to a missing file nowhere"]
    assert fs.stats().files == 1


def test_implied_parent_directories_exist() -> None:
    fs = Filesystem([layer(("a/b/c/file", "f", b"1"))])
    assert paths(fs) == {b"a": "d", b"a/b": "d", b"a/b/c": "d", b"a/b/c/file": "f"}
    assert fs.stats().dirs == 3


def test_file_replaced_by_directory_and_back() -> None:
    one = layer(("p", "f", b"file"))
    two = layer(("p/", "d", None), ("p/child", "f", b"c"))
    three = layer(("p", "f", b"again"))
    fs = Filesystem([one, two, three])
    assert list(fs.changes[1].codes) == [MODIFIED, ADDED]
    assert list(fs.changes[2].codes) == [MODIFIED]
    assert paths(fs) == {b"p": "f"}
    assert fs.lookup(b"p/child") is None


def test_resolve_follows_symlinks_and_stops_on_loops() -> None:
    base = layer(
        ("usr/lib/x86_64-linux-gnu/libc.so.6", "f", b"elf"),
        ("lib", "l", "usr/lib"),
        ("usr/lib/libc-link", "l", "/lib/x86_64-linux-gnu/libc.so.6"),
        ("loop/a", "l", "b"),
        ("loop/b", "l", "a"),
        ("rel/up", "l", "../usr/lib"),
    )
    fs = Filesystem([base])
    found = fs.resolve(b"lib/x86_64-linux-gnu/libc.so.6")
    assert found is not None and found[0] == b"usr/lib/x86_64-linux-gnu/libc.so.6"
    assert fs.resolve(b"usr/lib/libc-link")[0] == b"usr/lib/x86_64-linux-gnu/libc.so.6"
    assert fs.resolve(b"usr/lib/libc-link", follow_last=False)[0] == b"usr/lib/libc-link"
    assert fs.resolve(b"rel/up/x86_64-linux-gnu/libc.so.6")[0] == b"usr/lib/x86_64-linux-gnu/libc.so.6"
    assert fs.resolve(b"loop/a") is None
    assert fs.resolve(b"missing/x") is None
