"""What a new user sees: the messages for wrong inputs and how the text summary reads in a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import synth


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimscope", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},  # a pipe, as in CI
    )


def test_a_short_text_file_is_not_a_tar_file(tmp_path: Path) -> None:
    path = tmp_path / "notatar.tar"
    path.write_text("hello\n")
    proc = run(str(path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2,
        "",
        "slimscope: error: not an image archive (not a tar file)\n",
    )


def test_oci_archive_prefix_on_a_docker_save_archive_says_so(tmp_path: Path) -> None:
    path = tmp_path / "legacy.tar"
    synth.write_archive(path, synth.Image([synth.Layer([synth.file("a", b"1")])]), "docker-legacy")
    proc = run(f"oci-archive:{path}", "--summary")
    assert (proc.returncode, proc.stderr) == (
        2,
        "slimscope: error: not an OCI archive (no index.json); it is a docker save archive: "
        "drop the oci-archive: prefix\n",
    )


def test_a_platform_the_image_is_not_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "amd64.tar"
    synth.write_archive(path, synth.Image([synth.Layer([synth.file("a", b"1")])], architecture="amd64"))
    proc = run(str(path), "--platform", "linux/arm64", "--summary")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"slimscope: error: no image for platform linux/arm64: docker-archive:{path} is linux/amd64\n"
    )
    assert run(str(path), "--platform", "linux/amd64", "--json", "/dev/null").returncode == 0


def test_commands_keep_their_backslashes_and_long_lines_stay_whole_in_a_pipe(tmp_path: Path) -> None:
    deep = "/".join(["folder-with-a-long-name"] * 8)
    layers = [synth.Layer([synth.file(f"{deep}/.git/objects/pack/p.pack", b"x" * 3000)])]
    history = [synth.History("RUN /bin/sh -c apt-get update \\\n && printf 'a\\n' # buildkit")]
    path = tmp_path / "image.tar"
    synth.write_archive(path, synth.Image(layers, history=history))
    proc = run(str(path), "--summary")
    assert proc.returncode == 0, proc.stderr
    shown = [line.strip() for line in proc.stdout.splitlines() if "printf" in line]
    assert len(shown) == 2  # the finding's "added by" line and the layers table
    assert shown[0] == "added by layer 0: RUN apt-get update \\ && printf 'a\\n'"  # as written, not \\\\
    assert shown[1].endswith("RUN apt-get update \\ && printf 'a\\n'")
    assert [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith(deep)] == [
        f"{deep}/.git (3.0 kB)"
    ]


def test_version_says_which_compiled_paths_run() -> None:
    from slimscope import __version__, native

    proc = run("--version")
    fast = native.in_use()
    what = "compiled: " + ", ".join(fast) if fast else "Python only"
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"slimscope {__version__} ({what})\n", "")
    if os.environ.get("SLIMSCOPE_REQUIRE_COMPILED"):
        assert proc.stdout == f"slimscope {__version__} (compiled: tar parser, tree and analysis loops)\n"
    pure = subprocess.run(
        [sys.executable, "-m", "slimscope", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLIMSCOPE_PURE_PYTHON": "1"},
    )
    assert (pure.returncode, pure.stdout) == (0, f"slimscope {__version__} (Python only)\n")
