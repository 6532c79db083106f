"""Problems of the merged filesystem (issue 8): symlink loops, symlinks that climb out of the image root,
whiteouts in the first layer; plain text that the views escape once."""

from __future__ import annotations

import json

import pytest
import synth

import slimscope.fs as fs_module
from slimscope.fs import Filesystem
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import TarStream
from slimscope.sanitize import json_text, visible

S, F, D, L = synth.symlink, synth.file, synth.directory, synth.Layer
LOOP = "never resolves (more than 40 levels of symbolic links: a loop)"
OUT = "climbs out of the image root with '..'"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def merge_loops(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the compiled merge loops and on the Python ones alone."""
    if request.param == "python":
        monkeypatch.setattr(fs_module, "_fastfs", None)
    elif fs_module._fastfs is None:
        pytest.skip("the compiled merge is not built")
    return request.param


def entries(*members: synth.Entry) -> LayerEntries:
    stream = TarStream()
    stream.feed(synth.layer_tar(list(members)))
    stream.close()
    return stream.entries


def problems(*layers: list[synth.Entry]) -> list[str]:
    return Filesystem([entries(*members) for members in layers]).problems


def test_two_links_pointing_at_each_other_and_a_self_link_are_loops() -> None:
    assert problems([S("loop/a", "b"), S("loop/b", "a"), S("self", "self"), F("ok", b"1")]) == [
        f"layer 0: symlink loop/a -> b {LOOP}",
        f"layer 0: symlink loop/b -> a {LOOP}",
        f"layer 0: symlink self -> self {LOOP}",
    ]


def test_a_loop_through_a_folder_link_and_links_into_a_loop() -> None:
    # a -> b/x needs b, which is a link back to a: the kernel's lookup of a never ends
    found = problems([S("a", "b/x"), S("b", "a"), S("c", "/a"), S("d", "x/../a"), D("x"), F("f", b"")])
    assert found == [
        f"layer 0: symlink a -> b/x {LOOP}",
        f"layer 0: symlink b -> a {LOOP}",
        f"layer 0: symlink c -> /a {LOOP}",
        f"layer 0: symlink d -> x/../a {LOOP}",
    ]


@pytest.mark.parametrize("length, loops", [(40, False), (41, True)])
def test_a_chain_longer_than_the_kernel_follows_does_not_resolve(length: int, loops: bool) -> None:
    # l0 -> l1 -> ... -> l{length-1} -> file: looking up l0 follows `length` links (ELOOP above 40)
    chain = [S(f"l{i}", f"l{i + 1}") for i in range(length - 1)] + [S(f"l{length - 1}", "file")]
    found = problems([*reversed(chain), F("file", b"x")])
    assert found == ([f"layer 0: symlink l0 -> l1 {LOOP}"] if loops else [])


def test_fine_links_are_no_problem() -> None:
    members = [
        D("usr/lib/x"), F("usr/lib/x/libz.so.1.3", b"z"),
        S("usr/lib/x/libz.so.1", "libz.so.1.3"), S("usr/lib/x/libz.so", "libz.so.1"),  # a chain
        S("usr/bin/python", "/usr/lib/x/libz.so"), S("usr/share/up", "../.."),  # up to the root itself
        S("usr/share/lib", "../lib/./x//"), S("usr/share/abs", "/../../../etc/passwd"),  # absolute
        S("etc/mtab", "/proc/self/mounts"), S("dangling", "nowhere/at/all"), S("empty", ""),
        S("usr/lib/x/file-dir", "libz.so.1.3/below"),  # a file in the middle: ENOTDIR, not a loop
    ]  # fmt: skip
    assert problems(members) == []


def test_relative_targets_that_climb_above_the_root() -> None:
    found = problems(
        [
            S("out", "../../../../etc/shadow"),
            S("a/b/ok", "../../etc/shadow"),  # reaches / exactly: fine
            S("a/b/out", "../../../etc/shadow"),
            S("a/zigzag", "c/../../../x"),  # down one, then up three from a/
            S("a/abs", "/etc/shadow"),
        ]
    )
    assert found == [
        f"layer 0: symlink out -> ../../../../etc/shadow {OUT}",
        f"layer 0: symlink a/b/out -> ../../../etc/shadow {OUT}",
        f"layer 0: symlink a/zigzag -> c/../../../x {OUT}",
    ]


def test_only_links_visible_in_the_final_filesystem_count() -> None:
    found = problems(
        [S("self", "self"), S("d/out", "../../x"), S("kept", "kept")],
        [F("self", b"now a file"), synth.whiteout("d"), S("new", "../up")],
    )
    assert found == [f"layer 1: symlink new -> ../up {OUT}", f"layer 0: symlink kept -> kept {LOOP}"]


def test_whiteouts_in_the_first_layer_have_nothing_to_delete() -> None:
    found = problems(
        [synth.whiteout("etc/passwd"), synth.whiteout("gone"), synth.opaque("usr"), F("a", b"1")],
        [synth.whiteout("a"), synth.whiteout("never-there"), synth.opaque("usr")],  # later layers: fine
    )
    assert found == [
        "layer 0: whiteout etc/.wh.passwd in the first layer has nothing to delete",
        "layer 0: whiteout .wh.gone in the first layer has nothing to delete",
        "layer 0: opaque whiteout usr/.wh..wh..opq in the first layer has nothing to hide",
    ]


def test_problems_of_one_kind_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fs_module, "MAX_PROBLEMS_PER_KIND", 2)
    found = problems([S(f"s{i}", f"s{i}") for i in range(5)] + [synth.whiteout(f"w{i}") for i in range(3)])
    assert found == [
        "layer 0: whiteout .wh.w0 in the first layer has nothing to delete",
        "layer 0: whiteout .wh.w1 in the first layer has nothing to delete",
        "... and 1 more whiteouts in the first layer",
        f"layer 0: symlink s0 -> s0 {LOOP}",
        f"layer 0: symlink s1 -> s1 {LOOP}",
        "... and 3 more symlink loops",
    ]


def test_the_loop_check_stops_at_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # links whose target goes through a link take the walk; 10 links of ~45 components each
    monkeypatch.setattr(fs_module, "LINK_CHECK_BUDGET", 100)
    found = problems([S("d", "d"), *[S(f"x{i}", "d/y") for i in range(10)]])
    assert found[:2] == [f"layer 0: symlink d -> d {LOOP}", f"layer 0: symlink x0 -> d/y {LOOP}"]
    assert found[-1] == "symlinks not all checked for loops: the check stops after 100 path components"
    assert len(found) < 12


def test_the_checks_run_once_and_only_when_problems_are_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    check = Filesystem._check_symlinks
    monkeypatch.setattr(Filesystem, "_check_symlinks", lambda self: calls.append(1) or check(self))
    fs = Filesystem([entries(S("self", "self"))])
    assert calls == []
    assert fs.problems == fs.problems == [f"layer 0: symlink self -> self {LOOP}"]
    assert calls == [1]


def test_problems_hold_raw_names_escaped_once_by_each_view() -> None:
    name = b"esc-\x1b[31m-bad-\xff-back\\slash"
    found = problems([synth.hardlink(name, b"nowhere"), S(name + b"-loop", name + b"-loop")])
    raw = name.decode("utf-8", "surrogateescape")
    assert found == [
        f"layer 0: hard link {raw} points to a missing file nowhere",
        f"layer 0: symlink {raw}-loop -> {raw}-loop {LOOP}",
    ]
    assert (
        visible(found[0])
        == r"layer 0: hard link esc-\x1b[31m-bad-\xff-back\\slash points to a missing file nowhere"
    )
    assert (
        json_text(found[0])
        == "layer 0: hard link esc-\x1b[31m-bad-\\xff-back\\slash points to a missing file nowhere"
    )
    assert json.dumps(json_text(found[0])) == (
        r'"layer 0: hard link esc-\u001b[31m-bad-\\xff-back\\slash points to a missing file nowhere"'
    )
