"""The merged filesystem: layers applied in order with OCI whiteouts, and what each layer changed.

The tree keeps one small `Dir` object per directory; a file, link or device is just an int `ref`
that encodes (layer, member index), so 200k files cost 200k dict slots and ints, not 200k objects.
Whiteouts follow the OCI image spec: `.wh.NAME` removes NAME (file or whole directory) from lower
layers; `DIR/.wh..wh..opq` hides every lower child of DIR; both apply before the layer's own
members, so a layer may delete and recreate a path.

`problems` are plain text: names in them are the raw names (bytes that are not UTF-8 kept as lone
surrogates, as `os.fsdecode` does), never pre-escaped; views escape them once, on output
(`slimscope.sanitize.visible` for the terminal, `sanitize.json_text` for JSON).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from slimscope import native
from slimscope.image.layer import (
    DIR,
    FILE,
    HARDLINK,
    OPAQUE,
    OTHER_WH,
    SYMLINK,
    WHITEOUT,
    Entry,
    LayerEntries,
)

# Compiled loops for the plain case of the merge and the survey walk (_fastfs.c), or None.
_fastfs = native.load("slimscope._fastfs")

SHIFT = 32
MASK = (1 << SHIFT) - 1
IMPLIED = -1  # a directory that exists only because a member lies below it

# Per-member change codes, relative to the filesystem below the layer.
ADDED = 1
MODIFIED = 2  # content, type or link target changed
META = 3  # same content, stored again (metadata changed, or not at all)
UNCHANGED = 4  # a directory listed again with the same mode and owner
IGNORED = 5  # whiteouts and AUFS metadata: they change nothing themselves
# Why a member's bytes stopped being visible (`Filesystem.hidden_by`).
OVERWRITTEN = 0  # a later member at the same path has other content or type
RESTORED = 1  # a later member stored the same content again (chmod, chown, touch)
DELETED = 2  # a whiteout removed it (or a directory above it)
OPAQUE_HIDDEN = 3  # an opaque directory hid it
HIDDEN_NAMES = ("overwritten", "stored again", "deleted", "hidden by opaque directory")

MAX_LINK_HOPS = 40  # symlinks followed in one lookup before the kernel says ELOOP (MAXSYMLINKS)
MAX_LINK_TARGET = 4095  # longest symlink target Linux stores (PATH_MAX - 1); longer never resolves
LINK_CHECK_BUDGET = 1 << 20  # path components the symlink checks may walk in all (hostile images)
MAX_PROBLEMS_PER_KIND = 100  # then one "... and N more" line

CHANGE_NAMES = {
    ADDED: "added",
    MODIFIED: "modified",
    META: "metadata_only",
    UNCHANGED: "unchanged",
    IGNORED: "whiteout",
}


def make_ref(layer: int, index: int) -> int:
    """Encode (layer, member index) as one int."""
    return (layer << SHIFT) | index


def split_ref(ref: int) -> tuple[int, int]:
    """Decode a ref into (layer, member index)."""
    return ref >> SHIFT, ref & MASK


class Dir:
    """A directory of the merged tree: the member that made it (or IMPLIED) and its children."""

    __slots__ = ("children", "ref")

    def __init__(self, ref: int) -> None:
        self.ref = ref
        self.children: dict[bytes, int | Dir] = {}


@dataclass
class Tally:
    """A count of paths and the bytes of the regular files among them."""

    count: int = 0
    bytes: int = 0

    def add(self, count: int, size: int) -> None:
        """Add paths and bytes."""
        self.count += count
        self.bytes += size


@dataclass
class LayerChanges:
    """What one layer did to the filesystem below it."""

    codes: bytearray  # per member: ADDED, MODIFIED, META, UNCHANGED or IGNORED
    added: Tally = field(default_factory=Tally)
    modified: Tally = field(default_factory=Tally)
    metadata_only: Tally = field(default_factory=Tally)
    deleted: Tally = field(default_factory=Tally)
    # (path, paths removed, file bytes removed, what: "file", "dir" or "opaque")
    removals: list[tuple[bytes, int, int, str]] = field(default_factory=list)


@dataclass
class FsStats:
    """Counts over a merged filesystem."""

    files: int = 0  # regular files and hard links
    dirs: int = 0
    symlinks: int = 0
    other: int = 0  # devices and fifos
    bytes: int = 0  # regular file bytes, each hard-linked inode once


class Filesystem:
    """Layers merged in order; `changes[i]` says what layer i did."""

    def __init__(self, layers: Sequence[LayerEntries]) -> None:
        self.layers = list(layers)
        self.root = Dir(IMPLIED)
        self._dirs: dict[bytes, Dir] = {b"": self.root}
        self.inode: dict[int, int] = {}  # hard link ref -> ref of the regular file whose data it shares
        # ref -> (layer << 2 | reason) for members that a later layer replaced or removed
        self.hidden_by: dict[int, int] = {}
        self.changes: list[LayerChanges] = []
        self._problems: list[str] = []
        self._links_checked = False
        self._survey: tuple[FsStats, set[int], list[int]] | None = None
        for index in range(len(self.layers)):
            self._apply(index)

    @property
    def problems(self) -> list[str]:
        """Oddities of the merge (not fatal), as plain text; the symlink checks run on first use."""
        if not self._links_checked:
            self._links_checked = True
            self._check_symlinks()
        return self._problems

    # -- lookups ---------------------------------------------------------------------------------
    def entry(self, ref: int) -> Entry:
        """The layer member behind a ref."""
        layer, index = split_ref(ref)
        return self.layers[layer].entry(index)

    def lookup(self, path: bytes) -> int | Dir | None:
        """The node at a normalized path, or None."""
        if not path:
            return self.root
        parent, _, name = path.rpartition(b"/")
        directory = self._dirs.get(parent)
        return None if directory is None else directory.children.get(name)

    def resolve(self, path: bytes, follow_last: bool = True) -> tuple[bytes, int | Dir] | None:
        """Find a path the way the kernel would, following symlinks (absolute ones from the image root).

        Returns the canonical path and its node, or None when it does not resolve (missing, or more
        than 40 links: a loop).
        """
        parts = [p for p in path.split(b"/") if p and p != b"."]
        resolved: list[bytes] = []
        node: int | Dir = self.root
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == b"..":
                if resolved:
                    resolved.pop()
                node = self._dirs.get(b"/".join(resolved), self.root)
                continue
            if type(node) is not Dir:
                return None
            child = node.children.get(name)
            if child is None:
                return None
            if type(child) is not Dir and (parts or follow_last):
                layer, index = child >> SHIFT, child & MASK
                entries = self.layers[layer]
                if entries.kinds[index] == SYMLINK:
                    hops += 1
                    if hops > 40:
                        return None
                    target = entries.links.get(index, b"")
                    if target.startswith(b"/"):
                        resolved = []
                        node = self.root
                    else:
                        node = self._dirs.get(b"/".join(resolved), self.root)
                    parts = [p for p in target.split(b"/") if p and p != b"."] + parts
                    continue
            resolved.append(name)
            node = child
        return b"/".join(resolved), node

    def _link_levels(self, path: bytes, budget: list[int]) -> int:
        """How many symlinks looking up `path` follows, as the kernel does (MAX_LINK_HOPS + 1: ELOOP).

        Missing paths and non-directories on the way end the walk (the count so far). Each path
        component walked takes one from `budget[0]`; below zero the walk stops early.
        """
        layers = self.layers
        parts = [p for p in reversed(path.split(b"/")) if p and p != b"."]
        nodes = [self.root]  # the directories walked into, the current one last (for "..")
        hops = 0
        while parts:
            budget[0] -= 1
            if budget[0] < 0:
                break
            name = parts.pop()
            if name == b"..":
                if len(nodes) > 1:
                    nodes.pop()
                continue
            child = nodes[-1].children.get(name)
            if child is None:
                break
            if type(child) is Dir:
                nodes.append(child)
                continue
            entries = layers[child >> SHIFT]
            index = child & MASK
            if entries.kinds[index] != SYMLINK:
                break
            hops += 1
            if hops > MAX_LINK_HOPS:
                break
            target = entries.links.get(index, b"")
            if len(target) > MAX_LINK_TARGET:
                break
            if target.startswith(b"/"):
                del nodes[1:]
            parts.extend(p for p in reversed(target.split(b"/")) if p and p != b".")
        return hops

    def _plain_target(self, folder: bytes, target: bytes) -> int | Dir | bool | None:
        """The node a link target in `folder` names through real directories only (None: nothing).

        False when that cheap lookup cannot tell (a '..' after a name, or a symlink or a missing
        folder on the way): leading '..' climb the link's own folders, which are real directories.
        """
        if target[:1] == b"/":
            folder = b""
            target = target.lstrip(b"/")
        while target[:3] == b"../":
            folder = folder.rpartition(b"/")[0]
            target = target[3:]
        if target and target.find(b"//") < 0 and (b"/" + target).find(b"/.") < 0 and target[-1:] != b"/":
            path = folder + b"/" + target if folder else target  # the usual target: plain names
            parent_path, _, name = path.rpartition(b"/")
            parent = self._dirs.get(parent_path)
            return False if parent is None else parent.children.get(name)
        parts = [p for p in target.split(b"/") if p and p != b"."]
        ups = 0
        while ups < len(parts) and parts[ups] == b"..":
            folder = folder.rpartition(b"/")[0]
            ups += 1
        if ups == len(parts):
            return self._dirs.get(folder, self.root)  # a folder of the link itself, or the root
        if b".." in parts[ups:]:
            return False
        inner = b"/".join(parts[ups:-1])
        parent = self._dirs.get(folder + b"/" + inner if folder and inner else folder or inner)
        if parent is None:
            return False
        return parent.children.get(parts[-1])

    def data_ref(self, ref: int) -> int:
        """The ref of the regular file holding a member's bytes (itself, or a hard link's target)."""
        return self.inode.get(ref, ref)

    def walk(self) -> Iterator[tuple[bytes, int | Dir]]:
        """Every path of the merged filesystem below the root, parents before children."""
        stack: list[tuple[bytes, Dir]] = [(b"", self.root)]
        while stack:
            prefix, directory = stack.pop()
            for name, node in directory.children.items():
                path = prefix + b"/" + name if prefix else name
                yield path, node
                if type(node) is Dir:
                    stack.append((path, node))

    def paths(self) -> list[bytes]:
        """Every path of `walk()`, in its order."""
        fast = _fastfs
        if fast is not None:  # 210k paths: 110 -> 25 ms
            return fast.walk_paths(self.root, Dir)
        return [path for path, _ in self.walk()]

    def stats(self) -> FsStats:
        """Counts and bytes of the merged filesystem."""
        return self.survey()[0]

    def survey(self) -> tuple[FsStats, set[int], list[int]]:
        """Counts and bytes of the merged filesystem, the refs of the members whose data it shows (a
        hard link's file in its place) and the bytes it shows per layer, from one walk; worked out once."""
        if self._survey is None:
            self._survey = self._walk_survey()
        return self._survey

    def _walk_survey(self) -> tuple[FsStats, set[int], list[int]]:
        fast = _fastfs
        if fast is not None:
            layers = self.layers
            files, dirs, symlinks, other, visible, by_layer = fast.survey(
                self.root,
                Dir,
                [entries.kinds for entries in layers],
                [entries.sizes for entries in layers],
                self.inode,
                set(self.inode.values()),
            )
            stats = FsStats(files, dirs, symlinks, other, sum(by_layer))
            return stats, visible, by_layer
        return self._walk_survey_python()

    def _walk_survey_python(self) -> tuple[FsStats, set[int], list[int]]:
        stats = FsStats()
        visible: set[int] = set()
        add_visible = visible.add
        seen: set[int] = set()
        layers = self.layers
        kinds_of = [entries.kinds for entries in layers]
        sizes_of = [entries.sizes for entries in layers]
        inode = self.inode
        shared = set(inode.values())  # files with hard links: their bytes count once, whichever name
        by_layer = [0] * len(layers)
        files = dirs = symlinks = other = 0
        stack = [self.root]
        while stack:
            directory = stack.pop()
            for node in directory.children.values():
                if type(node) is Dir:
                    dirs += 1
                    stack.append(node)
                    continue
                layer, index = node >> SHIFT, node & MASK
                kind = kinds_of[layer][index]
                add_visible(inode.get(node, node))
                if kind == FILE:
                    files += 1
                    if node in shared:
                        if node in seen:
                            continue
                        seen.add(node)
                    by_layer[layer] += sizes_of[layer][index]
                elif kind == HARDLINK:
                    files += 1
                    data = inode.get(node, node)
                    if data not in seen:
                        seen.add(data)
                        dl, di = data >> SHIFT, data & MASK
                        if kinds_of[dl][di] == FILE:
                            by_layer[dl] += sizes_of[dl][di]
                elif kind == SYMLINK:
                    symlinks += 1
                else:
                    other += 1
        stats.files, stats.dirs, stats.symlinks, stats.other = files, dirs, symlinks, other
        stats.bytes = sum(by_layer)
        return stats, visible, by_layer

    # -- merging ---------------------------------------------------------------------------------
    def _apply(self, layer: int) -> None:
        entries = self.layers[layer]
        kinds = entries.kinds
        changes = LayerChanges(codes=bytearray(len(kinds)))
        self.changes.append(changes)
        if WHITEOUT in kinds or OPAQUE in kinds or OTHER_WH in kinds:
            self._whiteouts(layer, entries, changes)
        paths = entries.paths
        sizes = entries.sizes
        codes = changes.codes
        dirs = self._dirs
        base = layer << SHIFT
        # Tallies kept in locals in the loop (a method call per member was a tenth of the merge).
        added = added_bytes = modified = modified_bytes = meta = meta_bytes = 0
        fast = _fastfs.merge_plain if _fastfs is not None else None
        # With the compiled loop, this loop jumps from one member it leaves to Python to the next (a
        # Python step per member, even one that only skips, cost 35 ms on 210k files).
        index, count = 0, len(paths)
        while index < count:
            if fast is not None:
                index, more, more_bytes = fast(paths, kinds, sizes, codes, dirs, base, index)
                added += more
                added_bytes += more_bytes
                if index >= count:
                    break
            i = index  # this member is the Python code's
            index += 1
            path = paths[i]
            kind = kinds[i]
            if kind >= WHITEOUT:
                continue
            ref = base | i
            if not path:
                if kind == DIR:
                    codes[i] = self._relist_dir(self.root, ref, changes, i)
                else:
                    self._problems.append(f"layer {layer}: a non-directory member names the root")
                    codes[i] = IGNORED
                continue
            parent_path, _, name = path.rpartition(b"/")
            parent = dirs.get(parent_path)
            if parent is None:
                parent = self._make_parents(parent_path, layer)
            old = parent.children.get(name)
            if kind == DIR:
                if type(old) is Dir:
                    codes[i] = self._relist_dir(old, ref, changes, i)
                    continue
                node = Dir(ref)
                parent.children[name] = node
                dirs[path] = node
                if old is not None:
                    self.hidden_by[old] = layer << 2 | OVERWRITTEN
                if old is None:
                    codes[i] = ADDED
                    added += 1
                else:
                    codes[i] = MODIFIED
                    modified += 1
                continue
            size = sizes[i]
            if kind == HARDLINK:
                self._link(layer, i, ref, entries.links.get(i, b""))
            if old is None:
                codes[i] = ADDED
                added += 1
                added_bytes += size
            elif type(old) is Dir:
                self._removed(path, old, layer, OVERWRITTEN)
                codes[i] = MODIFIED
                modified += 1
                modified_bytes += size
            elif self._same_content(old, ref):
                codes[i] = META
                meta += 1
                meta_bytes += size
                self.hidden_by[old] = layer << 2 | RESTORED
            else:
                codes[i] = MODIFIED
                modified += 1
                modified_bytes += size
                self.hidden_by[old] = layer << 2 | OVERWRITTEN
            parent.children[name] = ref
        changes.added.add(added, added_bytes)
        changes.modified.add(modified, modified_bytes)
        changes.metadata_only.add(meta, meta_bytes)

    def _check_symlinks(self) -> None:
        """Report visible symlinks whose target climbs above the image root, and symlink loops.

        Absolute targets are fine (they resolve from the image root). A relative target climbs out
        when, read from the link's folder, its '..' go above / (unpacked on a host, it names a host
        file). A loop is a link whose lookup follows more than 40 links (the kernel's ELOOP).
        Cheap: most targets are one dict lookup (`_plain_target`); a target that is itself a symlink
        takes that link's memoized count; only the rest are walked (`_link_levels`), within
        LINK_CHECK_BUDGET path components in all. Measured: 47 ms for 20,000 links in a 220,000-member
        image (the merge itself: 100 ms), 1.1 s for 100,000 hostile links that exhaust the budget.
        It runs when `problems` is first read, so views that never show problems do not pay.
        """
        outside: list[str] = []
        loops: list[str] = []
        budget = [LINK_CHECK_BUDGET]
        levels: dict[int, int] = {}  # symlink ref -> links its lookup follows (> MAX_LINK_HOPS: a loop)
        for layer, entries in enumerate(self.layers):
            kinds = entries.kinds
            index = kinds.find(SYMLINK)
            if index < 0:
                continue
            paths, links, dirs, layers = entries.paths, entries.links, self._dirs, self.layers
            base = layer << SHIFT
            while index >= 0:
                path = paths[index]
                parent_path, _, name = path.rpartition(b"/")
                parent = dirs.get(parent_path)
                ref = base | index
                if parent is not None and name and parent.children.get(name) == ref:
                    target = links.get(index, b"")
                    if not target.startswith(b"/") and target.find(b"..") >= 0 and _climbs_out(path, target):
                        outside.append(
                            f"layer {layer}: symlink {_text(path)} -> {_text(target)} "
                            "climbs out of the image root with '..'"
                        )
                    if target.find(b"/") < 0 and target != b".." and target != b".":
                        node = parent.children.get(target)  # a sibling: the most common target
                    else:
                        node = self._plain_target(parent_path, target)
                    if node is False:
                        count = self._levels(ref, node, levels, budget)
                    elif type(node) is int and layers[node >> SHIFT].kinds[node & MASK] == SYMLINK:
                        known = levels.get(node)  # a link to a link seen before: one more level
                        count = self._levels(ref, node, levels, budget) if known is None else known + 1
                        levels[ref] = count = min(count, MAX_LINK_HOPS + 1)
                    else:
                        levels[ref] = count = 1
                    if count > MAX_LINK_HOPS:
                        loops.append(
                            f"layer {layer}: symlink {_text(path)} -> {_text(target)} never resolves "
                            f"(more than {MAX_LINK_HOPS} levels of symbolic links: a loop)"
                        )
                index = kinds.find(SYMLINK, index + 1)
        _add_capped(self._problems, outside, "symlinks that climb out of the image root")
        _add_capped(self._problems, loops, "symlink loops")
        if budget[0] < 0:
            self._problems.append(
                f"symlinks not all checked for loops: the check stops after {LINK_CHECK_BUDGET:,} "
                "path components"
            )

    def _levels(
        self, ref: int, node: int | Dir | bool | None, levels: dict[int, int], budget: list[int]
    ) -> int:
        """The links a visible symlink's lookup follows, memoized in `levels` along plain chains.

        `node` is what `_plain_target` found for the link's target.
        """
        loop = MAX_LINK_HOPS + 1
        chain: list[int] = []
        on_chain: set[int] = set()
        layers = self.layers
        end = 0  # links followed from the last link of the chain on
        while True:
            known = levels.get(ref)
            if known is not None:
                end = known
                break
            if ref in on_chain:  # a cycle of plain links
                end = loop
                break
            chain.append(ref)
            on_chain.add(ref)
            entries = layers[ref >> SHIFT]
            index = ref & MASK
            path = entries.paths[index]
            if chain[0] != ref:
                node = self._plain_target(path.rpartition(b"/")[0], entries.links.get(index, b""))
            if node is False:
                chain.pop()
                end = self._link_levels(path, budget) if budget[0] > 0 else 1
                levels[ref] = end
                break
            if type(node) is Dir or node is None or layers[node >> SHIFT].kinds[node & MASK] != SYMLINK:
                chain.pop()
                end = levels[ref] = 1
                break
            ref = node  # a link to a link: its count plus one
        for ref in reversed(chain):
            end = min(end + 1, loop)
            levels[ref] = end
        return end

    def _relist_dir(self, node: Dir, ref: int, changes: LayerChanges, index: int) -> int:
        """A directory member for a path that is already a directory: metadata change or nothing."""
        old = node.ref
        node.ref = ref
        if old == IMPLIED:
            changes.metadata_only.add(1, 0)
            return META
        ol, oi = old >> SHIFT, old & MASK
        nl, ni = ref >> SHIFT, ref & MASK
        a, b = self.layers[ol], self.layers[nl]
        if a.modes[oi] == b.modes[ni] and a.uids[oi] == b.uids[ni] and a.gids[oi] == b.gids[ni]:
            return UNCHANGED
        changes.metadata_only.add(1, 0)
        return META

    def _same_content(self, old: int, new: int) -> bool:
        """Whether two non-directory members have the same kind and content (or link target)."""
        old_data, new_data = self.inode.get(old, old), self.inode.get(new, new)
        ol, oi = old_data >> SHIFT, old_data & MASK
        nl, ni = new_data >> SHIFT, new_data & MASK
        a, b = self.layers[ol], self.layers[nl]
        kind = a.kinds[oi]
        if kind != b.kinds[ni]:
            return False
        if kind == FILE:
            return (
                a.sizes[oi] == b.sizes[ni]
                and a.digests[oi * 32 : oi * 32 + 32] == b.digests[ni * 32 : ni * 32 + 32]
            )
        if kind in (SYMLINK, HARDLINK):
            return a.links.get(oi) == b.links.get(ni)
        return True

    def _link(self, layer: int, index: int, ref: int, target: bytes) -> None:
        """Record which regular file a hard link shares its data with."""
        node = self.lookup(target)
        if node is None or type(node) is Dir:
            what = "a directory" if node is not None else "a missing file"
            self._problems.append(
                f"layer {layer}: hard link {_text(self.layers[layer].paths[index])} "
                f"points to {what} {_text(target)}"
            )
            return
        data = self.inode.get(node, node)
        dl, di = data >> SHIFT, data & MASK
        if self.layers[dl].kinds[di] == FILE:
            self.inode[ref] = data

    def _make_parents(self, path: bytes, layer: int) -> Dir:
        """Create the implied directories down to `path` (replacing non-directories in the way).

        Iterative: a hostile member name may have millions of components.
        """
        missing = [path]
        while True:
            parent_path = missing[-1].rpartition(b"/")[0]
            parent = self._dirs.get(parent_path)
            if parent is not None:
                break
            missing.append(parent_path)
        for current in reversed(missing):
            name = current.rpartition(b"/")[2]
            old = parent.children.get(name)
            if type(old) is Dir:
                parent = old
                continue
            if old is not None:
                self.hidden_by[old] = layer << 2 | OVERWRITTEN
                self._problems.append(
                    f"layer {layer}: {_text(current)} is not a directory in lower layers "
                    "but has members below it"
                )
            node = Dir(IMPLIED)
            parent.children[name] = node
            self._dirs[current] = node
            parent = node
        return parent

    def _whiteouts(self, layer: int, entries: LayerEntries, changes: LayerChanges) -> None:
        """Apply the layer's whiteouts to the filesystem below it."""
        kinds = entries.kinds
        useless: list[str] = []  # whiteouts of the first layer: there is nothing below to remove
        for index, path in enumerate(entries.paths):
            kind = kinds[index]
            if kind < WHITEOUT:
                continue
            changes.codes[index] = IGNORED
            if layer == 0 and kind == WHITEOUT and path:  # (a whiteout of the root has its own line)
                parent_path, _, name = path.rpartition(b"/")
                member = (parent_path + b"/" if parent_path else b"") + b".wh." + name
                useless.append(f"layer 0: whiteout {_text(member)} in the first layer has nothing to delete")
            elif layer == 0 and kind == OPAQUE:
                member = (path + b"/" if path else b"") + b".wh..wh..opq"
                useless.append(
                    f"layer 0: opaque whiteout {_text(member)} in the first layer has nothing to hide"
                )
            if kind == WHITEOUT:
                if not path:
                    self._problems.append(f"layer {layer}: a whiteout names the root; ignored")
                    continue
                parent_path, _, name = path.rpartition(b"/")
                parent = self._dirs.get(parent_path)
                if parent is None:  # as moby does, a whiteout creates its parent directories
                    parent = self._make_parents(parent_path, layer)
                node = parent.children.pop(name, None)
                if node is None:
                    continue
                what = "dir" if type(node) is Dir else "file"
                count, size = self._removed(path, node, layer, DELETED)
            elif kind == OPAQUE:
                directory = self._dirs.get(path)
                if directory is None:
                    if path:
                        self._make_parents(path, layer)
                    continue
                count = size = 0
                prefix = path + b"/" if path else b""
                for name, node in directory.children.items():
                    c, s = self._removed(prefix + name, node, layer, OPAQUE_HIDDEN)
                    count += c
                    size += s
                directory.children = {}
                what = "opaque"
                if not count:
                    continue
            else:
                continue
            changes.deleted.add(count, size)
            changes.removals.append((path, count, size, what))
        _add_capped(self._problems, useless, "whiteouts in the first layer")

    def _removed(self, path: bytes, node: int | Dir, layer: int, reason: int) -> tuple[int, int]:
        """Count the paths and file bytes under a removed node; drop its directories from the index."""
        mark = layer << 2 | reason
        hidden = self.hidden_by
        if type(node) is not Dir:
            hidden[node] = mark
            entries = self.layers[node >> SHIFT]
            index = node & MASK
            return 1, entries.sizes[index] if entries.kinds[index] == FILE else 0
        count, size = 1, 0
        self._dirs.pop(path, None)
        stack = [(path, node)]
        while stack:
            prefix, directory = stack.pop()
            for name, child in directory.children.items():
                count += 1
                if type(child) is Dir:
                    child_path = prefix + b"/" + name
                    self._dirs.pop(child_path, None)
                    stack.append((child_path, child))
                else:
                    hidden[child] = mark
                    entries = self.layers[child >> SHIFT]
                    index = child & MASK
                    if entries.kinds[index] == FILE:
                        size += entries.sizes[index]
        return count, size


def _text(path: bytes) -> str:
    """A raw name as text for a problem: undecodable bytes become lone surrogates, nothing is escaped."""
    return path.decode("utf-8", "surrogateescape")


def _climbs_out(path: bytes, target: bytes) -> bool:
    """Whether a relative symlink target, read from the folder of the link at `path`, climbs above /."""
    depth = path.count(b"/")  # of the link's folder: "a/b/link" lives at depth 2
    for part in target.split(b"/"):
        if part == b"..":
            depth -= 1
            if depth < 0:
                return True
        elif part and part != b".":
            depth += 1
    return False


def _add_capped(problems: list[str], found: list[str], what: str) -> None:
    """Add problems of one kind, at most MAX_PROBLEMS_PER_KIND, then one line for the rest."""
    problems.extend(found[:MAX_PROBLEMS_PER_KIND])
    if len(found) > MAX_PROBLEMS_PER_KIND:
        problems.append(f"... and {len(found) - MAX_PROBLEMS_PER_KIND:,} more {what}")
