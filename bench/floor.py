"""The floor: the least work any analyzer must do to read an image archive honestly.

``python bench/floor.py ARCHIVE [--threads 2]`` reads every layer blob of a ``docker save`` tarball or an
``oci-archive`` tar straight from its offset in the archive, decompresses it (gzip via zlib, zstd via
zstandard, plain tar as is), and checks the sha256 of the compressed bytes (where the archive names it)
and of the uncompressed bytes (the config's ``rootfs.diff_ids``). Blobs are spread over two threads,
largest first; zlib, zstandard, hashlib and ``os.pread`` release the GIL, so both cores work. Nothing
else: no tar parsing of layer contents, no file tree, no output but one summary line.

``--content`` also hashes every uncompressed byte a second time (sha256 again): the least work of a
tool that, like slimscope, keeps a content digest of every file, whose bytes make up nearly all of a
layer's tar. It stands for that work without any per-member cost, so it is a bound, not a rival.

Exit status 0 when every digest matches, 1 on a mismatch, 2 on an unreadable archive.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

CHUNK = 1 << 20  # bytes read from the archive per call
OUT_CHUNK = 4 << 20  # most decompressed bytes produced per call (bounds memory on highly compressible data)
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class Blob:
    """One layer blob: where it sits in the archive and the digests it must have."""

    name: str
    offset: int
    size: int
    compressed_digest: str | None  # "sha256:..." when the archive names the blob by digest, else None
    diff_id: str  # "sha256:..." of the uncompressed tar, from the image config


@dataclass
class Checked:
    """What verifying one blob found."""

    blob: Blob
    compression: str
    uncompressed: int
    errors: list[str]


class ArchiveError(Exception):
    """The archive is not a readable docker-archive or oci-archive."""


def _index(path: str) -> dict[str, tarfile.TarInfo]:
    """Map member names (without ``./``) to tar headers, following hard and symbolic links."""
    with tarfile.open(path, "r:") as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
    for name, member in list(members.items()):
        seen = 0
        while (member.issym() or member.islnk()) and seen < 40:
            target = member.linkname.removeprefix("./")
            if member.issym():
                target = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
            member = members.get(target, member)
            seen += 1
        members[name] = member
    return members


def _read_member(path: str, member: tarfile.TarInfo) -> bytes:
    """Read a (small) member's bytes."""
    with open(path, "rb") as f:
        f.seek(member.offset_data)
        return f.read(member.size)


def _json(path: str, members: dict[str, tarfile.TarInfo], name: str) -> Any:
    """Load a JSON member of the archive."""
    member = members.get(name.removeprefix("./"))
    if member is None or not member.isfile():
        raise ArchiveError(f"{name} missing from the archive")
    return json.loads(_read_member(path, member))


def _blob_path(digest: str) -> str:
    """The layout path of a blob named by its digest."""
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


def _digest_from_path(name: str) -> str | None:
    """``sha256:<hex>`` for a ``blobs/sha256/<hex>`` path (Docker 25+ layout), else None."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256" and len(parts[2]) == 64:
        return f"sha256:{parts[2]}"
    return None


def _located(members: dict[str, tarfile.TarInfo], name: str, compressed: str | None, diff_id: str) -> Blob:
    """A Blob for the member ``name``."""
    member = members.get(name.removeprefix("./"))
    if member is None or not member.isfile():
        raise ArchiveError(f"layer {name} missing from the archive")
    return Blob(name, member.offset_data, member.size, compressed, diff_id)


def layer_blobs(path: str) -> list[Blob]:
    """The layer blobs of the first image in a docker-archive or oci-archive, in layer order."""
    members = _index(path)
    if "manifest.json" in members:
        entry = _json(path, members, "manifest.json")[0]
        config = _json(path, members, entry["Config"])
        diff_ids = config["rootfs"]["diff_ids"]
        names = entry["Layers"]
        compressed = [_digest_from_path(n) for n in names]
    elif "index.json" in members:
        manifest = _json(path, members, "index.json")
        while "manifests" in manifest:  # an index (possibly nested): take its first entry
            manifest = _json(path, members, _blob_path(manifest["manifests"][0]["digest"]))
        config = _json(path, members, _blob_path(manifest["config"]["digest"]))
        diff_ids = config["rootfs"]["diff_ids"]
        names = [_blob_path(layer["digest"]) for layer in manifest["layers"]]
        compressed = [layer["digest"] for layer in manifest["layers"]]
    else:
        raise ArchiveError("neither manifest.json nor index.json in the archive")
    if len(names) != len(diff_ids):
        raise ArchiveError(f"{len(names)} layers but {len(diff_ids)} diff_ids")
    return [_located(members, n, c, d) for n, c, d in zip(names, compressed, diff_ids, strict=True)]


class Region:
    """A read-only file object over ``size`` bytes at ``offset`` of ``fd`` that hashes what it reads."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd, self.pos, self.end = fd, offset, offset + size
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all that is left when ``n`` < 0)."""
        n = self.end - self.pos if n < 0 else min(n, self.end - self.pos)
        data = os.pread(self.fd, n, self.pos) if n > 0 else b""
        self.pos += len(data)
        self.sha.update(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        """Yield the rest of the region in CHUNK-sized pieces."""
        while data := self.read(CHUNK):
            yield data


def _gunzip(region: Region, sink: Callable[[bytes], None]) -> None:
    """Decompress (possibly multi-member) gzip from ``region`` into ``sink``."""
    inflater = zlib.decompressobj(wbits=31)
    for chunk in region.chunks():
        data = chunk
        while data:
            sink(inflater.decompress(data, OUT_CHUNK))
            data = inflater.unconsumed_tail
            if inflater.eof:
                data = inflater.unused_data + data
                inflater = zlib.decompressobj(wbits=31)
    sink(inflater.flush())


def _unzstd(region: Region, sink: Callable[[bytes], None]) -> None:
    """Decompress (possibly multi-frame) zstd from ``region`` into ``sink``."""
    import zstandard  # imported only when needed, to keep the floor lean on plain archives

    reader = zstandard.ZstdDecompressor().stream_reader(region, read_size=CHUNK, read_across_frames=True)
    while data := reader.read(OUT_CHUNK):
        sink(data)


def verify(fd: int, blob: Blob, content: bool = False) -> Checked:
    """Decompress one blob and check its digests (with ``content``, hash its tar once more)."""
    region = Region(fd, blob.offset, blob.size)
    head = os.pread(fd, 4, blob.offset)
    plain = hashlib.sha256()
    again = hashlib.sha256() if content else None
    total = 0

    def sink(data: bytes) -> None:
        nonlocal total
        total += len(data)
        plain.update(data)
        if again is not None:
            again.update(data)

    errors = []
    compression = "gzip" if head.startswith(GZIP_MAGIC) else "zstd" if head.startswith(ZSTD_MAGIC) else "none"
    try:
        if compression == "gzip":
            _gunzip(region, sink)
        elif compression == "zstd":
            _unzstd(region, sink)
        else:  # a plain tar: its bytes are hashed once, as both the blob digest and the diff_id
            for chunk in region.chunks():
                if again is not None:
                    again.update(chunk)
            plain, total = region.sha, blob.size
    except Exception as exc:  # zlib.error, zstandard.ZstdError: a corrupt blob is a finding, not a crash
        errors.append(f"{blob.name}: cannot decompress: {exc}")
        return Checked(blob, compression, total, errors)
    if region.pos != region.end:
        errors.append(f"{blob.name}: stopped at byte {region.pos - blob.offset} of {blob.size}")
    if blob.compressed_digest and f"sha256:{region.sha.hexdigest()}" != blob.compressed_digest:
        errors.append(f"{blob.name}: blob digest is sha256:{region.sha.hexdigest()}")
    if f"sha256:{plain.hexdigest()}" != blob.diff_id:
        errors.append(f"{blob.name}: diff_id is sha256:{plain.hexdigest()}, config says {blob.diff_id}")
    return Checked(blob, compression, total, errors)


def main(argv: list[str] | None = None) -> int:
    """Verify every layer blob of an archive; print one summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", help="a docker save tarball or an oci-archive tar")
    parser.add_argument("--threads", type=int, default=2, help="worker threads over the blobs (default 2)")
    parser.add_argument(
        "--content", action="store_true", help="also hash every uncompressed byte again (file contents)"
    )
    args = parser.parse_args(argv)
    path = args.archive.removeprefix("oci-archive:").removeprefix("docker-archive:")
    try:
        blobs = layer_blobs(path)
    except (OSError, tarfile.TarError, ArchiveError, KeyError, IndexError, ValueError) as exc:
        print(f"floor: {path}: {exc}", file=sys.stderr)
        return 2
    fd = os.open(path, os.O_RDONLY)
    try:
        unique = list({(b.offset, b.diff_id): b for b in blobs}.values())
        unique.sort(key=lambda b: b.size, reverse=True)  # largest first balances the two threads
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            results = list(pool.map(lambda b: verify(fd, b, args.content), unique))
    finally:
        os.close(fd)
    errors = [e for r in results for e in r.errors]
    for error in errors:
        print(f"floor: {error}", file=sys.stderr)
    kinds = sorted({r.compression for r in results})
    stored = sum(r.blob.size for r in results)
    plain = sum(r.uncompressed for r in results)
    print(
        f"{len(blobs)} layers ({len(results)} distinct, {'/'.join(kinds)}): {stored} bytes stored, "
        f"{plain} uncompressed, {'OK' if not errors else f'{len(errors)} MISMATCHES'}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
