"""The findings outputs from the command line: text, SARIF, CI thresholds and config files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import synth


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = synth.Layer(
        [
            synth.directory("usr"),
            synth.directory("usr/bin"),
            synth.file("usr/bin/gcc-12", b"\x7fELF" + b"g" * 996),
            synth.file("usr/bin/app", b"\x7fELF" + b"a" * 196),
            synth.directory("root"),
            synth.directory("root/.cache"),
            synth.directory("root/.cache/pip"),
            synth.file("root/.cache/pip/wheel.whl", b"w" * 500),
            synth.directory("app"),
            synth.file("app/.env", b"TOKEN=x\n"),
            synth.file("tmp-big", b"t" * 3000),
        ]
    )
    cleanup = synth.Layer([synth.whiteout("tmp-big")])
    path = tmp_path_factory.mktemp("cli") / "image.tar"
    synth.write_archive(path, synth.Image([base, cleanup], tags=["cli:latest"]), "docker-oci")
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimscope", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def test_summary_lists_biggest_wins_first(archive: Path) -> None:
    proc = run(str(archive), "--summary")
    assert proc.returncode == 0, proc.stderr
    wins = proc.stdout.split("What need not ship, biggest first")[1].split("Without toolchains")[0]
    order = [line.split()[2] for line in wins.splitlines() if line[:12].strip().endswith(("kB", " B"))]
    assert order == ["hidden", "toolchain", "cache"]
    assert "3.0 kB  hidden" in wins
    assert "1.0 kB  toolchain GCC compiler [SS101]" in wins
    assert "Credential and environment files [SS502]: app/.env" in proc.stdout
    assert "TOKEN" not in proc.stdout


def test_json_summary_and_findings(archive: Path) -> None:
    doc = json.loads(run(str(archive), "--json", "-").stdout)
    summary = doc["summary"]
    assert summary["image_bytes"] == 1000 + 200 + 500 + 8 + 3000
    assert summary["filesystem_bytes"] == 1708
    assert summary["hidden_bytes"] == 3000
    assert summary["removable_bytes"] == {
        "toolchain": 1000,
        "cache": 500,
        "source": 0,
        "docs": 0,
        "secret": 8,
    }
    assert summary["estimated_slim_bytes"] == 208
    found = {f["rule"]: (f["bytes"], f["count"], [p["path"] for p in f["paths"]]) for f in doc["findings"]}
    assert found == {
        "SS101": (1000, 1, ["usr/bin/gcc-12"]),
        "SS205": (500, 1, ["root/.cache/pip"]),
        "SS502": (8, 1, ["app/.env"]),
    }
    assert doc["waste"]["hidden"][0] == {
        "path": "tmp-big",
        "layer": 0,
        "hidden_in": 1,
        "reason": "deleted",
        "bytes": 3000,
    }


def test_sarif(archive: Path) -> None:
    proc = run(str(archive), "--format", "sarif")
    assert proc.returncode == 0, proc.stderr
    log = json.loads(proc.stdout)
    assert log["version"] == "2.1.0"
    results = log["runs"][0]["results"]
    assert sorted(r["ruleId"] for r in results) == ["SS001", "SS101", "SS205", "SS502"]
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels["SS502"] == "error" and levels["SS101"] == "warning"
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_ci_defaults_fail_on_the_secret(archive: Path) -> None:
    proc = run(str(archive), "--ci", "--lowest-efficiency", "0", "--highest-user-wasted-percent", "100%")
    assert proc.returncode == 1
    assert "FAIL  max-secrets: 1 possible secret file(s), at most 0" in proc.stdout
    assert "PASS  lowestEfficiency" in proc.stdout
    assert proc.stdout.rstrip().endswith("CI result: FAIL (2 of 3 checks pass)")


def test_ci_thresholds_from_flags(archive: Path) -> None:
    ok = run(
        str(archive),
        "--ci",
        "--lowest-efficiency",
        "0",
        "--highest-user-wasted-percent",
        "1000%",
        "--max-secrets",
        "1",
        "--max-removable",
        "toolchain=1kB",
        "--max-hidden-bytes",
        "3000",
    )
    assert ok.returncode == 0, ok.stdout
    bad = run(
        str(archive),
        "--ci",
        "--lowest-efficiency",
        "0",
        "--highest-user-wasted-percent",
        "1000%",
        "--max-secrets",
        "1",
        "--max-removable",
        "toolchain=999",
        "--max-hidden-bytes",
        "2999",
    )
    assert bad.returncode == 1
    assert (
        "FAIL  max-removable-bytes.toolchain: removable toolchain 1,000 B (1.0 kB), at most 999 B"
        in bad.stdout
    )
    assert "FAIL  max-hidden-bytes: hidden 3,000 B (3.0 kB), at most 2,999 B (3.0 kB)" in bad.stdout


def test_ci_config_files(archive: Path, tmp_path: Path) -> None:
    (tmp_path / ".slimscope.toml").write_text(
        '[ci]\nlowestEfficiency = "0%"\nhighestUserWastedPercent = "disabled"\nmax-secrets = 1\n'
        'max-removable-bytes = { cache = "400B" }\n'
    )
    proc = run(str(archive), "--ci", cwd=tmp_path)
    assert proc.returncode == 1
    assert "FAIL  max-removable-bytes.cache: removable cache 500 B, at most 400 B" in proc.stdout
    (tmp_path / ".slimscope.toml").unlink()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.slimscope.ci]\nlowestEfficiency = 0\nmax-secrets = 9\nhighestUserWastedPercent = "disabled"\n'
    )
    assert run(str(archive), "--ci", cwd=tmp_path).returncode == 0
    (tmp_path / "pyproject.toml").write_text("[tool.slimscope.ci]\nnot-a-setting = 1\n")
    proc = run(str(archive), "--ci", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "slimscope: error: pyproject.toml: unknown CI setting(s): not-a-setting\n"


@pytest.mark.parametrize(
    ("flag", "value", "bounds"),
    [
        ("--lowest-efficiency", "1.5", "from 0 to 1, or 0% to 100%"),
        ("--lowest-efficiency", "nan", "from 0 to 1, or 0% to 100%"),
        ("--highest-user-wasted-percent", "-1%", "0 or more"),
        ("--highest-user-wasted-percent", "inf", "0 or more"),
    ],
)
def test_a_ratio_out_of_range_is_exit_2(archive: Path, flag: str, value: str, bounds: str) -> None:
    proc = run(str(archive), f"{flag}={value}")
    assert proc.returncode == 2
    assert proc.stderr == f"slimscope: error: ratio out of range: {value!r} ({bounds})\n"


def test_bad_dockerfile_is_exit_2(archive: Path, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM scratch\nFROBNICATE now\n")
    proc = run(str(archive), "--dockerfile", str(dockerfile), "--json", "-")
    assert proc.returncode == 2
    assert proc.stderr.startswith("slimscope: error: ")
    assert "FROBNICATE" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 130)])
def test_interrupt_while_reading_is_clean(tmp_path: Path, sig: str, code: int) -> None:
    """A blocked read (a FIFO nobody writes to) ends on Ctrl-C / SIGTERM with one line and no files left."""
    import os
    import signal
    import time

    fifo = tmp_path / "stuck.tar"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimscope", str(fifo), "--json", str(tmp_path / "out.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code
    assert err == "slimscope: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stuck.tar"]


def test_closed_pipe_ends_quietly(archive: Path) -> None:
    """`slimscope IMAGE --summary | head -1`: no traceback, no rich 'exit 1', just a quiet stop."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "slimscope", str(archive), "--summary"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # closed before slimscope writes anything: its first write hits a broken pipe
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""
