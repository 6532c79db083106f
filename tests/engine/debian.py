"""Real Debian test images for slimscope's findings tests, built without a registry.

* ``slimscope-test/debian:bookworm``: debootstrap minbase, imported by ``fixtures/debian/make-base.sh``.
* ``slimscope-test/pyapp:naive`` / ``slimscope-test/pyapp:multistage``: ``fixtures/apps/pyapp`` built with
  its two Dockerfiles on that base. The build context is prepared in a temp folder: the fixture folder,
  ``Dockerfile`` (a copy of ``Dockerfile.naive``), ``wheels/`` with the MarkupSafe sdist (compiled in the
  image) and the setuptools wheel it builds with, and a small real ``.git`` repository.

Images carry a content-hash label (Dockerfile, fixture files, downloads, base image id), so a later test
session reuses them when nothing changed. Downloads and the base rootfs are cached in
``$SLIMSCOPE_FIXTURE_CACHE`` (default ``/var/cache/slimscope-fixtures`` when writable, else
``~/.cache/slimscope-fixtures``). Failures raise :class:`FixtureUnavailable` (a prerequisite is missing:
the caller skips or fails) or :class:`FixtureError` (a build broke).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import docker

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
MAKE_BASE = REPO_ROOT / "fixtures" / "debian" / "make-base.sh"
PYAPP_DIR = REPO_ROOT / "fixtures" / "apps" / "pyapp"
CACHE_ENV = "SLIMSCOPE_FIXTURE_CACHE"
SYSTEM_CACHE = Path("/var/cache/slimscope-fixtures")

BASE_TAG = "slimscope-test/debian:bookworm"
PYAPP_TAGS: dict[str, str] = {
    "naive": "slimscope-test/pyapp:naive",
    "multistage": "slimscope-test/pyapp:multistage",
}
DOCKERFILES: dict[str, str] = {"naive": "Dockerfile.naive", "multistage": "Dockerfile.multistage"}
HASH_LABEL = "org.slimscope.fixture.hash"
FIXTURE_LABEL = "org.slimscope.fixture"
BUILD_RECIPE_VERSION = "1"  # bump when the context preparation below changes what ends up in the images

# Files put into the context's wheels/ folder: (pip requirement, file name, sha256, sdist?).
DOWNLOADS: tuple[tuple[str, str, str, bool], ...] = (
    (
        "markupsafe==3.0.2",
        "markupsafe-3.0.2.tar.gz",
        "ee55d3edf80167e48ea11a923c7386f4669df67d7994554387f84e7d8b0a2bf0",
        True,
    ),
    (
        "setuptools==75.8.0",
        "setuptools-75.8.0-py3-none-any.whl",
        "e3982f444617239225d675215d51f6ba05f845d4eec313da4418fdbb56fb27e3",
        False,
    ),
)
IGNORED_NAMES = {"__pycache__", ".pytest_cache", ".ruff_cache"}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Pyapp Developer",
    "GIT_AUTHOR_EMAIL": "dev@pyapp.invalid",
    "GIT_COMMITTER_NAME": "Pyapp Developer",
    "GIT_COMMITTER_EMAIL": "dev@pyapp.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


class FixtureUnavailable(Exception):
    """A prerequisite (tool, network, engine) for building a fixture image is missing."""


class FixtureError(Exception):
    """Building a fixture image failed."""


def cache_dir() -> Path:
    """The folder for the base rootfs tarball and downloaded packages (created if needed)."""
    configured = os.environ.get(CACHE_ENV)
    candidates = (
        [Path(configured)] if configured else [SYSTEM_CACHE, Path.home() / ".cache" / "slimscope-fixtures"]
    )
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    raise FixtureUnavailable(f"no writable fixture cache folder among {[str(p) for p in candidates]}")


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock file in the cache folder (serialises parallel test sessions)."""
    with (cache_dir() / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command without stdin, capturing text output."""
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=1800,
        check=False,
    )


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    """The end of a finished command's output, for error messages."""
    return f"{' '.join(proc.args)} (exit {proc.returncode})\n{(proc.stdout + proc.stderr)[-3000:]}"


def ensure_base_image(client: docker.DockerClient) -> str:
    """Build or reuse ``slimscope-test/debian:bookworm`` via make-base.sh; return its image id."""
    env = dict(os.environ, SLIMSCOPE_DEBIAN_TAG=BASE_TAG, **{CACHE_ENV: str(cache_dir())})
    proc = _run(["bash", str(MAKE_BASE)], env=env)
    if proc.returncode in (3, 4):
        raise FixtureUnavailable(f"cannot build {BASE_TAG}: {proc.stderr.strip().splitlines()[-1:]}")
    if proc.returncode != 0:
        raise FixtureError(f"make-base.sh failed: {_tail(proc)}")
    return str(client.images.get(BASE_TAG).id)


def _sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_packages() -> list[Path]:
    """The sdist and build wheel for wheels/, downloaded from PyPI on the host once and then cached."""
    folder = cache_dir() / "pypi"
    folder.mkdir(exist_ok=True)
    paths = []
    with locked("pypi"):
        for requirement, filename, sha256, sdist in DOWNLOADS:
            path = folder / filename
            if not path.is_file() or _sha256(path) != sha256:
                path.unlink(missing_ok=True)
                binary = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
                cmd = [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--disable-pip-version-check",
                    "--no-deps",
                ]
                proc = _run([*cmd, *binary, "-d", str(folder), requirement])
                if proc.returncode != 0 or not path.is_file():
                    raise FixtureUnavailable(f"cannot download {requirement} from PyPI: {_tail(proc)}")
                if _sha256(path) != sha256:
                    path.unlink()
                    raise FixtureError(f"{filename} does not have the pinned sha256 {sha256}")
            paths.append(path)
    return paths


def _fixture_files() -> list[Path]:
    """The files of fixtures/apps/pyapp, sorted, without caches left by local runs."""
    files = [
        p
        for p in PYAPP_DIR.rglob("*")
        if p.is_file() and not IGNORED_NAMES.intersection(p.relative_to(PYAPP_DIR).parts)
    ]
    return sorted(files)


def content_hash(variant: str, base_id: str, downloads: list[Path]) -> str:
    """Hash of everything a pyapp image is built from: recipe, Dockerfile, context files, base image."""
    digest = hashlib.sha256()
    digest.update(
        f"recipe {BUILD_RECIPE_VERSION}\ndockerfile {DOCKERFILES[variant]}\nbase {base_id}\n".encode()
    )
    for path in _fixture_files():
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(
            f"file {path.relative_to(PYAPP_DIR).as_posix()} {executable} {_sha256(path)}\n".encode()
        )
    for path in downloads:
        digest.update(f"wheels/{path.name} {_sha256(path)}\n".encode())
    return digest.hexdigest()


def _git(ctx: Path, *args: str) -> None:
    """Run git in the build context with a fixed identity; FixtureError if it fails."""
    proc = _run(["git", *args], env=dict(os.environ, **GIT_ENV), cwd=ctx)
    if proc.returncode != 0:
        raise FixtureError(f"git failed: {_tail(proc)}")


def prepare_context(dest: Path, downloads: list[Path]) -> Path:
    """Build context for both Dockerfiles in ``dest``: fixture files, Dockerfile copy, wheels/, .git."""
    if shutil.which("git") is None:
        raise FixtureUnavailable("git not found (needed to create the fixture app's .git folder)")
    ctx = dest / "pyapp"
    shutil.copytree(PYAPP_DIR, ctx, ignore=shutil.ignore_patterns(*IGNORED_NAMES))
    shutil.copy2(ctx / DOCKERFILES["naive"], ctx / "Dockerfile")
    (ctx / "wheels").mkdir()
    for path in downloads:
        shutil.copy2(path, ctx / "wheels" / path.name)
    _git(ctx, "init", "-q", "-b", "main")
    _git(ctx, "add", "app", "requirements.txt")
    _git(ctx, "commit", "-q", "-m", "pyapp: greeting server", "--date", "2024-01-01T12:00:00Z")
    _git(ctx, "add", "tests", "Dockerfile", *DOCKERFILES.values())
    _git(ctx, "commit", "-q", "-m", "pyapp: tests and Dockerfiles", "--date", "2024-01-02T12:00:00Z")
    return ctx


def build_image(
    client: docker.DockerClient, ctx: Path, dockerfile: str, tag: str, labels: dict[str, str]
) -> str:
    """Build with the classic builder through the SDK (host network, no pull); return the image id."""
    log: list[str] = []
    stream = client.api.build(
        path=str(ctx),
        dockerfile=dockerfile,
        tag=tag,
        labels=labels,
        rm=True,
        forcerm=True,
        network_mode="host",
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "stream" in chunk:
            log.append(chunk["stream"])
        if "error" in chunk or "errorDetail" in chunk:
            detail = chunk.get("error") or chunk["errorDetail"].get("message", "")
            raise FixtureError(f"building {tag} failed: {detail}\n{''.join(log)[-4000:]}")
    return str(client.images.get(tag).id)


def _label(client: docker.DockerClient, tag: str, key: str) -> str | None:
    """A label of a local image, or None when the image or label is missing."""
    try:
        return (client.images.get(tag).labels or {}).get(key)
    except docker.errors.ImageNotFound:
        return None


def ensure_pyapp_images(client: docker.DockerClient, base_id: str, workdir: Path) -> dict[str, str]:
    """Build (or reuse, when the content-hash label matches) both pyapp images; return variant -> tag."""
    downloads = download_packages()
    with locked("pyapp"):
        ctx: Path | None = None
        for variant, tag in PYAPP_TAGS.items():
            wanted = content_hash(variant, base_id, downloads)
            if _label(client, tag, HASH_LABEL) == wanted:
                continue
            if ctx is None:
                ctx = prepare_context(workdir, downloads)
            labels = {HASH_LABEL: wanted, FIXTURE_LABEL: f"pyapp-{variant}"}
            build_image(client, ctx, DOCKERFILES[variant], tag, labels)
    return dict(PYAPP_TAGS)


@dataclass(frozen=True)
class Entry:
    """One path of an image's merged filesystem."""

    type: bytes  # a tarfile type constant (REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, ...)
    size: int
    mode: int
    linkname: str

    @property
    def is_file(self) -> bool:
        """True for regular files (hard links included: their size is counted at the link target)."""
        return self.type in (tarfile.REGTYPE, tarfile.AREGTYPE)


def _norm(name: str) -> str:
    """A tar member name as a relative POSIX path without ``./`` or trailing slash."""
    return str(PurePosixPath("/", name)).lstrip("/")


def merged_filesystem(saved: Path) -> dict[str, Entry]:
    """The final filesystem of a ``docker save`` archive: every layer applied in order, whiteouts included."""
    files: dict[str, Entry] = {}
    with tarfile.open(saved) as outer:
        manifest = outer.extractfile("manifest.json")
        assert manifest is not None
        (entry,) = json.load(manifest)
        for layer_path in entry["Layers"]:
            blob = outer.extractfile(layer_path)
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r:*", encoding="utf-8", errors="surrogateescape") as layer:
                members = layer.getmembers()
            removed: list[str] = []
            opaque: list[str] = []
            added: dict[str, Entry] = {}
            for member in members:
                path = _norm(member.name)
                parent, _, base = path.rpartition("/")
                if base == ".wh..wh..opq":
                    opaque.append(parent)
                elif base.startswith(".wh."):
                    removed.append(f"{parent}/{base[4:]}" if parent else base[4:])
                elif path:
                    added[path] = Entry(member.type, member.size, member.mode & 0o7777, member.linkname)
            for gone in removed:
                for path in [p for p in files if p == gone or p.startswith(gone + "/")]:
                    del files[path]
            for folder in opaque:
                for path in [p for p in files if p.startswith(folder + "/")]:
                    del files[path]
            files.update(added)
    return files


def tree_bytes(files: dict[str, Entry], folder: str) -> int:
    """Sum of the regular file sizes at or below ``folder`` (a relative path) in a merged filesystem."""
    folder = folder.strip("/")
    return sum(e.size for p, e in files.items() if e.is_file and (p == folder or p.startswith(folder + "/")))


def under(files: dict[str, Entry], folder: str) -> list[str]:
    """The regular files strictly below ``folder``, sorted."""
    prefix = folder.strip("/") + "/"
    return sorted(p for p, e in files.items() if e.is_file and p.startswith(prefix))
