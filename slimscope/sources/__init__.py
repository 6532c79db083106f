"""One entry point from what the user typed to a fully read and verified `Image`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from slimscope.errors import DigestMismatch, FormatError, ReuseMismatch, SourceError
from slimscope.image.blobs import READ_SIZE, LayerScan, scan_layer
from slimscope.image.history import map_history
from slimscope.image.manifest import (
    Recipe,
    from_docker_manifest,
    from_oci_index,
    parse_json,
    platform_matches,
    platform_of,
)
from slimscope.image.model import Image, Layer

if TYPE_CHECKING:
    from slimscope.cache import CachedLayer, LayerCache
from slimscope.sources.archive import ArchiveContents, known_blob, read_archive, reuse_layer
from slimscope.sources.reference import SourceSpec, parse_source

__all__ = ["Progress", "SourceSpec", "index_layers", "load_image", "parse_source"]


@dataclass
class Progress:
    """Callbacks a caller may pass to follow the reading (all optional, called from worker threads)."""

    start: Callable[[str, int | None], None] | None = None  # (what, total bytes or None)
    advance: Callable[[int], None] | None = None  # bytes read
    blob: Callable[[str], None] | None = None  # a blob starts
    # Called once, in the reading thread, when it has handed the blobs to worker processes and only
    # waits for them: the caller's own start-up work (imports) can run then instead of before the read.
    waiting: Callable[[], None] | None = None
    # Called every tenth of a second by a caller waiting for a read in another thread (EarlyRead.load):
    # raising gives the wait up, even while the read itself is stuck on input that does not come.
    check: Callable[[], None] | None = None


def load_image(
    text: str,
    *,
    image: str | None = None,
    platform: str | None = None,
    progress: Progress | None = None,
    known_layers: Iterable[Layer] | None = None,
    cache: LayerCache | None = None,
    verify_later: bool = False,
) -> Image:
    """Read the image the user named, from the engine, an archive or an OCI layout.

    `known_layers` are layers already read (the other image of a diff): a blob that holds one of them is
    hashed and verified but not decompressed or parsed again; its members are shared. A `cache` does
    the same for layers read by earlier runs, and keeps the layers read now. With `verify_later`, the
    image may come back while the sha256 of a big blob is still being computed (its digests are the
    manifest's until then): the caller analyses meanwhile and must call `image.verify()` before it
    shows anything.
    """
    spec = parse_source(text, image)
    return load_spec(
        spec,
        platform=platform,
        progress=progress,
        known_layers=known_layers,
        cache=cache,
        verify_later=verify_later,
    )


def load_spec(
    spec: SourceSpec,
    *,
    platform: str | None = None,
    progress: Progress | None = None,
    known_layers: Iterable[Layer] | None = None,
    cache: LayerCache | None = None,
    verify_later: bool = False,
) -> Image:
    """Read the image described by a SourceSpec (see load_image)."""
    progress = progress or Progress()
    known = _Known(index_layers(known_layers or ()), cache, verify_later)
    try:
        image = _load(spec, platform, progress, known)
    except ReuseMismatch:
        if not known:
            raise
        # A blob was not the layer its name or fingerprint promised (a hand-made archive reusing
        # names, two layers alike in size and first bytes): read everything.
        known = _Known({}, None, verify_later)
        image = _load(spec, platform, progress, known)
    if platform is not None and not platform_matches(platform, image.platform):
        raise SourceError(f"no image for platform {platform}: {spec.describe()} is {image.platform}")
    if cache is not None:  # only once every digest has been checked
        image.pending.append(lambda: _store(cache, image, known))
    if not verify_later:
        image.verify()
    return image


class _Known:
    """Layers a blob may turn out to hold: the other image's (a diff) and the cache's."""

    def __init__(
        self, layers: dict[str, Layer], cache: LayerCache | None, verify_later: bool = False
    ) -> None:
        self.layers = layers
        self.cache = cache
        self.verify_later = verify_later  # a big blob's digest may be checked after the read (Image.verify)
        self.reused: set[str] = set()  # diff_ids whose blobs were hashed, not parsed
        self.archive_key: str | None = None  # the archive file's stat key, once it was read unchanged

    def __bool__(self) -> bool:
        return bool(self.layers) or self.cache is not None

    def get(self, key: str) -> Layer | CachedLayer | None:
        """A layer by blob name, blob digest or diff_id."""
        layer = self.layers.get(key)
        if layer is None and self.cache is not None and key.startswith("sha256:"):
            return self.cache.get(key)
        return layer

    def recognise(self, fingerprint: str) -> CachedLayer | None:
        """A cached layer by a blob's fingerprint (see `scan_layer`)."""
        return self.cache.get(fingerprint) if self.cache is not None else None


def _store(cache: LayerCache, image: Image, known: _Known) -> None:
    """Keep what this run read for the next one."""
    for layer in image.layers:
        if layer.reused:
            cache.hits += 1
        else:
            cache.put(layer.diff_id, layer.digest, layer.compression, layer.entries, layer.head)
    if image.source == "engine":
        cache.put_image(image.id, _image_record(image))
    elif known.archive_key is not None and image.id:
        cache.put_archive(known.archive_key, {**_image_record(image), "source": image.source, "id": image.id})
    if cache.stored:
        cache.evict()


def _load(spec: SourceSpec, platform: str | None, progress: Progress, known: _Known) -> Image:
    if spec.kind == "engine":
        return _from_engine(spec, platform, progress, known)
    if spec.kind == "oci-dir":
        return _from_layout(spec, platform, progress, known)
    return _from_archive(spec, platform, progress, known)


def index_layers(layers: Iterable[Layer]) -> dict[str, Layer]:
    """Layers by blob digest, diff_id and blob name: how a blob about to be read is recognised."""
    index: dict[str, Layer] = {}
    for layer in layers:
        for key in (layer.blob, layer.digest, layer.diff_id):
            if key:
                index.setdefault(key, layer)
    return index


def _from_archive(spec: SourceSpec, platform: str | None, progress: Progress, known: _Known) -> Image:
    try:
        handle = open(spec.location, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise SourceError(f"no such file: {spec.location}") from None
    except OSError as exc:
        raise SourceError(f"cannot open {spec.location}: {exc.strerror or exc}") from None
    try:
        before = os.fstat(handle.fileno())
        key = archive_key(spec, platform, before) if known.cache is not None else None
        if key is not None and known.cache is not None:
            cached = _cached_archive_image(spec, key, known.cache)
            if cached is not None:
                handle.close()
                return cached
        if progress.start:
            progress.start(f"reading {os.path.basename(spec.location)}", before.st_size)
        contents = _read(handle, progress, known, path=spec.location)
        if key is not None and _unchanged(before, os.fstat(handle.fileno())):
            known.archive_key = key
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the process is ending. A blob reader thread may still be blocked in a read
        # of a stalled pipe, holding the file's lock, and close() would wait for that read to return.
        raise
    except BaseException:
        handle.close()
        raise
    handle.close()
    kind = "oci-archive" if spec.force_oci or "manifest.json" not in contents.docs else "docker-archive"
    return _assemble(contents, spec, kind, platform)


# A file changed within this long after its last change may keep the same timestamps (the kernel's
# clock ticks in milliseconds; some filesystems keep whole or even seconds): such a file is not
# recognised by its stat, as git treats "racily clean" index entries.
_SETTLE_NS = 50_000_000
_SETTLE_COARSE_NS = 2_000_000_000


def archive_key(spec: SourceSpec, platform: str | None, st: os.stat_result) -> str | None:
    """What identifies an archive file's image without reading it: its stat and what was asked of it.

    Device, inode, size and the nanosecond mtime and ctime change whenever the file is written,
    renamed over or touched (ctime cannot be set back by a user), so an unchanged key means unchanged
    bytes. None for pipes and devices, and for a file changed too recently to tell.
    """
    import stat
    import time

    if not stat.S_ISREG(st.st_mode):
        return None
    coarse = st.st_mtime_ns % 1_000_000 == 0 and st.st_ctime_ns % 1_000_000 == 0
    settle = _SETTLE_COARSE_NS if coarse else _SETTLE_NS
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < settle:
        return None
    fields = [
        spec.kind, spec.tag or "", str(spec.force_oci), platform or "",
        str(st.st_dev), str(st.st_ino), str(st.st_size), str(st.st_mtime_ns), str(st.st_ctime_ns),
    ]  # fmt: skip
    return "sha256:" + sha256("\0".join(fields).encode()).hexdigest()


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """The file was not written while it was read."""
    return (before.st_ino, before.st_dev, before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_ino, after.st_dev, after.st_size, after.st_mtime_ns, after.st_ctime_ns,
    )  # fmt: skip


def _cached_archive_image(spec: SourceSpec, key: str, cache: LayerCache) -> Image | None:
    """An archive file's image rebuilt from the cache, when the file is unchanged since it was read."""
    record = cache.archive(key)
    if record is None or record.get("source") not in ("docker-archive", "oci-archive"):
        return None
    return _from_record(spec, record["source"], record, str(record.get("id") or ""), cache, None)


def _read(stream: Any, progress: Progress, known: _Known, path: str | None = None) -> ArchiveContents:
    if path is not None and not _regular_file(stream):
        path = None  # a pipe or device: read it front to back
    return read_archive(
        stream,
        progress=progress.advance,
        on_blob=progress.blob,
        waiting=progress.waiting,
        known=known if known else None,  # type: ignore[arg-type]
        recognise=known.recognise if known.cache is not None else None,
        path=path,
        defer_digests=known.verify_later,
    )


def _regular_file(handle: Any) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.fstat(handle.fileno()).st_mode) and handle.seekable()
    except (OSError, ValueError, AttributeError):
        return False


def _from_engine(spec: SourceSpec, platform: str | None, progress: Progress, known: _Known) -> Image:
    from slimscope.sources import engine

    found = engine.find(spec.location)
    if platform is not None and found.platform and not platform_matches(platform, found.platform):
        found.client.close()  # said before the export, which can take a while
        raise SourceError(f"no image for platform {platform}: {spec.describe()} is {found.platform}")
    cached = _cached_engine_image(spec, found, known.cache) if known.cache is not None else None
    if cached is not None:
        found.client.close()
        return cached
    if progress.start:  # before the export call: the engine can take seconds to send its first byte
        progress.start(f"exporting {spec.location}", found.size_hint or None)
    exported = engine.export(found)
    try:
        contents = _read(exported.stream, progress, known)
    finally:
        exported.close()
    image = _assemble(contents, spec, "engine", platform)
    image.tags = exported.tags or image.tags
    return image


def _image_record(image: Image) -> dict[str, Any]:
    """What rebuilds an engine image from the cache: its config and how each layer was stored."""
    return {
        "config": image.config,
        "manifest_digest": image.manifest_digest,
        "tags": image.tags,
        "layers": [
            {
                "diff_id": layer.diff_id,
                "digest": layer.digest,
                "compressed_bytes": layer.compressed_bytes,
                "compression": layer.compression,
                "media_type": layer.media_type,
                "blob": layer.blob,
            }
            for layer in image.layers
        ],
    }


def _cached_engine_image(spec: SourceSpec, found: Any, cache: LayerCache) -> Image | None:
    """The engine's image rebuilt from the cache without an export, when every part of it is there.

    Safe because everything is content-addressed: the image id is the sha256 of the config, the config
    lists the diff_ids, and each cached layer was parsed from bytes that hashed to its diff_id.
    """
    record = cache.image(found.id)
    if record is None:
        return None
    image = _from_record(spec, "engine", record, found.id, cache, found.diff_ids or None)
    if image is not None:
        image.tags = found.tags or image.tags
    return image


def _from_record(
    spec: SourceSpec,
    source: str,
    record: dict[str, Any],
    config_digest: str,
    cache: LayerCache,
    diff_ids: list[str] | None,
) -> Image | None:
    """An image from its record (see `_image_record`) and cached layers; None if any part is missing."""
    try:
        config = record["config"]
        rows = record["layers"]
        listed = config["rootfs"]["diff_ids"]
        if not config_digest.startswith("sha256:") or [row["diff_id"] for row in rows] != listed:
            return None
        if diff_ids is not None and diff_ids != listed:
            return None
        layers = []
        for i, row in enumerate(rows):
            entry = cache.get(row["diff_id"])
            if entry is None:
                return None
            layer = Layer(
                index=i,
                diff_id=row["diff_id"],
                digest=row["digest"],
                compressed_bytes=int(row["compressed_bytes"]),
                compression=row["compression"],
                media_type=row["media_type"],
                entries=entry.entries,
                blob=row["blob"],
            )
            layer.reused = True
            layers.append(layer)
        recipe = Recipe(
            config=config,
            config_digest=config_digest,
            layers=[],
            tags=list(record.get("tags") or []),
            manifest_digest=record.get("manifest_digest"),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return _image(spec, source, recipe, layers)


def _assemble(contents: ArchiveContents, spec: SourceSpec, source: str, platform: str | None) -> Image:
    manifest = contents.get("manifest.json")
    if manifest is not None and not spec.force_oci and platform is None:
        recipe = from_docker_manifest(parse_json(manifest, "manifest.json"), contents.get, spec.tag)
    else:
        index = contents.get("index.json")
        if index is None:
            if spec.force_oci and spec.kind == "archive":
                raise FormatError(
                    "not an OCI archive (no index.json)"
                    + ("; it is a docker save archive: drop the oci-archive: prefix" if manifest else "")
                )
            if manifest is not None:
                recipe = from_docker_manifest(parse_json(manifest, "manifest.json"), contents.get, spec.tag)
            else:
                raise FormatError("not an image archive (no manifest.json or index.json)")
        else:
            recipe = from_oci_index(parse_json(index, "index.json"), contents.get, spec.tag, platform)
    layers = []
    checks: list[Callable[[], None]] = []
    for i, ref in enumerate(recipe.layers):
        try:
            scan = contents.layer(ref.blob)
        except FormatError as exc:
            raise exc.__class__(f"layer {i} ({ref.digest or ref.blob}): {exc}") from None
        if scan is None:
            raise FormatError(f"layer {i} ({ref.digest or ref.blob}) is missing from the archive")
        layers.append(_verified_layer(i, ref, scan, contents.resolve(ref.blob), checks))
    image = _image(spec, source, recipe, layers)
    image.pending.extend(checks)
    return image


def _from_layout(spec: SourceSpec, platform: str | None, progress: Progress, known: _Known) -> Image:
    root = spec.location
    if not os.path.isdir(root):
        raise SourceError(f"no such directory: {root}")

    def get(name: str) -> bytes | None:
        path = _inside(root, name)
        try:
            with open(path, "rb") as handle:
                return handle.read(64 << 20)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None

    index = get("index.json")
    if index is None:
        raise FormatError(f"{root} is not an OCI image layout (no index.json)")
    recipe = from_oci_index(parse_json(index, "index.json"), get, spec.tag, platform)
    total = sum(ref.size or 0 for ref in recipe.layers)
    if progress.start:
        progress.start(f"reading {os.path.basename(os.path.abspath(root))}", total or None)
    layers = []
    for i, ref in enumerate(recipe.layers):
        path = _inside(root, ref.blob)
        if progress.blob:
            progress.blob(ref.blob)
        reuse = known_blob(ref.blob, known) if known else None
        try:
            with open(path, "rb") as handle:
                scan = None
                if reuse is not None:
                    try:
                        scan = reuse_layer(handle.read, handle.read(READ_SIZE), progress.advance, reuse)
                    except ReuseMismatch:
                        handle.seek(0)  # not the layer its name promises: read it in full for the error
                        known = _Known(known.layers, None)
                if scan is None:
                    scan = scan_layer(
                        handle.read,
                        head=handle.read(READ_SIZE),
                        progress=progress.advance,
                        blob_size=os.fstat(handle.fileno()).st_size,
                        lookup=known.recognise if known.cache is not None else None,
                    )
        except FileNotFoundError:
            raise FormatError(f"layer {i} ({ref.digest}) is missing from the layout") from None
        except FormatError as exc:
            raise FormatError(f"layer {i} ({ref.digest}): {exc}") from None
        layers.append(_verified_layer(i, ref, scan, ref.blob))
    return _image(spec, "oci-dir", recipe, layers)


def _inside(root: str, name: str) -> str:
    """A path under the layout root; names that try to leave it are refused."""
    path = os.path.normpath(os.path.join(root, name))
    if os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) != os.path.abspath(root):
        raise FormatError(f"the layout points outside itself ({name!r})")
    return path


def _verified_layer(
    index: int,
    ref: Any,
    scan: LayerScan,
    blob: str | None = None,
    checks: list[Callable[[], None]] | None = None,
) -> Layer:
    """The layer of a scan that matches its manifest entry and config diff_id (else DigestMismatch).

    A scan whose digest is still being computed (`pending`, an uncompressed blob) takes the digest
    the manifest and config agree on, and its check goes on `checks`, to run when it resolves.
    """
    if scan.pending is not None:
        future = scan.pending
        expected = ref.digest or ref.diff_id
        if checks is None or not expected or (ref.digest and ref.diff_id and ref.digest != ref.diff_id):
            actual = future.result()  # no single digest to take on trust: wait for it
            scan = replace(scan, digest=actual, diff_id=actual, pending=None)
        else:
            pending = replace(scan, digest=expected, diff_id=expected, pending=None)

            def check() -> None:
                actual = future.result()
                _verified_layer(index, ref, replace(pending, digest=actual, diff_id=actual), blob)

            checks.append(check)
            scan = pending
    if ref.digest and scan.digest != ref.digest:
        raise DigestMismatch(
            f"layer {index}: blob sha256 is {scan.digest} but the manifest says {ref.digest}"
        )
    if ref.size is not None and scan.raw_size != ref.size:
        # the digest matched, so the manifest's size is wrong: the OCI spec says to refuse it
        raise DigestMismatch(
            f"layer {index} ({ref.digest or ref.blob}): blob is {scan.raw_size} bytes "
            f"but the manifest says {ref.size}"
        )
    if ref.diff_id and scan.diff_id != ref.diff_id:
        raise DigestMismatch(
            f"layer {index} ({ref.digest or ref.blob}): uncompressed sha256 is {scan.diff_id} "
            f"but the config says {ref.diff_id}"
        )
    return Layer(
        index=index,
        diff_id=scan.diff_id,
        digest=ref.digest or scan.digest,
        compressed_bytes=scan.raw_size,
        compression=scan.compression,
        media_type=ref.media_type,
        entries=scan.entries,
        blob=blob,
        head=scan.head,
        reused=scan.reused,
    )


def _image(spec: SourceSpec, source: str, recipe: Recipe, layers: list[Layer]) -> Image:
    config = recipe.config
    history_raw = config.get("history")
    entries, layer_history, problems = map_history(
        history_raw if isinstance(history_raw, list) else [], len(layers)
    )
    for layer, hist in zip(layers, layer_history):
        layer.history_index = hist
    created = config.get("created")
    return Image(
        reference=spec.describe(source),
        source=source,
        id=recipe.config_digest,
        platform=platform_of(config),
        created=created if isinstance(created, str) else None,
        config=config,
        layers=layers,
        history=entries,
        tags=recipe.tags,
        manifest_digest=recipe.manifest_digest,
        problems=problems,
    )
