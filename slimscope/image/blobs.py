"""Read one layer blob in a single streaming pass: hash, decompress, hash again, parse the tar.

Two threads share the work so both cores are busy: the reader thread pulls raw bytes, feeds the
blob's sha256 and the decompressor (zlib and zstd release the GIL), and hands decompressed chunks
over a small bounded queue; the calling thread feeds the diff_id sha256 and the tar parser, which
hashes every file's content. Nothing is written to disk and memory stays bounded by the queue.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Protocol

from slimscope.errors import FormatError, ReuseMismatch
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import TarStream

if TYPE_CHECKING:
    from concurrent.futures import Future

READ_SIZE = 1 << 20
# zstd can expand 4 KiB into ~128 MiB of zeros and python-zstandard has no output limit per call,
# so compressed input goes in small slices: this bounds memory for hostile blobs.
ZSTD_SLICE = 4096
GZIP_OUT_LIMIT = 8 << 20
QUEUE_DEPTH = 8
INLINE_MAX = 1 << 20  # blobs up to this size are read without a reader thread

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# A blob whose name says nothing of its content (`<id>/layer.tar`) is recognised by its size and the
# first HEAD_BYTES of its tar: enough to tell layers apart, and still verified by the whole digest.
HEAD_BYTES = 64 << 10
_UNSUPPORTED = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x04\x22\x4d\x18": "lz4"}


@dataclass
class LayerScan:
    """What one pass over a layer blob learned."""

    digest: str  # sha256 of the blob as stored
    raw_size: int
    compression: str  # "none", "gzip" or "zstd"
    diff_id: str  # sha256 of the uncompressed tar
    entries: LayerEntries
    head: str | None = None  # the blob's fingerprint (see head_key), when it was decompressed
    reused: bool = False  # the members are a known layer's: the blob was hashed, not parsed
    # An uncompressed blob still being hashed (see image.parallel): digest and diff_id are "" until
    # the caller takes them from the manifest and checks them when this resolves.
    pending: Future[str] | None = None


class KnownLayer(Protocol):
    """A layer read before: a blob that turns out to hold it is hashed, not parsed."""

    diff_id: str
    entries: LayerEntries


def head_key(blob_size: int | None, head: bytes) -> str:
    """The fingerprint of a layer blob: its size and its first HEAD_BYTES uncompressed bytes."""
    digest = sha256(b"%d\n" % (blob_size if blob_size is not None else -1))
    digest.update(head[:HEAD_BYTES])
    return "head:" + digest.hexdigest()


def detect_compression(head: bytes) -> str:
    """Name the compression of a blob from its first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    for magic, name in _UNSUPPORTED.items():
        if head.startswith(magic):
            raise FormatError(f"{name}-compressed layers are not supported")
    return "none"


_DONE = object()


class _Reader(threading.Thread):
    """Reads, hashes and decompresses a blob, posting uncompressed chunks on `out`."""

    def __init__(self, read: Callable[[int], bytes], head: bytes, progress: Callable[[int], None] | None):
        super().__init__(daemon=True, name="slimscope-blob-reader")
        self.read = read
        self.head = head
        self.progress = progress
        self.out: queue.Queue = queue.Queue(QUEUE_DEPTH)
        self.stop = threading.Event()
        self.raw_hash = sha256()
        self.raw_size = 0
        self.compression = "none"
        self.error: BaseException | None = None

    def _put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _chunks(self):
        """Raw chunks of the blob, hashed and counted."""
        chunk = self.head
        while chunk:
            self.raw_hash.update(chunk)
            self.raw_size += len(chunk)
            if self.progress is not None:
                self.progress(len(chunk))
            yield chunk
            if self.stop.is_set():
                return
            chunk = self.read(READ_SIZE)

    def produce(self) -> Iterator[bytes]:
        """The uncompressed chunks, in this thread (`run` posts them from the reader thread)."""
        self.compression = detect_compression(self.head)
        if self.compression == "gzip":
            yield from self._gunzip()
        elif self.compression == "zstd":
            yield from self._unzstd()
        else:
            yield from self._chunks()

    def run(self) -> None:
        try:
            for chunk in self.produce():
                self._put(chunk)
        except BaseException as exc:  # handed to the consumer thread
            self.error = exc
        self._put(_DONE)

    def chunks(self) -> Iterator[bytes]:
        """The uncompressed chunks the reader thread posts (after `start`); raises what it raised."""
        while True:
            chunk = self.out.get()
            if chunk is _DONE:
                break
            yield chunk
        if self.error is not None:
            raise self.error

    def _gunzip(self) -> Iterator[bytes]:
        inflater = zlib.decompressobj(wbits=31)
        members = 0
        for chunk in self._chunks():
            data = chunk
            while data:
                if inflater.eof:
                    # Concatenated gzip members; skip zero padding some writers append.
                    if not data.strip(b"\0"):
                        break
                    inflater = zlib.decompressobj(wbits=31)
                try:
                    out = inflater.decompress(data, GZIP_OUT_LIMIT)
                except zlib.error as exc:
                    raise FormatError(f"corrupt gzip stream ({exc})") from None
                if inflater.eof:
                    members += 1
                    data = inflater.unused_data
                else:
                    data = inflater.unconsumed_tail
                if out:
                    yield out
        if not inflater.eof:
            raise FormatError("truncated gzip stream")

    def _unzstd(self) -> Iterator[bytes]:
        import zstandard  # here: most images are gzip or plain, and the import costs ~5 ms

        decompressor = zstandard.ZstdDecompressor()
        obj = decompressor.decompressobj()
        pending: list[bytes] = []
        pending_size = 0
        for chunk in self._chunks():
            view = memoryview(chunk)
            for start in range(0, len(view), ZSTD_SLICE):
                piece = view[start : start + ZSTD_SLICE]
                while piece:
                    if obj.eof:
                        rest = bytes(piece)
                        if not rest.strip(b"\0"):
                            piece = b""
                            break
                        obj = decompressor.decompressobj()
                    try:
                        out = obj.decompress(piece)
                    except zstandard.ZstdError as exc:
                        raise FormatError(f"corrupt zstd stream ({exc})") from None
                    piece = obj.unused_data if obj.eof else b""
                    if out:
                        pending.append(out)
                        pending_size += len(out)
                        if pending_size >= READ_SIZE:
                            yield b"".join(pending)
                            pending, pending_size = [], 0
        if pending:
            yield b"".join(pending)
        if not obj.eof:
            raise FormatError("truncated zstd stream")


def scan_layer(
    read: Callable[[int], bytes],
    *,
    head: bytes | None = None,
    progress: Callable[[int], None] | None = None,
    blob_size: int | None = None,
    lookup: Callable[[str], KnownLayer | None] | None = None,
) -> LayerScan:
    """Scan one layer blob read through `read(n)`; `head` is data already read from its start.

    With `lookup`, the blob's fingerprint (`head_key` of `blob_size` and its first uncompressed bytes)
    is looked up before anything is parsed: a layer found that way is only hashed, and must come out
    with the found layer's diff_id (else ReuseMismatch).
    """
    if head is None:
        head = read(READ_SIZE)
    reader = _Reader(read, head, progress)
    tar = TarStream()
    diff_hash = sha256()
    first: list[bytes] = []  # uncompressed data held back until the fingerprint is known
    first_size = 0
    fingerprint: str | None = None
    found: KnownLayer | None = None
    # A small blob is read in this thread: a reader thread costs more than it overlaps (100 small
    # layers: 33 -> 20 ms). Its output stays bounded: the decompressors yield bounded chunks.
    inline = blob_size is not None and blob_size <= INLINE_MAX
    if not inline:
        reader.start()
    interrupted = False
    try:
        for chunk in reader.produce() if inline else reader.chunks():
            if reader.compression != "none":
                diff_hash.update(chunk)
            if fingerprint is None:
                first.append(chunk)
                first_size += len(chunk)
                if first_size < HEAD_BYTES:
                    continue
                fingerprint, found = _recognise(blob_size, first, lookup)
                if found is None:
                    for held in first:
                        tar.feed(held)
                first = []
            elif found is None:
                tar.feed(chunk)
        if fingerprint is None:  # a blob shorter than HEAD_BYTES
            fingerprint, found = _recognise(blob_size, first, lookup)
            if found is None:
                for held in first:
                    tar.feed(held)
        if found is None:
            tar.close()
    except BaseException as exc:
        interrupted = not isinstance(exc, Exception)  # Ctrl-C or SIGTERM: the process is ending
        raise
    finally:
        reader.stop.set()
        if not interrupted and not inline:  # a reader stuck in a stalled read must not hold the exit up
            reader.join(timeout=5)
    digest = "sha256:" + reader.raw_hash.hexdigest()
    diff_id = digest if reader.compression == "none" else "sha256:" + diff_hash.hexdigest()
    if found is not None:
        if diff_id != found.diff_id:
            raise ReuseMismatch(f"blob with uncompressed sha256 {diff_id} is not the layer {found.diff_id}")
        return LayerScan(
            digest, reader.raw_size, reader.compression, diff_id, found.entries, fingerprint, reused=True
        )
    return LayerScan(digest, reader.raw_size, reader.compression, diff_id, tar.entries, fingerprint)


def _recognise(
    blob_size: int | None, first: list[bytes], lookup: Callable[[str], KnownLayer | None] | None
) -> tuple[str, KnownLayer | None]:
    key = head_key(blob_size, b"".join(first)[:HEAD_BYTES] if len(first) != 1 else first[0])
    return key, (lookup(key) if lookup is not None else None)
