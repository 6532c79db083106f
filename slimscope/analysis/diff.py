"""Compare two analysed images: layers, files, packages, config and findings, as plain data.

`diff_analyses(old, new)` returns a `Diff`; nothing here reads images, prints or imports a UI toolkit.
Views render the `Diff`: the text summary (`slimscope.report.diff_text`), the JSON document
(`document()`, described by `slimscope/report/diff_schema.json`) and the explorer, which can build a
tree from `Diff.changes` (one `Change` per path: kind, type, old and new size, delta) or take the
per-directory totals of `rollup()`.

Files are compared by what a container would see: type, content digest and size, link target, mode
and owner. Modification times are not compared (every rebuild changes them). A hard link is compared
as the file it names. A regular file that disappears from one path and appears, with the same content,
at another is a move. Paths matching an ignore pattern (or below a folder that matches one) are set
aside in `Diff.ignored`; `DEFAULT_IGNORES` lists the usual rebuild noise.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from slimscope import __version__
from slimscope.analysis.core import Analysis, analyze
from slimscope.analysis.packages import Package
from slimscope.analysis.rules import CATEGORIES, Finding
from slimscope.errors import SlimscopeError
from slimscope.fs import IMPLIED, MASK, SHIFT, Dir, Filesystem
from slimscope.image.layer import FILE, HARDLINK, KIND_NAMES, SYMLINK
from slimscope.image.model import Image, Layer
from slimscope.image.settings import str_list, string
from slimscope.sanitize import json_name

SCHEMA_VERSION = 1
TOP_DIRECTORIES = 200  # directories listed in the JSON document

# Paths that change on every rebuild without meaning anything: compiled bytecode, package manager logs
# and indexes, linker and man-db caches. A pattern that names a folder covers everything in it.
DEFAULT_IGNORES: tuple[str, ...] = (
    "**/*.pyc",
    "**/__pycache__/**",
    "var/log/apt/**",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/apk.log",
    "var/cache/ldconfig/**",
    "etc/ld.so.cache",
    "var/lib/apt/lists/**",
    "var/cache/apt/*.bin",
    "var/cache/apk/**",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/cache/man/**",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
)

ADDED, REMOVED, MODIFIED, MOVED = "added", "removed", "modified", "moved"


# -- data -----------------------------------------------------------------------------------------
@dataclass
class Change:
    """One path that differs; `path` is where it is in NEW (in OLD for a removal)."""

    path: bytes
    kind: str  # "added", "removed", "modified" or "moved"
    type: str  # "file", "dir", "symlink", ... (NEW's type; OLD's for a removal)
    old_size: int | None  # regular file bytes (0 for other types); None when absent
    new_size: int | None
    old_type: str | None = None
    old_path: bytes | None = None  # moves: where it was
    what: tuple[str, ...] = ()  # modified or moved: "type", "content", "link", "mode", "owner"
    old_mode: int | None = None
    new_mode: int | None = None
    old_owner: str | None = None  # "uid:gid"
    new_owner: str | None = None
    old_link: bytes | None = None
    new_link: bytes | None = None
    old_digest: bytes | None = None  # regular files: the raw sha256 of the content
    new_digest: bytes | None = None

    @property
    def delta(self) -> int:
        """Bytes NEW has more than OLD at this path (0 for a move)."""
        return (self.new_size or 0) - (self.old_size or 0)


@dataclass
class DirDelta:
    """The changes below one directory, added up."""

    path: bytes
    delta: int = 0
    added: int = 0  # paths added (directories not counted)
    removed: int = 0
    modified: int = 0
    moved: int = 0  # moved in, out or within
    bytes_added: int = 0  # sum of the growing changes
    bytes_removed: int = 0  # sum of the shrinking changes, as a positive number

    def key(self) -> tuple[int, ...]:
        """Everything but the path (equal keys: one folder only holds the other's changes)."""
        return (
            self.delta,
            self.added,
            self.removed,
            self.modified,
            self.moved,
            self.bytes_added,
            self.bytes_removed,
        )


@dataclass
class LayerInfo:
    """One layer as the diff shows it."""

    index: int
    diff_id: str
    size_bytes: int
    compressed_bytes: int
    instruction: str | None
    in_other: bool = False  # the other image has a layer with this diff_id too (anywhere)


@dataclass
class HistoryLine:
    """One build step after the last shared layer."""

    line: str
    layer: int | None
    empty_layer: bool


@dataclass
class LayerDiff:
    """Which layers the images share and where they diverge."""

    shared: list[LayerInfo]  # the common leading layers (same diff_id, same position)
    old: list[LayerInfo]  # OLD's layers from the divergence on
    new: list[LayerInfo]
    diverged_at: int | None  # index of the first differing layer; None when the layer lists are equal
    old_history: list[HistoryLine]  # OLD's build steps after the last shared layer
    new_history: list[HistoryLine]
    reused: int = 0  # NEW's layers whose members are OLD's (recognised while reading, not parsed again)


@dataclass
class PackageChange:
    """One package added, removed or changed."""

    kind: str  # "added", "removed", "upgraded", "downgraded" or "changed"
    manager: str
    name: str
    arch: str | None
    old_version: str | None
    new_version: str | None
    old_bytes: int
    new_bytes: int
    old_location: bytes | None = None
    new_location: bytes | None = None
    build_only: bool = False  # in NEW (in OLD for a removal)

    @property
    def delta(self) -> int:
        """Bytes NEW's copy owns more than OLD's."""
        return self.new_bytes - self.old_bytes


@dataclass
class ConfigChange:
    """One runtime config setting that differs; `key` names the variable, label or port."""

    field: str  # entrypoint, cmd, env, user, workdir, exposed_ports, labels, volumes, stop_signal, platform
    kind: str  # "added", "removed" or "changed"
    key: str | None
    old: Any
    new: Any


@dataclass
class RuleChange:
    """One removables rule whose findings differ."""

    finding: Finding  # NEW's finding, or OLD's when NEW has none (for the rule's id, title, category)
    old_bytes: int
    new_bytes: int
    old_count: int
    new_count: int
    introduced: list[tuple[bytes, int]]  # matched paths NEW has and OLD has not (path, bytes)
    fixed: list[tuple[bytes, int]]  # matched paths OLD had and NEW has not

    @property
    def delta(self) -> int:
        """Removable bytes NEW has more than OLD."""
        return self.new_bytes - self.old_bytes

    @property
    def status(self) -> str:
        """introduced, fixed, grew, shrank or unchanged (same bytes, other paths)."""
        if not self.old_bytes and self.new_bytes:
            return "introduced"
        if self.old_bytes and not self.new_bytes:
            return "fixed"
        if self.delta > 0:
            return "grew"
        return "shrank" if self.delta < 0 else "unchanged"


@dataclass
class HiddenChange:
    """A hidden file (stored in a layer, not visible) that one image has and the other has not."""

    path: bytes
    reason: str
    bytes: int
    layer: int


@dataclass
class FindingsDiff:
    """Removables and hidden bytes introduced or fixed, and the net change per category."""

    rules: list[RuleChange]  # biggest absolute delta first
    categories: dict[str, tuple[int, int]]  # category -> (old bytes, new bytes)
    hidden: tuple[int, int]  # hidden bytes (old, new)
    hidden_introduced: list[HiddenChange]
    hidden_fixed: list[HiddenChange]
    duplicates: tuple[int, int]
    estimated_slim: tuple[int, int]

    @property
    def new_removable_bytes(self) -> int:
        """Removable bytes NEW adds: the growth of every rule that grew."""
        return sum(max(0, rule.delta) for rule in self.rules)


@dataclass
class DiffSummary:
    """The headline numbers of a diff."""

    identical: bool  # no file (outside ignores), package or config change, no hidden file changed
    bytes_delta: int  # filesystem bytes (visible, each inode once)
    files_delta: int  # regular files and hard links
    image_bytes_delta: int  # bytes the layers store (uncompressed): the image's growth
    compressed_bytes_delta: int
    hidden_bytes_delta: int
    removable_bytes_delta: int  # all categories
    new_removable_bytes: int
    added: int  # paths added, removed, modified, moved (directories added or removed not counted)
    removed: int
    modified: int
    moved: int
    added_bytes: int
    removed_bytes: int  # positive
    ignored: int
    ignored_bytes_delta: int


@dataclass
class Diff:
    """Everything that differs between two images."""

    old: Analysis
    new: Analysis
    layers: LayerDiff
    changes: list[Change]  # sorted by path
    ignored: list[Change]  # changes under ignore patterns, set aside
    packages: list[PackageChange]  # biggest absolute delta first
    config: list[ConfigChange]
    findings: FindingsDiff
    summary: DiffSummary
    ignores: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when nothing but ignored paths, mtimes and layer packaging differs."""
        return self.summary.identical

    def of_kind(self, kind: str) -> list[Change]:
        """The changes of one kind, sorted by path."""
        return [c for c in self.changes if c.kind == kind]

    def directories(self, limit: int | None = None) -> list[DirDelta]:
        """Directories by absolute byte delta, biggest first (see `top_directories`)."""
        return top_directories(rollup(self.changes), limit)


# -- entry points ---------------------------------------------------------------------------------
def diff_images(old: Image, new: Image, *, ignore: Sequence[str] = DEFAULT_IGNORES) -> Diff:
    """Analyse two images and compare them."""
    return diff_analyses(analyze(old), analyze(new), ignore=ignore)


def diff_analyses(old: Analysis, new: Analysis, *, ignore: Sequence[str] = DEFAULT_IGNORES) -> Diff:
    """Compare two analysed images; paths matching `ignore` globs are set aside."""
    ignored_path = ignore_matcher(ignore)
    kept: list[Change] = []
    ignored: list[Change] = []
    for change in _file_changes(old.fs, new.fs):
        (ignored if ignored_path(change.path) else kept).append(change)
    changes = sorted(_moves(kept), key=lambda c: c.path)
    ignored.sort(key=lambda c: c.path)
    layers = _layer_diff(old, new)
    packages = diff_packages(old.packages, new.packages)
    config = diff_config(old.image, new.image)
    findings = _findings_diff(old, new, ignored_path)
    summary = _summary(old, new, changes, ignored, packages, config, findings)
    return Diff(old, new, layers, changes, ignored, packages, config, findings, summary, list(ignore))


# -- ignore patterns ------------------------------------------------------------------------------
def glob_regex(pattern: str) -> str:
    """The regex for a path glob: `*` and `?` stay inside one name, `**` spans folders, `[...]` a class.

    A leading `/` is dropped (paths have none); a trailing `/**` also matches the folder itself.
    """
    parts = [p for p in pattern.strip().strip("/").split("/") if p]
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part != "**":
            out.append(_component(part) + ("" if last else "/"))
        elif not last:
            out.append("(?:[^/]*/)*")  # any number of folders, none included
        elif i and out[-1].endswith("/"):
            out[-1] = out[-1][:-1]
            out.append("(?:/.*)?")  # the folder itself and everything below it
        else:
            out.append(".*")
    return "".join(out)


def _component(glob: str) -> str:
    """One path component of a glob as a regex that never matches `/`."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            start = i + 1
            negate = glob[start : start + 1] in ("!", "^")
            start += negate
            end = glob.find("]", start + 1 if glob[start : start + 1] == "]" else start)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = "".join("\\" + c if c in "\\[]&~|^" else c for c in glob[start:end])
                out.append(("[^/" if negate else "[") + body + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def ignore_matcher(patterns: Iterable[str]) -> Callable[[bytes], bool]:
    """A test for paths matching one of the globs, or lying below a folder that does."""
    regexes = []
    for pattern in patterns:
        if not pattern.strip().strip("/"):
            continue
        regex = glob_regex(pattern)
        try:
            re.compile(regex)
        except re.error as exc:
            raise SlimscopeError(f"bad ignore pattern {pattern!r}: {exc}") from None
        regexes.append(regex)
    if not regexes:
        return lambda path: False
    combined = re.compile(("(?:" + "|".join(regexes) + ")").encode("utf-8", "surrogateescape"), re.DOTALL)
    cache: dict[bytes, bool] = {b"": False}

    def folder_ignored(folder: bytes) -> bool:
        hit = cache.get(folder)
        if hit is None:
            hit = folder_ignored(folder.rpartition(b"/")[0]) or combined.fullmatch(folder) is not None
            cache[folder] = hit
        return hit

    def ignored(path: bytes) -> bool:
        return combined.fullmatch(path) is not None or folder_ignored(path.rpartition(b"/")[0])

    return ignored


# -- files ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Facts:
    type: str
    size: int
    mode: int | None
    uid: int | None
    gid: int | None
    digest: bytes | None
    link: bytes | None

    @property
    def owner(self) -> str | None:
        return None if self.uid is None else f"{self.uid}:{self.gid}"


def _facts(fs: Filesystem, node: int | Dir) -> _Facts:
    """What a container sees at a node: type, size and digest (hard links as their file), mode, owner."""
    if type(node) is Dir:
        if node.ref == IMPLIED:
            return _Facts("dir", 0, None, None, None, None, None)
        entries = fs.layers[node.ref >> SHIFT]
        i = node.ref & MASK
        return _Facts("dir", 0, entries.modes[i], entries.uids[i], entries.gids[i], None, None)
    entries = fs.layers[node >> SHIFT]
    i = node & MASK
    kind = entries.kinds[i]
    mode, uid, gid = entries.modes[i], entries.uids[i], entries.gids[i]
    if kind == HARDLINK:
        data = fs.inode.get(node)
        if data is None:
            return _Facts("hardlink", 0, mode, uid, gid, None, entries.links.get(i, b""))
        entries, i, kind = fs.layers[data >> SHIFT], data & MASK, FILE
    if kind == FILE:
        return _Facts(
            "file", entries.sizes[i], mode, uid, gid, bytes(entries.digests[i * 32 : i * 32 + 32]), None
        )
    if kind == SYMLINK:
        return _Facts("symlink", 0, mode, uid, gid, None, entries.links.get(i, b""))
    return _Facts(KIND_NAMES[kind], 0, mode, uid, gid, None, None)


def _same_member(old_fs: Filesystem, new_fs: Filesystem, a: int | Dir, b: int | Dir) -> bool:
    """Both nodes are the same member of the same (shared) layer: equal without a look."""
    if type(a) is Dir or type(b) is Dir:
        if type(a) is not Dir or type(b) is not Dir:
            return False
        ref_a, ref_b = a.ref, b.ref
        if ref_a == IMPLIED or ref_b == IMPLIED:
            return ref_a == ref_b
    else:
        ref_a, ref_b = a, b
    if ref_a != ref_b:
        return False
    layer = ref_a >> SHIFT
    if layer >= len(old_fs.layers) or layer >= len(new_fs.layers):
        return False
    entries = new_fs.layers[layer]
    return old_fs.layers[layer] is entries and entries.kinds[ref_a & MASK] != HARDLINK


def _whole(kind: str, path: bytes, facts: _Facts) -> Change:
    """A path only one side has (kind ADDED: NEW's facts; REMOVED: OLD's)."""
    if kind == ADDED:
        change = Change(path, ADDED, facts.type, None, facts.size)
        change.new_mode, change.new_owner, change.new_link = facts.mode, facts.owner, facts.link
        change.new_digest = facts.digest
        return change
    change = Change(path, REMOVED, facts.type, facts.size, None, old_type=facts.type)
    change.old_mode, change.old_owner, change.old_link = facts.mode, facts.owner, facts.link
    change.old_digest = facts.digest
    return change


def _subtree(
    fs: Filesystem, kind: str, path: bytes, node: int | Dir, below_only: bool = False
) -> Iterator[Change]:
    """A path that only one side has, and everything below it."""
    if not below_only:
        yield _whole(kind, path, _facts(fs, node))
    if type(node) is not Dir:
        return
    stack = [(path, node)]
    while stack:
        prefix, directory = stack.pop()
        for name, child in directory.children.items():
            child_path = prefix + b"/" + name
            yield _whole(kind, child_path, _facts(fs, child))
            if type(child) is Dir:
                stack.append((child_path, child))


def _what(old: _Facts, new: _Facts) -> tuple[str, ...]:
    what = []
    if old.type != new.type:
        what.append("type")
    elif old.type == "file" and (old.size != new.size or old.digest != new.digest):
        what.append("content")
    if old.type == new.type and old.link != new.link:
        what.append("link")
    if old.mode is not None and new.mode is not None and old.mode != new.mode:
        what.append("mode")
    if old.uid is not None and new.uid is not None and (old.uid, old.gid) != (new.uid, new.gid):
        what.append("owner")
    return tuple(what)


def _modified(path: bytes, old: _Facts, new: _Facts, what: tuple[str, ...]) -> Change:
    return Change(
        path,
        MODIFIED,
        new.type,
        old.size,
        new.size,
        old_type=old.type,
        what=what,
        old_mode=old.mode,
        new_mode=new.mode,
        old_owner=old.owner,
        new_owner=new.owner,
        old_link=old.link,
        new_link=new.link,
        old_digest=old.digest,
        new_digest=new.digest,
    )


def _file_changes(old_fs: Filesystem, new_fs: Filesystem) -> Iterator[Change]:
    """Every path that differs, walking both trees at once (the root's own metadata is not compared)."""
    stack: list[tuple[bytes, Dir, Dir]] = [(b"", old_fs.root, new_fs.root)]
    while stack:
        prefix, old_dir, new_dir = stack.pop()
        new_children = new_dir.children
        for name, old_node in old_dir.children.items():
            path = prefix + b"/" + name if prefix else name
            new_node = new_children.get(name)
            if new_node is None:
                yield from _subtree(old_fs, REMOVED, path, old_node)
                continue
            if _same_member(old_fs, new_fs, old_node, new_node):
                if type(old_node) is Dir and type(new_node) is Dir:
                    stack.append((path, old_node, new_node))
                continue
            old_facts, new_facts = _facts(old_fs, old_node), _facts(new_fs, new_node)
            what = _what(old_facts, new_facts)
            if what:
                yield _modified(path, old_facts, new_facts, what)
            if type(old_node) is Dir and type(new_node) is Dir:
                stack.append((path, old_node, new_node))
            elif type(old_node) is Dir:  # a folder replaced by a file: its contents are gone
                yield from _subtree(old_fs, REMOVED, path, old_node, below_only=True)
            elif type(new_node) is Dir:
                yield from _subtree(new_fs, ADDED, path, new_node, below_only=True)
        old_children = old_dir.children
        for name, new_node in new_children.items():
            if name not in old_children:
                yield from _subtree(new_fs, ADDED, prefix + b"/" + name if prefix else name, new_node)


def _moves(changes: list[Change]) -> list[Change]:
    """Pair removed and added regular files with the same content into moves (same base name first).

    Empty files are never paired: their content says nothing about where they came from.
    """
    removed: dict[tuple[bytes, int], list[Change]] = {}
    added: dict[tuple[bytes, int], list[Change]] = {}
    for change in changes:
        if change.type != "file":
            continue
        if change.kind == REMOVED and change.old_size and change.old_digest:
            removed.setdefault((change.old_digest, change.old_size), []).append(change)
        elif change.kind == ADDED and change.new_size and change.new_digest:
            added.setdefault((change.new_digest, change.new_size), []).append(change)
    pairs: list[tuple[Change, Change]] = []
    for key, gone in removed.items():
        came = added.get(key)
        if not came:
            continue
        by_name: dict[bytes, list[Change]] = {}
        for change in sorted(came, key=lambda c: c.path):
            by_name.setdefault(_base(change.path), []).append(change)
        unmatched = []
        for change in sorted(gone, key=lambda c: c.path):
            same_name = by_name.get(_base(change.path))
            if same_name:
                pairs.append((change, same_name.pop(0)))
            else:
                unmatched.append(change)
        rest = sorted((c for group in by_name.values() for c in group), key=lambda c: c.path)
        pairs.extend(zip(unmatched, rest))
    if not pairs:
        return changes
    paired = {id(c) for pair in pairs for c in pair}
    out = [c for c in changes if id(c) not in paired]
    for old, new in pairs:
        what = []
        if old.old_mode is not None and new.new_mode is not None and old.old_mode != new.new_mode:
            what.append("mode")
        if old.old_owner is not None and new.new_owner is not None and old.old_owner != new.new_owner:
            what.append("owner")
        out.append(
            Change(
                new.path,
                MOVED,
                "file",
                old.old_size,
                new.new_size,
                old_type="file",
                old_path=old.path,
                what=tuple(what),
                old_mode=old.old_mode,
                new_mode=new.new_mode,
                old_owner=old.old_owner,
                new_owner=new.new_owner,
                old_digest=old.old_digest,
                new_digest=new.new_digest,
            )
        )
    return out


def _base(path: bytes) -> bytes:
    return path.rpartition(b"/")[2]


def _rollup_sizes(change: Change) -> Iterator[tuple[bytes, int, str]]:
    """(path, bytes, kind) contributions of a change; a move leaves OLD's folder and enters NEW's."""
    if change.kind == MOVED and change.old_path is not None:
        yield change.old_path, -(change.old_size or 0), MOVED
        yield change.path, change.new_size or 0, MOVED
    else:
        yield change.path, change.delta, change.kind


def rollup(changes: Iterable[Change]) -> list[DirDelta]:
    """Every directory holding a change (the root is b""), with the changes below it added up."""
    folders: dict[bytes, DirDelta] = {}

    def ancestors(path: bytes) -> Iterator[bytes]:
        while path:
            path = path.rpartition(b"/")[0]
            yield path

    for change in changes:
        counted = change.type != "dir" or change.kind == MODIFIED
        seen: set[bytes] = set()
        for path, size, kind in _rollup_sizes(change):
            for folder in ancestors(path):
                entry = folders.get(folder)
                if entry is None:
                    entry = folders[folder] = DirDelta(folder)
                entry.delta += size
                if size > 0:
                    entry.bytes_added += size
                elif size < 0:
                    entry.bytes_removed -= size
                if counted and folder not in seen:
                    seen.add(folder)
                    setattr(entry, kind, getattr(entry, kind) + 1)
    return sorted(folders.values(), key=lambda d: d.path)


def top_directories(folders: list[DirDelta], limit: int | None = None) -> list[DirDelta]:
    """Directories by absolute delta, biggest first; the root, and a folder whose only changed child
    accounts for all of its changes, are left out (the child says more)."""
    by_path = {d.path: d for d in folders}
    children: dict[bytes, list[DirDelta]] = {}
    for d in folders:
        if d.path:
            children.setdefault(d.path.rpartition(b"/")[0], []).append(d)
    kept = []
    for d in folders:
        if not d.path:
            continue
        kids = children.get(d.path, [])
        if len(kids) == 1 and kids[0].key() == d.key():
            continue
        kept.append(d)
    del by_path
    kept.sort(key=lambda d: (-abs(d.delta), -(d.bytes_added + d.bytes_removed), d.path))
    return kept if limit is None else kept[:limit]


# -- layers ---------------------------------------------------------------------------------------
def _layer_info(analysis: Analysis, layer: Layer, other: set[str]) -> LayerInfo:
    return LayerInfo(
        index=layer.index,
        diff_id=layer.diff_id,
        size_bytes=layer.size_bytes,
        compressed_bytes=layer.compressed_bytes,
        instruction=analysis.instruction_of(layer.index),
        in_other=layer.diff_id in other,
    )


def _history_after(analysis: Analysis, shared: int) -> list[HistoryLine]:
    """The build steps after the one that made the last shared layer (all of them when none is shared)."""
    history = analysis.image.history
    start = 0
    if shared:
        made = analysis.image.layers[shared - 1].history_index
        if made is None:
            return []
        start = made + 1
    out = []
    for entry in history[start:]:
        line = f"{entry.instruction} {entry.arguments}".strip() if entry.instruction else ""
        out.append(HistoryLine(line or entry.created_by.strip(), entry.layer_index, entry.empty_layer))
    return out


def _layer_diff(old: Analysis, new: Analysis) -> LayerDiff:
    old_layers, new_layers = old.image.layers, new.image.layers
    shared = 0
    while (
        shared < len(old_layers)
        and shared < len(new_layers)
        and old_layers[shared].diff_id == new_layers[shared].diff_id
    ):
        shared += 1
    old_ids = {layer.diff_id for layer in old_layers}
    new_ids = {layer.diff_id for layer in new_layers}
    same = shared == len(old_layers) == len(new_layers)
    read = {id(layer.entries) for layer in old_layers}
    return LayerDiff(
        shared=[_layer_info(new, layer, old_ids) for layer in new_layers[:shared]],
        old=[_layer_info(old, layer, new_ids) for layer in old_layers[shared:]],
        new=[_layer_info(new, layer, old_ids) for layer in new_layers[shared:]],
        diverged_at=None if same else shared,
        old_history=_history_after(old, shared),
        new_history=_history_after(new, shared),
        reused=sum(1 for layer in new_layers if id(layer.entries) in read),
    )


# -- packages -------------------------------------------------------------------------------------
def _pip_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _package_name(package: Package) -> str:
    return _pip_name(package.name) if package.manager == "pip" else package.name


def _place(package: Package) -> bytes:
    """Where a package lives, for telling copies apart: pip's site folder, npm's package folder."""
    if package.manager == "pip" and package.location:
        return package.location.rpartition(b"/")[0]
    if package.manager == "npm" and package.location:
        return package.location
    return b""


def diff_packages(old: Sequence[Package], new: Sequence[Package]) -> list[PackageChange]:
    """Packages added, removed, upgraded, downgraded or changed (same version, other bytes or place).

    Copies are matched by manager, name, architecture and place first, then by name alone (a pip
    package that moved to a virtualenv is the same package); biggest absolute byte delta first.
    """

    def full(p: Package) -> tuple[str, str, str, bytes]:
        return (p.manager, _package_name(p), p.arch or "", _place(p))

    def loose(p: Package) -> tuple[str, str, str]:
        return (p.manager, _package_name(p), p.arch or "")

    pairs: list[tuple[Package | None, Package | None]] = []
    waiting: dict[tuple[str, str, str, bytes], list[Package]] = {}
    for package in old:
        waiting.setdefault(full(package), []).append(package)
    unmatched_new = []
    for package in new:
        group = waiting.get(full(package))
        if group:
            pairs.append((group.pop(0), package))
        else:
            unmatched_new.append(package)
    by_name: dict[tuple[str, str, str], list[Package]] = {}
    for group in waiting.values():
        for package in group:
            by_name.setdefault(loose(package), []).append(package)
    for package in unmatched_new:
        group = by_name.get(loose(package))
        pairs.append((group.pop(0) if group else None, package))
    pairs.extend((package, None) for group in by_name.values() for package in group)
    out = [change for a, b in pairs if (change := _package_change(a, b)) is not None]
    out.sort(key=lambda c: (-abs(c.delta), c.manager, c.name, c.kind))
    return out


def _package_change(old: Package | None, new: Package | None) -> PackageChange | None:
    some = new or old
    assert some is not None
    if old is None or new is None:
        kind = ADDED if old is None else REMOVED
    else:
        order = compare_versions(some.manager, old.version, new.version)
        if order > 0:
            kind = "upgraded"
        elif order < 0:
            kind = "downgraded"
        elif old.version != new.version or old.bytes != new.bytes or _place(old) != _place(new):
            kind = "changed"
        else:
            return None
    return PackageChange(
        kind=kind,
        manager=some.manager,
        name=some.name,
        arch=some.arch,
        old_version=old.version if old else None,
        new_version=new.version if new else None,
        old_bytes=old.bytes if old else 0,
        new_bytes=new.bytes if new else 0,
        old_location=old.location if old else None,
        new_location=new.location if new else None,
        build_only=some.build_only,
    )


# -- versions -------------------------------------------------------------------------------------
def compare_versions(manager: str, old: str, new: str) -> int:
    """1 when `new` is the later version, -1 when the earlier, 0 when equal (by the manager's rules).

    dpkg: Debian's ordering (epoch, `~` before anything); pip: PEP 440 through `packaging` when it is
    installed; npm: semver (pre-releases before the release); apk: apk's (`_rc1` < `` < `_p1`, `-rN`).
    Versions a scheme cannot parse fall back to a natural ordering (numbers compared as numbers).
    """
    if old == new:
        return 0
    if manager == "dpkg":
        result = dpkg_compare(new, old)
    elif manager == "pip":
        result = _pep440_compare(new, old)
    elif manager == "npm":
        result = _semver_compare(new, old)
    elif manager == "apk":
        result = _apk_compare(new, old)
    else:
        result = _natural_compare(new, old)
    return (result > 0) - (result < 0)


def _dpkg_order(ch: str) -> int:
    if ch == "~":
        return -1
    if not ch or ch.isdigit():
        return 0
    if ch.isascii() and ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


def _verrevcmp(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternating non-digit runs (by `_dpkg_order`) and numbers."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _dpkg_order(a[i]) if i < len(a) and not a[i].isdigit() else 0
            bc = _dpkg_order(b[j]) if j < len(b) and not b[j].isdigit() else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        start_a = i
        while i < len(a) and a[i].isdigit():
            i += 1
        start_b = j
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = int(a[start_a:i] or 0), int(b[start_b:j] or 0)
        if na != nb:
            return 1 if na > nb else -1
    return 0


def _dpkg_split(version: str) -> tuple[int, str, str]:
    epoch = 0
    head, sep, rest = version.partition(":")
    if sep and head.isdigit():
        epoch, version = int(head), rest
    upstream, sep, revision = version.rpartition("-")
    if not sep:
        upstream, revision = version, ""
    return epoch, upstream, revision


def dpkg_compare(a: str, b: str) -> int:
    """Debian's version comparison: negative when a < b, 0 when equal, positive when a > b."""
    ea, ua, ra = _dpkg_split(a.strip())
    eb, ub, rb = _dpkg_split(b.strip())
    if ea != eb:
        return 1 if ea > eb else -1
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _pep440_compare(a: str, b: str) -> int:
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging is nearly always there
        return _natural_compare(a, b)
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion:
        return _natural_compare(a, b)
    return (va > vb) - (va < vb)


_SEMVER = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]*)?")


def _semver_compare(a: str, b: str) -> int:
    ma, mb = _SEMVER.fullmatch(a.strip()), _SEMVER.fullmatch(b.strip())
    if not ma or not mb:
        return _natural_compare(a, b)
    core_a = tuple(int(x or 0) for x in ma.groups()[:3])
    core_b = tuple(int(x or 0) for x in mb.groups()[:3])
    if core_a != core_b:
        return 1 if core_a > core_b else -1
    pre_a, pre_b = ma.group(4), mb.group(4)
    if pre_a == pre_b:
        return 0
    if pre_a is None or pre_b is None:
        return 1 if pre_a is None else -1  # a release comes after its pre-releases
    for x, y in zip(pre_a.split("."), pre_b.split(".")):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return 1 if int(x) > int(y) else -1
        if x.isdigit() or y.isdigit():
            return -1 if x.isdigit() else 1  # numeric identifiers sort first
        return 1 if x > y else -1
    return (len(pre_a.split(".")) > len(pre_b.split("."))) - (len(pre_a.split(".")) < len(pre_b.split(".")))


_APK = re.compile(r"(\d+(?:\.\d+)*)([a-z]?)((?:_[a-z]+\d*)*)(?:-r(\d+))?")
_APK_SUFFIX = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3, "hg": 4, "p": 5}


def _apk_key(version: str) -> tuple | None:
    match = _APK.fullmatch(version.strip())
    if not match:
        return None
    numbers, letter, suffixes, release = match.groups()
    parts = []
    for suffix in suffixes.split("_")[1:]:
        name = suffix.rstrip("0123456789")
        if name not in _APK_SUFFIX:
            return None
        parts.append((_APK_SUFFIX[name], int(suffix[len(name) :] or 0)))
    parts.append((0, 0))  # no (further) suffix sorts between the pre- and the post-release ones
    return (tuple(int(n) for n in numbers.split(".")), letter, tuple(parts), int(release or 0))


def _apk_compare(a: str, b: str) -> int:
    ka, kb = _apk_key(a), _apk_key(b)
    if ka is None or kb is None:
        return _natural_compare(a, b)
    return (ka > kb) - (ka < kb)


def _natural_key(version: str) -> list[tuple[int, int, str]]:
    return [
        (1, int(part), "") if part.isdigit() else (0, 0, part)
        for part in re.findall(r"\d+|[A-Za-z]+", version)
    ]


def _natural_compare(a: str, b: str) -> int:
    ka, kb = _natural_key(a), _natural_key(b)
    if ka == kb:
        return (a > b) - (a < b)
    return (ka > kb) - (ka < kb)


# -- config ---------------------------------------------------------------------------------------
def runtime_config(image: Image) -> dict[str, Any]:
    """The settings a diff compares: entrypoint, cmd, env, user, workdir, ports, labels, volumes..."""
    raw = image.runtime_config
    env: dict[str, str] = {}
    for item in raw.get("Env") or []:
        if isinstance(item, str):
            key, _, value = item.partition("=")
            env[key] = value
    labels = raw.get("Labels")
    ports = raw.get("ExposedPorts")
    volumes = raw.get("Volumes")
    return {
        "entrypoint": str_list(raw.get("Entrypoint")),
        "cmd": str_list(raw.get("Cmd")),
        "env": env,
        "user": string(raw.get("User")),
        "workdir": string(raw.get("WorkingDir")),
        "exposed_ports": sorted(str(p) for p in ports) if isinstance(ports, dict) else [],
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        "volumes": sorted(str(v) for v in volumes) if isinstance(volumes, dict) else [],
        "stop_signal": string(raw.get("StopSignal")),
        "platform": image.platform,
    }


def diff_config(old: Image, new: Image) -> list[ConfigChange]:
    """Runtime config settings that differ (env and labels per key, ports and volumes per item)."""
    a, b = runtime_config(old), runtime_config(new)
    out: list[ConfigChange] = []
    for name in a:
        before, after = a[name], b[name]
        if before == after:
            continue
        if isinstance(before, dict):
            for key in sorted(set(before) | set(after)):
                if key not in after:
                    out.append(ConfigChange(name, REMOVED, key, before[key], None))
                elif key not in before:
                    out.append(ConfigChange(name, ADDED, key, None, after[key]))
                elif before[key] != after[key]:
                    out.append(ConfigChange(name, "changed", key, before[key], after[key]))
        elif name in ("exposed_ports", "volumes"):
            out.extend(ConfigChange(name, REMOVED, item, item, None) for item in before if item not in after)
            out.extend(ConfigChange(name, ADDED, item, None, item) for item in after if item not in before)
        else:
            kind = (
                "changed"
                if before not in (None, "") and after not in (None, "")
                else (ADDED if before in (None, "") else REMOVED)
            )
            out.append(ConfigChange(name, kind, None, before, after))
    return out


# -- findings -------------------------------------------------------------------------------------
def _findings_diff(old: Analysis, new: Analysis, ignored: Callable[[bytes], bool]) -> FindingsDiff:
    old_rules = {f.rule.id: f for f in old.findings}
    new_rules = {f.rule.id: f for f in new.findings}
    rules = []
    for rule_id in dict.fromkeys([*old_rules, *new_rules]):
        before, after = old_rules.get(rule_id), new_rules.get(rule_id)
        old_paths = {p.path: p.bytes for p in before.paths} if before else {}
        new_paths = {p.path: p.bytes for p in after.paths} if after else {}
        introduced = [(p, n) for p, n in new_paths.items() if p not in old_paths and not ignored(p)]
        fixed = [(p, n) for p, n in old_paths.items() if p not in new_paths and not ignored(p)]
        old_bytes = before.bytes if before else 0
        new_bytes = after.bytes if after else 0
        if old_bytes == new_bytes and not introduced and not fixed:
            continue
        finding = after or before
        assert finding is not None
        rules.append(
            RuleChange(
                finding=finding,
                old_bytes=old_bytes,
                new_bytes=new_bytes,
                old_count=before.count if before else 0,
                new_count=after.count if after else 0,
                introduced=sorted(introduced, key=lambda item: (-item[1], item[0])),
                fixed=sorted(fixed, key=lambda item: (-item[1], item[0])),
            )
        )
    rules.sort(key=lambda r: (-abs(r.delta), r.finding.rule.id))
    categories = {
        c: (old.summary.removable_bytes.get(c, 0), new.summary.removable_bytes.get(c, 0)) for c in CATEGORIES
    }
    hidden_introduced, hidden_fixed = _hidden_diff(old, new, ignored)
    return FindingsDiff(
        rules=rules,
        categories=categories,
        hidden=(old.summary.hidden_bytes, new.summary.hidden_bytes),
        hidden_introduced=hidden_introduced,
        hidden_fixed=hidden_fixed,
        duplicates=(old.summary.duplicate_bytes, new.summary.duplicate_bytes),
        estimated_slim=(old.summary.estimated_slim_bytes, new.summary.estimated_slim_bytes),
    )


def _hidden_diff(
    old: Analysis, new: Analysis, ignored: Callable[[bytes], bool]
) -> tuple[list[HiddenChange], list[HiddenChange]]:
    """Hidden files (path and bytes) NEW has and OLD has not, and the other way round.

    The reason is not compared: a file overwritten in one image and stored again in the other hides the
    same bytes.
    """

    def items(analysis: Analysis) -> list[HiddenChange]:
        return [
            HiddenChange(h.path, h.reason, h.bytes, h.layer)
            for h in analysis.waste.hidden
            if not ignored(h.path)
        ]

    def minus(a: list[HiddenChange], b: list[HiddenChange]) -> list[HiddenChange]:
        left = Counter((h.path, h.bytes) for h in b)
        out = []
        for h in a:
            key = (h.path, h.bytes)
            if left[key]:
                left[key] -= 1
            else:
                out.append(h)
        return out

    before, after = items(old), items(new)
    return minus(after, before), minus(before, after)


# -- summary --------------------------------------------------------------------------------------
_SIGNIFICANT_PACKAGE = (ADDED, REMOVED, "upgraded", "downgraded")


def _summary(
    old: Analysis,
    new: Analysis,
    changes: list[Change],
    ignored: list[Change],
    packages: list[PackageChange],
    config: list[ConfigChange],
    findings: FindingsDiff,
) -> DiffSummary:
    counted = [c for c in changes if c.type != "dir" or c.kind == MODIFIED]
    kinds = Counter(c.kind for c in counted)
    package_changed = any(
        p.kind in _SIGNIFICANT_PACKAGE or (p.kind == "changed" and p.old_version != p.new_version)
        for p in packages
    )
    identical = not (
        changes or package_changed or config or findings.hidden_introduced or findings.hidden_fixed
    )
    removable_old = sum(findings.categories[c][0] for c in CATEGORIES)
    removable_new = sum(findings.categories[c][1] for c in CATEGORIES)
    return DiffSummary(
        identical=identical,
        bytes_delta=new.stats.bytes - old.stats.bytes,
        files_delta=new.stats.files - old.stats.files,
        image_bytes_delta=new.summary.image_bytes - old.summary.image_bytes,
        compressed_bytes_delta=sum(la.compressed_bytes for la in new.image.layers)
        - sum(la.compressed_bytes for la in old.image.layers),
        hidden_bytes_delta=new.summary.hidden_bytes - old.summary.hidden_bytes,
        removable_bytes_delta=removable_new - removable_old,
        new_removable_bytes=findings.new_removable_bytes,
        added=kinds[ADDED],
        removed=kinds[REMOVED],
        modified=kinds[MODIFIED],
        moved=kinds[MOVED],
        added_bytes=sum(c.delta for c in changes if c.delta > 0),
        removed_bytes=-sum(c.delta for c in changes if c.delta < 0),
        ignored=sum(1 for c in ignored if c.type != "dir" or c.kind == MODIFIED),
        ignored_bytes_delta=sum(c.delta for c in ignored),
    )


# -- the JSON document ----------------------------------------------------------------------------
def _mode(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:04o}"


def _link(raw: bytes | None) -> str | None:
    return None if raw is None else json_name(raw)["path"]


def _named(raw: bytes, prefix: str = "") -> dict[str, str]:
    return {prefix + key: value for key, value in json_name(raw).items()}


def _change_doc(change: Change) -> dict[str, Any]:
    doc: dict[str, Any] = {**_named(change.path), "type": change.type}
    if change.kind == ADDED:
        doc.update(size=change.new_size, delta=change.delta, mode=_mode(change.new_mode))
        doc["owner"] = change.new_owner
        if change.new_link is not None:
            doc["link"] = _link(change.new_link)
        return doc
    if change.kind == REMOVED:
        doc.update(size=change.old_size, delta=change.delta, mode=_mode(change.old_mode))
        doc["owner"] = change.old_owner
        if change.old_link is not None:
            doc["link"] = _link(change.old_link)
        return doc
    if change.kind == MOVED and change.old_path is not None:
        doc.update(_named(change.old_path, "old_"))
    doc.update(
        old_type=change.old_type,
        old_size=change.old_size,
        new_size=change.new_size,
        delta=change.delta,
        changed=list(change.what),
        old_mode=_mode(change.old_mode),
        new_mode=_mode(change.new_mode),
        old_owner=change.old_owner,
        new_owner=change.new_owner,
    )
    if change.old_link is not None or change.new_link is not None:
        doc.update(old_link=_link(change.old_link), new_link=_link(change.new_link))
    if change.kind == MODIFIED and "content" in change.what:
        doc.update(
            old_digest="sha256:" + change.old_digest.hex() if change.old_digest else None,
            new_digest="sha256:" + change.new_digest.hex() if change.new_digest else None,
        )
    return doc


def _image_doc(analysis: Analysis) -> dict[str, Any]:
    image = analysis.image
    return {
        "reference": image.reference,
        "source": image.source,
        "id": image.id,
        "tags": list(image.tags),
        "platform": image.platform,
        "created": image.created,
        "layers": len(image.layers),
        "image_bytes": analysis.summary.image_bytes,
        "compressed_bytes": sum(layer.compressed_bytes for layer in image.layers),
        "filesystem_bytes": analysis.stats.bytes,
        "files": analysis.stats.files,
        "hidden_bytes": analysis.summary.hidden_bytes,
    }


def _layer_doc(layer: LayerInfo) -> dict[str, Any]:
    return {
        "index": layer.index,
        "diff_id": layer.diff_id,
        "size_bytes": layer.size_bytes,
        "compressed_bytes": layer.compressed_bytes,
        "instruction": layer.instruction,
        "in_other": layer.in_other,
    }


def _history_doc(lines: list[HistoryLine]) -> list[dict[str, Any]]:
    return [{"line": h.line, "layer": h.layer, "empty_layer": h.empty_layer} for h in lines]


def _package_doc(change: PackageChange) -> dict[str, Any]:
    return {
        "manager": change.manager,
        "name": change.name,
        "arch": change.arch,
        "old_version": change.old_version,
        "new_version": change.new_version,
        "old_bytes": change.old_bytes,
        "new_bytes": change.new_bytes,
        "delta": change.delta,
        "old_location": _link(change.old_location),
        "new_location": _link(change.new_location),
        "build_only": change.build_only,
    }


def _rule_doc(change: RuleChange) -> dict[str, Any]:
    rule = change.finding.rule
    return {
        "rule": rule.id,
        "name": rule.name,
        "category": rule.category,
        "title": rule.title,
        "status": change.status,
        "old_bytes": change.old_bytes,
        "new_bytes": change.new_bytes,
        "delta": change.delta,
        "old_count": change.old_count,
        "new_count": change.new_count,
        "introduced": [_named(p) | {"bytes": n} for p, n in change.introduced],
        "fixed": [_named(p) | {"bytes": n} for p, n in change.fixed],
    }


def _pair(values: tuple[int, int]) -> dict[str, int]:
    return {"old": values[0], "new": values[1], "delta": values[1] - values[0]}


def _hidden_doc(items: list[HiddenChange]) -> list[dict[str, Any]]:
    return [_named(h.path) | {"reason": h.reason, "bytes": h.bytes, "layer": h.layer} for h in items]


def document(diff: Diff) -> dict[str, Any]:
    """The versioned JSON document of a diff (see slimscope/report/diff_schema.json)."""
    s = diff.summary
    files: dict[str, Any] = {kind: [] for kind in (ADDED, REMOVED, MODIFIED, MOVED)}
    for change in diff.changes:
        files[change.kind].append(_change_doc(change))
    for kind in (ADDED, REMOVED, MODIFIED):
        files[kind].sort(key=lambda d: (-abs(d["delta"]), d["path"]))
    folders = rollup(diff.changes)
    top = top_directories(folders)
    files["directories"] = [
        _named(d.path)
        | {
            "delta": d.delta,
            "added": d.added,
            "removed": d.removed,
            "modified": d.modified,
            "moved": d.moved,
            "bytes_added": d.bytes_added,
            "bytes_removed": d.bytes_removed,
        }
        for d in top[:TOP_DIRECTORIES]
    ]
    files["directories_total"] = len(top)
    files["ignored"] = {"count": s.ignored, "bytes_delta": s.ignored_bytes_delta}
    packages: dict[str, list[dict[str, Any]]] = {
        kind: [] for kind in (ADDED, REMOVED, "upgraded", "downgraded", "changed")
    }
    for change in diff.packages:
        packages[change.kind].append(_package_doc(change))
    f = diff.findings
    doc = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "slimscope", "version": __version__},
        "old": _image_doc(diff.old),
        "new": _image_doc(diff.new),
        "ignore": list(diff.ignores),
        "shared_layers": [_layer_doc(layer) for layer in diff.layers.shared],
        "layers": {
            "diverged_at": diff.layers.diverged_at,
            "old": [_layer_doc(layer) for layer in diff.layers.old],
            "new": [_layer_doc(layer) for layer in diff.layers.new],
            "old_history": _history_doc(diff.layers.old_history),
            "new_history": _history_doc(diff.layers.new_history),
            "reused": diff.layers.reused,
        },
        "files": files,
        "packages": packages,
        "config": {
            "changes": [
                {"field": c.field, "kind": c.kind, "key": c.key, "old": c.old, "new": c.new}
                for c in diff.config
            ],
            "old": runtime_config(diff.old.image),
            "new": runtime_config(diff.new.image),
        },
        "findings": {
            "rules": [_rule_doc(r) for r in f.rules],
            "categories": {c: _pair(f.categories[c]) for c in CATEGORIES},
            "hidden": _pair(f.hidden)
            | {"introduced": _hidden_doc(f.hidden_introduced), "fixed": _hidden_doc(f.hidden_fixed)},
            "duplicates": _pair(f.duplicates),
            "estimated_slim": _pair(f.estimated_slim),
            "new_removable_bytes": f.new_removable_bytes,
        },
        "summary": {
            "identical": s.identical,
            "bytes_delta": s.bytes_delta,
            "files_delta": s.files_delta,
            "image_bytes_delta": s.image_bytes_delta,
            "compressed_bytes_delta": s.compressed_bytes_delta,
            "hidden_bytes_delta": s.hidden_bytes_delta,
            "removable_bytes_delta": s.removable_bytes_delta,
            "new_removable_bytes": s.new_removable_bytes,
            "added": s.added,
            "removed": s.removed,
            "modified": s.modified,
            "moved": s.moved,
            "added_bytes": s.added_bytes,
            "removed_bytes": s.removed_bytes,
            "packages": {kind: len(items) for kind, items in packages.items()},
            "config_changes": len(diff.config),
            "shared_layers": len(diff.layers.shared),
        },
    }
    return doc


def schema() -> dict[str, Any]:
    """The JSON Schema of the diff document."""
    text = resources.files("slimscope.report").joinpath("diff_schema.json").read_text("utf-8")
    return json.loads(text)
