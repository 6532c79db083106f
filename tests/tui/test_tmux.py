"""scripts/tmux-smoke.sh against engine-built images: the explorer in a real terminal (tmux)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "tmux-smoke.sh"


def smoke(*args: str) -> None:
    """Run the smoke script; fail with its output."""
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "tmux-smoke: PASS" in proc.stdout


@pytest.fixture(scope="module")
def tmux_available() -> None:
    """tmux is installed (the script installs Debian's tmux when it can; skip when it cannot)."""
    if shutil.which("tmux") is None and shutil.which("apt-get") is None:
        pytest.skip("no tmux and no apt-get to install it")


def test_layers_image(tmux_available: None, build_fixture_image: Callable[[str], str]) -> None:
    tag = build_fixture_image("layers")
    smoke(
        tag,
        "--expect", f"slimscope {tag}  linux/amd64  9 layers",
        "--expect", "19.2 kB hidden bytes",
        "--expect", "│3  20.0 kB ░░░░░                    RUN yes B | head -c 2…│",  # ellipsis, not cut
        "--expect", "│8    162 B",
        "--expect", "data/  24.1 kB",
        "--search", "mode.sh",
        "--expect-search", "mode.sh  10 B",
    )  # fmt: skip


def test_hostile_image(tmux_available: None, build_fixture_image: Callable[[str], str]) -> None:
    tag = build_fixture_image("hostile")
    smoke(tag, "--hostile", "--expect", "nothing to remove found", "--expect", "hostile/  0 B")
