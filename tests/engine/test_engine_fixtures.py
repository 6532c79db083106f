"""Prove the real-engine test infrastructure works, using only the docker SDK, tarfile and json."""

from __future__ import annotations

import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

LAYERS_TAG = "slimscope-test/layers:latest"
LAYER_COUNT = 9  # COPY busybox, RUN --install, 5 RUN steps, WORKDIR /app (creates it), COPY site
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Layers 2.. of the `layers` image as the classic builder with overlay2's native diff writes them:
# member name -> (tar type, size, permission bits, link target).
EXPECTED_LAYERS: dict[int, dict[str, tuple[bytes, int, int, str]]] = {
    2: {
        "data": (tarfile.DIRTYPE, 0, 0o755, ""),
        "data/a": (tarfile.REGTYPE, 4096, 0o644, ""),
        "data/b": (tarfile.REGTYPE, 10000, 0o644, ""),
        "data/c": (tarfile.REGTYPE, 2048, 0o644, ""),
        "data/dir": (tarfile.DIRTYPE, 0, 0o755, ""),
        "data/dir/one": (tarfile.REGTYPE, 1000, 0o644, ""),
        "data/dir/sub": (tarfile.DIRTYPE, 0, 0o755, ""),
        "data/dir/sub/two": (tarfile.REGTYPE, 2000, 0o644, ""),
        "data/mode.sh": (tarfile.REGTYPE, 10, 0o644, ""),
        "opq": (tarfile.DIRTYPE, 0, 0o755, ""),
        "opq/keep": (tarfile.REGTYPE, 5, 0o644, ""),
        "opq/old": (tarfile.REGTYPE, 4, 0o644, ""),
    },
    3: {
        "data": (tarfile.DIRTYPE, 0, 0o755, ""),
        "data/b": (tarfile.REGTYPE, 20000, 0o644, ""),
        "data/.wh.c": (tarfile.REGTYPE, 0, 0o600, ""),
        # Quirk: since Linux 5.8 overlayfs hard-links all whiteouts to one shared inode; dockerd's tar
        # writer then records the second whiteout as a link to the first one's *original* name and,
        # when it turns the whiteout into a regular file, keeps that linkname on a REGTYPE member.
        "data/.wh.dir": (tarfile.REGTYPE, 0, 0o600, "data/c"),
    },
    4: {
        "opq": (tarfile.DIRTYPE, 0, 0o755, ""),
        "opq/.wh..wh..opq": (tarfile.REGTYPE, 0, 0o755, ""),
        "opq/new": (tarfile.REGTYPE, 2, 0o644, ""),
    },
    5: {
        "data": (tarfile.DIRTYPE, 0, 0o755, ""),
        "data/mode.sh": (tarfile.REGTYPE, 10, 0o755, ""),
    },
    6: {
        "data": (tarfile.DIRTYPE, 0, 0o755, ""),
        "data/a": (tarfile.REGTYPE, 4096, 0o644, ""),
        "data/a-link": (tarfile.LNKTYPE, 0, 0o644, "data/a"),
        "data/b-symlink": (tarfile.SYMTYPE, 0, 0o777, "/data/b"),
    },
    7: {"app": (tarfile.DIRTYPE, 0, 0o755, "")},
    8: {
        "app": (tarfile.DIRTYPE, 0, 0o755, ""),
        "app/site": (tarfile.DIRTYPE, 0, 0o755, ""),
        "app/site/README.txt": (tarfile.REGTYPE, 62, 0o644, ""),
        "app/site/css": (tarfile.DIRTYPE, 0, 0o755, ""),
        "app/site/css/style.css": (tarfile.REGTYPE, 22, 0o644, ""),
        "app/site/index.html": (tarfile.REGTYPE, 78, 0o644, ""),
    },
}
# BuildKit additionally leaves the mount points it creates for RUN in the RUN layers.
BUILDKIT_EXTRA = {1: {"dev", "etc", "proc", "sys"}, **{i: {"etc"} for i in range(2, 7)}}

HOSTILE_NAMES = {
    "hostile",
    "hostile/esc-\x1b[31mred",
    "hostile/new\nline",
    "hostile/c1-\u009bx",
    "hostile/bidi-\u202etxt.exe",
    "hostile/[@click=app.quit()]x",
    "hostile/[link=http:",
    "hostile/[link=http:/x]y",
    "hostile/[link=x]y",
    "hostile/a[",
    "hostile/a[/]b",
    "hostile/bad-\udcff-byte",  # b"\xff" decoded with surrogateescape
    "hostile/link-\x1b]0;title\x07",
}


def saved_layers(archive: Path) -> tuple[dict[str, Any], list[dict[str, tarfile.TarInfo]]]:
    """Return the manifest.json entry and the members (name -> TarInfo) of each layer of a saved image."""
    with tarfile.open(archive) as outer:
        manifest_file = outer.extractfile("manifest.json")
        assert manifest_file is not None
        (entry,) = json.load(manifest_file)
        layers = []
        for layer_path in entry["Layers"]:
            blob = outer.extractfile(layer_path)
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r:*", encoding="utf-8", errors="surrogateescape") as layer:
                layers.append({m.name: m for m in layer.getmembers()})
    return entry, layers


def check_layer(index: int, actual: dict[str, tuple[bytes, int, int, str]]) -> None:
    """Compare a described layer with EXPECTED_LAYERS, allowing kernels without whiteout inode sharing."""
    expected = EXPECTED_LAYERS[index]
    whiteout = actual.get("data/.wh.dir")
    if index == 3 and whiteout is not None and whiteout[3] == "":
        expected = {**expected, "data/.wh.dir": (tarfile.REGTYPE, 0, 0o600, "")}
    assert actual == expected, f"layer {index}"


def describe(members: dict[str, tarfile.TarInfo]) -> dict[str, tuple[bytes, int, int, str]]:
    """Reduce layer members to (type, size, permission bits, link target) for exact comparison."""
    return {n: (m.type, m.size, m.mode & 0o7777, m.linkname) for n, m in members.items()}


def busybox_applets(busybox: Path) -> set[str]:
    """Members that `busybox --install -s /bin` creates: bin and one symlink per applet."""
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    return {"bin"} | {f"bin/{name}" for name in out.split() if name != "busybox"}


def native_overlay_diff(client: docker.DockerClient) -> bool:
    """True if the engine diffs layers with overlay2's native differ (which writes opaque whiteouts)."""
    info = client.info()
    status = {key: value for key, value in info.get("DriverStatus") or []}
    return info.get("Driver") == "overlay2" and status.get("Native Overlay Diff") == "true"


def oci_archive_files(path: Path) -> dict[str, bytes]:
    """All regular files of an oci-archive tar, by layout-relative path."""
    files = {}
    with tarfile.open(path) as tar:
        for member in tar:
            data = tar.extractfile(member) if member.isfile() else None
            if data is not None:
                files[member.name.removeprefix("./")] = data.read()
    return files


def blob(files: dict[str, bytes], digest: str) -> bytes:
    """The blob for a ``sha256:...`` digest in an OCI layout."""
    algo, hexdigest = digest.split(":", 1)
    return files[f"blobs/{algo}/{hexdigest}"]


def test_layers_image_builds(docker_client: docker.DockerClient, build_fixture_image: Callable[[str], str]):
    tag = build_fixture_image("layers")
    assert tag == LAYERS_TAG
    attrs = docker_client.images.get(tag).attrs
    assert len(attrs["RootFS"]["Layers"]) == LAYER_COUNT
    config = attrs["Config"]
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/app"
    assert config["Entrypoint"] == ["/bin/busybox"]
    assert config["Cmd"] == ["sh", "-c", "cat /app/site/index.html"]
    assert config["ExposedPorts"] == {"8080/tcp": {}, "9090/udp": {}}
    assert config["Labels"] == {
        "org.opencontainers.image.title": "slimscope layers fixture",
        "org.slimscope.fixture": "layers",
    }
    assert config["Env"][-2:] == ["APP_HOME=/app", "SLIMSCOPE_FIXTURE=layers"]
    assert config["Shell"] == ["/bin/sh", "-c"]
    assert attrs["Size"] < 5_000_000


def test_layers_docker_save_archive(
    docker_client: docker.DockerClient,
    build_fixture_image: Callable[[str], str],
    saved_archive: Callable[[str], Path],
    busybox_binary: Path,
):
    tag = build_fixture_image("layers")
    archive = saved_archive(tag)
    entry, layers = saved_layers(archive)
    assert entry["RepoTags"] == [tag]
    assert len(entry["Layers"]) == LAYER_COUNT
    assert len(layers) == LAYER_COUNT
    assert describe(layers[0]) == {
        "bin": (tarfile.DIRTYPE, 0, 0o755, ""),
        "bin/busybox": (tarfile.REGTYPE, busybox_binary.stat().st_size, 0o755, ""),
    }
    assert set(layers[1]) == busybox_applets(busybox_binary)
    assert {m.linkname for n, m in layers[1].items() if n != "bin"} == {"/bin/busybox"}
    if not native_overlay_diff(docker_client):
        pytest.skip("exact layer contents are asserted for overlay2 with its native diff only")
    for index in EXPECTED_LAYERS:
        check_layer(index, describe(layers[index]))


def test_layers_oci_zstd_archive(
    docker_client: docker.DockerClient,
    build_fixture_image: Callable[[str], str],
    oci_archive: Callable[[str, str], Path],
):
    tag = build_fixture_image("layers")
    files = oci_archive_files(oci_archive(tag, "zstd"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    (descriptor,) = json.loads(files["index.json"])["manifests"]
    assert descriptor["mediaType"] == OCI_MANIFEST
    assert descriptor["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    manifest = json.loads(blob(files, descriptor["digest"]))
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_ZSTD_LAYER] * LAYER_COUNT
    for layer in manifest["layers"]:
        data = blob(files, layer["digest"])
        assert len(data) == layer["size"]
        assert data[:4] == ZSTD_MAGIC
    config = json.loads(blob(files, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == docker_client.images.get(tag).attrs["RootFS"]["Layers"]


def test_layers_oci_gzip_archive(build_fixture_image: Callable[[str], str], oci_archive):
    files = oci_archive_files(oci_archive(build_fixture_image("layers"), "gzip"))
    (descriptor,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(blob(files, descriptor["digest"]))
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_GZIP_LAYER] * LAYER_COUNT
    assert {blob(files, layer["digest"])[:2] for layer in manifest["layers"]} == {GZIP_MAGIC}


def test_layers_oci_dir(build_fixture_image: Callable[[str], str], oci_dir: Callable[[str, str], Path]):
    layout = oci_dir(build_fixture_image("layers"), "zstd")
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    (descriptor,) = json.loads((layout / "index.json").read_text())["manifests"]
    algo, digest = descriptor["digest"].split(":", 1)
    manifest = json.loads((layout / "blobs" / algo / digest).read_text())
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_ZSTD_LAYER] * LAYER_COUNT


def test_hostile_image_names(build_fixture_image: Callable[[str], str], saved_archive: Callable[[str], Path]):
    tag = build_fixture_image("hostile")
    assert tag == "slimscope-test/hostile:latest"
    entry, layers = saved_layers(saved_archive(tag))
    assert len(entry["Layers"]) == 3
    assert "hostile/esc-\x1b[31mred" in layers[2]
    assert set(layers[2]) == HOSTILE_NAMES
    link = layers[2]["hostile/link-\x1b]0;title\x07"]
    assert (link.type, link.linkname) == (tarfile.SYMTYPE, "esc-\x1b[31mred")


def test_layers_buildkit(
    docker_client: docker.DockerClient,
    buildkit_image: Callable[[str], str],
    saved_archive: Callable[[str], Path],
    busybox_binary: Path,
):
    tag = buildkit_image("layers")
    assert tag == "slimscope-test/layers:buildkit"
    config = docker_client.images.get(tag).attrs["Config"]
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["/bin/busybox"]
    _, layers = saved_layers(saved_archive(tag))
    assert len(layers) == LAYER_COUNT
    assert set(layers[1]) - BUILDKIT_EXTRA[1] == busybox_applets(busybox_binary)
    if not native_overlay_diff(docker_client):
        pytest.skip("exact layer contents are asserted for overlay2 with its native diff only")
    for index, expected in EXPECTED_LAYERS.items():
        names = set(layers[index]) - BUILDKIT_EXTRA.get(index, set())
        check_layer(index, describe({n: layers[index][n] for n in names}))
        assert set(layers[index]) - set(expected) == BUILDKIT_EXTRA.get(index, set()), f"layer {index}"
