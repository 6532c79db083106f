"""SIGINT and SIGTERM (issue 8, item 5): exit 130 with one line, the terminal restored, no files left.

The explorer cases run it for real in tmux (skipped without tmux) and send the signal with kill(1)
to the slimscope process, while it is loading and on the main screen.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import synth

ROOT = Path(__file__).resolve().parents[2]
SLIMSCOPE = ROOT / ".venv" / "bin" / "slimscope"


def wide_archive(path: Path, files: int) -> Path:
    synth.write_archive(
        path, synth.Image([synth.Layer([synth.file(f"wide/f{i:06d}", b"") for i in range(files)])])
    )
    return path


def signal_mid_archive(tmp_path: Path, sig: signal.Signals, hold: float) -> bool:
    """Half the archive arrives through a FIFO kept open for `hold` seconds, then the signal.

    Checks 130, one line, nothing left behind; returns whether slimscope had exited while the input
    was still stalled (the writer still holding the FIFO open with no more data).
    """
    data = wide_archive(tmp_path / "src.tar", 20_000).read_bytes()
    (tmp_path / "src.tar").unlink()
    fifo, cwd, tmp = tmp_path / "in.tar", tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimscope", str(fifo), "--json", "out.json", "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(tmp), "SLIMSCOPE_CACHE_DIR": str(tmp_path / "cache")},
    )
    writer_done = threading.Event()
    writer_gave_up = threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as out:
                out.write(data[: len(data) // 2])
                out.flush()
                writer_done.set()
                time.sleep(hold)  # slimscope blocks in the middle of the archive
                writer_gave_up.set()
        except BrokenPipeError:
            pass

    threading.Thread(target=feed, daemon=True).start()
    assert writer_done.wait(30)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=hold + 60)
    stalled = not writer_gave_up.is_set()
    assert (proc.returncode, out, err) == (130, "", "slimscope: interrupted\n")
    assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
    return stalled


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_in_the_middle_of_an_archive(tmp_path: Path, sig: signal.Signals) -> None:
    signal_mid_archive(tmp_path, sig, hold=2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_stalled_read_exits_promptly(tmp_path: Path, sig: signal.Signals) -> None:
    """The blob reader thread is blocked in read() of a FIFO that gets no more data for 20 s.

    It used to wait until the writer gave up: scan_layer joined the reader for 5 s, then closing the
    archive waited for the read holding the file's lock. Now it exits while the input is still stalled.
    """
    assert signal_mid_archive(tmp_path, sig, hold=20)


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "-f", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def wait_until(check, seconds: float, show=None) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out" + (f"; the screen:\n{show()}" if show else "")
        time.sleep(0.05)


@pytest.mark.skipif(shutil.which("tmux") is None or not SLIMSCOPE.exists(), reason="needs tmux and .venv")
@pytest.mark.parametrize("when", ["loading", "main screen"])
@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_signal_to_the_explorer_in_tmux(tmp_path: Path, sig: str, when: str) -> None:
    archive = wide_archive(tmp_path / "wide.tar", 20_000 if when == "loading" else 10)
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    stop = threading.Event()
    if when == "loading":  # half the archive through a FIFO held open: still loading when the signal comes
        data = archive.read_bytes()
        archive = tmp_path / "in.tar"
        os.mkfifo(archive)

        def feed() -> None:
            try:
                with open(archive, "wb") as out:
                    out.write(data[: len(data) // 2])
                    out.flush()
                    stop.wait(120)
            except BrokenPipeError:
                pass

        threading.Thread(target=feed, daemon=True).start()
    script = tmp_path / "run.sh"
    script.write_text(
        f"stty -g > {tmp_path}/stty.before\n"
        f"sh -c 'echo $$ > {tmp_path}/pid; exec {shlex.quote(str(SLIMSCOPE))} {shlex.quote(str(archive))}'\n"
        "status=$?\n"
        f"stty -g > {tmp_path}/stty.after\n"
        'echo "exit-status: $status"\n'
    )
    socket = f"slimscope-signal-{os.getpid()}-{sig}-{when[0]}"
    shell = (
        f"env -u TMUX PS1='P$ ' TERM=tmux-256color TMPDIR={tmp} SLIMSCOPE_CACHE_DIR={tmp_path}/cache"
        " bash --norc --noprofile"
    )
    tmux(socket, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "-c", str(cwd), shell)
    try:
        screen = lambda: tmux(socket, "capture-pane", "-p", "-J", "-t", "t")  # noqa: E731
        flag = lambda name: tmux(socket, "display-message", "-p", "-t", "t", f"#{{{name}}}").strip()  # noqa: E731
        wait_until(lambda: "P$" in screen(), 10)
        tmux(socket, "send-keys", "-t", "t", f"sh {script}", "Enter")
        text = "slimscope  reading" if when == "loading" else "What need not ship"
        wait_until(lambda: text in screen(), 60, screen)
        assert flag("alternate_on") == "1"
        os.kill(int((tmp_path / "pid").read_text()), getattr(signal, f"SIG{sig}"))
        wait_until(lambda: screen().rstrip().endswith("exit-status: 130\nP$"), 30, screen)
        lines = [line.rstrip() for line in screen().splitlines() if line.strip()]
        assert lines == [f"P$ sh {script}", "slimscope: interrupted", "exit-status: 130", "P$"]
        assert flag("alternate_on") == "0"
        for mode in ("mouse_any_flag", "mouse_button_flag", "mouse_standard_flag", "mouse_sgr_flag"):
            assert flag(mode) == "0", mode
        assert flag("cursor_flag") == "1"
        assert (tmp_path / "stty.before").read_text() == (tmp_path / "stty.after").read_text()
        assert list(cwd.iterdir()) == [] and list(tmp.iterdir()) == []
    finally:
        stop.set()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
