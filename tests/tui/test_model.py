"""The explorer's pure logic (slimscope.tui.model) on the synthetic five-layer image."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slimscope.analysis import Analysis
from slimscope.tui.model import (
    MARK_DELETED,
    Filters,
    FsSource,
    LayerSource,
    PathIndex,
    Searcher,
    TreeSource,
    arrange,
    describe,
    search,
)


def rows_by_path(source, path: bytes) -> dict[bytes, tuple]:
    """(mark, size, files, removable, is_dir) of each child row."""
    return {r.path: (r.mark, r.size, r.files, r.removable, r.is_dir) for r in source.children(path)}


def test_final_layer_rows(explorer_analysis: Analysis) -> None:
    source = FsSource(explorer_analysis, explorer_analysis.fs, 4)
    top = rows_by_path(source, b"")
    assert top[b"usr"] == (" ", 7900, 5, 7000, True)
    assert top[b"tmp-big"] == ("-", 3000, 1, 0, False)
    assert rows_by_path(source, b"var/tmp")[b"var/tmp/build"] == ("-", 1000, 3, 0, True)
    assert [r.name for r in arrange(source.children(b""), Filters())] == [
        b"usr", b"tmp-big", b"root", b"app", b"var", b"etc"
    ]  # fmt: skip


def test_deleted_folders_obey_the_deleted_filter(explorer_analysis: Analysis) -> None:
    source = FsSource(explorer_analysis, explorer_analysis.fs, 4)
    filters = Filters()
    filters.marks.discard(MARK_DELETED)
    assert [r.path for r in arrange(source.children(b"var/tmp"), filters)] == []
    assert b"tmp-big" not in [r.path for r in arrange(source.children(b""), filters)]


def test_marks_below_folders(explorer_analysis: Analysis) -> None:
    fs = explorer_analysis.fs
    source = FsSource(explorer_analysis, fs, 4)
    # the folder's own mark counts in the filesystem view: var/tmp is an (unchanged) folder
    assert source.marks_below(b"var/tmp") == {"-", " "}
    assert source.marks_below(b"usr/bin") == {"=", " "}  # app stored again, gcc-12 unchanged
    assert source.marks_below(b"") == {"+", "~", "=", "-", " "}
    changes = LayerSource(explorer_analysis, 4)
    assert changes.marks_below(b"var/tmp") == {"-"}  # in a layer's changes, folders are only the way
    filters = Filters()
    filters.marks -= {MARK_DELETED, " "}
    # var/ holds nothing but unchanged entries and a deletion: hidden with the source, kept without it
    assert b"var" not in [r.path for r in arrange(source.children(b""), filters, source=source)]
    assert b"var" in [r.path for r in arrange(source.children(b""), filters)]
    # the filesystem view's own walk agrees with the generic one over rows (plus each folder's own
    # mark), for every folder and layer
    for layer in range(len(fs.layers)):
        fast, generic = FsSource(explorer_analysis, fs, layer), FsSource(explorer_analysis, fs, layer)
        folders = [(path, node) for path, node in fs.walk() if not isinstance(node, int)]
        for path, node in [(b"", fs.root), *folders]:
            below = TreeSource.marks_below(generic, path)
            own = {generic._mark(node.ref)}
            # the generic walk folds a sub-folder in by its contents, or its own mark when empty
            expected = own | below | _own_marks_below(generic, fs, path)
            assert fast.marks_below(path) == expected, (layer, path)


def _own_marks_below(source: FsSource, fs, path: bytes) -> set[str]:
    """The own marks of every folder below `path`."""
    node = fs.lookup(path)
    marks: set[str] = set()
    stack = [(path, node)]
    while stack:
        folder, current = stack.pop()
        for name, child in current.children.items():
            if not isinstance(child, int):
                marks.add(source._mark(child.ref))
                stack.append((folder + b"/" + name if folder else name, child))
    return marks


def test_layer_source_totals(explorer_analysis: Analysis) -> None:
    """A layer's folders carry the bytes, files and removable bytes the layer stored below them."""
    source = LayerSource(explorer_analysis, 1)
    top = rows_by_path(source, b"")
    assert top[b"usr"] == (" ", 5000, 2, 5000, True)
    assert top[b"var"][1:4] == (297, 2, 0)
    only_removable = Filters(removable_only=True)
    assert [r.path for r in arrange(source.children(b""), only_removable)] == [b"usr"]
    last = LayerSource(explorer_analysis, 4)
    assert rows_by_path(last, b"")[b"tmp-big"] == ("-", 3000, 1, 0, False)
    assert rows_by_path(last, b"var/tmp")[b"var/tmp/build"] == ("-", 1000, 3, 0, True)


def test_search(explorer_analysis: Analysis) -> None:
    paths = FsSource(explorer_analysis, explorer_analysis.fs, 4).all_paths()
    assert search(paths, "") is None

    def shown(found: object) -> set[bytes]:
        return {p for p in paths if p in found}  # what the tree keeps: matches and folders above them

    assert shown(search(paths, "GCC-12")) == {
        b"usr", b"usr/bin", b"usr/bin/gcc-12", b"var", b"var/lib", b"var/lib/dpkg", b"var/lib/dpkg/info",
        b"var/lib/dpkg/info/gcc-12:amd64.list",
    }  # fmt: skip
    assert shown(search(paths, r"\.py$", regex=True)) == {
        b"app", b"app/main.py", b"app/tests", b"app/tests/test_main.py", b"usr", b"usr/local",
        b"usr/local/lib", b"usr/local/lib/python3.11", b"usr/local/lib/python3.11/site-packages",
        b"usr/local/lib/python3.11/site-packages/flask",
        b"usr/local/lib/python3.11/site-packages/flask/__init__.py",
    }  # fmt: skip
    with pytest.raises(re.error):
        search(paths, "(", regex=True)
    assert search(paths, "GCC-12").hits == [b"usr/bin/gcc-12", b"var/lib/dpkg/info/gcc-12:amd64.list"]
    assert b"usr/bin/gcc" not in search(paths, "GCC-12")  # a sibling prefix is not a parent


def test_searcher_narrows_while_typing(explorer_analysis: Analysis) -> None:
    source = FsSource(explorer_analysis, explorer_analysis.fs, 4)
    searcher = source.searcher()
    assert source.searcher() is searcher
    wide = searcher.hits("gc")
    narrow = searcher.hits("gcc-1")
    assert set(narrow) <= set(wide)
    assert narrow == [p for p in searcher.paths if b"gcc-1" in p.lower()]
    assert searcher.hits("main") == [p for p in searcher.paths if b"main" in p]  # a new query starts over


# A small tree whose sorted order puts look-alike names between a folder and its contents
# ('a/b!' and 'a/b-c' sort between 'a/b' and 'a/b/...'), with names a substring could run across.
PATHS = [
    b"a", b"a/b", b"a/b!", b"a/b-c", b"a/b/Make", b"a/b/x.PY", b"a/b/y", b"ab", b"ab/cd", b"q", b"q/xa",
    b"q/xb", b"u", b"u/\xc3\xa9t\xc3\xa9", b"u/new\nline", b"u/\xffraw.py",
]  # fmt: skip


def shown(found: object) -> list[bytes]:
    """The paths a search keeps in the tree: matches and the folders above them."""
    return [p for p in PATHS if p in found]


def test_substring_matches_are_exact() -> None:
    searcher = Searcher(PATHS)
    found = search(searcher, "b/")
    assert found.hits == [b"a/b/Make", b"a/b/x.PY", b"a/b/y", b"ab/cd"]
    assert len(found) == 4 and bool(found)
    assert shown(found) == [b"a", b"a/b", b"a/b/Make", b"a/b/x.PY", b"a/b/y", b"ab", b"ab/cd"]
    # 'a/b!' and 'a/b-c' sort inside a/b's block of descendants; they neither match nor count
    assert b"a/b!" not in found and b"a/b-c" not in found and b"a/b/" not in found
    assert b"nope" not in found and b"a/b/zzz" not in found and "a" not in found  # a str is no path
    found = search(searcher, "b")
    assert found.hits == [
        b"a/b",
        b"a/b!",
        b"a/b-c",
        b"a/b/Make",
        b"a/b/x.PY",
        b"a/b/y",
        b"ab",
        b"ab/cd",
        b"q/xb",
    ]
    assert len(found) == 9
    twice = search(Searcher([b"bb", b"bb/b", b"c"]), "b")
    assert twice.hits == [b"bb", b"bb/b"] and len(twice) == 2  # a path holding the needle twice counts once
    assert search(searcher, "ax").hits == []  # 'q/xa' then 'q/xb': no match across two paths
    assert (
        search(searcher, "ax") is not None and not search(searcher, "ax") and len(search(searcher, "ax")) == 0
    )
    assert shown(search(searcher, "ax")) == []
    assert search(searcher, "w\nl").hits == [b"u/new\nline"]  # hostile names are paths like any other
    assert search(searcher, "\udcffraw").hits == [b"u/\xffraw.py"]  # not UTF-8: typed as surrogates
    assert shown(search(searcher, "y")) == [b"a", b"a/b", b"a/b/x.PY", b"a/b/y", b"u", b"u/\xffraw.py"]


def test_substring_case() -> None:
    searcher = Searcher(PATHS)
    assert searcher.hits("make") == searcher.hits("MAKE") == searcher.hits("mAkE") == [b"a/b/Make"]
    assert searcher.hits(".py") == [b"a/b/x.PY", b"u/\xffraw.py"]
    # like bytes.lower, only ASCII letters fold: '\xc3\xa9' (é) is not 'É'
    assert searcher.hits("\u00e9") == [b"u/\xc3\xa9t\xc3\xa9"]
    assert searcher.hits("\u00c9") == []


def test_regex_search() -> None:
    searcher = Searcher(PATHS)
    assert searcher.hits(r"\.py$", regex=True) == [b"a/b/x.PY", b"u/\xffraw.py"]  # case-insensitive
    assert searcher.hits(r"^a/b.$", regex=True) == [b"a/b!"]
    assert searcher.hits(r"b/[xy]", regex=True) == [b"a/b/x.PY", b"a/b/y"]
    found = search(searcher, r"^q/x", regex=True)
    assert shown(found) == [b"q", b"q/xa", b"q/xb"] and len(found) == 2
    # '.' does not match a newline; the name is one path, not two lines
    assert searcher.hits(r"new.line", regex=True) == []
    assert searcher.hits(r"^line", regex=True) == []
    assert searcher.hits(r"new\nline", regex=True) == [b"u/new\nline"]
    # a plain literal is searched as a substring, with the same case folding
    assert searcher.hits("MAKE", regex=True) == searcher.hits("make") == [b"a/b/Make"]
    assert shown(search(searcher, "q/x", regex=True)) == shown(search(searcher, "q/x"))
    for bad in ("(", "[a-", "*x", "a{2,1}"):
        with pytest.raises(re.error):
            search(searcher, bad, regex=True)
    assert searcher.hits("a(", regex=False) == []  # a bad regex is a fine substring
    with pytest.raises(re.error):
        searcher.matches("a(", regex=True)


def test_typing_narrows_and_deleting_widens_back() -> None:
    searcher = Searcher(PATHS)
    typed = ["a", "a/", "a/b", "a/b/", "a/b/x", "a/b/", "a/b", "a/", "a", "A/B"]
    expected = {
        "a": [
            b"a",
            b"a/b",
            b"a/b!",
            b"a/b-c",
            b"a/b/Make",
            b"a/b/x.PY",
            b"a/b/y",
            b"ab",
            b"ab/cd",
            b"q/xa",
            b"u/\xffraw.py",
        ],
        "a/": [b"a/b", b"a/b!", b"a/b-c", b"a/b/Make", b"a/b/x.PY", b"a/b/y"],
        "a/b": [b"a/b", b"a/b!", b"a/b-c", b"a/b/Make", b"a/b/x.PY", b"a/b/y"],
        "a/b/": [b"a/b/Make", b"a/b/x.PY", b"a/b/y"],
        "a/b/x": [b"a/b/x.PY"],
        "A/B": [b"a/b", b"a/b!", b"a/b-c", b"a/b/Make", b"a/b/x.PY", b"a/b/y"],
    }
    seen: dict[str, object] = {}
    for query in typed:
        found = search(searcher, query)
        assert found.hits == expected[query] == [p for p in PATHS if query.lower().encode() in p.lower()]
        assert len(found) == len(expected[query])
        assert shown(found) == sorted(
            {p for p in PATHS for h in expected[query] if h == p or h.startswith(p + b"/")}
        )
        if query in seen:
            assert found is seen[query]  # deleting a character gives back the kept matches
        seen[query] = found
    assert search(searcher, "a/b/x").hits == [b"a/b/x.PY"]
    assert search(searcher, "") is None


def test_search_over_paths_holding_a_nul() -> None:
    """Not from a tar, but possible in a Searcher: such paths are searched one by one."""
    searcher = Searcher([b"a\0b", b"ab", b"b"])
    assert searcher.hits("b") == [b"a\0b", b"ab", b"b"]
    assert searcher.hits("ab") == [b"ab"]
    assert searcher.hits("a\0") == [b"a\0b"]
    assert Searcher([b"ab", b"cd"]).hits("b\0c") == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([b"a", b"A", b"b", b"ab", b"\n", b"\xe9"]), min_size=1, max_size=3),
        max_size=12,
    ),
    st.lists(
        st.sampled_from(["a", "A", "b", "ab", "/", "a/", "b/a", "\n", "\udce9", "ba/b"]),
        min_size=1,
        max_size=4,
    ),
)
def test_substring_search_matches_a_plain_scan(parts: list[list[bytes]], queries: list[str]) -> None:
    paths = sorted({b"/".join(p[: i + 1]) for p in parts for i in range(len(p))})
    searcher = Searcher(paths)
    probes = paths + [p + b"x" for p in paths] + [p + b"/" for p in paths] + [b"", b"zz"]
    for query in queries:
        needle = query.encode("utf-8", "surrogateescape").lower()
        hits = [p for p in paths if needle in p.lower()]
        found = search(searcher, query)
        assert found.hits == hits and len(found) == len(hits) and bool(found) == bool(hits)
        for probe in probes:
            assert (probe in found) == any(h == probe or h.startswith(probe + b"/") for h in hits), probe


def test_describe_puts_the_digest_last(explorer_analysis: Analysis) -> None:
    source = FsSource(explorer_analysis, explorer_analysis.fs, 4)
    row = next(r for r in source.children(b"usr/bin") if r.name == b"gcc-12")
    labels = [label for label, _ in describe(explorer_analysis, PathIndex(explorer_analysis), row)]
    assert labels == [
        "path", "type", "size", "mode", "owner", "created", "history", "package", "finding", "remedy",
        "digest",
    ]  # fmt: skip


REGEXES = [
    "^a", "a$", "^$", "x*", "$", "^", "b/a", "(a)\\1", "\\ba", "a\\b", "\\Ba", "(?<=a)b", "(?<!a)b", "a(?=/)",
    "a(?!b)", "(?<=\\n)a", "[^a]", "\\s", "\\S+$", ".", "^.$", "(?s).", "\\Aa", "a\\Z", "a|^b", "(?i)A",
    "[ab]{2}", "a.*b", "^(a|b)+$", "\\W", "(?m)^b", "(?:a|b/)+a$", "[a-c]$", "\\d|\\D", "b(?=\\n)",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from([b"a", b"A", b"b", b"ab", b"ba", b"\xe9", b"\n", b"a\nb"]), min_size=1, max_size=3
        ),
        max_size=10,
    ),
    st.lists(st.sampled_from(REGEXES), min_size=1, max_size=6),
)
def test_regex_search_matches_a_plain_scan(parts: list[list[bytes]], queries: list[str]) -> None:
    """Whether run over the joined buffer or path by path, a regex finds what re.search finds per path."""
    paths = sorted({b"/".join(p[: i + 1]) for p in parts for i in range(len(p))})
    searcher = Searcher(paths)
    probes = paths + [p + b"x" for p in paths] + [b"", b"zz"]
    for query in queries:
        pattern = re.compile(query.encode(), re.IGNORECASE)
        hits = [p for p in paths if pattern.search(p)]
        found = search(searcher, query, regex=True)
        assert found.hits == hits and len(found) == len(hits) and bool(found) == bool(hits), query
        for probe in probes:
            assert (probe in found) == any(h == probe or h.startswith(probe + b"/") for h in hits), (
                query,
                probe,
            )


def test_which_regexes_run_over_the_buffer() -> None:
    """Only a regex that cannot match or see a newline runs over the newline-joined paths."""
    searcher = Searcher([b"a", b"a/b.py", b"c"])
    fast = [r"mod0[0-7]/", r"\.py$", "^a", "(a)\\1", "\\bb", "(?<=a)/", "[^\\n]", "\\S"]
    slow = ["[^a]", "\\s", "\\W", "(?s).", "\\Aa", "a\\Z", "(?<!\\s)b", "(?x)a", "a\\n", "[\\x00-\\x20]"]
    assert [type(searcher.matches(r, regex=True)).__name__ for r in fast] == ["_BufferMatches"] * len(fast)
    assert [type(searcher.matches(r, regex=True)).__name__ for r in slow] == ["PathMatches"] * len(slow)
    assert searcher.hits(r"\.py$", regex=True) == [b"a/b.py"]
    assert searcher.hits("[^a]", regex=True) == [b"a/b.py", b"c"]
    # a path with a newline: every regex is tried path by path
    hostile = Searcher([b"a", b"a/x\ny", b"b"])
    assert type(hostile.matches("^y", regex=True)).__name__ == "PathMatches"
    assert hostile.hits("^y", regex=True) == [] and hostile.hits("y$", regex=True) == [b"a/x\ny"]


def _events_by_building_everything(analysis: Analysis) -> dict[bytes, list[tuple[int, str]]]:
    """The events of every path, built as one dict of lists (what PathIndex did before it looked up)."""
    from slimscope.fs import ADDED, META, MODIFIED, UNCHANGED
    from slimscope.image.layer import WHITEOUT

    names = {ADDED: "added", MODIFIED: "modified", META: "stored again", UNCHANGED: "listed again"}
    events: dict[bytes, list[tuple[int, str]]] = {}
    for layer, entries in enumerate(analysis.fs.layers):
        codes = analysis.fs.changes[layer].codes
        for index, path in enumerate(entries.paths):
            if entries.kinds[index] < WHITEOUT:
                events.setdefault(path, []).append((layer, names.get(codes[index], "stored")))
    return events


@pytest.mark.parametrize("name", ["explorer_analysis", "wide_analysis", "hostile_analysis", "shell_analysis"])
def test_path_events_are_every_listing_of_the_path(name: str, request: pytest.FixtureRequest) -> None:
    analysis = request.getfixturevalue(name)
    expected = _events_by_building_everything(analysis)
    index = PathIndex(analysis)
    paths = {p for entries in analysis.fs.layers for p in entries.paths} | {b"", b"no/such/path"}
    for path in paths:
        got = [event for event in index.events(path) if not event[1].startswith("deleted")]
        assert got == sorted(expected.get(path, [])), path


def test_a_path_listed_twice_in_one_layer_has_both_events() -> None:
    import synth

    from slimscope.fs import Filesystem
    from slimscope.image.tarstream import TarStream

    layers = []
    for layer in (
        synth.Layer([synth.file("a", b"1")]),
        synth.Layer([synth.file("a", b"22"), synth.file("b", b""), synth.file("a", b"1", mode=0o600)]),
    ):
        stream = TarStream()
        stream.feed(synth.layer_tar(layer))
        stream.close()
        layers.append(stream.entries)

    class Holder:
        fs = Filesystem(layers)

    events = PathIndex(Holder).events(b"a")  # type: ignore[arg-type]
    assert events == [(0, "added"), (1, "modified"), (1, "modified")]
