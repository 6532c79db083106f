"""The second pass: the contents of a few files, read again from the layer blobs that hold them.

The first pass (`slimscope.sources.load_image`) keeps metadata and digests only (plus small captured
database files). Planning a runtime closure needs some contents: ELF headers, shebangs, `pyvenv.cfg`,
jar manifests. `ContentReader.read(refs)` re-opens the image's source, streams only the layer blobs
holding those files' final versions (a ref's layer is `ref >> 32`), each once, through the same
decompression and tar parsing as the first pass, and buffers each wanted file only while `describe()`
turns it into a small `FileInfo`. Files larger than `limit` are skipped (`FileInfo.kind == "skipped"`).

Every blob is hashed again while it streams; a digest that differs from the first pass means the
source changed in between and is an error.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from typing import IO

from slimscope.errors import FormatError, SourceError
from slimscope.image.blobs import READ_SIZE, _Reader
from slimscope.image.layer import FILE
from slimscope.image.manifest import blob_name
from slimscope.image.model import Image
from slimscope.image.tarstream import TarStream

MAX_FILE = 256 << 20  # files bigger than this are not buffered (and not described)
MAX_TEXT = 256 << 10  # non-ELF, non-jar files up to this size keep their bytes in `FileInfo.text`
MAX_MANIFEST = 1 << 20
SHEBANG_LIMIT = 256  # the kernel reads at most this much of a `#!` line
GO_BUILDINFO = b"\xff Go buildinf:"

__all__ = ["MAX_FILE", "ContentReader", "ElfInfo", "FileInfo", "GoInfo", "JarInfo", "ReadStats", "describe"]


@dataclass(frozen=True)
class GoInfo:
    """A Go binary's build information: toolchain, main package and module, build settings."""

    version: str  # "go1.19.8"
    path: str  # the main package's import path
    module: str  # the main module's path
    settings: tuple[tuple[str, str], ...] = ()  # `build` lines: ("CGO_ENABLED", "1"), ("-ldflags", ...)

    def setting(self, key: str) -> str | None:
        """One build setting, or None."""
        return next((value for name, value in self.settings if name == key), None)


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader needs to know about an ELF file."""

    bits: int  # 32 or 64
    machine: str  # e_machine, e.g. "EM_X86_64"
    little_endian: bool
    type: str  # e_type, e.g. "ET_EXEC", "ET_DYN"
    interp: str | None = None  # PT_INTERP: the program interpreter (dynamic loader)
    needed: tuple[str, ...] = ()  # DT_NEEDED, in order
    rpath: tuple[str, ...] = ()  # DT_RPATH entries
    runpath: tuple[str, ...] = ()  # DT_RUNPATH entries
    soname: str | None = None
    go: bool = False  # a Go binary (has Go build information)
    go_info: GoInfo | None = None  # what `go version -m` shows (Go 1.18+ binaries)
    stripped: bool = False  # no symbol table and no DWARF
    debug_bytes: int = 0  # bytes of the symbol table and DWARF sections (what `strip` or `-s -w` drop)

    @property
    def static(self) -> bool:
        """Statically linked: no interpreter and no libraries to load."""
        return self.interp is None and not self.needed

    def compatible(self, other: ElfInfo) -> bool:
        """Whether the loader of `self` may load `other` (same class, machine and byte order)."""
        return (self.bits, self.machine, self.little_endian) == (
            other.bits,
            other.machine,
            other.little_endian,
        )


@dataclass(frozen=True)
class JarInfo:
    """A jar's manifest: the main class and the jars it puts on the class path."""

    main_class: str | None = None
    class_path: tuple[str, ...] = ()  # Class-Path entries (URLs relative to the jar's folder)
    start_class: str | None = None  # Spring Boot's real main class


@dataclass(frozen=True)
class FileInfo:
    """The summary of one file's contents."""

    size: int
    kind: str  # "elf", "script", "jar", "text", "data" or "skipped" (too big or unreadable)
    elf: ElfInfo | None = None
    shebang: tuple[str, ...] | None = None  # interpreter and its optional argument
    jar: JarInfo | None = None
    text: bytes | None = None  # the bytes of small non-ELF, non-jar files
    note: str = ""


def describe(data: bytes) -> FileInfo:
    """Summarize a file's contents: ELF dynamic section, shebang, jar manifest, or small text."""
    size = len(data)
    if data[:4] == b"\x7fELF":
        try:
            return FileInfo(size, "elf", elf=_elf(data))
        except Exception as exc:  # hostile or truncated ELF: pyelftools raises many kinds
            return FileInfo(size, "data", note=f"unreadable ELF file ({exc.__class__.__name__})")
    if data[:2] == b"#!":
        line = data[2:SHEBANG_LIMIT].split(b"\n", 1)[0].strip()
        words = line.decode("utf-8", "surrogateescape").split(None, 1)
        shebang = tuple(w.strip() for w in words if w.strip())
        return FileInfo(size, "script", shebang=shebang or None, text=data if size <= MAX_TEXT else None)
    if data[:4] == b"PK\x03\x04":
        jar = _jar(data)
        if jar is not None:
            return FileInfo(size, "jar", jar=jar)
    if size <= MAX_TEXT:
        return FileInfo(size, "text", text=data)
    return FileInfo(size, "data")


def _elf(data: bytes) -> ElfInfo:
    from elftools.elf.elffile import ELFFile

    elf = ELFFile(io.BytesIO(data))
    interp = None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    soname = None
    for segment in elf.iter_segments():
        kind = segment["p_type"]
        if kind == "PT_INTERP":
            interp = segment.get_interp_name()
        elif kind == "PT_DYNAMIC":
            for tag in segment.iter_tags():
                name = tag.entry.d_tag
                if name == "DT_NEEDED":
                    needed.append(tag.needed)
                elif name == "DT_RPATH":
                    rpath.extend(p for p in tag.rpath.split(":") if p)
                elif name == "DT_RUNPATH":
                    runpath.extend(p for p in tag.runpath.split(":") if p)
                elif name == "DT_SONAME":
                    soname = tag.soname
    debug = 0
    symbols = False
    for section in elf.iter_sections():
        name = section.name
        if name in (".symtab", ".strtab") or name.startswith((".debug_", ".zdebug_")):
            debug += section["sh_size"] if section["sh_type"] != "SHT_NOBITS" else 0
            symbols = True
    go = GO_BUILDINFO in data
    return ElfInfo(
        bits=elf.elfclass,
        machine=str(elf["e_machine"]),
        little_endian=elf.little_endian,
        type=str(elf["e_type"]),
        interp=interp,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        soname=soname,
        go=go,
        go_info=_go_buildinfo(data) if go else None,
        stripped=not symbols,
        debug_bytes=debug,
    )


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint")


def _go_buildinfo(data: bytes) -> GoInfo | None:
    """The build information of a Go 1.18+ binary (inline strings after the 32-byte header)."""
    start = data.find(GO_BUILDINFO)
    if start < 0 or len(data) < start + 32 or not data[start + 15] & 2:
        return None
    try:
        pos = start + 32
        size, pos = _uvarint(data, pos)
        version = data[pos : pos + size].decode("utf-8", "replace")
        pos += size
        size, pos = _uvarint(data, pos)
        text = data[pos : pos + size]
    except ValueError:
        return None
    if len(text) >= 32:
        text = text[16:-16]  # the module info is framed by two 16-byte sentinels
    path = module = ""
    settings = []
    for line in text.decode("utf-8", "replace").split("\n"):
        parts = line.split("\t")
        if parts[0] == "path" and len(parts) > 1:
            path = parts[1]
        elif parts[0] == "mod" and len(parts) > 1:
            module = parts[1]
        elif parts[0] == "build" and len(parts) > 1:
            key, _, value = parts[1].partition("=")
            settings.append((key, value))
    return GoInfo(version=version, path=path, module=module, settings=tuple(settings))


def _jar(data: bytes) -> JarInfo | None:
    """The manifest of a jar, or None when the zip is not readable."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            try:
                info = archive.getinfo("META-INF/MANIFEST.MF")
            except KeyError:
                return JarInfo()
            if info.file_size > MAX_MANIFEST:
                return JarInfo()
            text = archive.read(info).decode("utf-8", "replace")
    except Exception:  # bad zip, bad compression, hostile sizes
        return None
    fields = _manifest(text)
    main = fields.get("main-class")
    start = fields.get("start-class")
    return JarInfo(
        main_class=main or None,
        class_path=tuple(fields.get("class-path", "").split()),
        start_class=start or None,
    )


def _manifest(text: str) -> dict[str, str]:
    """The main section of a jar manifest (continuation lines start with one space), keys lower case."""
    fields: dict[str, str] = {}
    key = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            break  # the main section ends at the first blank line
        if line[0] == " " and key is not None:
            fields[key] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            fields[key] = value.strip()
    return fields


# -- reading blobs again ---------------------------------------------------------------------------------


@dataclass
class ReadStats:
    """What the second pass cost."""

    rounds: int = 0  # calls to `read`
    blobs: int = 0  # layer blobs streamed
    bytes: int = 0  # raw blob bytes streamed
    files: int = 0  # files described
    skipped: int = 0  # files too big to buffer


class _Picker(TarStream):
    """A TarStream that also keeps the contents of chosen members, handing each over when complete.

    `wanted` maps member index -> the paths that index may have (a blob may stand for several layers
    whose identity is only known at the end, when sizes collide in a legacy archive).
    """

    def __init__(
        self, wanted: dict[int, set[bytes]], limit: int, deliver: Callable[[int, bytes | None], None]
    ):
        super().__init__(capture=None)
        self._wanted = wanted
        self._limit = limit
        self._deliver = deliver
        self._picking = -1

    def _header(self, block: bytes) -> None:
        count = len(self.entries.paths)
        super()._header(block)
        if len(self.entries.paths) == count:
            return  # an extended header, the end marker, or a skipped volume label
        paths = self._wanted.get(count)
        entries = self.entries
        if paths is None or entries.kinds[count] != FILE or entries.paths[count] not in paths:
            return
        if entries.sizes[count] > self._limit:
            self._deliver(count, None)
        elif self._hash is None:  # no data area: an empty file
            self._deliver(count, b"")
        else:
            self._keep = bytearray()
            self._picking = count

    def _end_of_data(self) -> None:
        picking = self._picking if self._keep is not None else -1
        super()._end_of_data()
        if picking >= 0:
            self._picking = -1
            data = self.entries.captured.pop(picking, None)
            if data is not None and len(data) != self.entries.sizes[picking]:
                data = None  # a sparse member: the data area is not the file
            self._deliver(picking, data)


def _stream_blob(read: Callable[[int], bytes], head: bytes, tar: TarStream, progress) -> tuple[str, str, int]:
    """Stream one blob through `tar` as `scan_layer` does; returns (digest, diff_id, raw size)."""
    reader = _Reader(read, head, progress)
    diff_hash = sha256()
    reader.start()
    try:
        while True:
            chunk = reader.out.get()
            if not isinstance(chunk, (bytes, bytearray)):
                break
            if reader.compression != "none":
                diff_hash.update(chunk)
            tar.feed(chunk)
        if reader.error is not None:
            raise reader.error
        tar.close()
    finally:
        reader.stop.set()
        reader.join(timeout=5)
    digest = "sha256:" + reader.raw_hash.hexdigest()
    diff_id = digest if reader.compression == "none" else "sha256:" + diff_hash.hexdigest()
    return digest, diff_id, reader.raw_size


@dataclass
class _Group:
    """Layers with the same blob digest: one blob serves them all."""

    digest: str
    diff_id: str
    size: int
    layers: list[int] = field(default_factory=list)
    wanted: dict[int, set[bytes]] = field(default_factory=dict)  # member index -> paths


class ContentReader:
    """Reads chosen files of an image again from its source, one streaming pass per needed blob.

    `spec` is where the image was read from (a `SourceSpec`); `opener`, for tests and callers holding
    the archive elsewhere, returns a fresh binary stream of the whole image archive instead.
    """

    def __init__(
        self,
        image: Image,
        spec=None,
        *,
        limit: int = MAX_FILE,
        opener: Callable[[], IO[bytes]] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.image = image
        self.spec = spec
        self.limit = limit
        self.opener = opener
        self.progress = progress
        self.stats = ReadStats()

    def read(self, refs: Iterable[int]) -> dict[int, FileInfo]:
        """Describe the regular files behind these refs (data refs: hard links already followed)."""
        layers = self.image.layers
        groups: dict[str, _Group] = {}
        for ref in set(refs):
            number, index = ref >> 32, ref & 0xFFFFFFFF
            if not 0 <= number < len(layers):
                continue
            layer = layers[number]
            entries = layer.entries
            if index >= len(entries) or entries.kinds[index] != FILE:
                continue
            group = groups.get(layer.digest)
            if group is None:
                group = groups[layer.digest] = _Group(layer.digest, layer.diff_id, layer.compressed_bytes)
            if number not in group.layers:
                group.layers.append(number)
            group.wanted.setdefault(index, set()).add(entries.paths[index])
        self.stats.rounds += 1
        found: dict[int, FileInfo] = {}
        if not groups:
            return found
        done: set[str] = set()
        for candidates, read, head in self._blobs(groups, done):
            self._scan(candidates, read, head, found, done)
            if len(done) == len(groups):
                break
        missing = [g for g in groups.values() if g.digest not in done]
        if missing:
            raise SourceError(
                f"layer {missing[0].layers[0]} ({missing[0].digest}) could not be read again from the source"
            )
        return found

    # -- one blob ----------------------------------------------------------------------------------
    def _scan(
        self,
        candidates: list[_Group],
        read: Callable[[int], bytes],
        head: bytes,
        found: dict[int, FileInfo],
        done: set[str],
    ) -> None:
        stats = self.stats
        layers = self.image.layers

        def record(group: _Group, index: int, data: bytes | None) -> None:
            path = layers[group.layers[0]].entries.paths[index]
            if path not in group.wanted.get(index, ()):
                return
            if data is None:
                size = layers[group.layers[0]].entries.sizes[index]
                info = FileInfo(
                    size, "skipped", note=f"not read: {size} bytes is over the {self.limit} limit"
                )
                stats.skipped += 1
            else:
                info = describe(data)
                stats.files += 1
            for number in group.layers:
                found[(number << 32) | index] = info

        wanted: dict[int, set[bytes]] = {}
        for group in candidates:
            for index, paths in group.wanted.items():
                wanted.setdefault(index, set()).update(paths)
        pending: list[tuple[int, bytes | None]] = []
        if len(candidates) == 1:
            only = candidates[0]

            def deliver(index: int, data: bytes | None) -> None:
                record(only, index, data)

        else:  # which layer this blob is only shows at its end: keep the (few) picked files until then

            def deliver(index: int, data: bytes | None) -> None:
                pending.append((index, data))

        digest, diff_id, size = _stream_blob(read, head, _Picker(wanted, self.limit, deliver), self.progress)
        stats.blobs += 1
        stats.bytes += size
        matched = [g for g in candidates if g.digest == digest]
        if len(candidates) == 1 and not matched:
            raise SourceError(
                f"layer {candidates[0].layers[0]} changed since it was read (its blob is now {digest})"
            )
        for group in matched:
            if group.diff_id and diff_id != group.diff_id:
                raise SourceError(f"layer {group.layers[0]} changed since it was read")
            for index, data in pending:
                record(group, index, data)
            done.add(group.digest)

    # -- where blobs come from -----------------------------------------------------------------------
    def _blobs(
        self, groups: dict[str, _Group], done: set[str]
    ) -> Iterator[tuple[list[_Group], Callable[[int], bytes], bytes]]:
        """(candidate groups, read, head) for each blob that may be one of the wanted layers not `done`."""
        if self.opener is not None:
            with self.opener() as stream:
                yield from self._from_archive(stream, groups, done)
            return
        spec = self.spec
        if spec is None:
            raise SourceError("cannot read file contents: the image's source is unknown")
        if spec.kind == "oci-dir":
            yield from self._from_layout(spec.location, groups)
        elif spec.kind == "engine":
            from slimscope.sources import engine

            exported = engine.export(self.image.id or spec.location)
            try:
                yield from self._from_archive(exported.stream, groups, done)
            finally:
                exported.close()
        else:
            try:
                handle = open(spec.location, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise SourceError(f"cannot open {spec.location}: {exc.strerror or exc}") from None
            with handle:
                yield from self._from_archive(handle, groups, done)

    def _from_layout(self, root: str, groups: dict[str, _Group]):
        for group in groups.values():
            path = os.path.join(root, blob_name(group.digest))
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from None
            with handle:
                yield [group], handle.read, handle.read(READ_SIZE)

    def _from_archive(self, stream: IO[bytes], groups: dict[str, _Group], done: set[str]):
        from slimscope.sources.archive import REGULAR, _is_doc_name, _iter_members

        by_hex = {g.digest.partition(":")[2]: g for g in groups.values()}
        try:
            for member, read in _iter_members(stream):
                if member.kind not in REGULAR or member.size <= 64:
                    continue
                name = member.name
                exact = by_hex.get(name.rsplit("/", 1)[-1]) if name.startswith("blobs/") else None
                if exact is not None:
                    candidates = [exact] if exact.digest not in done else []
                elif _is_doc_name(name):
                    continue
                else:
                    candidates = [
                        g for g in groups.values() if g.size == member.size and g.digest not in done
                    ]
                if not candidates:
                    continue
                head = read(min(READ_SIZE, member.size))
                if head[:1] == b"{":
                    continue  # a JSON document, not a layer
                yield candidates, read, head
        except (EOFError, OSError) as exc:
            raise FormatError(
                f"the archive is truncated or corrupt ({exc.__class__.__name__}: {exc})"
            ) from None
