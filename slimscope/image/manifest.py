"""From an archive's or layout's JSON documents to one image: its config and its ordered layers.

Handles `docker save` (legacy and Docker 25+, via `manifest.json`), OCI image layouts (`index.json`,
nested indexes, platform selection) and the media types that may describe layers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slimscope.errors import FormatError, SlimscopeError

MAX_JSON = 64 << 20

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
REF_NAME = "org.opencontainers.image.ref.name"
DOCKER_REF_NAME = "io.containerd.image.name"


@dataclass
class LayerRef:
    """Where a layer's blob is and what it must hash to."""

    blob: str  # the blob's name in the archive or layout (e.g. "blobs/sha256/<hex>", "<id>/layer.tar")
    digest: str | None  # the blob's expected sha256 (None for legacy layer.tar, checked via diff_id)
    diff_id: str | None  # the uncompressed tar's expected sha256 from the config
    media_type: str | None = None
    size: int | None = None  # declared blob size


@dataclass
class Recipe:
    """Everything needed to read one image, before any layer is read."""

    config: dict[str, Any]
    config_digest: str
    layers: list[LayerRef]
    tags: list[str] = field(default_factory=list)
    manifest_digest: str | None = None


def parse_json(data: bytes, what: str) -> Any:
    """Parse a JSON document from an image, turning failures into a FormatError naming it."""
    if len(data) > MAX_JSON:
        raise FormatError(f"{what} is too large ({len(data)} bytes)")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{what} is not valid JSON ({exc.__class__.__name__})") from None


def host_platform() -> str:
    """The host's platform as os/arch[/variant] in OCI terms."""
    import platform

    machine = platform.machine().lower()
    arch = {
        "x86_64": "amd64",
        "amd64": "amd64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "i386": "386",
        "i686": "386",
        "armv7l": "arm/v7",
        "armv6l": "arm/v6",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)
    return "linux/" + arch


def platform_of(obj: dict[str, Any]) -> str:
    """`os/arch[/variant]` from a config or index platform object."""
    if not isinstance(obj, dict):
        return "unknown"
    os_ = obj.get("os") or "unknown"
    arch = obj.get("architecture") or "unknown"
    variant = obj.get("variant")
    return f"{os_}/{arch}/{variant}" if variant else f"{os_}/{arch}"


def platform_matches(wanted: str, offered: str) -> bool:
    """Whether an offered `os/arch[/variant]` is what `--platform` asked for."""
    w = wanted.split("/")
    o = offered.split("/")
    if w[:2] != o[:2]:
        return False
    return len(w) < 3 or (len(o) >= 3 and w[2] == o[2]) or (len(o) == 2 and w[2] in ("v8",))


def _diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise FormatError("image config has no valid rootfs.diff_ids")
    return ids


def blob_name(digest: str) -> str:
    """Path of a blob inside an OCI layout."""
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise FormatError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


def _descriptor(obj: Any, what: str) -> tuple[str, str | None, int | None]:
    if not isinstance(obj, dict) or not isinstance(obj.get("digest"), str):
        raise FormatError(f"{what} has a malformed descriptor")
    size = obj.get("size")
    return obj["digest"], obj.get("mediaType"), size if isinstance(size, int) else None


def from_docker_manifest(manifest: Any, get: Callable[[str], bytes | None], tag: str | None) -> Recipe:
    """Resolve a `docker save` manifest.json (legacy or Docker 25+) to a Recipe."""
    if not isinstance(manifest, list) or not manifest or not all(isinstance(m, dict) for m in manifest):
        raise FormatError("manifest.json is not a list of images")
    chosen = _choose_docker_image(manifest, tag)
    config_name = chosen.get("Config")
    layers = chosen.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layers, list):
        raise FormatError("manifest.json entry lacks Config or Layers")
    config_bytes = get(config_name)
    if config_bytes is None:
        raise FormatError(f"the archive has no config blob {config_name}")
    config_digest = "sha256:" + _sha256(config_bytes)
    expected = _digest_from_name(config_name)
    if expected and expected != config_digest:
        raise FormatError(f"config {config_name} does not match its digest (got {config_digest})")
    config = parse_json(config_bytes, "image config")
    diff_ids = _diff_ids(config)
    if len(diff_ids) != len(layers):
        raise FormatError(
            f"manifest.json lists {len(layers)} layers but the config has {len(diff_ids)} diff_ids"
        )
    refs = []
    for name, diff_id in zip(layers, diff_ids):
        if not isinstance(name, str):
            raise FormatError("manifest.json has a malformed layer path")
        refs.append(LayerRef(blob=name, digest=_digest_from_name(name), diff_id=diff_id))
    tags = [t for t in chosen.get("RepoTags") or [] if isinstance(t, str)]
    return Recipe(config=config, config_digest=config_digest, layers=refs, tags=tags)


def _choose_docker_image(manifest: list[dict[str, Any]], tag: str | None) -> dict[str, Any]:
    if tag is None:
        if len(manifest) == 1:
            return manifest[0]
        tags = [t for m in manifest for t in (m.get("RepoTags") or [])]
        raise SlimscopeError(
            f"the archive holds {len(manifest)} images; pick one with --image TAG or PATH:TAG "
            f"(tags: {', '.join(map(str, tags)) or 'none'})"
        )
    for m in manifest:
        tags = m.get("RepoTags") or []
        if tag in tags or any(_same_tag(tag, t) for t in tags if isinstance(t, str)):
            return m
        config = m.get("Config")
        if isinstance(config, str) and tag.removeprefix("sha256:") and tag.removeprefix("sha256:") in config:
            return m
    raise SlimscopeError(f"no image tagged {tag!r} in the archive")


def _same_tag(wanted: str, tag: str) -> bool:
    """`app` matches `app:latest`; `docker.io/library/app:1` matches `app:1`."""

    def norm(t: str) -> str:
        if ":" not in t.rsplit("/", 1)[-1]:
            t += ":latest"
        for prefix in ("docker.io/library/", "docker.io/"):
            t = t.removeprefix(prefix)
        return t

    return norm(wanted) == norm(tag)


def from_oci_index(
    index: Any, get: Callable[[str], bytes | None], tag: str | None, platform: str | None
) -> Recipe:
    """Resolve an OCI layout's index.json (and nested indexes) to a Recipe."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise FormatError("index.json has no manifests list")
    manifests = index["manifests"]
    if tag is not None:
        named = [
            m
            for m in manifests
            if isinstance(m, dict)
            and any(
                _same_tag(tag, str(n)) or n == tag
                for n in (
                    (m.get("annotations") or {}).get(REF_NAME),
                    (m.get("annotations") or {}).get(DOCKER_REF_NAME),
                )
                if n
            )
        ]
        if not named:
            raise SlimscopeError(f"no image named {tag!r} in the OCI layout")
        manifests = named
    wanted = platform or host_platform()
    depth = 0
    while True:
        depth += 1
        if depth > 8:
            raise FormatError("image indexes nest too deeply")
        chosen = _choose_manifest(manifests, wanted, platform is not None)
        digest, media_type, _ = _descriptor(chosen, "index.json")
        data = _get_verified(get, digest, "manifest")
        doc = parse_json(data, f"manifest {digest}")
        media_type = media_type or (doc.get("mediaType") if isinstance(doc, dict) else None)
        if isinstance(doc, dict) and (
            media_type in INDEX_TYPES or ("manifests" in doc and "layers" not in doc)
        ):
            if not isinstance(doc.get("manifests"), list):
                raise FormatError(f"image index {digest} has no manifests list")
            manifests = doc["manifests"]
            continue
        return _from_oci_manifest(doc, digest, get, tag)


def _choose_manifest(manifests: list[Any], wanted: str, explicit: bool) -> dict[str, Any]:
    usable = [
        m
        for m in manifests
        if isinstance(m, dict)
        and (m.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"
    ]
    if not usable:
        raise FormatError("the image index lists no manifests")
    with_platform = [m for m in usable if isinstance(m.get("platform"), dict)]
    if len(usable) == 1 and (not explicit or not with_platform):
        return usable[0]
    for m in with_platform:
        if platform_matches(wanted, platform_of(m["platform"])):
            return m
    if len(usable) == 1 and not explicit:
        return usable[0]
    offered = ", ".join(platform_of(m["platform"]) for m in with_platform) or "none"
    raise SlimscopeError(f"no image for platform {wanted} (available: {offered}); choose with --platform")


def _from_oci_manifest(doc: Any, digest: str, get: Callable[[str], bytes | None], tag: str | None) -> Recipe:
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        raise FormatError(f"manifest {digest} has no layers list")
    config_digest, _, _ = _descriptor(doc.get("config"), f"manifest {digest} config")
    config_bytes = _get_verified(get, config_digest, "config")
    config = parse_json(config_bytes, "image config")
    diff_ids = _diff_ids(config)
    if len(diff_ids) != len(doc["layers"]):
        raise FormatError(
            f"manifest lists {len(doc['layers'])} layers but the config has {len(diff_ids)} diff_ids"
        )
    refs = []
    for i, (layer, diff_id) in enumerate(zip(doc["layers"], diff_ids)):
        layer_digest, media_type, size = _descriptor(layer, f"layer {i}")
        if media_type is not None and media_type not in LAYER_TYPES:
            raise FormatError(f"layer {i} has an unknown media type {media_type!r}")
        refs.append(
            LayerRef(
                blob=blob_name(layer_digest),
                digest=layer_digest,
                diff_id=diff_id,
                media_type=media_type,
                size=size,
            )
        )
    return Recipe(
        config=config,
        config_digest=config_digest,
        layers=refs,
        tags=[tag] if tag else [],
        manifest_digest=digest,
    )


def _get_verified(get: Callable[[str], bytes | None], digest: str, what: str) -> bytes:
    name = blob_name(digest)
    data = get(name)
    if data is None:
        raise FormatError(f"the {what} blob {digest} is missing")
    actual = "sha256:" + _sha256(data)
    if actual != digest:
        raise FormatError(f"the {what} blob {digest} does not match its digest (got {actual})")
    return data


def _digest_from_name(name: str) -> str | None:
    """`blobs/sha256/<hex>` or `<hex>.json` -> `sha256:<hex>`; None for other names."""
    base = name.rsplit("/", 1)[-1].removesuffix(".json")
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base):
        return "sha256:" + base
    return None


def _sha256(data: bytes) -> str:
    from hashlib import sha256

    return sha256(data).hexdigest()
