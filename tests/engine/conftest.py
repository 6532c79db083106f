"""Fixtures for tests against a real Docker engine.

Every test in this folder is marked ``engine``. Without a reachable engine (or without skopeo or a
BuildKit-capable docker CLI, for the fixtures that need them) the tests are skipped with the reason,
unless ``SLIMSCOPE_REQUIRE_ENGINE=1`` is set (as ``.ci/run`` does): then they fail instead.

Test images are built ``FROM scratch`` from ``fixtures/images/<name>/Dockerfile`` plus a static
busybox binary that is copied into the build context as ``busybox``, so no registry is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NoReturn

import docker
import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
IMAGES_DIR = REPO_ROOT / "fixtures" / "images"
TAG_PREFIX = "slimscope-test"
REQUIRE_ENV = "SLIMSCOPE_REQUIRE_ENGINE"
BUSYBOX_ENV = "SLIMSCOPE_BUSYBOX"

Compression = Literal["gzip", "zstd"]
LAYER_MEDIA_TYPES: dict[str, str] = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def engine_required() -> bool:
    """Return True when missing engine tooling must fail the run instead of skipping."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the test because of ``reason``, or fail it when the engine is required."""
    if engine_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder with ``engine``."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.engine)


def _is_static_elf(path: Path) -> bool:
    """Return True if ``path`` is an ELF file without a program interpreter (statically linked)."""
    with path.open("rb") as f:
        ident = f.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF":
            return False
        is64, endian = ident[4] == 2, "<" if ident[5] == 1 else ">"
        if is64:
            (phoff,) = struct.unpack_from(endian + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", ident, 54)
        else:
            (phoff,) = struct.unpack_from(endian + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(endian + "HH", ident, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    return all(struct.unpack_from(endian + "I", table, i * phentsize)[0] != pt_interp for i in range(phnum))


def find_busybox() -> Path:
    """Locate a statically linked busybox (Debian's busybox-static installs /bin/busybox)."""
    candidates = [os.environ.get(BUSYBOX_ENV), "/bin/busybox", shutil.which("busybox")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            path = Path(candidate).resolve()
            if not _is_static_elf(path):
                unavailable(f"{path} is not a statically linked busybox (install busybox-static)")
            return path
    unavailable("no busybox binary found (install the Debian package busybox-static)")


def _run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command without stdin, capturing text output."""
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout, check=False
    )


def _require_ok(proc: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail the test with the command's output if it did not succeed."""
    if proc.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {proc.returncode}): {' '.join(proc.args)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def busybox_binary() -> Path:
    """The static busybox binary that is copied into every build context."""
    return find_busybox()


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A docker SDK client for a reachable engine (DOCKER_HOST etc. are honoured)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    client: docker.DockerClient | None = None
    error = ""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests or OS errors
        error = f"{type(exc).__name__}: {exc}"
    if client is None or error:
        unavailable(f"no Docker engine reachable at {host}: {error}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def build_context(tmp_path_factory: pytest.TempPathFactory, busybox_binary: Path) -> Callable[[str], Path]:
    """Factory: a fresh build context with fixtures/images/<name> and ./busybox."""

    def make(name: str) -> Path:
        src = IMAGES_DIR / name
        if not (src / "Dockerfile").is_file():
            raise ValueError(f"no fixture image {name!r}: {src}/Dockerfile missing")
        ctx = tmp_path_factory.mktemp(f"ctx-{name}") / name
        shutil.copytree(src, ctx)
        shutil.copy2(busybox_binary, ctx / "busybox")
        (ctx / "busybox").chmod(0o755)
        return ctx

    return make


@pytest.fixture(scope="session")
def build_fixture_image(
    docker_client: docker.DockerClient, build_context: Callable[[str], Path]
) -> Callable[[str], str]:
    """Factory: build fixtures/images/<name> with the SDK (classic builder); returns the tag."""
    built: dict[str, str] = {}

    def build(name: str) -> str:
        if name in built:
            return built[name]
        ctx = build_context(name)
        tag = f"{TAG_PREFIX}/{name}:latest"
        log: list[str] = []
        stream = docker_client.api.build(
            path=str(ctx), tag=tag, rm=True, forcerm=True, network_mode="host", pull=False, decode=True
        )
        for chunk in stream:
            if "stream" in chunk:
                log.append(chunk["stream"])
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("error") or chunk["errorDetail"].get("message", "")
                pytest.fail(f"building {tag} failed: {detail}\n{''.join(log)[-4000:]}", pytrace=False)
        docker_client.images.get(tag)  # raises ImageNotFound if the build silently produced nothing
        built[name] = tag
        return tag

    return build


def _cli_major(cli: str) -> int | None:
    """Return the major version of a docker CLI binary, or None if it cannot be run."""
    try:
        proc = _run([cli, "--version"], timeout=30)
    except OSError:
        return None
    match = re.search(r"version (\d+)\.", proc.stdout)
    return int(match.group(1)) if proc.returncode == 0 and match else None


def find_buildkit_cli() -> tuple[str, bool]:
    """Find a docker CLI that builds with BuildKit: (path, uses_buildx).

    Prefer ``docker buildx``; otherwise a CLI older than 23.0, whose ``DOCKER_BUILDKIT=1 docker build``
    still has a built-in BuildKit client (newer CLIs need the buildx plugin for that).
    """
    clis: list[str] = []
    for cli in (shutil.which("docker"), "/usr/bin/docker"):
        if cli and Path(cli).is_file() and os.path.realpath(cli) not in map(os.path.realpath, clis):
            clis.append(cli)
    for cli in clis:
        if _run([cli, "buildx", "version"], timeout=60).returncode == 0:
            return cli, True
    for cli in clis:
        major = _cli_major(cli)
        if major is not None and major < 23:
            return cli, False
    unavailable(f"no BuildKit-capable docker CLI: no 'docker buildx' and no CLI older than 23.0 among {clis}")


@pytest.fixture(scope="session")
def buildkit_image(
    docker_client: docker.DockerClient, build_context: Callable[[str], Path]
) -> Callable[[str], str]:
    """Factory: build fixtures/images/<name> with BuildKit via the docker CLI; returns the tag."""
    built: dict[str, str] = {}

    def build(name: str) -> str:
        if name in built:
            return built[name]
        cli, buildx = find_buildkit_cli()
        ctx = build_context(name)
        tag = f"{TAG_PREFIX}/{name}:buildkit"
        env = dict(os.environ, DOCKER_BUILDKIT="1")
        common = ["--network=host", "--progress=plain", "-t", tag, str(ctx)]
        cmd = [cli, "buildx", "build", "--load", *common] if buildx else [cli, "build", *common]
        _require_ok(_run(cmd, env=env), f"BuildKit build of {tag}")
        docker_client.images.get(tag)
        built[name] = tag
        return tag

    return build


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session temp folder for saved archives and OCI layouts."""
    return tmp_path_factory.mktemp("image-artifacts")


def _oci_ref(tag: str) -> str:
    """The OCI ref name for a tag: its tag part (skopeo's OCI refs may not contain '/')."""
    return tag.rsplit(":", 1)[-1] if ":" in tag.rsplit("/", 1)[-1] else "latest"


def _safe(tag: str) -> str:
    """A file-name-safe form of an image tag."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tag)


@pytest.fixture(scope="session")
def saved_archive(docker_client: docker.DockerClient, artifacts_dir: Path) -> Callable[[str], Path]:
    """Factory: ``docker save`` of an image tag (via the SDK) written to a file; cached per tag."""
    saved: dict[str, Path] = {}

    def save(tag: str) -> Path:
        if tag not in saved:
            path = artifacts_dir / f"{_safe(tag)}.docker.tar"
            with path.open("wb") as f:
                for chunk in docker_client.images.get(tag).save(named=tag):
                    f.write(chunk)
            saved[tag] = path
        return saved[tag]

    return save


def find_skopeo() -> str:
    """Path of the skopeo binary, or skip/fail when it is missing."""
    skopeo = shutil.which("skopeo")
    if not skopeo:
        unavailable("skopeo not found (install the Debian package skopeo)")
    return skopeo


def _skopeo_copy(archive: Path, dest: str, compression: Compression) -> None:
    """Copy a docker-archive file to an OCI destination with the given layer compression."""
    if compression not in LAYER_MEDIA_TYPES:
        raise ValueError(f"unsupported compression {compression!r}")
    cmd = [find_skopeo(), "--insecure-policy", "copy", "--quiet", "--dest-compress-format", compression]
    cmd += [f"docker-archive:{archive}", dest]
    _require_ok(_run(cmd), "skopeo copy")


def _oci_manifest(read: Callable[[str], bytes]) -> dict[str, Any]:
    """Load the single image manifest of an OCI layout given a reader of layout-relative paths."""
    index = json.loads(read("index.json"))
    (descriptor,) = index["manifests"]
    algo, digest = descriptor["digest"].split(":", 1)
    return json.loads(read(f"blobs/{algo}/{digest}"))


def _check_layer_media_types(manifest: dict[str, Any], compression: Compression, where: str) -> None:
    """Fail unless every layer in ``manifest`` has the media type for ``compression``."""
    types = {layer["mediaType"] for layer in manifest["layers"]}
    if types != {LAYER_MEDIA_TYPES[compression]}:
        pytest.fail(f"{where}: expected only {LAYER_MEDIA_TYPES[compression]} layers, got {types}")


def read_oci_archive_member(archive: Path, name: str) -> bytes:
    """Read one file (layout-relative path) from an oci-archive tar."""
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.removeprefix("./") == name:
                data = tar.extractfile(member)
                assert data is not None
                return data.read()
    raise KeyError(f"{name} not in {archive}")


@pytest.fixture(scope="session")
def oci_archive(
    saved_archive: Callable[[str], Path], artifacts_dir: Path
) -> Callable[[str, Compression], Path]:
    """Factory: an ``oci-archive`` tar of an image tag made by skopeo with gzip or zstd layers."""
    made: dict[tuple[str, str], Path] = {}

    def make(tag: str, compression: Compression = "gzip") -> Path:
        key = (tag, compression)
        if key not in made:
            path = artifacts_dir / f"{_safe(tag)}.oci-{compression}.tar"
            path.unlink(missing_ok=True)
            _skopeo_copy(saved_archive(tag), f"oci-archive:{path}:{_oci_ref(tag)}", compression)
            manifest = _oci_manifest(lambda name: read_oci_archive_member(path, name))
            _check_layer_media_types(manifest, compression, str(path))
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def oci_dir(saved_archive: Callable[[str], Path], artifacts_dir: Path) -> Callable[[str, Compression], Path]:
    """Factory: an ``oci:`` layout directory of an image tag made by skopeo."""
    made: dict[tuple[str, str], Path] = {}

    def make(tag: str, compression: Compression = "gzip") -> Path:
        key = (tag, compression)
        if key not in made:
            path = artifacts_dir / f"{_safe(tag)}.oci-{compression}"
            shutil.rmtree(path, ignore_errors=True)
            _skopeo_copy(saved_archive(tag), f"oci:{path}:{_oci_ref(tag)}", compression)
            manifest = _oci_manifest(lambda name: (path / name).read_bytes())
            _check_layer_media_types(manifest, compression, str(path))
            made[key] = path
        return made[key]

    return make


# --- Debian base and pyapp images (tests/engine/debian.py) -------------------------------------------


@pytest.fixture(scope="session")
def debian_base(docker_client: docker.DockerClient) -> str:
    """Tag of the debootstrapped ``slimscope-test/debian:bookworm`` base (fixtures/debian/make-base.sh)."""
    from debian import BASE_TAG, FixtureError, FixtureUnavailable, ensure_base_image

    try:
        ensure_base_image(docker_client)
    except FixtureUnavailable as exc:
        unavailable(str(exc))
    except FixtureError as exc:
        pytest.fail(str(exc), pytrace=False)
    return BASE_TAG


@pytest.fixture(scope="session")
def pyapp_images(
    docker_client: docker.DockerClient, debian_base: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """``{"naive": tag, "multistage": tag}`` of fixtures/apps/pyapp, rebuilt only when its inputs changed."""
    from debian import FixtureError, FixtureUnavailable, ensure_pyapp_images

    base_id = str(docker_client.images.get(debian_base).id)
    try:
        return ensure_pyapp_images(docker_client, base_id, tmp_path_factory.mktemp("ctx-pyapp"))
    except FixtureUnavailable as exc:
        unavailable(str(exc))
    except FixtureError as exc:
        pytest.fail(str(exc), pytrace=False)


# --- App images: Python, Go, Node/TypeScript, Java (tests/engine/apps.py) ----------------------------


@pytest.fixture(scope="session")
def app_images(
    docker_client: docker.DockerClient,
    debian_base: str,
    pyapp_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """``{"python"|"go"|"node"|"java": apps.AppImage}``: naive and multi-stage images, contexts, smoke."""
    from apps import FixtureError, FixtureUnavailable, ensure_app_images

    base_id = str(docker_client.images.get(debian_base).id)
    try:
        return ensure_app_images(docker_client, base_id, tmp_path_factory.mktemp("ctx-apps"), pyapp_images)
    except FixtureUnavailable as exc:
        unavailable(str(exc))
    except FixtureError as exc:
        pytest.fail(str(exc), pytrace=False)
