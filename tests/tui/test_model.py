"""The explorer's pure logic (slimscope.tui.model) on the synthetic five-layer image."""

from __future__ import annotations

import re

import pytest

from slimscope.analysis import Analysis
from slimscope.tui.model import (
    MARK_DELETED,
    Filters,
    FsSource,
    LayerSource,
    PathIndex,
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


def test_describe_puts_the_digest_last(explorer_analysis: Analysis) -> None:
    source = FsSource(explorer_analysis, explorer_analysis.fs, 4)
    row = next(r for r in source.children(b"usr/bin") if r.name == b"gcc-12")
    labels = [label for label, _ in describe(explorer_analysis, PathIndex(explorer_analysis), row)]
    assert labels == [
        "path", "type", "size", "mode", "owner", "layer", "history", "package", "finding", "remedy", "digest"
    ]  # fmt: skip
