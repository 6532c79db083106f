"""Command line: parse arguments, run the analysis, hand the result to a renderer. Nothing else."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import IO

from slimscope import __version__
from slimscope.errors import SlimscopeError
from slimscope.output import write_atomically

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

USAGE_EPILOG = """\
IMAGE may be:
  name[:tag], name@sha256:..., an image id   read from the local Docker engine (DOCKER_HOST is honoured)
  PATH or docker-archive:PATH[:TAG]          a `docker save` tarball (legacy or Docker 25+ layout)
  oci-archive:PATH[:TAG]                     an OCI image layout in a tar archive
  oci:DIR[:TAG] or DIR                       an OCI image layout directory

more commands (each has --help):
  slimscope diff OLD NEW      what changed between two images
  slimscope suggest IMAGE     a multi-stage Dockerfile that ships only what the image runs
  slimscope cache [clear]     where the layer cache is and what it holds, or empty it

layer cache: ~/.cache/slimscope (XDG_CACHE_HOME, or SLIMSCOPE_CACHE_DIR); SLIMSCOPE_CACHE_SIZE bounds it
(default 2GB, 0 turns it off); --no-cache skips it for one run

exit codes: 0 ok, 2 bad input or environment (one line on stderr), 130 interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `slimscope IMAGE`."""
    parser = argparse.ArgumentParser(
        prog="slimscope",
        description="Explain every byte of a container image, layer by layer.",
        epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("image", nargs="?", metavar="IMAGE", help="the image to read (see below)")
    parser.add_argument("--demo", action="store_true", help="read the bundled demo image (no engine needed)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the JSON document to FILE ('-' for stdout)")
    out.add_argument("--sarif", metavar="FILE", help="write findings as SARIF 2.1.0 to FILE ('-' for stdout)")
    out.add_argument(
        "--format", choices=("text", "json", "sarif"), help="write this format to stdout (or to --output)"
    )
    out.add_argument("-o", "--output", metavar="FILE", help="where --format writes (default: stdout)")
    out.add_argument("--summary", action="store_true", help="print the text summary")
    attrib = parser.add_argument_group("attribution")
    attrib.add_argument("--dockerfile", metavar="PATH", help="the Dockerfile the image was built from")
    attrib.add_argument(
        "--build-arg",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a build argument used for the build (repeatable)",
    )
    attrib.add_argument(
        "--stage",
        metavar="NAME=IMAGE",
        action="append",
        default=[],
        help="an image of a builder stage (docker build --target NAME); repeatable",
    )
    ci = parser.add_argument_group("CI mode (exit 0 pass, 1 fail, 2 error)")
    ci.add_argument("--ci", action="store_true", help="check thresholds and exit 1 if any fails")
    ci.add_argument(
        "--ci-config",
        metavar="FILE",
        help="thresholds file (default: .slimscope.toml, or [tool.slimscope.ci] in pyproject.toml)",
    )
    ci.add_argument("--lowest-efficiency", metavar="RATIO", help="dive's lowestEfficiency (default 0.9)")
    ci.add_argument("--highest-wasted-bytes", metavar="SIZE", help="dive's highestWastedBytes (default off)")
    ci.add_argument(
        "--highest-user-wasted-percent", metavar="RATIO", help="dive's highestUserWastedPercent (default 0.1)"
    )
    ci.add_argument("--max-hidden-bytes", metavar="SIZE", help="most hidden bytes allowed (default off)")
    ci.add_argument(
        "--max-removable",
        metavar="CATEGORY=SIZE",
        action="append",
        default=[],
        help="most removable bytes of a category (toolchain, cache, source, docs, secret); repeatable",
    )
    ci.add_argument(
        "--max-secrets", metavar="N", type=int, help="most possible secret files allowed (default 0)"
    )
    parser.add_argument("--image", dest="select", metavar="TAG", help="which image of a multi-image archive")
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="which platform of a multi-platform index (default: the host's)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-cache", action="store_true", help="neither use nor fill the layer cache (see README)"
    )
    parser.add_argument("--no-tui", action="store_true", help="print the text summary even on a terminal")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    return parser


class _Version(argparse.Action):
    """`--version`: the version, and which compiled fast paths are in use."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: object,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from slimscope import native

        fast = native.in_use()
        print(f"slimscope {__version__} ({'compiled: ' + ', '.join(fast) if fast else 'Python only'})")
        parser.exit()


def demo_image_path() -> str:
    """The bundled demo image archive."""
    from importlib import resources

    return str(resources.files("slimscope").joinpath("data/demo-image.tar"))


SUBCOMMANDS = {
    "diff": "slimscope.commands.diff",
    "suggest": "slimscope.commands.suggest",
    "cache": "slimscope.commands.cache",
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    `slimscope diff ...` and `slimscope suggest ...` go to their own modules (each has `build_parser()`
    and `run(args) -> int`); everything else is `slimscope IMAGE`. Errors are handled here for all.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        args = module.build_parser().parse_args(argv[1:])
        return guarded(args, lambda: module.run(args))
    args = build_parser().parse_args(argv)
    return guarded(args, lambda: _run(args))


def guarded(args: argparse.Namespace, run) -> int:
    """Run a command with slimscope's error contract: one line on stderr and exit 2, no traceback."""
    try:
        with _signals_as_interrupts():
            return run()
    except KeyboardInterrupt:
        _stderr_line("interrupted")
        return EXIT_INTERRUPTED
    except SlimscopeError as exc:
        if args.debug:
            raise
        _stderr_line(f"error: {exc}")
        return EXIT_ERROR
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_OK
    except Exception as exc:  # a bug: still one line, unless --debug
        if args.debug:
            raise
        _stderr_line(f"internal error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)")
        return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    if args.demo:
        target = demo_image_path()
    elif args.image:
        target = args.image
    else:
        raise SlimscopeError("no image given (try `slimscope --demo`, or `slimscope --help`)")
    thresholds_given = [
        args.lowest_efficiency,
        args.highest_wasted_bytes,
        args.highest_user_wasted_percent,
        args.max_hidden_bytes,
        args.max_secrets,
        args.max_removable or None,
        args.ci_config,
    ]
    if any(value is not None for value in thresholds_given):
        args.ci = True  # a threshold means CI mode, as in `slimscope diff`
    if args.ci:
        args.ci_limits = _ci_limits(args)  # bad thresholds fail before any image is read
    wants_output = args.json or args.sarif or args.format or args.summary or args.ci
    if not wants_output and sys.stdout.isatty() and sys.stdin.isatty() and not args.no_tui:
        return _explore(args, target)
    with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
        progress.waiting = _prepare_analysis
        image = _load(args, target, progress)
    analysis = _analysed(args, image)
    dockerfile_lines = _attribution(args, analysis)
    to_stdout = [args.json == "-", args.sarif == "-", bool(args.format) and args.output in (None, "-")]
    if sum(to_stdout) > 1:
        raise SlimscopeError("only one output can go to stdout; give the others a FILE")
    if args.json:
        _emit("json", args.json, analysis, args, dockerfile_lines)
    if args.sarif:
        _emit("sarif", args.sarif, analysis, args, dockerfile_lines)
    if args.format:
        _emit(args.format, args.output or "-", analysis, args, dockerfile_lines)
    wrote = bool(args.json or args.sarif or args.format)
    text_on_stdout = args.format == "text" and args.output in (None, "-")
    if (args.summary or not wrote) and not text_on_stdout:
        _emit("text", "-", analysis, args, dockerfile_lines)
    if args.ci:
        return _ci(args, analysis, to_stderr=any(to_stdout))
    return EXIT_OK


def _load(args: argparse.Namespace, target: str, progress):
    """The image the command line names; a big blob's digest may still be checked (see _analysed)."""
    from slimscope.sources import load_image

    return load_image(
        target,
        image=args.select,
        platform=args.platform,
        progress=progress,
        cache=_cache(args),
        verify_later=True,
    )


def _analysed(args: argparse.Namespace, image):
    """The image's analysis, made while the sha256 of a big blob may still run, then verified."""
    from slimscope.analysis import analyze

    if args.demo:
        image.reference = "demo (bundled)"
    analysis = analyze(image)
    image.verify()  # before anything is written or shown
    return analysis


def _prepare_analysis() -> None:
    """Import the analysis and compile the rule catalog (about 0.1 s), while workers read the image."""
    from slimscope.analysis import rules

    rules.compiled_catalog()


def _explore(args: argparse.Namespace, target: str) -> int:
    """Open the explorer; reading and analysis start in a thread first, while Textual is imported."""
    from slimscope.early_read import EarlyRead
    from slimscope.image import parallel

    def load(progress):
        analysis = _analysed(args, _load(args, target, progress))
        _attribution(args, analysis)
        return analysis

    parallel.prestart()  # fork the workers while this process has one thread
    early = EarlyRead(load)
    try:
        return _run_explorer(args, target, early.load)
    finally:
        early.abandon()  # nothing to wait for once the explorer has it; else it stops at its next report
        parallel.stop_prestarted()


def _run_explorer(args: argparse.Namespace, target: str, load) -> int:
    from slimscope.tui.app import ExplorerApp

    def suggest(progress):
        from slimscope.commands.suggest import make_suggestion

        return make_suggestion(
            target,
            dockerfile=args.dockerfile,
            build_args=_pairs(args.build_arg, "--build-arg"),
            select=args.select,
            platform=args.platform,
            progress=progress,
            cache=_cache(args),
        )[1]

    app = ExplorerApp("demo (bundled)" if args.demo else target, load=load, suggest=suggest)
    with _signals_to_app(app):
        app.run()
    if app.error is not None:
        if args.debug and app.exc is not None:
            raise app.exc
        raise SlimscopeError(app.error)
    if app.return_code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt  # reported like any other interruption
    return app.return_code or EXIT_OK


def _cache(args: argparse.Namespace):
    """The layer cache for this run (None with --no-cache)."""
    from slimscope.cache import open_cache

    return open_cache(disabled=getattr(args, "no_cache", False))


def _attribution(args: argparse.Namespace, analysis) -> dict[int, int] | None:
    """Dockerfile and stage attribution (--dockerfile, --stage); layer index -> Dockerfile line."""
    if not args.dockerfile and not args.stage:
        return None
    from slimscope.analysis.attribution import attribute

    build_args = _pairs(args.build_arg, "--build-arg")
    stages = _pairs(args.stage, "--stage")
    return attribute(analysis, args.dockerfile, build_args, stages)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise SlimscopeError(f"{flag} takes KEY=VALUE, not {value!r}")
        pairs[key] = rest
    return pairs


def _emit(fmt: str, target: str, analysis, args: argparse.Namespace, lines: dict[int, int] | None) -> None:
    """Write one output format to a file or stdout."""
    import json

    if fmt == "text":
        from rich.console import Console

        from slimscope.report.text import render

        if target == "-":
            console = stdout_console()
            if not console.is_terminal and "COLUMNS" not in os.environ:
                console.width = 140  # logs and pipes: wide enough for one line per layer
                console.soft_wrap = True  # and long lines stay whole, not folded to column 0
            render(analysis, console)
            return

        def write_text(out: IO[str]) -> None:
            render(analysis, Console(file=out, width=140, no_color=True, highlight=False, soft_wrap=True))

        write_atomically(target, write_text)
        return
    if fmt == "json":
        from slimscope.report.json_doc import document, dump

        doc = document(analysis)
        if analysis.extras.get("attribution"):
            doc["attribution"] = analysis.extras["attribution"]
    else:
        from slimscope.report.sarif import sarif

        doc = sarif(analysis, args.dockerfile, lines)

    def write(out: IO[str]) -> None:
        if fmt == "json":
            dump(doc, out)
        else:
            json.dump(doc, out, indent=2, ensure_ascii=True)
            out.write("\n")

    if target == "-":
        write(sys.stdout)
    else:
        write_atomically(target, write)


def _ci_limits(args: argparse.Namespace) -> dict:
    """The CI thresholds from defaults, config file and flags, checked for sense."""
    from slimscope.ci import load_config, thresholds, validate

    removable = _pairs(args.max_removable, "--max-removable")
    overrides = {
        "lowestEfficiency": args.lowest_efficiency,
        "highestWastedBytes": args.highest_wasted_bytes,
        "highestUserWastedPercent": args.highest_user_wasted_percent,
        "max-hidden-bytes": args.max_hidden_bytes,
        "max-removable-bytes": removable or None,
        "max-secrets": args.max_secrets,
    }
    limits = thresholds(load_config(args.ci_config), overrides)
    validate(limits)
    return limits


def _ci(args: argparse.Namespace, analysis, to_stderr: bool) -> int:
    """Check the CI thresholds; print one line per check."""
    from slimscope.ci import evaluate

    checks = evaluate(analysis, args.ci_limits)
    stream = sys.stderr if to_stderr else sys.stdout
    failed = [c for c in checks if not c.passed]
    for check in checks:
        stream.write(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}\n")
    verdict = "FAIL" if failed else "PASS"
    stream.write(f"CI result: {verdict} ({len(checks) - len(failed)} of {len(checks)} checks pass)\n")
    return 1 if failed else EXIT_OK


@contextmanager
def _progress(enabled: bool):
    """A transient progress bar on stderr while the image is read."""
    from slimscope.sources import Progress

    if not enabled:
        yield Progress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    state: dict[str, int] = {}
    lock = threading.Lock()
    from slimscope.image import parallel

    parallel.prestart()  # the bar draws from a thread: fork the workers before it starts

    def start(what: str, total: int | None) -> None:
        state["task"] = bar.add_task(what, total=total)

    def advance(n: int) -> None:
        with lock:
            if "task" in state:
                bar.advance(state["task"], n)

    try:
        with bar:
            yield Progress(start=start, advance=advance)
    finally:
        parallel.stop_prestarted()


@contextmanager
def _signals_as_interrupts():
    """SIGTERM ends the run like Ctrl-C does, so cleanup code runs on both."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_to_app(app):
    """SIGINT and SIGTERM while the explorer runs end it the way ctrl+c does (status 130).

    A KeyboardInterrupt raised at a random point of the event loop can skip Textual's cleanup, and
    asyncio turns SIGINT into a cancellation that Textual ends with status 0. An ignored SIGINT stays ignored.
    """
    import asyncio

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        try:
            loop = asyncio.get_running_loop()  # the handler runs on the main thread, the app's loop
        except RuntimeError:
            raise KeyboardInterrupt from None  # before or after the app's loop
        loop.call_soon_threadsafe(app.exit, None, EXIT_INTERRUPTED)

    signals = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signals.append(signal.SIGINT)
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stdout_console():
    """A rich Console on stdout whose broken pipe (`slimscope ... | head`) ends the run quietly with 0.

    rich's own handling exits with status 1; raising BrokenPipeError lets `guarded` handle it.
    """
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return _Console(highlight=False)


def _stderr_line(message: str, stream: IO[str] | None = None) -> None:
    from slimscope.sanitize import visible

    stream = stream or sys.stderr
    stream.write(f"slimscope: {visible(message)}\n")
    stream.flush()


def _quiet_broken_pipe() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
