"""What the user typed, understood: an engine reference, an archive path (with a tag) or an OCI layout."""

from __future__ import annotations

import os
from dataclasses import dataclass

PREFIXES = ("docker-archive:", "oci-archive:", "oci:", "docker-daemon:", "docker:")


@dataclass(frozen=True)
class SourceSpec:
    """Where to read an image from."""

    kind: str  # "engine", "archive", "oci-dir"
    location: str  # engine reference, archive path or layout directory
    tag: str | None = None  # image to pick inside an archive or layout
    force_oci: bool = False  # read the OCI index even when a docker manifest.json is present

    def describe(self, found: str | None = None) -> str:
        """A short human description, e.g. `docker-archive:app.tar:latest`; `found` is the kind of
        archive a plain path turned out to hold (`oci-archive:app.tar` for an OCI one)."""
        if self.kind == "engine":
            return self.location
        oci = self.force_oci or found == "oci-archive"
        prefix = {"archive": "oci-archive:" if oci else "docker-archive:", "oci-dir": "oci:"}[self.kind]
        return prefix + self.location + (f":{self.tag}" if self.tag else "")


def _split_tag(text: str) -> tuple[str, str | None]:
    """`PATH:TAG` -> (PATH, TAG) when PATH exists and TAG is not part of it."""
    if os.path.exists(text):
        return text, None
    head, sep, _ = text.rpartition(":")
    # `app.tar:web:1.0`: the tag itself may hold a colon; try the longest existing path prefix.
    while sep:
        if head and os.path.exists(head):
            return head, text[len(head) + 1 :]
        head, sep, _ = head.rpartition(":")
    return text, None


def parse_source(text: str, image: str | None = None) -> SourceSpec:
    """Understand what the user typed; `image` is the `--image` choice for multi-image archives."""
    for prefix in PREFIXES:
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if prefix in ("docker-daemon:", "docker:"):
                return SourceSpec("engine", rest.removeprefix("//"))
            path, tag = _split_tag(rest)
            tag = image or tag
            if prefix == "oci:" or os.path.isdir(path):
                return SourceSpec("oci-dir", path, tag, force_oci=True)
            return SourceSpec("archive", path, tag, force_oci=prefix == "oci-archive:")
    path, tag = _split_tag(text)
    if os.path.exists(path) and (os.path.isfile(path) or os.path.isdir(path)):
        tag = image or tag
        if os.path.isdir(path):
            return SourceSpec("oci-dir", path, tag, force_oci=True)
        return SourceSpec("archive", path, tag)
    if _looks_like_path(text):
        return SourceSpec("archive", path, image or tag)
    return SourceSpec("engine", text)


def _looks_like_path(text: str) -> bool:
    """A missing file the user clearly meant as a path (so the error says 'no such file')."""
    return text.startswith(("/", "./", "../", "~")) or text.endswith((".tar", ".tar.gz", ".tgz", ".tar.zst"))
