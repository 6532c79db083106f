"""Prove the app fixture images work and differ where they should: toolchain in naive, not in multi-stage."""

from __future__ import annotations

import docker
import pytest
from apps import APPS, PYTHON_APP, AppImage
from docker.models.containers import Container

NAMES = [PYTHON_APP.name, *(spec.name for spec in APPS)]
VARIANTS = ["naive", "multistage"]
# Go's os.FileMode bits, as the engine reports them in a path stat.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_TYPE = GO_MODE_DIR | GO_MODE_SYMLINK | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)

# Debian architecture -> (GNU triplet, GOARCH); the images are built for the engine's own architecture.
ARCHES: dict[str, tuple[str, str]] = {
    "amd64": ("x86_64-linux-gnu", "amd64"),
    "arm64": ("aarch64-linux-gnu", "arm64"),
}

# Regular files (``{arch}``, ``{triplet}`` and ``{goarch}`` filled in) only the naive image may hold.
TOOLCHAIN: dict[str, list[str]] = {
    "python": [
        "usr/bin/{triplet}-gcc-12",
        "usr/lib/gcc/{triplet}/12/cc1",
        "usr/include/python3.11/Python.h",
    ],
    "go": [
        "usr/lib/go-1.19/bin/go",
        "usr/lib/go-1.19/pkg/tool/linux_{goarch}/compile",
        "usr/lib/go-1.19/pkg/tool/linux_{goarch}/link",
        "usr/share/go-1.19/src/net/http/server.go",
        "root/.cache/go-build/README",
    ],
    "node": [
        "app/node_modules/typescript/lib/tsc.js",
        "app/node_modules/typescript/package.json",
        "app/node_modules/@types/node/package.json",
        "usr/share/nodejs/npm/bin/npm-cli.js",
        "app/src/index.ts",
    ],
    "java": [
        "usr/lib/jvm/java-17-openjdk-{arch}/bin/javac",
        "usr/lib/jvm/java-17-openjdk-{arch}/bin/jar",
        "usr/lib/jvm/java-17-openjdk-{arch}/jmods/java.base.jmod",
    ],
}

# Regular files both images hold: the app itself and what runs it.
RUNTIME: dict[str, list[str]] = {
    "python": ["usr/bin/python3.11", "app/app/main.py"],
    "go": ["app/server"],
    "node": ["usr/bin/node", "app/dist/index.js", "app/node_modules/ms/index.js"],
    "java": ["usr/lib/jvm/java-17-openjdk-{arch}/bin/java", "app/app.jar"],
}

# Leftovers of the naive build context that the multi-stage images leave out.
CONTEXT_LEFTOVERS: dict[str, list[str]] = {
    "python": ["app/.git/HEAD", "app/Dockerfile"],
    "go": ["app/.git/HEAD", "app/Dockerfile", "app/main_test.go", "app/main.go"],
    "node": ["app/.git/HEAD", "app/Dockerfile", "app/package-lock.json", "app/tsconfig.json"],
    "java": ["app/.git/HEAD", "app/Dockerfile", "app/src/org/slimscope/javaapp/Main.java"],
}


@pytest.fixture(scope="session")
def arch_vars(docker_client: docker.DockerClient, debian_base: str) -> dict[str, str]:
    """Placeholders for the architecture-specific paths above."""
    arch = docker_client.images.get(debian_base).attrs["Architecture"]
    if arch not in ARCHES:
        pytest.skip(f"no expected paths for architecture {arch}")
    triplet, goarch = ARCHES[arch]
    return {"arch": arch, "triplet": triplet, "goarch": goarch}


def file_kind(container: Container, path: str) -> str | None:
    """``"file"``, ``"dir"``, ``"link"`` or ``"other"`` for ``/path`` in ``container``; None if absent."""
    try:
        stream, stat = container.get_archive(f"/{path}")
    except docker.errors.NotFound:
        return None
    for _ in stream:  # drain the response
        pass
    mode = int(stat["mode"])
    if mode & GO_MODE_SYMLINK:
        return "link"
    if mode & GO_MODE_DIR:
        return "dir"
    return "other" if mode & GO_MODE_TYPE else "file"


def kinds(
    client: docker.DockerClient, tag: str, paths: list[str], arch_vars: dict[str, str]
) -> dict[str, str | None]:
    """``file_kind`` of each path (placeholders filled in) in a created, never started ``tag`` container."""
    container = client.containers.create(tag)
    try:
        return {p: file_kind(container, p.format(**arch_vars)) for p in paths}
    finally:
        container.remove(force=True)


def test_app_images_contract(app_images: dict[str, AppImage]):
    assert sorted(app_images) == sorted(NAMES)
    for name, app in app_images.items():
        assert app.name == name
        assert app.naive.endswith(":naive") and app.multistage.endswith(":multistage")
        assert app.naive.startswith("slimscope-test/") and app.multistage.startswith("slimscope-test/")
        assert app.naive_dockerfile.is_file() and app.naive_dockerfile.parent == app.context
        assert app.multistage_dockerfile.is_file() and app.multistage_dockerfile.parent == app.context
        assert (app.context / "Dockerfile").read_bytes() == app.naive_dockerfile.read_bytes()
        assert (app.context / ".git" / "HEAD").is_file()
        assert app.smoke and all(isinstance(a, str) for a in app.smoke)
        assert app.expected_output and "\n" not in app.expected_output
    assert (app_images["node"].context / "node_modules" / "typescript" / "package.json").is_file()
    assert (app_images["python"].context / "wheels").is_dir()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_smoke(docker_client: docker.DockerClient, app_images: dict[str, AppImage], name: str, variant: str):
    app = app_images[name]
    tag = getattr(app, variant)
    out = docker_client.containers.run(
        tag, app.smoke, network_mode="host", remove=True, stdout=True, stderr=False
    )
    assert out.decode() == f"{app.expected_output}\n", f"{tag}: {app.smoke}"


@pytest.mark.parametrize("name", NAMES)
def test_toolchain_only_in_naive(
    docker_client: docker.DockerClient, app_images: dict[str, AppImage], arch_vars: dict[str, str], name: str
):
    app = app_images[name]
    paths = TOOLCHAIN[name] + CONTEXT_LEFTOVERS[name]
    naive = kinds(docker_client, app.naive, paths, arch_vars)
    assert naive == dict.fromkeys(paths, "file"), app.naive
    multistage = kinds(docker_client, app.multistage, paths, arch_vars)
    assert multistage == dict.fromkeys(paths, None), app.multistage


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", NAMES)
def test_runtime_in_both(
    docker_client: docker.DockerClient,
    app_images: dict[str, AppImage],
    arch_vars: dict[str, str],
    name: str,
    variant: str,
):
    tag = getattr(app_images[name], variant)
    assert kinds(docker_client, tag, RUNTIME[name], arch_vars) == dict.fromkeys(RUNTIME[name], "file"), tag


def test_multistage_is_smaller(docker_client: docker.DockerClient, app_images: dict[str, AppImage]):
    for app in app_images.values():
        naive = docker_client.images.get(app.naive).attrs["Size"]
        multistage = docker_client.images.get(app.multistage).attrs["Size"]
        assert multistage < naive / 2, f"{app.name}: {multistage} vs {naive}"
    go = docker_client.images.get(app_images["go"].multistage).attrs
    assert len(go["RootFS"]["Layers"]) == 1, "the Go runtime stage is FROM scratch with one COPY"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", [spec.name for spec in APPS])
def test_smoke_is_cmd_plus_selftest(
    docker_client: docker.DockerClient, app_images: dict[str, AppImage], name: str, variant: str
):
    app = app_images[name]
    cmd = docker_client.images.get(getattr(app, variant)).attrs["Config"]["Cmd"]
    assert [*cmd, "--selftest"] == app.smoke
