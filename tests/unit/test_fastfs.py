"""The compiled merge and survey loops (_fastfs.c) against the Python ones, on the same layers.

Every result of the merge (the tree, each layer's change codes and tallies, what hid what, hard link
data, problems) and of the survey must be the same. test_fs.py and test_fs_problems.py also run
whole on both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import synth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slimscope.fs as fsmod
from slimscope.fs import Dir, Filesystem
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import TarStream

pytestmark = pytest.mark.skipif(
    fsmod._fastfs is None and not os.environ.get("SLIMSCOPE_REQUIRE_COMPILED"),
    reason="the compiled merge is not built (no compiler at install time, or SLIMSCOPE_PURE_PYTHON set)",
)
EXAMPLES = int(os.environ.get("SLIMSCOPE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("SLIMSCOPE_FUZZ_RANDOM") != "1",
)


@contextmanager
def _loops(fast: bool) -> Iterator[None]:
    """Run the block on the compiled loops (fast) or on the Python ones alone."""
    saved = fsmod._fastfs
    if not fast:
        fsmod._fastfs = None
    try:
        yield
    finally:
        fsmod._fastfs = saved


def _entries(layer: synth.Layer) -> LayerEntries:
    stream = TarStream()
    stream.feed(synth.layer_tar(layer))
    stream.close()
    return stream.entries


def _everything(layers: list[LayerEntries], fast: bool) -> tuple:
    with _loops(fast):
        fs = Filesystem(layers)
        tree = sorted((path, ("dir", node.ref) if type(node) is Dir else node) for path, node in fs.walk())
        changes = [
            (bytes(c.codes), c.added, c.modified, c.metadata_only, c.deleted, c.removals) for c in fs.changes
        ]
        stats, visible, by_layer = fs.survey()
        assert fs.paths() == [path for path, _ in fs.walk()]  # the compiled walk, in walk's order
        return tree, changes, fs.hidden_by, fs.inode, fs.problems, stats, visible, by_layer


def _same(layers: list[LayerEntries]) -> None:
    assert _everything(layers, True) == _everything(layers, False)


def test_the_compiled_merge_is_built() -> None:
    assert fsmod._fastfs is not None, "slimscope._fastfs did not build or import"


def test_sample_layers_merge_the_same() -> None:
    layers = [_entries(layer) for layer in synth.sample_layers("none")]
    _same(layers)
    fast = _everything(layers, True)
    assert fast[5].files > 0 and fast[5].dirs > 0 and fast[3]  # hard links, dirs and files were there


def test_plain_members_are_the_compiled_loops() -> None:
    """A layer of new files in existing folders goes through merge_plain: the tallies say so."""
    base = synth.Layer([synth.directory("a"), synth.directory("a/b")])
    top = synth.Layer([synth.file(f"a/b/f{i}", b"x" * i) for i in range(50)] + [synth.symlink("a/l", "b")])
    layers = [_entries(base), _entries(top)]
    calls = []
    real = fsmod._fastfs.merge_plain

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    class Spy:
        merge_plain = staticmethod(spy)
        survey = staticmethod(fsmod._fastfs.survey)

    saved = fsmod._fastfs
    fsmod._fastfs = Spy
    try:
        fs = Filesystem(layers)
    finally:
        fsmod._fastfs = saved
    assert calls == [0, 1, 0]  # layer 0: both folders are Python's; layer 1: one call takes all 51
    assert (fs.changes[1].added.count, fs.changes[1].added.bytes) == (51, sum(range(50)))
    _same(layers)


kinds = st.sampled_from(["f", "f", "f", "d", "l", "h", "c", "p", "wh", "opq"])
names = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
member = st.tuples(kinds, names, st.sampled_from([b"", b"1", b"22", b"1"]), names)


def _layer(members: list[tuple[str, str, bytes, str]]) -> synth.Layer:
    out = []
    for kind, name, data, other in members:
        if kind == "f":
            out.append(synth.file(name, data))
        elif kind == "d":
            out.append(synth.directory(name))
        elif kind == "l":
            out.append(synth.symlink(name, other))
        elif kind == "h":
            out.append(synth.hardlink(name, other))
        elif kind == "c":
            out.append(synth.chardev(name, 1, 3))
        elif kind == "p":
            out.append(synth.fifo(name))
        elif kind == "wh":
            out.append(synth.whiteout(name))
        else:
            out.append(synth.opaque(name))
    return synth.Layer(out)


@FUZZ
@given(st.lists(st.lists(member, max_size=12), min_size=1, max_size=4))
def test_random_layer_stacks_merge_the_same(stack: list[list[tuple[str, str, bytes, str]]]) -> None:
    _same([_entries(_layer(members)) for members in stack])


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        (synth.file("a", "1"), synth.file("a", "22")),  # replaced: MODIFIED
        (synth.file("a", "1"), synth.file("a", "1", mode=0o600)),  # stored again: META
        (synth.symlink("a", "x"), synth.file("a", "1")),
        (synth.directory("a"), synth.file("a", "1")),  # a folder replaced by a file
        (synth.file("a", "1"), synth.directory("a")),
        (synth.fifo("a"), synth.fifo("a")),
    ],
)
def test_a_name_already_there_is_left_to_the_python_merge(lower: synth.Entry, upper: synth.Entry) -> None:
    layers = [_entries(synth.Layer([lower, synth.file("b", "x")])), _entries(synth.Layer([upper]))]
    _same(layers)
    fast = _everything(layers, True)
    assert fast[1][1][0] != b"\x01"  # not taken for an addition


def test_a_hard_link_walked_before_its_file_counts_the_bytes_once() -> None:
    layer = synth.Layer([synth.directory("z"), synth.file("z/f", b"12345"), synth.hardlink("h", "z/f")])
    layers = [_entries(layer)]
    _same(layers)
    stats, _, by_layer = _everything(layers, True)[5:]
    assert (stats.files, stats.bytes, by_layer) == (2, 5, [5])


def test_survey_refuses_columns_it_cannot_index() -> None:
    """The compiled walk checks its inputs instead of reading past a column."""
    from array import array

    root = Dir(-1)
    root.children[b"a"] = 0
    with pytest.raises(ValueError, match="shorter than its kinds"):
        fsmod._fastfs.survey(root, Dir, [bytearray(b"\0")], [array("q")], {}, set())
    root.children[b"b"] = 5  # index 5 of a one-member layer
    with pytest.raises(IndexError, match="outside the layers"):
        fsmod._fastfs.survey(root, Dir, [bytearray(b"\0")], [array("q", [1])], {}, set())
    with pytest.raises(ValueError, match="shorter than paths"):
        fsmod._fastfs.merge_plain([b"x", b"y"], bytearray(1), array("q", [0]), bytearray(1), {}, 0, 0)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("SLIMSCOPE_FUZZ_RANDOM") != "1")
@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [
                    bytes(32),
                    b"\x01" * 32,
                    b"\x01" * 31 + b"\x02",
                    b"\xff" * 32,
                    b"\x01" * 8 + b"\x00" * 24,
                    b"\x01" * 8 + b"\x09" * 24,
                ]
            ),
            max_size=20,
        ),
        max_size=4,
    )
)
def test_repeated_digests_are_counted_the_same(columns: list[list[bytes]]) -> None:
    """The sort in C finds exactly the digests the Counter finds (shared 8-byte prefixes included)."""
    from collections import Counter

    skip = (bytes(32), b"\xff" * 32)
    counts = Counter(d for column in columns for d in column)
    expected = {d for d, n in counts.items() if n > 1 and d not in skip}
    got = fsmod._fastfs.repeated_digests([bytearray(b"".join(c)) for c in columns], skip)
    assert got == expected
    with pytest.raises(ValueError, match="whole number"):
        fsmod._fastfs.repeated_digests([bytearray(33)], skip)


def test_duplicate_files_are_found_the_same() -> None:
    import hashlib

    from slimscope.analysis.waste import analyze_waste

    layers = [
        _entries(synth.Layer([synth.file("a", b"same"), synth.file("b", b"same"), synth.file("e", b"")])),
        _entries(synth.Layer([synth.file("c/d", b"same"), synth.file("f", b""), synth.file("g", b"other")])),
    ]
    results = []
    for fast in (True, False):
        with _loops(fast):
            waste = analyze_waste(Filesystem(layers))
        results.append([(g.digest, g.size, g.paths) for g in waste.duplicates] + [waste.duplicate_bytes])
    digest = "sha256:" + hashlib.sha256(b"same").hexdigest()
    assert results[0] == results[1] == [(digest, 4, [b"a", b"b", b"c/d"]), 8]


# -- the waste loops (analysis/waste.py) ----------------------------------------------------------
def _waste(layers: list[LayerEntries], fast: bool):
    from slimscope.analysis.waste import analyze_waste

    with _loops(fast):
        return analyze_waste(Filesystem(layers))


@FUZZ
@given(st.lists(st.lists(member, max_size=12), min_size=1, max_size=4))
def test_random_layer_stacks_waste_the_same(stack: list[list[tuple[str, str, bytes, str]]]) -> None:
    """Hidden files, duplicates and dive's numbers: every field the same on both paths."""
    layers = [_entries(_layer(members)) for members in stack]
    assert _waste(layers, True) == _waste(layers, False)


def test_sample_layers_waste_the_same() -> None:
    layers = [_entries(layer) for layer in synth.sample_layers("none")]
    fast = _waste(layers, True)
    assert fast == _waste(layers, False)
    assert fast.hidden and fast.dive_wasted_bytes  # the sample stack hides files and repeats paths


def test_the_waste_loops_give_exact_answers() -> None:
    """Each compiled helper on a small hand-made case, against what it must return."""
    from array import array

    fast = fsmod._fastfs
    kinds = bytes([0, 0, 1, 0, 3, 0])  # file, file, dir, file, hard link, file
    sizes = array("q", [5, 0, 9, 7, 0, 2])
    base = 3 << 32
    visible = {base | 0, base | 5, 4}  # member 3 is hidden; 1 is empty; 4 is a link
    assert fast.hidden_files(kinds, sizes, base, visible) == [3]
    assert fast.hidden_files(kinds, sizes, 0, set()) == [0, 3, 5]
    digests = bytearray(b"A" * 32 + b"B" * 32 + b"C" * 32 + b"A" * 32 + bytes(32) + b"A" * 32)
    assert fast.shown_repeats(kinds, sizes, digests, base, visible, {b"A" * 32}) == [
        (b"A" * 32, base | 0),
        (b"A" * 32, base | 5),
    ]
    assert fast.indexes_in([b"a", b"b", b"a", b"c"], {b"a", b"c"}) == [0, 2, 3]
    assert fast.indexes_in([b"a"], set()) == []
    paths = [b"", b"x", b"a/b", b"a/b/c", b"q/r", b"/s"]
    assert fast.parents_in(paths, {b"a", b"a/b", b"x", b"q/r"}) == {b"a", b"a/b"}
    assert fast.parents_in(paths, {b""}) == {b""}  # "x" and "/s" lie in the root, as rpartition says
    root = Dir(-1)
    sub = Dir(7)
    root.children = {b"f": 1, b"d": sub, b"h": 9}
    sub.children = {b"g": 2, b"e": Dir(8)}
    assert fast.paths_of(root, Dir, {9: 2}, {2, 1}) == {1: [b"f"], 2: [b"h", b"d/g"]}


def test_the_waste_loops_refuse_columns_they_cannot_index() -> None:
    from array import array

    fast = fsmod._fastfs
    with pytest.raises(ValueError, match="shorter"):
        fast.hidden_files(bytes(3), array("q", [1, 2]), 0, set())
    with pytest.raises(ValueError, match="shorter"):
        fast.shown_repeats(bytes(2), array("q", [1, 2]), bytearray(32), 0, set(), set())
    with pytest.raises(ValueError, match="shifted"):
        fast.hidden_files(bytes(1), array("q", [1]), 5, set())
    with pytest.raises(TypeError, match="unexpected column"):
        fast.hidden_files(bytes(1), array("i", [1]), 0, set())
    with pytest.raises(TypeError):
        fast.indexes_in((b"a",), set())
    with pytest.raises(TypeError, match="not bytes"):
        root = Dir(-1)
        root.children = {"text": Dir(1)}
        fast.paths_of(root, Dir, {}, set())


# -- the rule walk's name filter (analysis/rules.py) ----------------------------------------------
def _removables(fs: Filesystem, fast: bool) -> tuple:
    from slimscope.analysis.rules import find_removables

    with _loops(fast):
        found = find_removables(fs, {"LANG": "de_DE.UTF-8"})
    return [(f.rule.id, f.bytes, f.count, f.paths, f.by_layer) for f in found.findings], found.roots


# Names that start patterns of every kind (literal, "*.ext", "Dockerfile.*" and ".env.*" prefixes),
# near misses, and folders that anchored patterns reach into.
rule_names = st.sampled_from(
    [
        "a.c",
        "x.h",
        ".c",
        "c",
        "a.cc.txt",
        "node_modules",
        ".git",
        "Dockerfile",
        "Dockerfile.dev",
        "Dockerfile.",
        ".env.",
        "Dockerfile",
        ".env.prod",
        ".env",
        "env.prod",
        "README.md",
        "usr",
        "share",
        "doc",
        "man",
        "include",
        "lib",
        "gcc",
        "__pycache__",
        "m.pyc",
        "m.py",
        "locale",
        "de",
        "fr",
        "Makefile",
        "p.pem",
        "x",
    ]
)
rule_paths = st.lists(rule_names, min_size=1, max_size=5).map("/".join)


@FUZZ
@given(st.lists(st.tuples(rule_paths, st.sampled_from([b"", b"12", b"12345"])), max_size=30))
def test_the_rule_walk_finds_the_same_with_the_filter(files: list[tuple[str, bytes]]) -> None:
    layer = synth.Layer([synth.file(path, data) for path, data in dict(files).items()])
    fs = Filesystem([_entries(layer)])
    assert _removables(fs, True) == _removables(fs, False)


@given(st.dictionaries(st.one_of(rule_names.map(str.encode), st.binary(max_size=6)), st.booleans()))
def test_rule_starts_keeps_what_the_python_walk_would_look_at(children: dict[bytes, bool]) -> None:
    from slimscope.analysis.rules import _compile, load_catalog

    compiled = _compile(load_catalog())
    assert compiled.any_other_prefixes == (b"Dockerfile.", b".env.")
    tree = {name: Dir(1) if is_dir else 5 for name, is_dir in children.items()}

    def starts(name: bytes) -> bool:
        dot = name.rfind(b".")
        return (
            name in compiled.any_literal
            or (dot > 0 and name[dot + 1 :] in compiled.any_ext)
            or compiled.any_other_first.fullmatch(name) is not None
        )

    expected = [(name, node) for name, node in tree.items() if type(node) is Dir or starts(name)]
    fast = fsmod._fastfs
    got = fast.rule_starts(tree, compiled.any_literal, compiled.any_ext, compiled.any_other_prefixes, Dir)
    assert got == expected


def test_a_glob_that_is_not_a_prefix_turns_the_filter_off() -> None:
    from dataclasses import replace

    from slimscope.analysis.rules import _compile, load_catalog

    rules = load_catalog()
    odd = replace(rules[0], id="SS999", paths=("**/x[ab]*",))
    assert _compile((*rules, odd)).any_other_prefixes is None
    assert _compile(rules).any_other_prefixes is not None
