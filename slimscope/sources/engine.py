"""Export an image from the local Docker engine (or podman's Docker-compatible API) as a stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slimscope.errors import SourceError

EXPORT_CHUNK = 1 << 20


class StreamReader:
    """A read(n) file object over an iterator of byte chunks (the engine's export stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._offset = 0

    def readable(self) -> bool:
        """Part of the file protocol tarfile expects."""
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all remaining bytes when n < 0)."""
        if n is None or n < 0:
            rest = [self._buffer[self._offset :], *self._chunks]
            self._buffer, self._offset = b"", 0
            return b"".join(rest)
        available = len(self._buffer) - self._offset
        if available >= n:
            out = self._buffer[self._offset : self._offset + n]
            self._offset += n
            return out
        parts = [self._buffer[self._offset :]] if available else []
        have = available
        for chunk in self._chunks:
            if have + len(chunk) >= n:
                need = n - have
                parts.append(chunk[:need])
                self._buffer, self._offset = chunk, need
                return b"".join(parts)
            parts.append(chunk)
            have += len(chunk)
        self._buffer, self._offset = b"", 0
        return b"".join(parts)


@dataclass
class EngineExport:
    """An image found in the engine and its export stream."""

    reference: str
    id: str
    tags: list[str]
    size_hint: int  # the image's uncompressed size, close to the export's size
    stream: StreamReader
    close: Any


def connect() -> Any:
    """A docker SDK client for DOCKER_HOST / the default socket, or a SourceError saying why not."""
    import docker
    from docker.errors import DockerException

    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        raise SourceError(f"cannot reach the Docker engine at {_where()}: {_reason(exc)}") from None
    except Exception as exc:  # requests' connection errors and the like
        raise SourceError(f"cannot reach the Docker engine at {_where()}: {_reason(exc)}") from None
    return client


def _where() -> str:
    """Where the SDK looks for the engine."""
    import os

    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@dataclass
class EngineImage:
    """An image the engine has: its id, tags and diff_ids, before anything is exported."""

    reference: str
    id: str
    tags: list[str]
    diff_ids: list[str]
    size_hint: int
    platform: str | None  # os/arch[/variant] as the engine reports it
    handle: Any  # the SDK's Image
    client: Any


def find(reference: str) -> EngineImage:
    """Look `reference` up in the local engine (no export yet); the caller closes `.client`."""
    from docker.errors import APIError, ImageNotFound

    client = connect()
    try:
        image = client.images.get(reference)
    except ImageNotFound:
        client.close()
        raise SourceError(f"image {reference!r} was not found in the local Docker engine") from None
    except APIError as exc:
        client.close()
        raise SourceError(f"the Docker engine refused to look up {reference!r}: {_reason(exc)}") from None
    rootfs = image.attrs.get("RootFS") or {}
    layers = rootfs.get("Layers") if isinstance(rootfs, dict) else None
    return EngineImage(
        reference=reference,
        id=str(image.id),
        tags=list(image.tags),
        diff_ids=[str(d) for d in layers] if isinstance(layers, list) else [],
        size_hint=int(image.attrs.get("Size") or 0),
        platform=_platform(image.attrs),
        handle=image,
        client=client,
    )


def _platform(attrs: dict[str, Any]) -> str | None:
    os_, arch, variant = attrs.get("Os"), attrs.get("Architecture"), attrs.get("Variant")
    if not os_ or not arch:
        return None
    return f"{os_}/{arch}/{variant}" if variant else f"{os_}/{arch}"


def export(found: EngineImage | str) -> EngineExport:
    """Start streaming the `docker save` export of an image (found with `find`, or by reference)."""
    from docker.errors import APIError

    if isinstance(found, str):
        found = find(found)
    try:
        chunks = found.handle.save(chunk_size=EXPORT_CHUNK, named=False)
    except APIError as exc:
        found.client.close()
        raise SourceError(
            f"the Docker engine could not export {found.reference!r}: {_reason(exc)}"
        ) from None
    return EngineExport(
        reference=found.reference,
        id=found.id,
        tags=found.tags,
        size_hint=found.size_hint,
        stream=StreamReader(iter(chunks)),
        close=found.client.close,
    )


def _reason(exc: BaseException) -> str:
    """The most specific words an SDK/requests error chain has (not Python reprs)."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation).splitlines()[0][:300]
    seen: set[int] = set()
    current: BaseException | None = exc
    deepest = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        deepest = current
        nested = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = current.__cause__ or current.__context__ or (nested[0] if nested else None)
    if isinstance(deepest, OSError) and deepest.strerror:
        return deepest.strerror
    text = str(deepest) or deepest.__class__.__name__
    return text.splitlines()[0][:300]
