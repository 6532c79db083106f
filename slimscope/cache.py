"""The layer cache: what reading a layer blob learned, kept under the user's cache directory.

A layer's analysis depends only on its bytes, so it is stored keyed by its diff_id (the sha256 of the
uncompressed tar). Opening the same image again, or another tag sharing layers, hashes each blob to
verify it but does not decompress or parse the layers the cache holds. Three ways lead to an entry:

* the diff_id or the blob digest, when a blob's name says it (`blobs/sha256/<hex>` in OCI layouts);
* a fingerprint of the blob's size and first 64 KiB of tar, for blobs whose name says nothing
  (`<id>/layer.tar` of `docker save`, the engine's export); the whole blob is still hashed and must
  come out as the entry's diff_id, else the source is read again without the cache;
* an image record keyed by the image id (the config's sha256), for the engine: when the engine's image
  id and every layer are known, nothing is exported at all;
* an archive record keyed by what `stat` says of an archive file (device, inode, size, mtime and ctime
  in nanoseconds) and the image asked of it: an archive file unchanged since it was read is not read
  or hashed again (see `slimscope.sources.archive_key`).

Entries are plain files with a header that names the format, slimscope's version and the capture
rules, and a sha256 of the payload. An entry that is corrupt, truncated or from another version is
ignored (and removed), never trusted. The cache is bounded (`SLIMSCOPE_CACHE_SIZE`, 2 GB by default):
the least recently used entries go first. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from slimscope import __version__
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import CAPTURE, CAPTURE_LIMIT

FORMAT = 1
MAGIC = b"slimscope-layer-cache\n"
IMAGE_MAGIC = b"slimscope-image-cache\n"
DEFAULT_MAX_BYTES = 2 * 10**9
_COLUMNS = ("sizes", "modes", "uids", "gids", "mtimes")


def _compat_key() -> str:
    """What an entry must have been written by: format, version, capture rules, machine layout."""
    parts = [
        str(FORMAT),
        __version__,
        sys.byteorder,
        str(array("q").itemsize),
        str(array("L").itemsize),
        str(array("I").itemsize),
        str(CAPTURE_LIMIT),
        CAPTURE.pattern.decode("latin-1"),
    ]
    return sha256("\0".join(parts).encode()).hexdigest()[:32]


COMPAT = _compat_key()


def default_dir() -> str:
    """`$SLIMSCOPE_CACHE_DIR`, else `$XDG_CACHE_HOME/slimscope`, else `~/.cache/slimscope`."""
    # Paths here are strings (os.path): pathlib costs its import (with urllib.parse) on every start.
    explicit = os.environ.get("SLIMSCOPE_CACHE_DIR")
    if explicit:
        return explicit
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "slimscope")


def default_max_bytes() -> int:
    """`$SLIMSCOPE_CACHE_SIZE` (e.g. `500MB`, `0` keeps nothing), else 2 GB."""
    text = os.environ.get("SLIMSCOPE_CACHE_SIZE")
    if not text:
        return DEFAULT_MAX_BYTES
    from slimscope.errors import SlimscopeError
    from slimscope.units import parse_size

    try:
        return parse_size(text)
    except SlimscopeError as exc:
        raise SlimscopeError(f"SLIMSCOPE_CACHE_SIZE: {exc}") from None


@dataclass
class CachedLayer:
    """A layer known from the cache: enough to verify a blob against it and reuse its members."""

    diff_id: str
    digest: str  # the blob digest it was read from (equal to diff_id for uncompressed blobs)
    compression: str
    entries: LayerEntries


# -- encoding ------------------------------------------------------------------------------------


def _joined(items: Iterable[bytes]) -> tuple[bytes, array]:
    """Byte strings as one blob plus their lengths."""
    items = list(items)
    return b"".join(items), array("I", map(len, items))


def _split(blob: bytes, lengths: array) -> list[bytes]:
    out = []
    pos = 0
    for n in lengths:
        out.append(blob[pos : pos + n])
        pos += n
    if pos != len(blob):
        raise ValueError("lengths do not cover the blob")
    return out


def encode_entries(entries: LayerEntries) -> tuple[dict[str, Any], list[bytes]]:
    """A LayerEntries as a JSON-able header and raw sections (arrays as machine bytes)."""
    paths = entries.paths
    blob = b"\0".join(paths)
    nul_free = blob.count(b"\0") == max(len(paths) - 1, 0)
    sections: list[tuple[str, bytes]] = []
    if nul_free:
        sections.append(("paths", blob))
    else:  # a name with a NUL in it (a PAX path can carry one): store lengths instead of separators
        joined, lengths = _joined(paths)
        sections += [("paths", joined), ("path_lengths", lengths.tobytes())]
    sections.append(("kinds", bytes(entries.kinds)))
    for name in _COLUMNS:
        sections.append((name, getattr(entries, name).tobytes()))
    sections.append(("digests", bytes(entries.digests)))
    for name in ("links", "captured"):
        mapping: dict[int, bytes] = getattr(entries, name)
        keys = sorted(mapping)
        joined, lengths = _joined(mapping[k] for k in keys)
        sections += [
            (f"{name}_keys", array("q", keys).tobytes()),
            (f"{name}_lengths", lengths.tobytes()),
            (name, joined),
        ]
    header = {
        "count": len(paths),
        "nul_separated": nul_free,
        "size_bytes": entries.size_bytes,
        "problems": entries.problems,
        "sections": [[name, len(data)] for name, data in sections],
    }
    return header, [data for _, data in sections]


def decode_entries(header: dict[str, Any], payload: memoryview) -> LayerEntries:
    """The inverse of encode_entries; raises ValueError (or KeyError, TypeError) on anything odd."""
    sections: dict[str, memoryview] = {}  # views: each column copies its bytes once, into itself
    pos = 0
    for name, size in header["sections"]:
        if not isinstance(name, str) or not isinstance(size, int) or size < 0:
            raise ValueError("bad section table")
        sections[name] = payload[pos : pos + size]
        pos += size
    if pos != len(payload):
        raise ValueError("payload size does not match its sections")
    count = header["count"]
    if header["nul_separated"]:
        paths = bytes(sections["paths"]).split(b"\0") if count else []
    else:
        paths = _split(bytes(sections["paths"]), _array("I", sections["path_lengths"]))
    if len(paths) != count or len(sections["kinds"]) != count or len(sections["digests"]) != 32 * count:
        raise ValueError("column lengths differ")
    entries = LayerEntries(paths=paths, kinds=bytearray(sections["kinds"]))
    for name in _COLUMNS:
        column = _array(getattr(entries, name).typecode, sections[name])
        if len(column) != count:
            raise ValueError(f"column {name} has the wrong length")
        setattr(entries, name, column)
    entries.digests = bytearray(sections["digests"])
    for name in ("links", "captured"):
        keys = _array("q", sections[f"{name}_keys"])
        values = _split(bytes(sections[name]), _array("I", sections[f"{name}_lengths"]))
        if len(keys) != len(values) or any(not 0 <= k < count for k in keys):
            raise ValueError(f"bad {name} table")
        setattr(entries, name, dict(zip(keys, values)))
    entries.problems = [str(p) for p in header["problems"]]
    entries.size_bytes = int(header["size_bytes"])
    return entries


def _array(typecode: str, data: bytes | memoryview) -> array:
    column = array(typecode)
    column.frombytes(data)
    return column


def _pack(magic: bytes, header: dict[str, Any], sections: list[bytes]) -> list[bytes]:
    digest = sha256()
    for data in sections:
        digest.update(data)
    header = {"compat": COMPAT, "payload_sha256": digest.hexdigest(), **header}
    return [magic, json.dumps(header, separators=(",", ":")).encode(), b"\n", *sections]


def _unpack(magic: bytes, data: bytes) -> tuple[dict[str, Any], memoryview]:
    if not data.startswith(magic):
        raise ValueError("not a cache entry")
    end = data.find(b"\n", len(magic))
    if end < 0:
        raise ValueError("no header")
    header = json.loads(data[len(magic) : end])
    if not isinstance(header, dict) or header.get("compat") != COMPAT:
        raise ValueError("written by another version")
    payload = memoryview(data)[end + 1 :]
    if sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ValueError("payload checksum mismatch")
    return header, payload


# -- the store -----------------------------------------------------------------------------------


def _hex(key: str) -> str | None:
    """The hex part of `sha256:<hex>` or `head:<hex>` keys; None for anything else."""
    algorithm, _, hexdigest = key.partition(":")
    if algorithm not in ("sha256", "head") or len(hexdigest) != 64:
        return None
    try:
        int(hexdigest, 16)
    except ValueError:
        return None
    return hexdigest.lower()


class LayerCache:
    """Layer entries and image records under one folder, bounded in size."""

    def __init__(self, root: os.PathLike[str] | str | None = None, max_bytes: int | None = None) -> None:
        self.root = os.fspath(root) if root is not None else default_dir()
        self.max_bytes = default_max_bytes() if max_bytes is None else max_bytes
        version = os.path.join(self.root, f"v{FORMAT}")
        self.layers_dir = os.path.join(version, "layers")
        self.aliases_dir = os.path.join(version, "aliases")
        self.images_dir = os.path.join(version, "images")
        self.archives_dir = os.path.join(version, "archives")
        self.hits = 0  # layers taken from the cache in this process (for tests and --debug)
        self.stored = 0

    # -- layers ----------------------------------------------------------------------------------
    def get(self, key: str) -> CachedLayer | None:
        """The entry for a diff_id, blob digest (`sha256:<hex>`) or fingerprint (`head:<hex>`)."""
        hexdigest = _hex(key)
        if hexdigest is None:
            return None
        path = os.path.join(self.layers_dir, f"{hexdigest}.layer")
        if not os.path.exists(path):
            alias = self._read_alias(hexdigest)
            if alias is None:
                return None
            path = os.path.join(self.layers_dir, f"{alias}.layer")
        return self._load(path)

    def _read_alias(self, hexdigest: str) -> str | None:
        try:
            with open(os.path.join(self.aliases_dir, hexdigest), encoding="ascii") as handle:
                target = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return target if _hex("sha256:" + target) else None

    def _load(self, path: str) -> CachedLayer | None:
        try:
            data = _read_bytes(path)
        except OSError:
            return None
        try:
            header, payload = _unpack(MAGIC, data)
            layer = CachedLayer(
                diff_id=str(header["diff_id"]),
                digest=str(header["digest"]),
                compression=str(header["compression"]),
                entries=decode_entries(header["entries"], payload),
            )
            if os.path.basename(path) != f"{_hex(layer.diff_id)}.layer":
                raise ValueError("entry stored under another name")
        except (ValueError, KeyError, TypeError, OverflowError):
            self._discard(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently used goes first
        return layer

    def _discard(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    def put(
        self, diff_id: str, digest: str, compression: str, entries: LayerEntries, head: str | None
    ) -> None:
        """Store a verified layer; aliases for its blob digest and fingerprint. Never raises OSError."""
        hexdigest = _hex(diff_id)
        if hexdigest is None or self.max_bytes <= 0:
            return
        header, sections = encode_entries(entries)
        parts = _pack(
            MAGIC,
            {"diff_id": diff_id, "digest": digest, "compression": compression, "entries": header},
            sections,
        )
        try:
            os.makedirs(self.layers_dir, exist_ok=True)
            self._write(os.path.join(self.layers_dir, f"{hexdigest}.layer"), parts)
            for key in (digest, head):
                alias = _hex(key) if key else None
                if alias and alias != hexdigest:
                    os.makedirs(self.aliases_dir, exist_ok=True)
                    self._write(os.path.join(self.aliases_dir, alias), [hexdigest.encode()])
        except OSError:
            return
        self.stored += 1

    @staticmethod
    def _write(path: str, parts: list[bytes]) -> None:
        """Write atomically: a temporary file in the same folder, then a rename."""
        import tempfile  # only when storing: its import (random, shutil) is not on a warm run's path

        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.writelines(parts)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- images and archives ----------------------------------------------------------------------
    def image(self, image_id: str) -> dict[str, Any] | None:
        """The record of an engine image read before (see `put_image`), or None."""
        return self._record(self.images_dir, image_id)

    def put_image(self, image_id: str, record: dict[str, Any]) -> None:
        """Store what is needed to rebuild an image without reading it again (its layers stay separate)."""
        self._put_record(self.images_dir, image_id, record)

    def archive(self, key: str) -> dict[str, Any] | None:
        """The record of an archive file read before, by its `sha256:` stat key, or None."""
        return self._record(self.archives_dir, key)

    def put_archive(self, key: str, record: dict[str, Any]) -> None:
        """Store an archive file's image record under its stat key."""
        self._put_record(self.archives_dir, key, record)

    def _record(self, folder: str, key: str) -> dict[str, Any] | None:
        hexdigest = _hex(key)
        if hexdigest is None:
            return None
        path = os.path.join(folder, f"{hexdigest}.json")
        try:
            data = _read_bytes(path)
        except OSError:
            return None
        try:
            header, payload = _unpack(IMAGE_MAGIC, data)
            record = json.loads(bytes(payload))
            if header.get("image_id") != key or not isinstance(record, dict):
                raise ValueError("record of another image")
        except (ValueError, KeyError, TypeError):
            self._discard(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return record

    def _put_record(self, folder: str, key: str, record: dict[str, Any]) -> None:
        hexdigest = _hex(key)
        if hexdigest is None or self.max_bytes <= 0:
            return
        payload = json.dumps(record, separators=(",", ":")).encode()
        try:
            os.makedirs(folder, exist_ok=True)
            parts = _pack(IMAGE_MAGIC, {"image_id": key}, [payload])
            self._write(os.path.join(folder, f"{hexdigest}.json"), parts)
        except OSError:
            pass

    # -- size ------------------------------------------------------------------------------------
    def entries(self) -> list[tuple[str, int, float]]:
        """Every stored file with its size and last use, oldest first."""
        found = []
        for folder in (self.layers_dir, self.images_dir, self.archives_dir, self.aliases_dir):
            try:
                with os.scandir(folder) as it:
                    for item in it:
                        try:
                            stat = item.stat()
                        except OSError:
                            continue
                        found.append((item.path, stat.st_size, stat.st_mtime))
            except OSError:
                continue
        found.sort(key=lambda row: row[2])
        return found

    def evict(self) -> int:
        """Remove least recently used layers until the cache fits its bound; returns bytes removed."""
        files = self.entries()
        total = sum(size for _, size, _ in files)
        removed = 0
        for path, size, _ in files:
            if total <= self.max_bytes:
                break
            if os.path.dirname(path) != self.layers_dir:
                continue
            self._discard(path)
            total -= size
            removed += size
        if removed:
            self._prune_aliases()
        return removed

    def _prune_aliases(self) -> None:
        try:
            names = os.listdir(self.aliases_dir)
        except OSError:
            return
        for name in names:
            target = self._read_alias(name)
            if target is None or not os.path.exists(os.path.join(self.layers_dir, f"{target}.layer")):
                self._discard(os.path.join(self.aliases_dir, name))

    def clear(self) -> int:
        """Remove every entry; returns the bytes freed."""
        freed = 0
        for path, size, _ in self.entries():
            self._discard(path)
            freed += size
        return freed


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def open_cache(disabled: bool = False) -> LayerCache | None:
    """The user's cache, or None with `--no-cache` or `SLIMSCOPE_CACHE_SIZE=0`."""
    if disabled:
        return None
    cache = LayerCache()
    return cache if cache.max_bytes > 0 else None
