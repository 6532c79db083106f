"""Benchmark inputs: image archives built by the Docker engine, cached in bench/out/inputs/.

Every image is built ``FROM scratch`` with a static busybox copied into the build context (no registry
needed) by the classic builder (``DOCKER_BUILDKIT=0 docker build --network=host``), then written with
``docker save``; the OCI variants are converted from the "large" archive by skopeo. An archive is reused
while its ``.json`` sidecar records the same recipe key (a hash of the Dockerfile or conversion), so
reruns skip the builds. ``python bench/inputs.py stats ARCHIVE`` prints an archive's content counts.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import floor

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
RECIPE_VERSION = "1"  # bump to rebuild every cached input
TAG_PREFIX = "slimscope-bench"
HEADER = (
    'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    'SHELL ["/bin/sh", "-c"]\n'
)


def _loop(count: int, body: str, start: int = 0, step: int = 1) -> str:
    """A busybox-ash while loop over ``i`` (the body may use ``$i``)."""
    return f"i={start}; while [ $i -lt {count} ]; do {body}; i=$((i+{step})); done"


def _mkdirs(parent: str, count: int) -> str:
    """Shell code that makes ``parent/d0 .. parent/d<count-1>``."""
    return f"mkdir -p {parent} && cd {parent} && " + _loop(count, "mkdir d$i")


def large_dockerfile(quick: bool) -> str:
    """About 1 GB in ~31,700 final files over 7 layers, with overwrites and deletions (~100 MB in quick)."""
    k = 10 if quick else 1
    small, text, big, mid = 20_000 // k, 12_000 // k, (48 << 20) // k, 1_500 // k
    small_size = "$(( ((i * 7919) % 160) * ((i * 7919) % 160) ))"  # 0..25 KB, skewed towards small
    text_out = "head -c $s > d$((i % 100))/t$i.txt"
    text_body = (
        "s=$(( (i * 104729) % 32768 )); if [ $((i % 3)) -eq 2 ]; "
        f'then yes "2024-01-01 INFO worker-$i processed request id=$i status=200" | {text_out}; '
        f"else seq $i $((i + s / 5)) | {text_out}; fi"
    )
    small_body = f"head -c {small_size} /dev/urandom > d$((i % 100))/f$i.bin"
    big_body = f"head -c {big} /dev/urandom > /data/big/blob$i.bin"
    mid_body = "head -c $(( 65536 + (i * 7919) % 131072 )) /dev/urandom > /data/mid/m$i.bin"
    steps = [
        "# small random files (incompressible), 0..25 KB",
        f"RUN set -e; {_mkdirs('/data/small', 100)}; {_loop(small, small_body)}",
        "# compressible text: number lists and repetitive log lines, 0..32 KiB",
        f"RUN set -e; {_mkdirs('/data/text', 100)}; {_loop(text, text_body)}",
        "# a few big random files",
        f"RUN set -e; mkdir -p /data/big; {_loop(7, big_body)}",
        "# medium random files, 64..192 KiB",
        f"RUN set -e; mkdir -p /data/mid; {_loop(mid, mid_body)}",
        "# overwrite every 10th small file and one big file; delete 10 text dirs and every 20th text file",
        f"RUN set -e; cd /data/small; {_loop(small, small_body, step=10)}; "
        f"head -c {big} /dev/urandom > /data/big/blob0.bin; rm -rf /data/text/d9?; "
        f"{_loop(text, 'rm /data/text/d$((i % 100))/t$i.txt', start=5, step=20)}",
        'ENV BENCH_IMAGE=large\nLABEL org.slimscope.bench="large"\nCMD ["/bin/sh"]',
    ]
    return HEADER + "\n".join(steps) + "\n"


def many_files_dockerfile(quick: bool) -> str:
    """210,000 small files in one layer, 500 per directory (21,000 in quick)."""
    n = 21_000 if quick else 210_000
    body = 'echo "file $i of the many-files benchmark" > d$((i / 500))/f$i'
    return HEADER + f"RUN set -e; {_mkdirs('/many', -(-n // 500))}; {_loop(n, body)}\n"


def whiteouts_dockerfile(quick: bool) -> str:
    """21,000 files in one layer, a later layer deleting every 10th one by name: 2,100 whiteouts."""
    n = 2_100 if quick else 21_000
    create = 'echo "file $i" > d$((i % 40))/f$i'
    return (
        HEADER
        + "\n".join(
            [
                f"RUN set -e; {_mkdirs('/w', 40)}; {_loop(n, create)}",
                f"RUN set -e; cd /w; {_loop(n, 'rm d$((i % 40))/f$i', step=10)}",
            ]
        )
        + "\n"
    )


def layers_dockerfile(quick: bool) -> str:
    """100 layers (20 in quick): each adds a directory and rewrites /layers/state; every 10th deletes one."""
    total = 20 if quick else 100
    lines = []
    for n in range(3, total + 1):  # layers 1 and 2 are COPY busybox and busybox --install
        cmd = f"mkdir -p /layers/{n:03d} && head -c 4096 /dev/urandom > /layers/{n:03d}/data"
        cmd += f" && echo {n} > /layers/{n:03d}/n && seq 1 {n * 10} > /layers/state"
        if n % 10 == 0:
            cmd += f" && rm -rf /layers/{n - 7:03d}"
        lines.append(f"RUN {cmd}")
    return HEADER + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Input:
    """One benchmark input."""

    name: str
    description: str
    dockerfile: Callable[[bool], str] | None = None  # built by the engine and saved as a docker-archive
    source: str | None = None  # or converted from this input by skopeo ...
    compression: str | None = None  # ... with this layer compression into an oci-archive

    @property
    def is_oci(self) -> bool:
        """True for oci-archive inputs (which dive cannot read)."""
        return self.source is not None

    def archive(self, quick: bool) -> Path:
        """Where the cached archive lives."""
        return OUT / "inputs" / f"{self.name}{'-quick' if quick else ''}.tar"

    def reference(self, quick: bool) -> str:
        """The IMAGE argument for slimscope."""
        path = self.archive(quick)
        return f"oci-archive:{path}" if self.is_oci else str(path)


INPUTS: dict[str, Input] = {
    i.name: i
    for i in [
        Input(
            "large",
            "~1 GB of random and text files, 7 layers, overwrites and deletions (~100 MB quick)",
            large_dockerfile,
        ),
        Input("large-oci-gzip", "'large' as oci-archive, gzip layers", source="large", compression="gzip"),
        Input("large-oci-zstd", "'large' as oci-archive, zstd layers", source="large", compression="zstd"),
        Input("many-files", "210k small files in one layer (21k quick)", many_files_dockerfile),
        Input(
            "whiteouts",
            "21k files, then every 10th deleted by name: 2,100 whiteouts (210 quick)",
            whiteouts_dockerfile,
        ),
        Input(
            "layers-100", "100 layers, each adding a dir and rewriting one file (20 quick)", layers_dockerfile
        ),
    ]
}


def recipe_key(inp: Input, quick: bool) -> str:
    """A hash of everything that determines the input's contents."""
    if inp.dockerfile is not None:
        recipe = inp.dockerfile(quick)
    else:
        assert inp.source is not None
        recipe = f"{recipe_key(INPUTS[inp.source], quick)} skopeo {inp.compression}"
    return hashlib.sha256(f"{RECIPE_VERSION}\n{recipe}".encode()).hexdigest()[:16]


def _sidecar(path: Path) -> Path:
    """The metadata file next to a cached archive."""
    return path.with_suffix(".json")


def cached_meta(inp: Input, quick: bool) -> dict[str, Any] | None:
    """The cached archive's metadata, when the archive is there and was made by the current recipe."""
    path = inp.archive(quick)
    try:
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != recipe_key(inp, quick) or not path.is_file():
        return None
    if path.stat().st_size != meta.get("size"):
        return None
    return meta


def _run(cmd: list[str], log: IO[str], env: dict[str, str] | None = None) -> None:
    """Run a build step, appending its output to ``log``; raise with the log's tail on failure."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, check=False
    )
    if proc.returncode != 0:
        log.flush()
        tail = Path(log.name).read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(
            f"{cmd[0]} {cmd[1]} failed (exit {proc.returncode}); log {log.name}:\n" + "\n".join(tail)
        )


def find_busybox() -> Path:
    """A statically linked busybox to copy into build contexts (Debian's busybox-static)."""
    for candidate in (os.environ.get("SLIMSCOPE_BUSYBOX"), "/bin/busybox", shutil.which("busybox")):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise RuntimeError("no static busybox found: apt-get install busybox-static (or set SLIMSCOPE_BUSYBOX)")


def _build_docker(inp: Input, quick: bool, key: str, tmp: Path, keep: bool, log: IO[str]) -> None:
    """Build the input's Dockerfile with the classic builder and ``docker save`` it to ``tmp``."""
    assert inp.dockerfile is not None
    context = OUT / "build" / f"{inp.name}{'-quick' if quick else ''}"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(inp.dockerfile(quick))
    shutil.copy2(find_busybox(), context / "busybox")
    tag = f"{TAG_PREFIX}/{inp.name}:{'quick-' if quick else ''}{key}"
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    try:
        _run(["docker", "build", "--network=host", "--rm", "--force-rm", "-t", tag, str(context)], log, env)
        _run(["docker", "save", "-o", str(tmp), tag], log)
    finally:
        if not keep:
            subprocess.run(
                ["docker", "rmi", "-f", tag], stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=False
            )
            shutil.rmtree(context, ignore_errors=True)


def _convert(inp: Input, quick: bool, tmp: Path, log: IO[str]) -> None:
    """Convert the source docker-archive to an oci-archive with the input's layer compression."""
    assert inp.source is not None and inp.compression is not None
    source = INPUTS[inp.source].archive(quick)
    cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-compress-format", inp.compression]
    _run([*cmd, f"docker-archive:{source}", f"oci-archive:{tmp}:{inp.source}"], log)


def build(
    inp: Input, quick: bool, keep: bool, python: str, source_built: str | None = None
) -> dict[str, Any]:
    """Build (or convert) one input into the cache; return its metadata (also written as a sidecar).

    ``source_built`` is the build time of the archive an OCI variant is converted from.
    """
    path = inp.archive(quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = recipe_key(inp, quick)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    started = time.monotonic()
    with open(OUT / "inputs" / f"{path.stem}.build.log", "w") as log:
        if inp.dockerfile is not None:
            _build_docker(inp, quick, key, tmp, keep, log)
        else:
            _convert(inp, quick, tmp, log)
    seconds = time.monotonic() - started
    os.replace(tmp, path)
    # Content counts come from a separate process so this one stays small (see README: peak RSS).
    proc = subprocess.run(
        [python, str(Path(__file__)), "stats", str(path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"stats of {path} failed: {proc.stderr.strip()}")
    meta = {
        "key": key,
        "name": inp.name,
        "size": path.stat().st_size,
        "build_seconds": round(seconds, 1),
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "stats": json.loads(proc.stdout),
    }
    if source_built is not None:
        meta["source_built"] = source_built
    _sidecar(path).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _layer_stream(fd: int, blob: floor.Blob) -> IO[bytes]:
    """The uncompressed tar stream of a layer blob."""
    region = floor.Region(fd, blob.offset, blob.size)
    head = os.pread(fd, 4, blob.offset)
    if head.startswith(floor.GZIP_MAGIC):
        return gzip.GzipFile(fileobj=region)  # type: ignore[arg-type]
    if head.startswith(floor.ZSTD_MAGIC):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(region, read_across_frames=True)  # type: ignore[return-value]
    return region  # type: ignore[return-value]


def _members(stream: IO[bytes]) -> Iterator[tarfile.TarInfo]:
    """Stream the members of a layer tar without keeping them all in memory."""
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            yield member
            tar.members = []


def stats(path: str) -> dict[str, Any]:
    """Count layers, tar entries, whiteouts and the final (merged) filesystem of an archive."""
    blobs = floor.layer_blobs(path)
    final: dict[str, tuple[str, int]] = {}  # path -> (kind, size)
    entries = whiteouts = opaques = uncompressed = 0

    def drop_below(prefix: str) -> None:
        for p in [p for p in final if p.startswith(prefix)]:
            del final[p]

    fd = os.open(path, os.O_RDONLY)
    try:
        for blob in blobs:
            added: dict[str, tuple[str, int]] = {}
            for m in _members(_layer_stream(fd, blob)):
                entries += 1
                uncompressed += m.size if m.isfile() else 0
                name = m.name.removeprefix("./").rstrip("/")
                parent, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    opaques += 1
                    drop_below(f"{parent}/" if parent else "")
                elif base.startswith(".wh."):
                    whiteouts += 1
                    target = f"{parent}/{base[4:]}" if parent else base[4:]
                    if final.pop(target, ("", 0))[0] == "dir":
                        drop_below(target + "/")
                elif name:
                    kind = "file" if m.isfile() or m.islnk() else "other"
                    kind = "dir" if m.isdir() else "symlink" if m.issym() else kind
                    added[name] = (kind, m.size if m.isfile() else 0)
            final.update(added)
    finally:
        os.close(fd)
    kinds = [k for k, _ in final.values()]
    return {
        "layers": len(blobs),
        "layer_entries": entries,
        "layer_bytes": uncompressed,
        "whiteouts": whiteouts,
        "opaque_dirs": opaques,
        "final_files": kinds.count("file"),
        "final_dirs": kinds.count("dir"),
        "final_symlinks": kinds.count("symlink"),
        "final_bytes": sum(size for _, size in final.values()),
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "stats":
        sys.exit("usage: python bench/inputs.py stats ARCHIVE")
    print(json.dumps(stats(sys.argv[2])))
