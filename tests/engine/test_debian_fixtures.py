"""Prove the Debian fixture images hold what slimscope's findings tests expect (docker SDK + tarfile only)."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from debian import BASE_TAG, HASH_LABEL, PYAPP_TAGS, Entry, ensure_pyapp_images, merged_filesystem, under

# Debian architecture -> (GNU triplet, wheel platform tag); the images are built for the engine's own.
ARCHES: dict[str, tuple[str, str]] = {
    "amd64": ("x86_64-linux-gnu", "linux_x86_64"),
    "arm64": ("aarch64-linux-gnu", "linux_aarch64"),
}
APT_LISTS = "var/lib/apt/lists"
APT_ARCHIVES = "var/cache/apt/archives"
PIP_CACHE = "root/.cache/pip"
CMD = ["python3", "/app/app/main.py"]

Filesystem = dict[str, Entry]


@pytest.fixture(scope="session")
def image_fs(saved_archive: Callable[[str], Path]) -> Callable[[str], Filesystem]:
    """Factory: the merged filesystem (whiteouts applied) of an image tag, from its ``docker save``."""
    cache: dict[str, Filesystem] = {}

    def get(tag: str) -> Filesystem:
        if tag not in cache:
            cache[tag] = merged_filesystem(saved_archive(tag))
        return cache[tag]

    return get


@pytest.fixture(scope="session")
def arch(docker_client: docker.DockerClient, debian_base: str) -> tuple[str, str, str]:
    """(Debian architecture, GNU triplet, wheel platform tag) of the base image."""
    debian_arch = docker_client.images.get(debian_base).attrs["Architecture"]
    if debian_arch not in ARCHES:
        pytest.skip(f"no expected paths for architecture {debian_arch}")
    return (debian_arch, *ARCHES[debian_arch])


def regular(fs: Filesystem, path: str) -> Entry:
    """The entry at ``path``, asserting that it is a non-empty regular file."""
    entry = fs.get(path)
    assert entry is not None, f"{path} missing"
    assert entry.is_file and entry.size > 0, f"{path} is not a non-empty regular file: {entry}"
    return entry


def symlink(fs: Filesystem, path: str, target: str) -> None:
    """Assert that ``path`` is a symlink to ``target``."""
    entry = fs.get(path)
    assert entry is not None, f"{path} missing"
    assert (entry.type, entry.linkname) == (tarfile.SYMTYPE, target), f"{path}: {entry}"


def speedups_so(triplet: str) -> str:
    """File name of MarkupSafe's compiled extension for CPython 3.11."""
    return f"markupsafe/_speedups.cpython-311-{triplet}.so"


def test_debian_base(docker_client: docker.DockerClient, debian_base: str, image_fs, arch):
    assert debian_base == BASE_TAG == "slimscope-test/debian:bookworm"
    attrs = docker_client.images.get(debian_base).attrs
    assert attrs["Config"]["Cmd"] == ["bash"]
    assert attrs["Config"]["Labels"]["org.slimscope.fixture.debian-base.version"] == "1"
    assert len(attrs["RootFS"]["Layers"]) == 1
    fs = image_fs(debian_base)
    regular(fs, "usr/bin/bash")
    regular(fs, "usr/bin/apt-get")
    symlink(fs, "bin", "usr/bin")
    regular(fs, "etc/debian_version")
    assert under(fs, APT_LISTS) == []
    assert [p for p in under(fs, APT_ARCHIVES) if p.endswith(".deb")] == []
    assert under(fs, "dev") == []
    assert not any(p.startswith(("usr/lib/gcc/", "usr/include/python3")) for p in fs)


def test_naive_contents(docker_client: docker.DockerClient, pyapp_images: dict[str, str], image_fs, arch):
    debian_arch, triplet, platform = arch
    tag = pyapp_images["naive"]
    assert tag == "slimscope-test/pyapp:naive"
    fs = image_fs(tag)
    # The compiler: gcc-12 and its driver links, the real binary, cc1, the assembler and linker.
    symlink(fs, "usr/bin/gcc", "gcc-12")
    symlink(fs, "usr/bin/gcc-12", f"{triplet}-gcc-12")
    regular(fs, f"usr/bin/{triplet}-gcc-12")
    regular(fs, f"usr/lib/gcc/{triplet}/12/cc1")
    regular(fs, f"usr/bin/{triplet}-as")
    regular(fs, f"usr/bin/{triplet}-ld.bfd")
    # Headers.
    regular(fs, "usr/include/python3.11/Python.h")
    regular(fs, "usr/include/stdio.h")
    # apt's package lists and downloaded archives, kept.
    regular(fs, f"{APT_LISTS}/deb.debian.org_debian_dists_bookworm_InRelease")
    regular(fs, f"{APT_LISTS}/deb.debian.org_debian_dists_bookworm_main_binary-{debian_arch}_Packages")
    debs = [p.rsplit("/", 1)[1] for p in under(fs, APT_ARCHIVES) if p.endswith(".deb")]
    assert any(d.startswith("gcc-12_") and d.endswith(f"_{debian_arch}.deb") for d in debs), debs
    assert any(d.startswith("python3.11-dev_") for d in debs), debs
    regular(fs, "var/cache/apt/pkgcache.bin")
    # pip's wheel cache holds the wheel built from the sdist.
    cached = [p.rsplit("/", 1)[1] for p in under(fs, f"{PIP_CACHE}/wheels")]
    assert f"MarkupSafe-3.0.2-cp311-cp311-{platform}.whl" in cached
    # The whole build context under /app.
    for path in ("HEAD", "config", "index", "refs/heads/main"):
        regular(fs, f"app/.git/{path}")
    regular(fs, "app/tests/test_pages.py")
    regular(fs, "app/.env")
    regular(fs, "app/Dockerfile")
    regular(fs, "app/Dockerfile.naive")
    regular(fs, "app/wheels/markupsafe-3.0.2.tar.gz")
    regular(fs, "app/app/main.py")
    # The compiled extension, installed system-wide.
    regular(fs, f"usr/local/lib/python3.11/dist-packages/{speedups_so(triplet)}")
    config = docker_client.images.get(tag).attrs["Config"]
    assert config["Cmd"] == CMD
    assert len(config["Labels"][HASH_LABEL]) == 64


def test_multistage_contents(
    docker_client: docker.DockerClient, pyapp_images: dict[str, str], image_fs, arch
):
    _, triplet, _ = arch
    tag = pyapp_images["multistage"]
    assert tag == "slimscope-test/pyapp:multistage"
    fs = image_fs(tag)
    regular(fs, f"opt/venv/lib/python3.11/site-packages/{speedups_so(triplet)}")
    regular(fs, "app/app/main.py")
    regular(fs, "usr/bin/python3.11")
    assert sorted(p for p in fs if p.startswith("app/")) == [
        "app/app",
        "app/app/__init__.py",
        "app/app/main.py",
        "app/app/pages.py",
    ]
    absent = [
        "usr/bin/gcc",
        "usr/bin/gcc-12",
        f"usr/bin/{triplet}-gcc-12",
        f"usr/lib/gcc/{triplet}/12/cc1",
        "usr/include/python3.11/Python.h",
        "root/.cache/pip",
        "app/.git",
        "app/tests",
        "app/.env",
        "app/Dockerfile",
    ]
    assert [p for p in absent if p in fs] == []
    assert not any(p.startswith(("usr/lib/gcc/", "usr/include/", "root/.cache/", "app/.git/")) for p in fs)
    assert under(fs, APT_LISTS) == []
    assert [p for p in under(fs, APT_ARCHIVES) if p.endswith(".deb")] == []
    config = docker_client.images.get(tag).attrs["Config"]
    assert config["Cmd"] == CMD
    assert "PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in config["Env"]


@pytest.mark.parametrize(
    ("variant", "site"),
    [
        ("naive", "/usr/local/lib/python3.11/dist-packages"),
        ("multistage", "/opt/venv/lib/python3.11/site-packages"),
    ],
)
def test_selftest(docker_client: docker.DockerClient, pyapp_images: dict[str, str], arch, variant, site):
    out = docker_client.containers.run(
        pyapp_images[variant], [*CMD, "--selftest"], network_mode="host", remove=True
    )  # raises ContainerError unless the exit status is 0
    assert out.decode().strip() == f"selftest ok: {site}/{speedups_so(arch[1])}"


def test_images_are_reused(
    docker_client: docker.DockerClient, pyapp_images: dict[str, str], debian_base, tmp_path
):
    ids = {v: docker_client.images.get(t).id for v, t in pyapp_images.items()}
    base_id = docker_client.images.get(debian_base).id
    assert ensure_pyapp_images(docker_client, base_id, tmp_path) == PYAPP_TAGS
    assert {v: docker_client.images.get(t).id for v, t in pyapp_images.items()} == ids
    assert list(tmp_path.iterdir()) == []  # no build context was even prepared
