"""The image as read: config, history and layers with their members, before any analysis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slimscope.image.history import HistoryEntry
from slimscope.image.layer import LayerEntries


@dataclass
class Layer:
    """One layer: where its blob came from, what it hashed to, and its members."""

    index: int
    diff_id: str
    digest: str
    compressed_bytes: int
    compression: str
    media_type: str | None
    entries: LayerEntries
    history_index: int | None = None
    blob: str | None = None  # the blob's name in the archive or layout it was read from
    head: str | None = None  # the blob's fingerprint (see `image.blobs.head_key`), when it was scanned
    reused: bool = False  # its blob was hashed and recognised, its members taken from a known layer

    @property
    def size_bytes(self) -> int:
        """Sum of regular file sizes in the layer tar (hard links count 0)."""
        return self.entries.size_bytes


@dataclass
class Image:
    """An image read from a source, with every layer scanned and verified."""

    reference: str
    source: str  # "engine", "docker-archive", "oci-archive" or "oci-dir"
    id: str  # sha256 of the config blob
    platform: str
    created: str | None
    config: dict[str, Any]
    layers: list[Layer]
    history: list[HistoryEntry]
    tags: list[str] = field(default_factory=list)
    manifest_digest: str | None = None
    problems: list[str] = field(default_factory=list)
    # What load_image(verify_later=True) left to do: blob digests still being computed, then the
    # cache. verify() does it; nothing read from the image may be shown before.
    pending: list[Callable[[], None]] = field(default_factory=list, repr=False, compare=False)

    def verify(self) -> None:
        """Finish the checks load_image deferred (raises DigestMismatch); does nothing the second time."""
        steps, self.pending = self.pending, []  # after a failed check, the rest (the cache) never runs
        for step in steps:
            step()

    @property
    def runtime_config(self) -> dict[str, Any]:
        """The `config` object inside the image config (entrypoint, cmd, env...), or {}."""
        value = self.config.get("config")
        return value if isinstance(value, dict) else {}
