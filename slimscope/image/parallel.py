"""Scan the layer blobs of a file-backed image on both cores.

A `docker save` or OCI archive on disk (or an OCI layout's blob files) needs no front-to-back pass: the
outer tar is walked by its headers (seeking over blob data), then each blob is read by offset with
`os.pread`. Blobs to parse go to worker processes (the tar parser holds the GIL, so threads would not
run two at once), largest first; blobs the cache or the other image of a diff already knows are only
hashed, in threads (hashlib and pread release the GIL). Small images are scanned in this process:
starting workers costs more than it saves below PARALLEL_MIN bytes.
"""

from __future__ import annotations

import os
import signal
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Protocol

from slimscope.errors import FormatError
from slimscope.image import blobs
from slimscope.image.blobs import HEAD_BYTES, READ_SIZE, KnownLayer, LayerScan, detect_compression, head_key
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import BLOCK_SIZE, TarStream, header_checksum_ok

if TYPE_CHECKING:
    from concurrent.futures import Future

PARALLEL_MIN = 48 << 20  # bytes of blobs to parse before worker processes pay off
SPLIT_MIN = 64 << 20  # an uncompressed blob this large that dominates the work is parsed in two halves
SPLIT_SEARCH = 16 << 20  # how far past the middle to look for a member header
WORKERS = 2


@dataclass
class BlobJob:
    """One blob in a file: its name (for messages and results), where it starts and how long it is."""

    name: str
    path: str
    offset: int
    size: int


class Reused(KnownLayer, Protocol):
    """A known layer with the digests and compression a blob must match to be taken for it."""

    digest: str
    compression: str


Outcome = LayerScan | FormatError


def _reader(fd: int, offset: int, size: int) -> Callable[[int], bytes]:
    """read(n) over [offset, offset+size) of a file descriptor; a short file is a truncated archive."""
    pos, end = offset, offset + size

    def read(n: int) -> bytes:
        nonlocal pos
        n = min(n, end - pos)
        if n <= 0:
            return b""
        data = os.pread(fd, n, pos)
        if len(data) < n:
            raise FormatError("the archive is truncated (a blob ends early)")
        pos += n
        counter = _READ_COUNTER
        if counter is not None:
            with counter.get_lock():
                counter.value += n
        return data

    return read


def _scan(job: BlobJob) -> Outcome:
    """Parse one blob (in a worker process, or here)."""
    fd = os.open(job.path, os.O_RDONLY)
    try:
        return blobs.scan_layer(_reader(fd, job.offset, job.size), blob_size=job.size)
    except FormatError as exc:
        return exc
    finally:
        os.close(fd)


def _hash(job: BlobJob) -> str:
    """sha256 of a blob's bytes as stored (4 MB updates, each without the GIL: measured against 16 MB
    beside the analysis, the wait to take the GIL back costs 4% and the bigger buffers 40 MB of peak
    memory on the 210k-file image)."""
    fd = os.open(job.path, os.O_RDONLY)
    try:
        read = _reader(fd, job.offset, job.size)
        digest = sha256()
        data = read(READ_SIZE * 4)
        while data:
            digest.update(data)
            data = read(READ_SIZE * 4)
        return "sha256:" + digest.hexdigest()
    finally:
        os.close(fd)


def _hash_in_background(job: BlobJob) -> Future[str]:
    """sha256 of a blob in a daemon thread (it may outlive the read: see scan_blobs' defer_digests)."""
    from concurrent.futures import Future

    future: Future[str] = Future()

    def run() -> None:
        try:
            future.set_result(_hash(job))
        except BaseException as exc:  # handed to whoever asks for the digest
            future.set_exception(exc)

    threading.Thread(target=run, name="slimscope-hash", daemon=True).start()
    return future


def fingerprint(job: BlobJob) -> str | None:
    """The blob's `head_key`, as scan_layer computes it, from its first bytes (None if unreadable)."""
    fd = os.open(job.path, os.O_RDONLY)
    try:
        head = os.pread(fd, min(READ_SIZE, job.size), job.offset)
    finally:
        os.close(fd)
    whole = len(head) == job.size
    try:
        compression = detect_compression(head)
        if compression == "gzip":
            data = _gunzip_head(head)
        elif compression == "zstd":
            data = _unzstd_head(head)
        else:
            data = head[:HEAD_BYTES]
    except (FormatError, zlib.error):
        return None
    if len(data) < HEAD_BYTES and not whole:
        return None  # the first MiB did not give 64 KiB: let the full scan decide
    return head_key(job.size, data)


def _unzstd_head(head: bytes) -> bytes:
    """Up to HEAD_BYTES of a zstd stream (frames may follow each other); FormatError if corrupt."""
    import zstandard  # here: most images are gzip or plain, and the import costs ~5 ms

    reader = zstandard.ZstdDecompressor().stream_reader(head, read_across_frames=True)
    parts, got = [], 0
    try:
        while got < HEAD_BYTES:
            part = reader.read(HEAD_BYTES - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt zstd stream ({exc})") from None
    return b"".join(parts)


def _gunzip_head(head: bytes) -> bytes:
    """Up to HEAD_BYTES of a gzip stream (members may be concatenated, as in scan_layer)."""
    data = b""
    rest = head
    while len(data) < HEAD_BYTES and rest.strip(b"\0"):
        inflater = zlib.decompressobj(wbits=31)
        data += inflater.decompress(rest, HEAD_BYTES - len(data))
        if not inflater.eof:
            break
        rest = inflater.unused_data
    return data[:HEAD_BYTES]


def _scan_range(
    job: BlobJob, start: int, stop_at: int | None
) -> tuple[LayerEntries | FormatError, bool]:
    """Parse the tar of an uncompressed blob from `start` (a member header), up to `stop_at` if that is
    where a member header is; returns the entries and whether it stopped there. No blob digest here:
    the caller hashes the whole blob."""
    fd = os.open(job.path, os.O_RDONLY)
    try:
        read = _reader(fd, job.offset + start, job.size - start)
        tar = TarStream(stop_at=None if stop_at is None else stop_at - start)
        while not tar.stopped:
            chunk = read(READ_SIZE)
            if not chunk:
                break
            tar.feed(chunk)
        tar.close()
        return tar.entries, tar.stopped
    except FormatError as exc:
        return exc, False
    finally:
        os.close(fd)


def split_point(job: BlobJob) -> int | None:
    """A member header a little past the middle of an uncompressed tar blob (512-byte aligned, ustar
    magic, valid checksum), or None. It may be a false one (a tar stored inside the layer): the first
    half's parser only stops there if its own walk lands on it."""
    fd = os.open(job.path, os.O_RDONLY)
    try:
        head = os.pread(fd, BLOCK_SIZE, job.offset)
        if detect_compression(head) != "none" or head[257:262] != b"ustar":
            return None
        pos = (job.size // 2) // BLOCK_SIZE * BLOCK_SIZE
        end = min(job.size, pos + SPLIT_SEARCH)
        while pos < end:
            window = os.pread(fd, min(1 << 20, end - pos), job.offset + pos)  # starts on a block boundary
            if len(window) < BLOCK_SIZE:
                break
            at = window.find(b"ustar", 257)
            while at >= 0:
                start = at - 257
                block = window[start : start + BLOCK_SIZE]
                if start % BLOCK_SIZE == 0 and len(block) == BLOCK_SIZE and header_checksum_ok(block):
                    return pos + start
                at = window.find(b"ustar", at + 1)
            pos += len(window)
    except (OSError, FormatError):
        return None
    finally:
        os.close(fd)
    return None


def _merge(first: LayerEntries, second: LayerEntries) -> LayerEntries:
    """The members of two consecutive stretches of one tar, as one."""
    shift = len(first.paths)
    first.paths.extend(second.paths)
    first.kinds.extend(second.kinds)
    for name in ("sizes", "modes", "uids", "gids", "mtimes"):
        getattr(first, name).extend(getattr(second, name))
    first.digests.extend(second.digests)
    first.links.update({i + shift: v for i, v in second.links.items()})
    first.captured.update({i + shift: v for i, v in second.captured.items()})
    first.problems.extend(second.problems)
    first.size_bytes += second.size_bytes
    return first


_READ_COUNTER: Any = None  # in a worker: the shared count of bytes read (see _parse)


def _worker_init(counter: Any = None) -> None:
    """Workers leave Ctrl-C and SIGTERM to the parent, which ends them."""
    global _READ_COUNTER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _READ_COUNTER = counter


def _context() -> Any:
    """fork when this process has one thread (cheap and safe), else spawn (the explorer's loader)."""
    import multiprocessing

    return multiprocessing.get_context("fork" if _forkable() else "spawn")


def _forkable() -> bool:
    import multiprocessing

    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


class _Workers:
    """Worker processes and the count of bytes they have read (shared, for the progress bar)."""

    def __init__(self, context: Any) -> None:
        self.counter = context.Value("q", 0)
        self.pool = context.Pool(WORKERS, initializer=_worker_init, initargs=(self.counter,))

    def stop(self) -> None:
        """End the workers, busy or not."""
        self.pool.terminate()
        self.pool.join()


_PRESTARTED: _Workers | None = None  # forked by prestart(), lent to one read at a time
_PRESTARTED_LOCK = threading.Lock()


def prestart() -> None:
    """Fork the worker processes now, while this process has one thread, for the reads to come.

    The explorer reads in a thread, and the progress bar draws from one: a pool made then must spawn
    fresh interpreters, each importing slimscope before it can parse (measured here: 0.2-0.3 s more on
    the 210k-file image than forked workers). Call this before such threads start, and
    `stop_prestarted` at the end. Does nothing if the process has threads already or cannot fork.
    """
    global _PRESTARTED
    with _PRESTARTED_LOCK:
        if _PRESTARTED is None and _forkable():
            _PRESTARTED = _Workers(_context())


def stop_prestarted() -> None:
    """End the prestarted workers, if any."""
    global _PRESTARTED
    with _PRESTARTED_LOCK:
        workers, _PRESTARTED = _PRESTARTED, None
    if workers is not None:
        workers.stop()


def _borrow() -> _Workers | None:
    global _PRESTARTED
    with _PRESTARTED_LOCK:
        workers, _PRESTARTED = _PRESTARTED, None
        return workers


def _give_back(workers: _Workers) -> None:
    global _PRESTARTED
    with _PRESTARTED_LOCK:
        if _PRESTARTED is None:
            _PRESTARTED = workers
            return
    workers.stop()


def scan_blobs(
    jobs: list[BlobJob],
    *,
    reuse_of: Callable[[str], Reused | None] | None = None,
    recognise: Callable[[str], Reused | None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_blob: Callable[[str], None] | None = None,
    waiting: Callable[[], None] | None = None,
    defer_digests: bool = False,
) -> dict[str, Outcome]:
    """Scan (or, for known layers, hash) every blob; results by job name.

    A blob whose name (`reuse_of`) or fingerprint (`recognise`) promises a known layer is hashed and
    taken for that layer only when its digest matches; otherwise it is parsed like any other.
    `waiting` is called once, here, when blobs are in worker processes and this thread only waits.
    With `defer_digests`, a big blob parsed in halves may come back before its sha256 is known: its
    LayerScan's `pending` resolves to it (the hash goes on in a thread while the caller analyses).
    """
    results: dict[str, Outcome] = {}
    verify: list[tuple[BlobJob, Reused]] = []
    parse: list[BlobJob] = []
    for job in jobs:
        known = reuse_of(job.name) if reuse_of is not None else None
        if known is None and recognise is not None:
            key = fingerprint(job)
            known = recognise(key) if key is not None else None
        if known is not None:
            verify.append((job, known))
        else:
            parse.append(job)

    def done(job: BlobJob, outcome: Outcome, counted: bool = False) -> None:
        results[job.name] = outcome
        if progress is not None and not counted:
            progress(job.size)

    parse.sort(key=lambda j: -j.size)
    once = _Once(waiting)
    if not verify:
        _parse(parse, done, on_blob, progress, once, defer_digests)
        return results
    # The hash threads start first: fork the workers before them, or the pool would have to spawn.
    forked_here = _may_use_workers(parse) and _fork_for_this_read()
    try:
        _verify_and_parse(verify, parse, done, on_blob, progress, once)
    finally:
        if forked_here:
            stop_prestarted()
    return results


def _may_use_workers(jobs: list[BlobJob]) -> bool:
    """Whether _parse might hand these blobs to worker processes (it splits or shares out big ones)."""
    total = sum(job.size for job in jobs)
    big = max((job.size for job in jobs), default=0)
    return total >= PARALLEL_MIN and (len(jobs) >= 2 or big >= SPLIT_MIN)


def _fork_for_this_read() -> bool:
    """Fork workers now, for _parse to borrow, unless some are there already or this cannot fork."""
    global _PRESTARTED
    with _PRESTARTED_LOCK:
        if _PRESTARTED is not None or not _forkable():
            return False
        _PRESTARTED = _Workers(_context())
        return True


def _verify_and_parse(
    verify: list[tuple[BlobJob, Reused]],
    parse: list[BlobJob],
    done: Callable[..., None],
    on_blob: Callable[[str], None] | None,
    progress: Callable[[int], None] | None,
    once: Callable[[], None],
) -> None:
    """Hash the blobs of known layers in threads while the others are parsed; take each that matches."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="slimscope-hash") as threads:
        verify.sort(key=lambda pair: -pair[0].size)  # largest first: the two threads end together
        hashing: list[tuple[BlobJob, Reused, Future[str]]] = [
            (job, known, threads.submit(_hash, job)) for job, known in verify
        ]
        _parse(parse, done, on_blob, progress, once)
        for job, known, future in hashing:
            digest = future.result()
            if digest == known.digest:
                scan = LayerScan(
                    digest, job.size, known.compression, known.diff_id, known.entries, reused=True
                )
            elif digest == known.diff_id:
                scan = LayerScan(digest, job.size, "none", digest, known.entries, reused=True)
            else:  # not the layer its name or fingerprint promised: read it for what it is
                _parse([job], done, on_blob, progress)
                continue
            done(job, scan)


class _Once:
    """A callback that runs at most once (None: nothing to run)."""

    def __init__(self, callback: Callable[[], None] | None) -> None:
        self.callback = callback

    def __call__(self) -> None:
        callback, self.callback = self.callback, None
        if callback is not None:
            callback()


def _parse(
    jobs: list[BlobJob],
    done: Callable[..., None],
    on_blob: Callable[[str], None] | None,
    progress: Callable[[int], None] | None = None,
    waiting: Callable[[], None] | None = None,
    defer_digests: bool = False,
) -> None:
    """Parse blobs in worker processes when there is enough work for two, else here."""
    total = sum(job.size for job in jobs)
    big = max(jobs, key=lambda j: j.size, default=None)
    split = None
    if big is not None and big.size >= SPLIT_MIN and big.size * 2 > total:
        at = split_point(big)
        split = (big, at) if at else None
    if split is None and (len(jobs) < 2 or total < PARALLEL_MIN):
        for job in jobs:
            if on_blob is not None:
                on_blob(job.name)
            done(job, _scan(job))
        return
    workers = _borrow()
    lent = workers is not None
    if workers is None:
        workers = _Workers(_context())
    pool, counter = workers.pool, workers.counter
    reported = counter.value  # a lent pool has counted earlier reads
    finished = False

    def wait(result: Any) -> Any:
        """A worker's result; meanwhile the progress bar follows what the workers have read."""
        nonlocal reported
        if waiting is not None:
            waiting()  # the caller's start-up work, while the workers parse (once: see _Once)
        while True:
            result.wait(0.1)
            if progress is not None:
                now = counter.value
                if now > reported:
                    progress(now - reported)
                    reported = now
            if result.ready():
                return result.get()

    try:
        halves = None
        if split is not None:
            job, at = split
            halves = (
                pool.apply_async(_scan_range, (job, 0, at)),
                pool.apply_async(_scan_range, (job, at, None)),
            )
        rest = [job for job in jobs if split is None or job is not split[0]]
        pending = [(job, pool.apply_async(_scan, (job,))) for job in rest]
        if split is not None and halves is not None:
            job, at = split
            if on_blob is not None:
                on_blob(job.name)
            digest_future = _hash_in_background(job)
            fingerprint_key = fingerprint(job)
            (first, stopped), (second, _) = wait(halves[0]), wait(halves[1])

            def scan_of(entries: LayerEntries) -> LayerScan:
                # The blob's sha256 is the critical path here (one core, ~1.4 GB/s, where the halves
                # take less than half as long): deferred, it runs on while the caller analyses.
                digest = "" if defer_digests else digest_future.result()
                pending = digest_future if defer_digests else None
                return LayerScan(digest, job.size, "none", digest, entries, fingerprint_key, pending=pending)

            if isinstance(first, FormatError):
                done(job, first, True)
            elif not stopped:  # the first half read on to the end: it is the whole layer
                done(job, scan_of(first), True)
            elif isinstance(second, FormatError):  # an error past the middle: a whole read says where
                done(job, _scan(job), True)
            else:
                done(job, scan_of(_merge(first, second)), True)
        for job, result in pending:
            if on_blob is not None:
                on_blob(job.name)
            done(job, wait(result), True)
        finished = True
    finally:
        if lent and finished:
            _give_back(workers)  # idle again, for the next read (the other image of a diff)
        else:
            workers.stop()  # on Ctrl-C or an error too: no worker outlives the read
