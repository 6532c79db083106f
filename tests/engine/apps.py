"""Real app images (Python, Go, Node/TypeScript, Java) for slimscope's rewrite tests, without a registry.

Each app in ``fixtures/apps/<folder>`` has a naive single-stage ``Dockerfile.naive`` (toolchain, caches and
the whole build context stay in the image) and a hand-written multi-stage twin ``Dockerfile.multistage``,
both ``FROM slimscope-test/debian:bookworm``. :func:`ensure_app_images` prepares one build context per app
in a session temp folder (always: the context is part of the :class:`AppImage` contract) and builds an
image only when its content-hash label does not match, like ``debian.ensure_pyapp_images``. The Python
app is ``fixtures/apps/pyapp`` and is built by ``debian.py`` itself.

Build contexts hold the fixture folder, ``Dockerfile`` (a copy of ``Dockerfile.naive``) and a small real
``.git`` repository. nodeapp's also holds ``node_modules/``, installed on the host with ``npm ci`` from the
committed ``package-lock.json`` (npm cannot reach its registry inside a build); npm's download cache is
``$SLIMSCOPE_FIXTURE_CACHE/npm``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import docker
from debian import (
    DOCKERFILES,
    FIXTURE_LABEL,
    GIT_ENV,
    HASH_LABEL,
    REPO_ROOT,
    FixtureError,
    FixtureUnavailable,
    build_image,
    cache_dir,
    download_packages,
    locked,
    prepare_context,
)

__all__ = [
    "APPS",
    "PYTHON_APP",
    "AppImage",
    "AppSpec",
    "FixtureError",
    "FixtureUnavailable",
    "ensure_app_images",
]

APPS_DIR = REPO_ROOT / "fixtures" / "apps"
TAG_PREFIX = "slimscope-test"
APP_RECIPE_VERSION = "1"  # bump when the context preparation below changes what ends up in the images
# Copied from the fixture folders never (left behind by local runs); node_modules/ and dist/ are made here.
IGNORED_NAMES = ("__pycache__", ".pytest_cache", ".ruff_cache", "node_modules", "dist", "build", "*.class")


@dataclass(frozen=True)
class AppImage:
    """A built app: both image tags, their Dockerfiles in ``context`` and a smoke test for either image.

    ``smoke`` runs in a container of either image (``docker run --network=host IMAGE *smoke``); it exits 0
    and prints exactly ``expected_output`` plus a newline on stdout. ``context`` is a prepared build
    context for both Dockerfiles (``docker build -f naive_dockerfile context``), kept for the session.
    """

    name: str
    naive: str
    multistage: str
    naive_dockerfile: Path
    multistage_dockerfile: Path
    context: Path
    smoke: list[str]
    expected_output: str


@dataclass(frozen=True)
class AppSpec:
    """How to prepare and check one app of ``fixtures/apps``."""

    name: str  # the key in the app_images dict: "go", "node", "java"
    folder: str  # the folder in fixtures/apps, also the image repository name
    smoke: tuple[str, ...]
    expected_output: str
    npm: bool = False  # install node_modules/ on the host with npm ci

    @property
    def tags(self) -> dict[str, str]:
        """Variant ("naive", "multistage") -> image tag."""
        return {variant: f"{TAG_PREFIX}/{self.folder}:{variant}" for variant in DOCKERFILES}


APPS: tuple[AppSpec, ...] = (
    AppSpec(
        name="go",
        folder="goapp",
        smoke=("/app/server", "--selftest"),
        expected_output="goapp selftest ok: GET /?name=selftest -> 200 Hello, selftest!",
    ),
    AppSpec(
        name="node",
        folder="nodeapp",
        smoke=("node", "/app/dist/index.js", "--selftest"),
        expected_output="nodeapp selftest ok: Hello, selftest! 2 days = 172800000 ms = 2 days",
        npm=True,
    ),
    AppSpec(
        name="java",
        folder="javaapp",
        smoke=("java", "-jar", "/app/app.jar", "--selftest"),
        expected_output="javaapp selftest ok: Hello, self&lt;test&gt;!",
    ),
)

# pyapp's selftest prints the path of MarkupSafe's compiled extension, which differs between the two images
# (and would differ again in a rewrite): keep the location-independent part. pipefail keeps its exit code.
PYTHON_APP = AppSpec(
    name="python",
    folder="pyapp",
    smoke=("bash", "-o", "pipefail", "-c", "python3 /app/app/main.py --selftest | cut -d: -f1"),
    expected_output="selftest ok",
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command without stdin, capturing text output."""
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=1800,
        check=False,
    )


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    """The end of a finished command's output, for error messages."""
    return f"{' '.join(proc.args)} (exit {proc.returncode})\n{(proc.stdout + proc.stderr)[-3000:]}"


def _git(ctx: Path, *args: str) -> None:
    """Run git in the build context with a fixed identity; FixtureError if it fails."""
    proc = _run(["git", *args], cwd=ctx, env=dict(os.environ, **GIT_ENV))
    if proc.returncode != 0:
        raise FixtureError(f"git failed: {_tail(proc)}")


def _npm_ci(ctx: Path) -> None:
    """Install node_modules/ (dev dependencies included) from the lockfile with the host's npm."""
    npm = shutil.which("npm")
    if npm is None:
        raise FixtureUnavailable("npm not found on the host (needed to prepare nodeapp's node_modules)")
    npm_cache = cache_dir() / "npm"
    npm_cache.mkdir(exist_ok=True)
    cmd = [npm, "ci", "--include=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"]
    cmd += ["--cache", str(npm_cache), "--loglevel=error"]
    env = dict(os.environ, npm_config_update_notifier="false")
    with locked("npm"):
        proc = _run(cmd, cwd=ctx, env=env)
    if proc.returncode != 0:
        raise FixtureUnavailable(f"cannot install nodeapp's packages with npm ci: {_tail(proc)}")


def prepare_app_context(spec: AppSpec, dest: Path) -> Path:
    """Build context for both Dockerfiles of ``spec`` in ``dest``: fixture files, Dockerfile, .git, deps."""
    if shutil.which("git") is None:
        raise FixtureUnavailable("git not found (needed to create the fixture app's .git folder)")
    src = APPS_DIR / spec.folder
    ctx = dest / spec.folder
    shutil.copytree(src, ctx, ignore=shutil.ignore_patterns(*IGNORED_NAMES))
    shutil.copy2(ctx / DOCKERFILES["naive"], ctx / "Dockerfile")
    _git(ctx, "init", "-q", "-b", "main")
    dockerfiles = ["Dockerfile", *DOCKERFILES.values()]
    sources = sorted(p.name for p in ctx.iterdir() if p.name not in {".git", *dockerfiles})
    _git(ctx, "add", *sources)
    _git(ctx, "commit", "-q", "-m", f"{spec.folder}: greeting server", "--date", "2024-01-01T12:00:00Z")
    _git(ctx, "add", *dockerfiles)
    _git(ctx, "commit", "-q", "-m", f"{spec.folder}: Dockerfiles", "--date", "2024-01-02T12:00:00Z")
    if spec.npm:
        _npm_ci(ctx)
    return ctx


def _file_digest(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def context_hash(ctx: Path, dockerfile: str, base_id: str) -> str:
    """Hash of what an image is built from: recipe, Dockerfile name, base image and the context minus .git.

    ``.git`` is left out because its index records inode numbers and times; its commits are fixed by
    the context's files, the fixed identity and the fixed dates.
    """
    digest = hashlib.sha256()
    digest.update(f"recipe {APP_RECIPE_VERSION}\ndockerfile {dockerfile}\nbase {base_id}\n".encode())
    entries: list[str] = []
    for root, dirs, files in os.walk(ctx):
        dirs[:] = [d for d in dirs if not (Path(root) == ctx and d == ".git")]
        for name in [*dirs, *files]:
            path = Path(root, name)
            rel = path.relative_to(ctx).as_posix()
            if path.is_symlink():
                entries.append(f"link {rel} {os.readlink(path)}")
            elif path.is_dir():
                entries.append(f"dir {rel}")
            else:
                executable = "x" if os.access(path, os.X_OK) else "-"
                entries.append(f"file {rel} {executable} {_file_digest(path)}")
    for entry in sorted(entries):
        digest.update(f"{entry}\n".encode())
    return digest.hexdigest()


def _label(client: docker.DockerClient, tag: str, key: str) -> str | None:
    """A label of a local image, or None when the image or label is missing."""
    try:
        return (client.images.get(tag).labels or {}).get(key)
    except docker.errors.ImageNotFound:
        return None


def _app_image(spec: AppSpec, ctx: Path, tags: dict[str, str]) -> AppImage:
    """The AppImage of a prepared context."""
    return AppImage(
        name=spec.name,
        naive=tags["naive"],
        multistage=tags["multistage"],
        naive_dockerfile=ctx / DOCKERFILES["naive"],
        multistage_dockerfile=ctx / DOCKERFILES["multistage"],
        context=ctx,
        smoke=list(spec.smoke),
        expected_output=spec.expected_output,
    )


def ensure_app(client: docker.DockerClient, spec: AppSpec, base_id: str, workdir: Path) -> AppImage:
    """Prepare the context of one app and build (or reuse, when the hash label matches) both images."""
    ctx = prepare_app_context(spec, workdir)
    with locked(f"app-{spec.folder}"):
        for variant, tag in spec.tags.items():
            wanted = context_hash(ctx, DOCKERFILES[variant], base_id)
            if _label(client, tag, HASH_LABEL) != wanted:
                labels = {HASH_LABEL: wanted, FIXTURE_LABEL: f"{spec.folder}-{variant}"}
                build_image(client, ctx, DOCKERFILES[variant], tag, labels)
    return _app_image(spec, ctx, spec.tags)


def ensure_app_images(
    client: docker.DockerClient, base_id: str, workdir: Path, pyapp_tags: dict[str, str]
) -> dict[str, AppImage]:
    """All app images by name ("python", "go", "node", "java"); pyapp's tags come from ensure_pyapp_images."""
    apps = {
        PYTHON_APP.name: _app_image(PYTHON_APP, prepare_context(workdir, download_packages()), pyapp_tags)
    }
    for spec in APPS:
        apps[spec.name] = ensure_app(client, spec, base_id, workdir)
    return apps
