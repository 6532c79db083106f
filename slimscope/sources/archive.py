"""Read an image from a tar stream: a `docker save` archive (file or engine export) or an OCI archive.

The outer tar is read once, front to back, so the same code serves files, compressed files and the
engine's HTTP stream. Small JSON documents are kept in memory; every other blob is scanned as a
layer while it streams (the manifest, which says which blobs are layers, often comes last).
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from slimscope.errors import FormatError
from slimscope.image.blobs import READ_SIZE, LayerScan, scan_layer
from slimscope.image.manifest import MAX_JSON

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


def read_archive(
    fileobj: IO[bytes],
    *,
    progress: Callable[[int], None] | None = None,
    on_blob: Callable[[str], None] | None = None,
) -> ArchiveContents:
    """Read every member of an image archive stream once."""
    contents = ArchiveContents()
    try:
        outer = tarfile.open(fileobj=fileobj, mode="r|*")
    except tarfile.TarError as exc:
        raise FormatError(f"not an image archive ({_tar_reason(exc)})") from None
    try:
        for member in outer:
            name = _norm(member.name)
            if member.issym():
                contents.aliases[name] = _norm(posixpath.normpath(posixpath.join(posixpath.dirname(name),
                                                                                 member.linkname)))
                continue
            if member.islnk():
                contents.aliases[name] = _norm(member.linkname)
                continue
            if not member.isreg():
                continue
            data = outer.extractfile(member)
            assert data is not None
            if _is_doc_name(name):
                if member.size > MAX_JSON:
                    raise FormatError(f"archive member {name} is too large to be a JSON document")
                contents.docs[name] = _read_exact(data, member.size, name)
                if progress is not None:
                    progress(member.size)
                continue
            head = data.read(min(READ_SIZE, member.size))
            if head[:1] == b"{" and member.size <= MAX_JSON:
                contents.docs[name] = head + _read_exact(data, member.size - len(head), name)
                if progress is not None:
                    progress(member.size)
                continue
            if on_blob is not None:
                on_blob(name)
            try:
                scan = scan_layer(data.read, head=head, progress=progress)
            except FormatError as exc:
                contents.errors[name] = exc
                continue
            if scan.raw_size != member.size:
                raise FormatError("the archive is truncated")
            contents.scans[name] = scan
    except tarfile.TarError as exc:
        raise FormatError(f"the archive is truncated or corrupt ({_tar_reason(exc)})") from None
    except (EOFError, OSError) as exc:
        raise FormatError(f"the archive is truncated or corrupt ({exc.__class__.__name__}: {exc})") from None
    if not contents.docs and not contents.scans and not contents.errors:
        raise FormatError("not an image archive (no members)")
    return contents


def _read_exact(data: IO[bytes], size: int, name: str) -> bytes:
    chunk = data.read(size)
    if len(chunk) != size:
        raise FormatError(f"the archive is truncated (in {name})")
    return chunk


def _tar_reason(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text.splitlines()[0][:200]
