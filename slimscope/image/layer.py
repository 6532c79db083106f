"""One layer's tar members, stored column-wise.

A layer can hold hundreds of thousands of members. Keeping one Python object per member costs
hundreds of bytes each and a lot of allocation time, so members live in parallel columns
(`array`, `bytearray`, lists of `bytes`) and are addressed by their index. `Entry` objects are made
on demand for the few members a caller looks at.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

# Member kinds (one byte each in `LayerEntries.kinds`).
FILE = 0
DIR = 1
SYMLINK = 2
HARDLINK = 3
CHAR = 4
BLOCK = 5
FIFO = 6
WHITEOUT = 7  # `.wh.NAME`: path is NAME, removed from lower layers
OPAQUE = 8  # `DIR/.wh..wh..opq`: path is DIR, whose lower contents are hidden
OTHER_WH = 9  # other `.wh..wh.*` AUFS metadata: counted, otherwise ignored

KIND_NAMES = (
    "file",
    "dir",
    "symlink",
    "hardlink",
    "char",
    "block",
    "fifo",
    "whiteout",
    "opaque",
    "aufs-meta",
)
NO_DIGEST = bytes(32)


@dataclass(slots=True)
class Entry:
    """A single member of a layer, made on demand from the columns."""

    path: bytes
    kind: int
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    link: bytes | None
    digest: bytes | None

    @property
    def kind_name(self) -> str:
        """The member kind as a word ("file", "dir", ...)."""
        return KIND_NAMES[self.kind]

    @property
    def digest_hex(self) -> str | None:
        """`sha256:<hex>` of the content for regular files, else None."""
        return None if self.digest is None else "sha256:" + self.digest.hex()


@dataclass
class LayerEntries:
    """The members of one layer tar in columns; index i describes the i-th member."""

    paths: list[bytes] = field(default_factory=list)
    kinds: bytearray = field(default_factory=bytearray)
    sizes: array = field(default_factory=lambda: array("q"))
    modes: array = field(default_factory=lambda: array("L"))
    uids: array = field(default_factory=lambda: array("q"))
    gids: array = field(default_factory=lambda: array("q"))
    mtimes: array = field(default_factory=lambda: array("q"))
    digests: bytearray = field(default_factory=bytearray)  # 32 bytes per member, zeros if none
    links: dict[int, bytes] = field(default_factory=dict)  # symlink / hard link targets by index
    captured: dict[int, bytes] = field(default_factory=dict)  # contents of small files worth reading
    problems: list[str] = field(default_factory=list)  # oddities found while reading (not fatal)
    size_bytes: int = 0  # sum of regular file sizes (hard links count 0)

    def __len__(self) -> int:
        return len(self.paths)

    def entry(self, i: int) -> Entry:
        """The i-th member as an object."""
        kind = self.kinds[i]
        digest = self.digests[i * 32 : i * 32 + 32] if kind == FILE else None
        return Entry(
            path=self.paths[i],
            kind=kind,
            size=self.sizes[i],
            mode=self.modes[i],
            uid=self.uids[i],
            gid=self.gids[i],
            mtime=self.mtimes[i],
            link=self.links.get(i),
            digest=bytes(digest) if digest is not None else None,
        )

    def digest(self, i: int) -> bytes:
        """The raw 32-byte content digest of member i (zeros when it has none)."""
        return bytes(self.digests[i * 32 : i * 32 + 32])
