"""Command line: parse arguments, run the analysis, hand the result to a renderer. Nothing else."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager
from importlib import resources
from typing import IO

from slimscope import __version__
from slimscope.errors import SlimscopeError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

USAGE_EPILOG = """\
IMAGE may be:
  name[:tag], name@sha256:..., an image id   read from the local Docker engine (DOCKER_HOST is honoured)
  PATH or docker-archive:PATH[:TAG]          a `docker save` tarball (legacy or Docker 25+ layout)
  oci-archive:PATH[:TAG]                     an OCI image layout in a tar archive
  oci:DIR[:TAG] or DIR                       an OCI image layout directory

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
    parser.add_argument("--json", metavar="FILE", help="write the JSON document to FILE ('-' for stdout)")
    parser.add_argument("--summary", action="store_true", help="print the text summary")
    parser.add_argument("--image", dest="select", metavar="TAG", help="which image of a multi-image archive")
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="which platform of a multi-platform index (default: the host's)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"slimscope {__version__}")
    return parser


def demo_image_path() -> str:
    """The bundled demo image archive."""
    return str(resources.files("slimscope").joinpath("data/demo-image.tar"))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        with _signals_as_interrupts():
            return _run(args)
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
    from slimscope.analysis import analyze
    from slimscope.sources import load_image

    if args.demo:
        target = demo_image_path()
    elif args.image:
        target = args.image
    else:
        raise SlimscopeError("no image given (try `slimscope --demo`, or `slimscope --help`)")
    with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
        image = load_image(target, image=args.select, platform=args.platform, progress=progress)
    if args.demo:
        image.reference = "demo (bundled)"
    analysis = analyze(image)
    wrote_stdout = False
    if args.json:
        from slimscope.report.json_doc import document, dump

        doc = document(analysis)
        if args.json == "-":
            dump(doc, sys.stdout)
            wrote_stdout = True
        else:
            _write_atomically(args.json, lambda out: dump(doc, out))
    if args.summary or not wrote_stdout:
        from rich.console import Console

        from slimscope.report.text import render

        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = 140  # logs and pipes: wide enough for one line per layer
        render(analysis, console)
    return EXIT_OK


def _write_atomically(path: str, write) -> None:
    """Write a regular file through a temporary sibling so readers never see half a document.

    Devices, pipes and other special files (`/dev/null`, `/dev/stdout`, a FIFO) are written in place:
    replacing them would destroy them.
    """
    try:
        special = os.path.exists(path) and not os.path.isfile(path)
        if special:
            with open(path, "w", encoding="utf-8") as out:
                write(out)
            return
    except OSError as exc:
        raise SlimscopeError(f"cannot write {path}: {exc.strerror or exc}") from None
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            write(out)
        os.replace(tmp, path)
    except OSError as exc:
        raise SlimscopeError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


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

    def start(what: str, total: int | None) -> None:
        state["task"] = bar.add_task(what, total=total)

    def advance(n: int) -> None:
        with lock:
            if "task" in state:
                bar.advance(state["task"], n)

    with bar:
        yield Progress(start=start, advance=advance)


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
