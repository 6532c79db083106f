"""Peak memory of slimscope on issue 8's large hostile inputs (a 1 TB sparse header, 1,000 layers, ...).

    .venv/bin/python bench/memory.py                 # every large case, limit 200 MB
    .venv/bin/python bench/memory.py --limit-mb 150  # another limit
    .venv/bin/python bench/memory.py --only sparse-1tb,many-layers

Inputs come from fixtures/hostile.py (the same generator the tests use) and are written to
bench/out/memory/. Each runs as the real command, ``.venv/bin/slimscope TARGET --json /dev/null
--no-progress`` (with the layer cache off), under GNU time (``/usr/bin/time -f %M``, Debian's ``time``
package); without it the peak RSS comes from os.wait4's ru_maxrss of the same child. Prints a table;
exit status 1 when a run exits with an unexpected status or a required case (sparse-1tb,
many-layers) peaks over the limit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "fixtures"))

import hostile  # noqa: E402

REQUIRED = ("sparse-1tb", "many-layers")  # issue 8: "under 200 MB"
CASES = (
    "sparse-1tb",
    "claimed-1tb",
    "many-layers",
    "wide-folder",
    "huge-manifest-json",
    "nested-manifest-json",
)
GNU_TIME = "/usr/bin/time"


def peak_rss(command: list[str], env: dict[str, str]) -> tuple[int, int, float, str]:
    """(exit status, peak RSS in KiB, seconds, stderr) of one run of command."""
    start = time.monotonic()
    if os.access(GNU_TIME, os.X_OK):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
            proc = subprocess.run(
                [GNU_TIME, "-o", report.name, "-f", "%M", *command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            kib = int(report.read().strip().splitlines()[-1])
        return proc.returncode, kib, time.monotonic() - start, proc.stderr
    child = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    assert child.stderr is not None
    err = child.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage.ru_maxrss, time.monotonic() - start, err  # ru_maxrss is KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-mb", type=float, default=200.0, help="peak RSS limit in MB (10^6 bytes)")
    parser.add_argument("--only", help=f"comma-separated case names (default: {','.join(CASES)})")
    parser.add_argument("--slimscope", default=str(ROOT / ".venv" / "bin" / "slimscope"))
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CASES)
    out = BENCH / "out" / "memory"
    how = "GNU time %M" if os.access(GNU_TIME, os.X_OK) else "os.wait4 ru_maxrss"
    print(
        f"peak RSS of `slimscope TARGET --json /dev/null --no-progress` ({how}); limit {args.limit_mb:g} MB"
    )
    print(f"{'case':<22} {'exit':>4} {'expected':>8} {'peak MB':>8} {'seconds':>8}  verdict")
    failed = False
    for name in names:
        case = hostile.BY_NAME[name]
        directory = out / name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        target = case.make(directory)
        # A fresh, disabled layer cache: every run reads and parses the whole input.
        env = {**os.environ, "SLIMSCOPE_CACHE_DIR": str(directory / "cache"), "SLIMSCOPE_CACHE_SIZE": "0"}
        code, kib, seconds, err = peak_rss(
            [args.slimscope, target, "--json", os.devnull, "--no-progress"], env
        )
        mb = kib * 1024 / 1e6
        over = mb > args.limit_mb
        verdict = "ok"
        if code != case.code:
            verdict, failed = f"FAIL: exit {code}: {err.strip()[:80]}", True
        elif over and name in REQUIRED:
            verdict, failed = "FAIL: over the limit", True
        elif over:
            verdict = "over the limit (not required)"
        print(f"{name:<22} {code:>4} {case.code:>8} {mb:>8.1f} {seconds:>8.2f}  {verdict}")
        shutil.rmtree(directory)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
