"""Read an image from a tar stream: a `docker save` archive (file or engine export) or an OCI archive.

The outer tar is read once, front to back, so the same code serves files, compressed files and the
engine's HTTP stream. Small JSON documents are kept in memory; every other blob is scanned as a
layer while it streams (the manifest, which says which blobs are layers, often comes last).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import IO, TYPE_CHECKING

from slimscope.errors import FormatError, ReuseMismatch
from slimscope.image.blobs import READ_SIZE, KnownLayer, LayerScan, scan_layer
from slimscope.image.manifest import MAX_JSON
from slimscope.image.model import Layer
from slimscope.image.parallel import BlobJob, scan_blobs
from slimscope.image.tarstream import BLOCK_SIZE, ZERO_BLOCK, _number, _parse_pax, header_checksum_ok

if TYPE_CHECKING:
    from slimscope.cache import CachedLayer

SYMTYPE, LNKTYPE = ord("2"), ord("1")


class TruncatedArchive(FormatError):
    """The outer archive ends too early; fatal even inside a blob nobody may need."""


REGULAR = frozenset(b"07\0")

_DOC_NAMES = {"manifest.json", "index.json", "oci-layout", "repositories"}


@dataclass
class ArchiveContents:
    """The documents and scanned blobs of one archive, by member name."""

    docs: dict[str, bytes] = field(default_factory=dict)
    scans: dict[str, LayerScan] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """Follow symlink and hard link members to the name that holds the data."""
        name = _norm(name)
        for _ in range(16):
            target = self.aliases.get(name)
            if target is None:
                return name
            name = target
        raise FormatError(f"archive member {name} is part of a link loop")

    def get(self, name: str) -> bytes | None:
        """A JSON document by name."""
        return self.docs.get(self.resolve(name))

    def layer(self, name: str) -> LayerScan | None:
        """The scan of a layer blob by name (scanning a blob that was first taken for a document)."""
        name = self.resolve(name)
        if name in self.errors:
            raise self.errors[name]
        scan = self.scans.get(name)
        if scan is None and name in self.docs:
            data = self.docs[name]
            pos = 0

            def read(n: int) -> bytes:
                nonlocal pos
                chunk = data[pos : pos + n]
                pos += len(chunk)
                return chunk

            scan = self.scans[name] = scan_layer(read)
        return scan


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _is_doc_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name in _DOC_NAMES or base.endswith(".json") or base in ("json", "VERSION")


class _Member:
    """One member of the outer archive, read front to back."""

    __slots__ = ("kind", "link", "name", "offset", "size")

    def __init__(self, name: str, kind: int, size: int, link: str) -> None:
        self.name, self.kind, self.size, self.link = name, kind, size, link
        self.offset = -1  # where the data starts in the file (seekable sources only)


class _Seeking:
    """A plain file read front to back that knows its position and skips by seeking."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self.handle.read(n)
        self.pos += len(data)
        return data

    def skip(self, n: int) -> None:
        self.pos += n
        self.handle.seek(self.pos)


def _iter_members(
    stream: IO[bytes], seekable: bool = False
) -> Iterator[tuple[_Member, Callable[[int], bytes]]]:
    """The members of a (possibly gzip-compressed) tar stream, each with a reader for its data.

    Written by hand instead of with `tarfile` because tarfile's stream mode stops silently on a
    truncated archive; here a stream that ends before the end-of-archive marker is an error.
    A member's data must be read (or not) before the next member is asked for. With `seekable` (a
    plain file at its start), data left unread is skipped by seeking, and each member's `offset` says
    where its data starts in the file.
    """
    head = _peek(stream, 4)
    if head[0].startswith(b"\x1f\x8b"):
        import gzip

        stream = gzip.GzipFile(fileobj=head[1], mode="rb")  # type: ignore[assignment]
    elif seekable:
        stream.seek(0)
        stream = _Seeking(stream)  # type: ignore[assignment]
    else:
        stream = head[1]  # type: ignore[assignment]
    pax_global: dict[bytes, bytes] = {}
    pax: dict[bytes, bytes] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    first = True
    while True:
        block = _read_full(stream, BLOCK_SIZE)
        if len(block) < BLOCK_SIZE:
            if first and not block:
                raise FormatError("not an image archive (empty file)")
            if first:
                raise FormatError("not an image archive (not a tar file)")
            raise TruncatedArchive("the archive is truncated (it ends without an end-of-archive marker)")
        if block == ZERO_BLOCK:
            return
        if not header_checksum_ok(block):
            raise FormatError(
                "not an image archive (not a tar file)"
                if first
                else "the archive is corrupt (bad tar header)"
            )
        first = False
        typeflag = block[156]
        size = _number(block[124:136])
        if typeflag in b"xgLK":
            if size > MAX_JSON:
                raise FormatError("the archive has an oversized tar extended header")
            data = _read_full(stream, size)
            _read_full(stream, -size % BLOCK_SIZE)
            if len(data) < size:
                raise TruncatedArchive("the archive is truncated")
            if typeflag == ord("x"):
                pax = _parse_pax(data)
            elif typeflag == ord("g"):
                pax_global = pax_global | _parse_pax(data)
            elif typeflag == ord("L"):
                long_name = data.split(b"\0", 1)[0]
            else:
                long_link = data.split(b"\0", 1)[0]
            continue
        fields = pax_global | pax
        name = long_name if long_name is not None else block[0:100].split(b"\0", 1)[0]
        if long_name is None and block[257:263] == b"ustar\0":
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        link = long_link if long_link is not None else block[157:257].split(b"\0", 1)[0]
        name = fields.get(b"path", name)
        link = fields.get(b"linkpath", link)
        if b"size" in fields:
            size = int(fields[b"size"])
        pax, long_name, long_link = {}, None, None
        has_data = typeflag not in b"123456"
        remaining = size if has_data else 0
        member = _Member(
            _norm(name.decode("utf-8", "surrogateescape")),
            typeflag,
            remaining,
            link.decode("utf-8", "surrogateescape"),
        )

        reader = _MemberReader(stream, remaining)
        member.offset = getattr(stream, "pos", -1)
        yield member, reader.read
        reader.finish()


class _MemberReader:
    """Reads one member's data from the outer stream; `finish` skips what is left and the padding."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream = stream
        self.left = size
        self.padding = -size % BLOCK_SIZE

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        if not n:
            return b""
        chunk = _read_full(self.stream, n)
        self.left -= len(chunk)
        if len(chunk) < n:
            raise TruncatedArchive("the archive is truncated")
        return chunk

    def finish(self) -> None:
        skip = getattr(self.stream, "skip", None)
        if skip is not None:  # past the end of the file, the next header read finds it truncated
            skip(self.left + self.padding)
            self.left = 0
            return
        while self.left:
            self.read(min(self.left, 1 << 20))
        if len(_read_full(self.stream, self.padding)) < self.padding:
            raise TruncatedArchive("the archive is truncated")


def _read_full(stream: IO[bytes], n: int) -> bytes:
    """Read exactly n bytes unless the stream ends first."""
    if n <= 0:
        return b""
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class _Prefixed:
    """A stream with some bytes already read put back in front."""

    def __init__(self, prefix: bytes, stream: IO[bytes]) -> None:
        self.prefix = prefix
        self.stream = stream

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.prefix:
            if n < 0:
                data, self.prefix = self.prefix + self.stream.read(), b""
                return data
            data, self.prefix = self.prefix[:n], self.prefix[n:]
            if len(data) < n:
                data += self.stream.read(n - len(data))
            return data
        return self.stream.read(n)


def _peek(stream: IO[bytes], n: int) -> tuple[bytes, IO[bytes]]:
    head = _read_full(stream, n)
    return head, _Prefixed(head, stream)  # type: ignore[return-value]


def known_blob(name: str, known: Mapping[str, Layer]) -> Layer | None:
    """The already read layer a blob's name promises: by name (`<id>/layer.tar`) or digest (`blobs/...`)."""
    layer = known.get(name)
    if layer is None and name.startswith("blobs/"):
        algorithm, _, hexdigest = name[6:].partition("/")
        layer = known.get(f"{algorithm}:{hexdigest}")
    return layer


def reuse_layer(
    read: Callable[[int], bytes],
    head: bytes,
    progress: Callable[[int], None] | None,
    known: Layer | CachedLayer,
) -> LayerScan:
    """Hash a blob that should hold an already read layer, without decompressing or parsing it.

    The blob must hash to the layer's blob digest (the same bytes) or to its diff_id (the same tar,
    uncompressed); then the layer's members are reused. Else a ReuseMismatch.
    """
    raw = sha256()
    size = 0
    chunk = head
    while chunk:
        raw.update(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))
        chunk = read(READ_SIZE)
    digest = "sha256:" + raw.hexdigest()
    if digest == known.digest:
        return LayerScan(digest, size, known.compression, known.diff_id, known.entries, reused=True)
    if digest == known.diff_id:
        return LayerScan(digest, size, "none", digest, known.entries, reused=True)
    raise ReuseMismatch(f"blob sha256 is {digest}, not that of the layer {known.diff_id} its name promises")


def read_archive(
    fileobj: IO[bytes],
    *,
    progress: Callable[[int], None] | None = None,
    on_blob: Callable[[str], None] | None = None,
    known: Mapping[str, Layer] | None = None,
    recognise: Callable[[str], KnownLayer | None] | None = None,
    path: str | None = None,
    waiting: Callable[[], None] | None = None,
    defer_digests: bool = False,
) -> ArchiveContents:
    """Read every member of an image archive stream once.

    `known` (see `sources.index_layers`) names layers already read: their blobs are hashed, not scanned.
    `recognise` finds a layer read before by a blob's fingerprint (see `scan_layer`). With `path` (the
    file `fileobj` was opened from, at its start), the blobs are read by offset, on both cores (see
    `image.parallel`), unless the archive is gzip-compressed as a whole; `defer_digests` lets a big
    blob's scan come back before its sha256 (see `scan_blobs`).
    """
    contents = ArchiveContents()
    jobs: list[BlobJob] = []
    try:
        for member, read in _iter_members(fileobj, seekable=path is not None):
            name = member.name
            if member.kind == SYMTYPE:
                contents.aliases[name] = _norm(
                    posixpath.normpath(posixpath.join(posixpath.dirname(name), member.link))
                )
                continue
            if member.kind == LNKTYPE:
                contents.aliases[name] = _norm(member.link)
                continue
            if member.kind not in REGULAR:
                continue
            if _is_doc_name(name) or member.size <= 64:
                if member.size > MAX_JSON:
                    raise FormatError(f"archive member {name} is too large to be a JSON document")
                contents.docs[name] = read(member.size)
                if progress is not None:
                    progress(member.size)
                continue
            if path is not None and member.offset >= 0:
                first = read(1)
                if first == b"{" and member.size <= MAX_JSON:
                    contents.docs[name] = first + read(member.size - 1)
                    if progress is not None:
                        progress(member.size)
                else:
                    jobs.append(BlobJob(name, path, member.offset, member.size))
                continue
            head = read(min(READ_SIZE, member.size))
            if head[:1] == b"{" and member.size <= MAX_JSON:
                contents.docs[name] = head + read(member.size - len(head))
                if progress is not None:
                    progress(member.size)
                continue
            if on_blob is not None:
                on_blob(name)
            reuse = known_blob(name, known) if known else None
            try:
                if reuse is not None:
                    scan = reuse_layer(read, head, progress, reuse)
                else:
                    scan = scan_layer(
                        read, head=head, progress=progress, blob_size=member.size, lookup=recognise
                    )
            except FormatError as exc:
                if isinstance(exc, (TruncatedArchive, ReuseMismatch)):
                    raise
                contents.errors[name] = exc
                continue
            contents.scans[name] = scan
        if jobs:
            _scan_jobs(contents, jobs, known, recognise, progress, on_blob, waiting, defer_digests)
    except (EOFError, OSError) as exc:
        raise FormatError(f"the archive is truncated or corrupt ({exc.__class__.__name__}: {exc})") from None
    except ValueError as exc:
        raise FormatError(f"the archive is corrupt ({exc})") from None
    if not contents.docs and not contents.scans and not contents.errors:
        raise FormatError("not an image archive (no members)")
    return contents


def _scan_jobs(
    contents: ArchiveContents,
    jobs: list[BlobJob],
    known: Mapping[str, Layer] | None,
    recognise: Callable[[str], KnownLayer | None] | None,
    progress: Callable[[int], None] | None,
    on_blob: Callable[[str], None] | None,
    waiting: Callable[[], None] | None = None,
    defer_digests: bool = False,
) -> None:
    """Scan the blobs found by a seeking walk, in parallel, into `contents`."""
    outcomes = scan_blobs(
        jobs,
        reuse_of=(lambda name: known_blob(name, known)) if known else None,  # type: ignore[arg-type,return-value]
        recognise=recognise,  # type: ignore[arg-type]
        progress=progress,
        on_blob=on_blob,
        waiting=waiting,
        defer_digests=defer_digests,
    )
    for name, outcome in outcomes.items():
        if isinstance(outcome, FormatError):
            contents.errors[name] = outcome
        else:
            contents.scans[name] = outcome


def _read_exact(data: IO[bytes], size: int, name: str) -> bytes:
    chunk = data.read(size)
    if len(chunk) != size:
        raise FormatError(f"the archive is truncated (in {name})")
    return chunk
