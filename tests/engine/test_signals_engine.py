"""SIGINT and SIGTERM while the engine is exporting an image: exit 130, one line, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_an_engine_export(
    tmp_path: Path, pyapp_images: dict[str, str], sig: signal.Signals
) -> None:
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    image = pyapp_images["naive"]  # 786 MB: its export takes seconds
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimscope", image, "--json", "out.json", "--no-progress", "--no-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    time.sleep(1.5)  # started and streaming (not a bound on anything: the check below needs it still running)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (130, "", "slimscope: interrupted\n")
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
