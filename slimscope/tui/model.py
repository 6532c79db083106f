"""What the explorer shows, computed without Textual: tree rows, filters, search and details.

The widgets only turn these rows into lines; everything here is plain Python so it is tested and
benchmarked directly. Children lists are built on demand for the folder being opened, with folder
totals computed once per view in a single pass.
"""

from __future__ import annotations

import re
import stat
from array import array
from bisect import bisect_left
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from slimscope.analysis.core import Analysis
from slimscope.fs import ADDED, IMPLIED, MASK, META, MODIFIED, SHIFT, UNCHANGED, Dir, Filesystem
from slimscope.image.layer import DIR, FILE, HARDLINK, KIND_NAMES, OPAQUE, OTHER_WH, SYMLINK, WHITEOUT

# Marks: one symbol per change, so the tree is readable without colour.
MARK_ADDED = "+"
MARK_MODIFIED = "~"
MARK_META = "="  # stored again with the same content (chmod, chown, touch)
MARK_DELETED = "-"
MARK_NONE = " "
CODE_MARK = {ADDED: MARK_ADDED, MODIFIED: MARK_MODIFIED, META: MARK_META, UNCHANGED: MARK_NONE}
MARK_NAMES = {
    MARK_ADDED: "added",
    MARK_MODIFIED: "modified",
    MARK_META: "stored again",
    MARK_DELETED: "deleted",
    MARK_NONE: "unchanged",
}
SIZE_STEPS = (0, 1_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
CHUNK = 300  # children shown per folder before a "more" row
SEARCH_ROWS = 100  # a search opens the folders that start within this many rows from the top


@dataclass(slots=True)
class Row:
    """One line of the file tree."""

    name: bytes
    path: bytes
    is_dir: bool
    kind: int  # member kind (layer.FILE, DIR, ...)
    size: int  # file bytes; for folders the bytes below them
    files: int  # files below a folder (1 for a file)
    mark: str
    rule: str | None = None  # the finding rule that claimed this path or a parent
    removable: int = 0  # removable bytes at or below this path
    ref: int | None = None  # the member behind the row (None for implied folders and deletions)
    link: bytes | None = None
    delta: int | None = None  # diff mode: bytes NEW has more than OLD here (size is its absolute value)


@dataclass
class Filters:
    """What the tree shows."""

    marks: set[str] = field(
        default_factory=lambda: {MARK_ADDED, MARK_MODIFIED, MARK_META, MARK_DELETED, MARK_NONE}
    )
    removable_only: bool = False
    min_size: int = 0
    sort_by_name: bool = False
    every_mark: frozenset[str] = frozenset({MARK_ADDED, MARK_MODIFIED, MARK_META, MARK_DELETED, MARK_NONE})

    def clear(self) -> None:
        """Show everything again (every kind of change, any size); the sort order stays."""
        self.marks = set(self.every_mark)
        self.removable_only = False
        self.min_size = 0

    @property
    def hides_marks(self) -> bool:
        """Whether some kind of change is hidden (then folders are kept only for what they hold)."""
        return not self.every_mark <= self.marks

    def admits(self, row: Row, below: Callable[[bytes], frozenset[str]] | None = None) -> bool:
        """Whether a row passes the filters. A folder passes when something below it might; with
        `below` (the marks of the leaves below a folder) and a kind of change hidden, only when
        something below it does: no folder opens onto nothing."""
        if row.is_dir:
            if row.mark == MARK_DELETED and MARK_DELETED not in self.marks:
                return False  # a deleted folder is a deletion, not a folder something below might pass
            hiding = below is not None and row.kind != WHITEOUT and self.hides_marks
            if hiding and not (below(row.path) or {row.mark}) & self.marks:  # type: ignore[misc]
                return False
            return (not self.removable_only or row.removable > 0) and row.size >= self.min_size
        if row.mark not in self.marks:
            return False
        if self.removable_only and row.rule is None:
            return False
        return row.size >= self.min_size


class TreeSource:
    """A tree the explorer can show: the filesystem as of a layer, or what one layer changed."""

    title = ""

    def children(self, path: bytes, allowed: Container[bytes] | None = None) -> list[Row]:
        """The rows directly below a folder (unsorted; only paths in `allowed` when given)."""
        raise NotImplementedError

    def all_paths(self) -> list[bytes]:
        """Every path of the tree, for search."""
        raise NotImplementedError

    def marks_below(self, path: bytes) -> frozenset[str]:
        """The marks of the leaves below a folder (an empty folder below counts as a leaf with its own
        mark), worked out for the folder's whole subtree on first use and kept with the source."""
        table: dict[bytes, frozenset[str]] = self.__dict__.setdefault("_marks_below", {})
        found = table.get(path)
        if found is not None:
            return found
        order: list[bytes] = []  # folders, parents before children
        rows_of: dict[bytes, list[Row]] = {}
        stack = [path]
        while stack:
            folder = stack.pop()
            rows = rows_of[folder] = self.children(folder)
            order.append(folder)
            stack.extend(r.path for r in rows if r.is_dir and r.kind != WHITEOUT and r.path not in table)
        for folder in reversed(order):
            marks: set[str] = set()
            for r in rows_of[folder]:
                if r.is_dir and r.kind != WHITEOUT:
                    marks |= table[r.path] or {r.mark}
                else:
                    marks.add(r.mark)
            table[folder] = frozenset(marks)
        return table[path]

    def searcher(self) -> Searcher:
        """A Searcher over all_paths(), kept with the source."""
        cached = getattr(self, "_searcher", None)
        if cached is None:
            cached = self._searcher = Searcher(self.all_paths())
        return cached


class _Totals:
    """Bytes, files and removable bytes below every folder of a Filesystem, in one pass."""

    def __init__(self, fs: Filesystem, analysis: Analysis) -> None:
        self.bytes: dict[bytes, int] = {}
        self.files: dict[bytes, int] = {}
        self.removable: dict[bytes, int] = {}
        roots = analysis.removables.roots
        layers = fs.layers
        # iterative post-order walk
        order: list[tuple[bytes, Dir, bool]] = []
        stack: list[tuple[bytes, Dir, bool]] = [(b"", fs.root, False)]
        while stack:
            path, node, claimed = stack.pop()
            order.append((path, node, claimed))
            for name, child in node.children.items():
                if type(child) is Dir:
                    child_path = path + b"/" + name if path else name
                    stack.append((child_path, child, claimed or child_path in roots))
        # A file can be a claimed root itself only in a folder that holds one: elsewhere no path is made
        # for the lookup (210k files: 0.44 -> 0.2 s).
        root_folders = {root.rpartition(b"/")[0] for root in roots}
        for path, node, claimed in reversed(order):
            total = files = removable = 0
            may_hold_root = path in root_folders
            for name, child in node.children.items():
                if type(child) is Dir:
                    child_path = path + b"/" + name if path else name
                    total += self.bytes[child_path]
                    files += self.files[child_path]
                    removable += self.removable[child_path]
                    continue
                entries = layers[child >> SHIFT]
                index = child & MASK
                kind = entries.kinds[index]
                if kind == FILE:
                    size = entries.sizes[index]
                    total += size
                    files += 1
                    if claimed or (may_hold_root and (path + b"/" + name if path else name) in roots):
                        removable += size
                elif kind == HARDLINK:
                    files += 1
            self.bytes[path] = total
            self.files[path] = files
            self.removable[path] = removable


class FsSource(TreeSource):
    """The merged filesystem after layer `layer`; rows added or changed by that layer are marked."""

    def __init__(self, analysis: Analysis, fs: Filesystem, layer: int) -> None:
        self.analysis = analysis
        self.fs = fs
        self.layer = layer
        self.title = f"filesystem as of layer {layer}"
        self.totals = _Totals(fs, analysis)
        self._codes = fs.changes[layer].codes if fs.changes else bytearray()
        self._removals: dict[bytes, list[tuple[bytes, int, int]]] = {}
        for path, count, size, _ in fs.changes[layer].removals if fs.changes else ():
            parent, _, name = path.rpartition(b"/")
            self._removals.setdefault(parent, []).append((name, count, size))
        self._paths: list[bytes] | None = None

    def children(self, path: bytes, allowed: Container[bytes] | None = None) -> list[Row]:
        node = self.fs.lookup(path)
        rows: list[Row] = []
        if type(node) is Dir:
            rule_of = self.analysis.removables.rule_of
            parent_rule = rule_of(path) if path else None
            roots = self.analysis.removables.roots
            layers = self.fs.layers
            inherited = parent_rule
            for name, child in node.children.items():
                child_path = path + b"/" + name if path else name
                if allowed is not None and child_path not in allowed:
                    continue  # a search: skip rows it hides before building them
                rule = roots.get(child_path, inherited)
                if type(child) is Dir:
                    rows.append(
                        Row(
                            name,
                            child_path,
                            True,
                            DIR,
                            self.totals.bytes.get(child_path, 0),
                            self.totals.files.get(child_path, 0),
                            self._mark(child.ref),
                            rule,
                            self.totals.removable.get(child_path, 0),
                            child.ref if child.ref != IMPLIED else None,
                        )
                    )
                    continue
                entries = layers[child >> SHIFT]
                index = child & MASK
                kind = entries.kinds[index]
                size = entries.sizes[index] if kind == FILE else 0
                rows.append(
                    Row(
                        name,
                        child_path,
                        False,
                        kind,
                        size,
                        1,
                        self._mark(child),
                        rule,
                        size if rule else 0,
                        child,
                        entries.links.get(index),
                    )
                )
        for name, count, size in self._removals.get(path, ()):
            child_path = path + b"/" + name if path else name
            if allowed is None or child_path in allowed:
                rows.append(Row(name, child_path, count > 1, WHITEOUT, size, count, MARK_DELETED))
        return rows

    def marks_below(self, path: bytes) -> frozenset[str]:
        """As TreeSource's, but a folder counts its own mark too: here folders are entries of the
        filesystem, not only the way to what changed (an empty /var/tmp stays when its deletions are
        hidden). From the tree itself, no Row per entry (210k files: 0.5 s -> 0.05 s)."""
        table: dict[bytes, frozenset[str]] = self.__dict__.setdefault("_marks_below", {})
        found = table.get(path)
        if found is not None:
            return found
        top = self.fs.lookup(path)
        if type(top) is not Dir:
            return frozenset()
        order: list[tuple[bytes, Dir]] = []
        stack = [(path, top)]
        while stack:
            folder, node = stack.pop()
            order.append((folder, node))
            for name, child in node.children.items():
                if type(child) is Dir:
                    stack.append((folder + b"/" + name if folder else name, child))
        layer, codes, mark = self.layer, self._codes, self._mark
        for folder, node in reversed(order):
            marks = {mark(node.ref), MARK_DELETED} if folder in self._removals else {mark(node.ref)}
            for name, child in node.children.items():
                if type(child) is Dir:
                    marks |= table[folder + b"/" + name if folder else name]
                elif child >> SHIFT != layer:
                    marks.add(MARK_NONE)
                else:
                    marks.add(CODE_MARK.get(codes[child & MASK], MARK_NONE))
            table[folder] = frozenset(marks)
        return table[path]

    def _mark(self, ref: int) -> str:
        if ref == IMPLIED or ref >> SHIFT != self.layer:
            return MARK_NONE
        return CODE_MARK.get(self._codes[ref & MASK], MARK_NONE)

    def all_paths(self) -> list[bytes]:
        if self._paths is None:
            self._paths = self.fs.paths()
        return self._paths


class LayerSource(TreeSource):
    """Only what one layer stored (and deleted), as a tree."""

    def __init__(self, analysis: Analysis, layer: int) -> None:
        self.analysis = analysis
        self.layer = layer
        self.title = f"changes of layer {layer}"
        entries = analysis.fs.layers[layer]
        codes = analysis.fs.changes[layer].codes
        removed = {path: (count, size) for path, count, size, _ in analysis.fs.changes[layer].removals}
        self._rows: dict[bytes, list[Row]] = {}
        self._dirs: dict[bytes, Row] = {}
        totals: dict[bytes, list[int]] = {}
        for index, path in enumerate(entries.paths):
            kind = entries.kinds[index]
            if not path or kind in (OPAQUE, OTHER_WH):
                continue
            if kind == WHITEOUT:
                count, size = removed.get(path, (0, 0))
                row = Row(path.rpartition(b"/")[2], path, count > 1, WHITEOUT, size, count, MARK_DELETED)
            else:
                size = entries.sizes[index] if kind == FILE else 0
                ref = layer << SHIFT | index
                rule = analysis.removables.rule_of(path)
                row = Row(
                    path.rpartition(b"/")[2],
                    path,
                    kind == DIR,
                    kind,
                    size,
                    0 if kind == DIR else 1,
                    CODE_MARK.get(codes[index], MARK_NONE),
                    rule,
                    size if rule and kind != DIR else 0,
                    ref,
                    entries.links.get(index),
                )
                if kind == DIR:
                    if path in self._dirs:
                        continue
                    self._dirs[path] = row
            self._add(row)
            if not row.is_dir or kind == WHITEOUT:
                parent = path
                while parent:
                    parent = parent.rpartition(b"/")[0]
                    total = totals.get(parent)
                    if total is None:
                        total = totals[parent] = [0, 0, 0]
                    total[0] += row.size
                    total[1] += row.files if kind != WHITEOUT else 0
                    total[2] += row.removable
        for path, row in self._dirs.items():
            # folders show what the layer stored below them: bytes, files and removable bytes
            row.size, row.files, row.removable = totals.get(path, (0, 0, 0))

    def _add(self, row: Row) -> None:
        parent = row.path.rpartition(b"/")[0]
        if parent and parent not in self._dirs:
            implied = Row(parent.rpartition(b"/")[2], parent, True, DIR, 0, 0, MARK_NONE)
            self._dirs[parent] = implied
            self._add(implied)
        self._rows.setdefault(parent, []).append(row)

    def children(self, path: bytes, allowed: Container[bytes] | None = None) -> list[Row]:
        rows = self._rows.get(path, ())
        return [r for r in rows if r.path in allowed] if allowed is not None else list(rows)

    def all_paths(self) -> list[bytes]:
        return [row.path for rows in self._rows.values() for row in rows]


def arrange(
    rows: Iterable[Row],
    filters: Filters,
    allowed: set[bytes] | None = None,
    source: TreeSource | None = None,
) -> list[Row]:
    """Filter and sort rows for display: biggest first (or by name), folders and files mixed. With
    the `source`, a folder with nothing left below it once changes are hidden is hidden too."""
    below = source.marks_below if source is not None and filters.hides_marks else None
    kept = [r for r in rows if filters.admits(r, below) and (allowed is None or r.path in allowed)]
    if filters.sort_by_name:
        kept.sort(key=lambda r: r.name)
    else:
        kept.sort(key=lambda r: (-r.size, r.name))
    return kept


class Searcher:
    """Search over a fixed list of paths, fast while typing.

    The sorted paths are joined once into a buffer (lower-cased, NUL between paths: a tar name cannot
    hold a NUL), with the running total of their lengths. A substring query is then answered from that
    buffer by `bytes.find`, in C, for just the rows the tree asks about: a row is shown when its own
    path, or the block of its descendants' paths (sorting keeps a folder's subtree together), holds
    the needle. A key press does no Python work per path and needs no list of the previous query's
    hits; the number of matching paths is one regex scan of the buffer, made when asked for. A regex
    that is a plain literal is searched as a substring. Any other regex is run the same way over the
    paths joined by newlines when it can neither match nor look at a newline (then a path matches
    alone exactly when it matches in the buffer, `^` and `$` being line anchors), else on every path.
    The last few queries' matches are kept, so deleting a character gives them back at once.
    """

    KEEP = 8  # queries whose matches are kept

    def __init__(self, paths: list[bytes]) -> None:
        self.paths = sorted(paths)  # hits come out sorted, which PathMatches relies on
        self._lower: bytes | None = None  # NUL-joined, lower-cased; None when a path holds a NUL
        self._lines: bytes | None = None  # a newline after each path; None when a path holds a newline
        self._before: array[int] | None = None  # bytes of the paths before path i (separators not counted)
        self._warm = self._warm_l = False  # whether _lower, _lines were made
        self._kept: dict[tuple[bytes, bool], PathMatches] = {}

    def warm(self) -> None:
        """Make both buffers now (the loader does this, off the UI thread); else each on first use."""
        self._warm_lower()
        self._warm_lines()

    def _warm_lower(self) -> None:
        if self._before is None:
            self._before = array("q", accumulate(map(len, self.paths), initial=0))
        if not self._warm:
            self._warm = True
            lower = b"\0".join(self.paths)
            if lower.count(b"\0") == max(0, len(self.paths) - 1):
                self._lower = lower.lower()  # bytes.lower maps each byte: this joins the lowered paths

    def _warm_lines(self) -> None:
        if self._before is None:
            self._before = array("q", accumulate(map(len, self.paths), initial=0))
        if not self._warm_l:
            self._warm_l = True
            lines = b"\n".join(self.paths) + b"\n" if self.paths else b""
            if lines.count(b"\n") == len(self.paths):
                self._lines = lines

    def matches(self, query: str, regex: bool = False) -> PathMatches:
        """Paths matching a case-insensitive substring, or a regex (re.error for a bad one)."""
        raw = query.encode("utf-8", "surrogateescape")
        if regex:
            pattern = re.compile(raw, re.IGNORECASE)  # compiled first: a bad regex raises, even if kept
            regex = re.escape(raw) != raw  # a plain literal is a substring
        key = (raw if regex else raw.lower(), regex)
        found = self._kept.pop(key, None)
        if found is None:
            found = self._regex(raw, pattern) if regex else self._substring(key[0])
            if len(self._kept) >= self.KEEP:
                del self._kept[next(iter(self._kept))]
        self._kept[key] = found  # most recent last
        return found

    def _substring(self, needle: bytes) -> PathMatches:
        self._warm_lower()
        blob = self._lower
        if blob is None or b"\0" in needle or not needle:
            return PathMatches([p for p in self.paths if needle in p.lower()])

        def holds(start: int, end: int) -> bool:
            return blob.find(needle, start, end) >= 0

        # after the needle, [^\0]* runs to the end of its path: one match per matching path
        return _BufferMatches(self, blob, b"\0", holds, re.compile(re.escape(needle) + rb"[^\0]*()"))

    def _regex(self, raw: bytes, pattern: re.Pattern[bytes]) -> PathMatches:
        self._warm_lines()
        blob = self._lines
        if blob is not None and _newline_blind(raw):
            try:
                in_lines = re.compile(raw, re.IGNORECASE | re.MULTILINE)
                # one match per matching path: the rest of its line and its newline are taken with it
                # (never an empty match, so none after the last newline)
                per_line = re.compile(b"(?:" + raw + rb")[^\n]*\n", re.IGNORECASE | re.MULTILINE)
            except re.error:
                pass
            else:

                def holds(start: int, end: int) -> bool:
                    return in_lines.search(blob, start, end) is not None

                return _BufferMatches(self, blob, b"\n", holds, per_line)
        return PathMatches(list(filter(pattern.search, self.paths)))

    def hits(self, query: str, regex: bool = False) -> list[bytes]:
        """The matching paths themselves (sorted), without the folders above them."""
        return self.matches(query, regex).hits

    def forget(self) -> None:
        """Drop the kept matches (the benchmark types each query afresh)."""
        self._kept.clear()


def _newline_blind(raw: bytes) -> bool:
    """Whether a regex can neither match a newline nor tell one from the start or end of the string.

    Then, over paths without newlines joined by newlines (and with ^ and $ as line anchors), the regex
    matches inside a path's line exactly when it matches the path alone: nothing it matches can cross
    into the next line, and what it looks at around a line (lookarounds, \\b) sees a newline where
    the path alone has its start or end, which it treats alike. Conservative: anything unexpected in
    the parsed pattern (an internal of the re module) means no.
    """
    try:
        from re import _constants as sre  # type: ignore[attr-defined]
        from re import _parser as parser
    except ImportError:  # Python 3.10
        import sre_constants as sre  # type: ignore[no-redef]
        import sre_parse as parser  # type: ignore[no-redef]
    try:
        parsed = parser.parse(raw, re.IGNORECASE)
        if parsed.state.flags & (sre.SRE_FLAG_DOTALL | sre.SRE_FLAG_VERBOSE):
            return False
        return _blind(list(parsed), False, sre)
    except Exception:
        return False


def _blind(items: list[Any], dotall: bool, sre: Any) -> bool:
    repeats = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}
    for op, av in items:
        if op is sre.LITERAL:
            if av == 10:
                return False
        elif op is sre.NOT_LITERAL:
            if av != 10:
                return False
        elif op is sre.ANY:
            if dotall:
                return False
        elif op is sre.IN:
            if _set_has_newline(av, sre):
                return False
        elif op in repeats:
            if not _blind(list(av[2]), dotall, sre):
                return False
        elif op is sre.SUBPATTERN:
            _, add, remove, sub = av
            if not _blind(
                list(sub),
                (dotall or bool(add & sre.SRE_FLAG_DOTALL)) and not remove & sre.SRE_FLAG_DOTALL,
                sre,
            ):
                return False
        elif op is sre.BRANCH:
            if not all(_blind(list(branch), dotall, sre) for branch in av[1]):
                return False
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            if not _blind(list(av[1]), dotall, sre):
                return False
        elif op is getattr(sre, "ATOMIC_GROUP", None):
            if not _blind(list(av), dotall, sre):
                return False
        elif op is sre.GROUPREF_EXISTS:
            _, yes, no = av
            if not _blind(list(yes), dotall, sre) or (no is not None and not _blind(list(no), dotall, sre)):
                return False
        elif op is sre.AT:
            if av not in (sre.AT_BEGINNING, sre.AT_END, sre.AT_BOUNDARY, sre.AT_NON_BOUNDARY):
                return False  # \A and \Z tell a line from the whole buffer
        elif op is not sre.GROUPREF:  # a back reference matches what a checked group matched
            return False
    return True


def _set_has_newline(items: list[Any], sre: Any) -> bool:
    """Whether a [...] set (as parsed) admits a newline; True when unsure."""
    negate = hit = False
    without = {sre.CATEGORY_DIGIT, sre.CATEGORY_NOT_SPACE, sre.CATEGORY_WORD, sre.CATEGORY_NOT_LINEBREAK}
    within = {sre.CATEGORY_NOT_DIGIT, sre.CATEGORY_SPACE, sre.CATEGORY_NOT_WORD, sre.CATEGORY_LINEBREAK}
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            hit = hit or av == 10
        elif op is sre.RANGE:
            hit = hit or av[0] <= 10 <= av[1]
        elif op is sre.CATEGORY and av in without:
            pass
        elif op is sre.CATEGORY and av in within:
            hit = True
        else:
            return True
    return hit != negate


class PathMatches:
    """The paths a search matched, as a container the tree filters with: a path is in it when it
    matched or when a match lies below it. Binary search over the sorted hits, so no set of every
    matching path's parents has to be built on each key press."""

    def __init__(self, hits: list[bytes]) -> None:
        self.hits = hits  # sorted

    def __len__(self) -> int:
        return len(self.hits)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, bytes):
            return False
        hits = self.hits
        i = bisect_left(hits, path)
        if i < len(hits) and hits[i] == path:
            return True
        prefix = path + b"/"
        j = bisect_left(hits, prefix, i)
        return j < len(hits) and hits[j].startswith(prefix)

    def matched(self, path: bytes) -> bool:
        """Whether the path itself matched (not only something below it)."""
        hits = self.hits
        i = bisect_left(hits, path)
        return i < len(hits) and hits[i] == path


class _BufferMatches(PathMatches):
    """The PathMatches of a query answered from one of a Searcher's buffers: `holds(start, end)` says
    whether a match lies in blob[start:end], and `per_line` matches once per matching path. The list
    of hits is made only when asked for (the tree never needs it)."""

    def __init__(
        self,
        searcher: Searcher,
        blob: bytes,
        separator: bytes,
        holds: Callable[[int, int], bool],
        per_line: re.Pattern[bytes],
    ) -> None:
        assert searcher._before is not None
        self._paths = searcher.paths
        self._before = searcher._before
        self._blob = blob
        self._separator = separator
        self._holds = holds
        self._per_line = per_line
        self._count: int | None = None
        self._hits: list[bytes] | None = None

    @property  # type: ignore[override]
    def hits(self) -> list[bytes]:
        """The matching paths, sorted."""
        if self._hits is None:
            paths, blob, separator = self._paths, self._blob, self._separator
            hits: list[bytes] = []
            line = offset = 0
            if paths:
                for match in self._per_line.finditer(blob):
                    line += blob.count(separator, offset, match.start())
                    offset = match.start()
                    hits.append(paths[line])
            self._hits = hits
        return self._hits

    def __len__(self) -> int:
        if self._count is None:
            if self._hits is not None or not self._paths:
                self._count = len(self.hits)
            else:  # as in hits, one match per matching path, without building the list
                self._count = len(self._per_line.findall(self._blob))
        return self._count

    def __bool__(self) -> bool:
        n = len(self._paths)
        return n > 0 and self._holds(0, self._before[n] + n - 1)  # up to the end of the last path

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, bytes):
            return False
        paths, before, holds = self._paths, self._before, self._holds
        # Paths i..k-1 are blob[before[i] + i : before[k] + k - 1], the separators between them
        # included. A match never holds a separator, so a block only matches inside one of its paths.
        i = bisect_left(paths, path)
        if i < len(paths) and paths[i] == path and holds(before[i] + i, before[i + 1] + i):
            return True
        j = bisect_left(paths, path + b"/", i)  # the paths below: from path/ up to path0 ('0' follows '/')
        k = bisect_left(paths, path + b"0", j)
        return j < k and holds(before[j] + j, before[k] + k - 1)

    def matched(self, path: bytes) -> bool:
        paths, before = self._paths, self._before
        i = bisect_left(paths, path)
        return i < len(paths) and paths[i] == path and self._holds(before[i] + i, before[i + 1] + i)


def search(paths: list[bytes] | Searcher, query: str, regex: bool = False) -> PathMatches | None:
    """Paths matching a substring (case-insensitive) or a regex; folders above them count as matching.

    Returns None for an empty query (no filter); raises re.error for a bad regex.
    """
    if not query:
        return None
    searcher = paths if isinstance(paths, Searcher) else Searcher(paths)
    return searcher.matches(query, regex)


class PathIndex:
    """For every path: which layers touched it and how, and which package owns it (built on first use).

    Each layer's paths are indexed by position in one dict (made in C by dict(zip)), and a path's
    events are looked up when asked: a list of events per path, built for all of them, took 0.8 s on
    210k files. A layer that lists a path twice keeps every position of that path.
    """

    _NAMES = {ADDED: "added", MODIFIED: "modified", META: "stored again", UNCHANGED: "listed again"}

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self._positions: list[dict[bytes, int]] | None = None
        self._repeats: list[dict[bytes, list[int]]] = []  # per layer: paths it lists more than once
        self._removed: dict[bytes, list[int]] = {}
        self._owners: dict[bytes, str] | None = None

    def events(self, path: bytes) -> list[tuple[int, str]]:
        """(layer, what happened) for a path, oldest first, deletions of a parent folder included."""
        if self._positions is None:
            self._build()
        assert self._positions is not None
        fs = self.analysis.fs
        found: list[tuple[int, str]] = []
        for layer, positions in enumerate(self._positions):
            at = positions.get(path)
            if at is None:
                continue
            entries, codes = fs.layers[layer], fs.changes[layer].codes
            for index in self._repeats[layer].get(path, (at,)):
                if entries.kinds[index] < WHITEOUT:
                    found.append((layer, self._NAMES.get(codes[index], "stored")))
        parent = path
        while parent:
            parent = parent.rpartition(b"/")[0]
            for layer in self._removed.get(parent, ()):
                found.append((layer, f"deleted with /{parent.decode('utf-8', 'backslashreplace')}"))
        for layer in self._removed.get(path, ()):
            found.append((layer, "deleted"))
        return sorted(found)

    def _build(self) -> None:
        fs = self.analysis.fs
        positions: list[dict[bytes, int]] = []
        for layer, entries in enumerate(fs.layers):
            paths = entries.paths
            index = dict(zip(paths, range(len(paths))))
            repeats: dict[bytes, list[int]] = {}
            if len(index) != len(paths):  # rare: a tar that lists a path again
                for at, path in enumerate(paths):
                    repeats.setdefault(path, []).append(at)
                repeats = {path: ats for path, ats in repeats.items() if len(ats) > 1}
            positions.append(index)
            self._repeats.append(repeats)
            for path, _, _, what in fs.changes[layer].removals:
                if what != "opaque":
                    self._removed.setdefault(path, []).append(layer)
        self._positions = positions

    def owner(self, path: bytes) -> str | None:
        """`dpkg gcc-12 12.2.0` for a path some package owns."""
        if self._owners is None:
            owners: dict[bytes, str] = {}
            for package in self.analysis.packages:
                label = f"{package.manager} {package.name} {package.version}".strip()
                for owned in package.paths:
                    owners.setdefault(owned, label)
            self._owners = owners
        return self._owners.get(path)


def _files(n: int) -> str:
    return "1 file" if n == 1 else f"{n:,} files"


def describe(analysis: Analysis, index: PathIndex, row: Row) -> list[tuple[str, str]]:
    """Label/value pairs for the details pane (values are raw strings: the view sanitizes them)."""
    fs = analysis.fs
    path_text = "/" + row.path.decode("utf-8", "surrogateescape")
    out: list[tuple[str, str]] = [("path", path_text)]
    if row.mark == MARK_DELETED and row.ref is None:
        out.append(("status", f"deleted ({row.files} path(s), {row.size:,} bytes)"))
    if row.ref is not None:
        entry = fs.entry(row.ref)
        out.append(("type", KIND_NAMES[entry.kind]))
        if row.is_dir:
            out.append(("size", f"{row.size:,} bytes in {_files(row.files)} below"))
        elif entry.kind == HARDLINK:
            data = fs.entry(fs.data_ref(row.ref))
            out.append(("size", f"{data.size:,} bytes (shared with the file it links to)"))
        else:
            out.append(("size", f"{entry.size:,} bytes"))
        out.append(("mode", stat.filemode(_mode_bits(entry.kind) | entry.mode)))
        out.append(("owner", f"{entry.uid}:{entry.gid}"))
        if entry.link is not None:
            out.append(
                (
                    "link",
                    ("-> " if entry.kind == SYMLINK else "hard link to /")
                    + entry.link.decode("utf-8", "surrogateescape"),
                )
            )
        upto = row.ref >> SHIFT
        events = index.events(row.path)
        created, changed = created_and_changed(events, upto)
        out.append(("created", f"layer {created}: {analysis.instruction_of(created) or '(no history)'}"))
        if changed != created:
            out.append(("changed", f"layer {changed}: {analysis.instruction_of(changed) or '(no history)'}"))
        elif any(created < layer <= upto and what == "listed again" for layer, what in events):
            out.append(("changed", "never: later layers only listed it again"))
    elif row.is_dir:
        out.append(("size", f"{row.size:,} bytes in {_files(row.files)} below"))
    history = index.events(row.path)
    if history:
        out.append(("history", "; ".join(f"layer {layer} {what}" for layer, what in history)))
    owner = index.owner(row.path)
    if owner:
        out.append(("package", owner))
    rule = analysis.removables.rule_of(row.path)
    if rule:
        finding = next((f for f in analysis.findings if f.rule.id == rule), None)
        if finding:
            out.append(("finding", f"{finding.rule.title} [{rule}, {finding.rule.category}]"))
            out.append(("remedy", finding.rule.remedy))
    if row.is_dir and row.removable:
        out.append(("removable", f"{row.removable:,} of {row.size:,} bytes below"))
    if row.ref is not None and fs.entry(row.ref).kind in (FILE, HARDLINK):
        # last: two lines at the pane's width, and the least needed to tell where a path came from
        digest = fs.entry(fs.data_ref(row.ref)).digest_hex
        if digest:
            out.append(("digest", digest))
    return out


# details values that hold a history line (shown as written: a backslash stays one backslash)
COMMAND_LABELS = frozenset({"created", "changed"})


def created_and_changed(history: list[tuple[int, str]], upto: int) -> tuple[int, int]:
    """(the layer that created a path, the layer that last changed it), from its history up to layer
    `upto` (the layer of the entry shown). A layer that only lists a folder again, unchanged, does not
    change it; after a deletion, the layer that adds the path again creates it."""
    created: int | None = None
    changed = upto
    for layer, what in history:
        if layer > upto:
            break
        if what.startswith("deleted"):
            created = None
        elif created is None or what == "added":
            created = changed = layer
        elif what != "listed again":
            changed = layer
    return (upto, upto) if created is None else (created, changed)


def _mode_bits(kind: int) -> int:
    return {DIR: stat.S_IFDIR, SYMLINK: stat.S_IFLNK}.get(kind, stat.S_IFREG)


# -- diff mode ------------------------------------------------------------------------------------------
MARK_MOVED = ">"
DIFF_MARKS = {"added": MARK_ADDED, "removed": MARK_DELETED, "modified": MARK_MODIFIED, "moved": MARK_MOVED}


class DiffSource(TreeSource):
    """The union of two images' changed paths as a tree; folders carry the summed byte delta."""

    def __init__(self, diff: Any) -> None:
        from slimscope.analysis.diff import rollup

        self.diff = diff
        self.title = "changes from OLD to NEW"
        self._rows: dict[bytes, list[Row]] = {}
        self._dirs: dict[bytes, Row] = {}
        self._changes: dict[bytes, Any] = {}
        deltas = {d.path: d for d in rollup(diff.changes)}
        for change in diff.changes:
            self._changes[change.path] = change
            is_dir = change.type == "dir"
            row = Row(
                change.path.rpartition(b"/")[2],
                change.path,
                is_dir,
                DIR if is_dir else FILE,
                abs(change.delta),
                1,
                DIFF_MARKS.get(change.kind, MARK_NONE),
                delta=change.delta,
            )
            if is_dir:
                if change.path in self._dirs:
                    existing = self._dirs[change.path]
                    existing.mark = row.mark
                    continue
                self._dirs[change.path] = row
            self._add(row)
        for path, row in self._dirs.items():
            folder = deltas.get(path)
            if folder is not None:
                row.delta = folder.delta
                row.size = abs(folder.delta)
                row.files = folder.added + folder.removed + folder.modified + folder.moved

    def _add(self, row: Row) -> None:
        parent = row.path.rpartition(b"/")[0]
        if parent and parent not in self._dirs:
            implied = Row(parent.rpartition(b"/")[2], parent, True, DIR, 0, 0, MARK_NONE, delta=0)
            self._dirs[parent] = implied
            self._add(implied)
        self._rows.setdefault(parent, []).append(row)

    def children(self, path: bytes, allowed: Container[bytes] | None = None) -> list[Row]:
        rows = self._rows.get(path, ())
        return [r for r in rows if r.path in allowed] if allowed is not None else list(rows)

    def all_paths(self) -> list[bytes]:
        return [row.path for rows in self._rows.values() for row in rows]

    def change(self, path: bytes) -> Any:
        """The Change behind a path, if the path itself changed."""
        return self._changes.get(path)


def describe_change(change: Any) -> list[tuple[str, str]]:
    """Label/value pairs for one changed path (raw strings: the view sanitizes them)."""
    out = [("path", "/" + change.path.decode("utf-8", "surrogateescape")), ("change", change.kind)]
    if change.old_path is not None:
        out.append(("moved from", "/" + change.old_path.decode("utf-8", "surrogateescape")))
    out.append(
        (
            "type",
            change.type if change.old_type in (None, change.type) else f"{change.old_type} -> {change.type}",
        )
    )
    if change.old_size is not None or change.new_size is not None:
        out.append(
            (
                "size",
                f"{change.old_size if change.old_size is not None else '-'} -> "
                f"{change.new_size if change.new_size is not None else '-'} bytes "
                f"({change.delta:+,})",
            )
        )
    if change.what:
        out.append(("what", ", ".join(change.what)))
    if change.old_mode is not None or change.new_mode is not None:

        def mode(value: int | None) -> str:
            return "-" if value is None else stat.filemode(stat.S_IFREG | value)[1:]

        out.append(("mode", f"{mode(change.old_mode)} -> {mode(change.new_mode)}"))
    if change.old_owner or change.new_owner:
        out.append(("owner", f"{change.old_owner or '-'} -> {change.new_owner or '-'}"))
    if change.old_link or change.new_link:

        def link(value: bytes | None) -> str:
            return "-" if value is None else value.decode("utf-8", "surrogateescape")

        out.append(("link", f"{link(change.old_link)} -> {link(change.new_link)}"))
    if change.old_digest or change.new_digest:
        out.append(
            (
                "digest",
                f"{change.old_digest.hex()[:16] if change.old_digest else '-'} -> "
                f"{change.new_digest.hex()[:16] if change.new_digest else '-'}",
            )
        )
    return out
