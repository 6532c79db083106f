"""`slimscope diff OLD NEW`: what changed between two images, and CI thresholds on the growth.

Exit codes follow diff(1): 0 identical, 1 different, 2 error. With `--ci` (or any threshold) the exit
code is the thresholds' verdict instead: 0 all pass, 1 one fails.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from slimscope import __version__
from slimscope.analysis.diff import DEFAULT_IGNORES, Diff
from slimscope.errors import SlimscopeError
from slimscope.image.model import Image
from slimscope.sources import Progress

if TYPE_CHECKING:
    from slimscope.cache import LayerCache

EXIT_SAME = 0
EXIT_DIFFERENT = 1

EPILOG = (
    """\
OLD and NEW may be anything `slimscope IMAGE` reads: engine references, docker-archive or OCI archives,
OCI layout directories, in any mix. Layers the two share are read once: a blob of NEW that holds a layer
OLD already read (the same blob, or the same tar uncompressed) is hashed and checked, not decompressed
or parsed again.

default ignore patterns (--no-default-ignores turns them off; --ignore adds more):
"""
    + "".join(f"  {pattern}\n" for pattern in DEFAULT_IGNORES)
    + """\

A pattern matches paths without a leading '/'; '*' and '?' stay inside one name, '**' spans folders,
and a pattern that names a folder covers everything in it. Ignored paths are counted, not listed.

exit codes: 0 identical, 1 different, 2 bad input or environment (one line on stderr), 130 interrupted;
with --ci: 0 every threshold passes, 1 one fails
"""
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `slimscope diff`."""
    parser = argparse.ArgumentParser(
        prog="slimscope diff",
        description="Compare two container images: layers, files, packages, config and findings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("old", metavar="OLD", help="the image to compare from")
    parser.add_argument("new", metavar="NEW", help="the image to compare to")
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the JSON diff document to FILE ('-' for stdout)")
    out.add_argument("--summary", action="store_true", help="print the text summary even with --json FILE")
    out.add_argument("--no-tui", action="store_true", help="print the text summary even on a terminal")
    out.add_argument("--top", metavar="N", type=int, default=15, help="rows per section in the text (15)")
    what = parser.add_argument_group("what to compare")
    what.add_argument(
        "--ignore",
        metavar="GLOB",
        action="append",
        default=[],
        help="leave out paths matching GLOB (repeatable), e.g. 'app/logs/**' or '**/*.log'",
    )
    what.add_argument(
        "--no-default-ignores", action="store_true", help="compare the default ignore patterns' paths too"
    )
    ci = parser.add_argument_group("CI mode (exit 0 pass, 1 fail, 2 error; a threshold implies --ci)")
    ci.add_argument("--ci", action="store_true", help="check the thresholds and exit 1 if any fails")
    ci.add_argument(
        "--max-growth",
        metavar="SIZE",
        help="most bytes the image may grow (stored layer bytes, uncompressed)",
    )
    ci.add_argument("--max-new-files", metavar="N", type=int, help="most paths NEW may add (outside ignores)")
    ci.add_argument(
        "--max-new-removable",
        metavar="SIZE",
        help="most removable bytes NEW may add (toolchains, caches, sources, docs, secrets)",
    )
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]", help="which platform of a multi-platform index, for both"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-cache", action="store_true", help="neither use nor fill the layer cache (see README)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"slimscope {__version__}")
    return parser


def load_pair(
    old: str,
    new: str,
    *,
    platform: str | None = None,
    progress: Progress | None = None,
    cache: LayerCache | None = None,
) -> tuple[Image, Image]:
    """Read both images; NEW reuses the layers OLD already read (same blob: hashed, not parsed)."""
    from slimscope.sources import load_image

    with _naming("OLD", old):
        old_image = load_image(old, platform=platform, progress=progress, cache=cache)
    with _naming("NEW", new):
        new_image = load_image(
            new, platform=platform, progress=progress, known_layers=old_image.layers, cache=cache
        )
    return old_image, new_image


@contextmanager
def _naming(which: str, text: str) -> Iterator[None]:
    """Errors reading one of the two images say which one, unless they name it already."""
    try:
        yield
    except SlimscopeError as exc:
        message = str(exc)
        if text in message:
            raise
        raise exc.__class__(f"{which} ({text}): {message}") from None


@dataclass
class Check:
    """One CI threshold's verdict."""

    name: str
    passed: bool
    detail: str


def run(args: argparse.Namespace) -> int:
    """Read, compare, print or write; returns the exit code."""
    from slimscope.analysis import analyze
    from slimscope.analysis.diff import diff_analyses, ignore_matcher
    from slimscope.cli import _cache, _progress

    checking = args.ci or any(
        value is not None for value in (args.max_growth, args.max_new_files, args.max_new_removable)
    )
    limits = _limits(args) if checking else {}
    if args.top < 1:
        raise SlimscopeError("--top takes a positive number")
    if args.json == "-" and args.summary:
        raise SlimscopeError("--summary and --json - both want stdout; give --json a FILE")
    patterns = [*(() if args.no_default_ignores else DEFAULT_IGNORES), *args.ignore]
    ignore_matcher(patterns)  # a bad pattern fails before any image is read
    with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
        old_image, new_image = load_pair(
            args.old, args.new, platform=args.platform, progress=progress, cache=_cache(args)
        )
    diff = diff_analyses(analyze(old_image), analyze(new_image), ignore=patterns)
    interactive = sys.stdout.isatty() and sys.stdin.isatty() and not (args.json or args.summary or checking)
    if interactive and not args.no_tui:
        from slimscope.tui.app import DiffApp

        app = DiffApp(diff)
        app.run()
        if app.return_code == 130:
            raise KeyboardInterrupt
        return EXIT_SAME if diff.identical else EXIT_DIFFERENT
    if args.json:
        _write_json(diff, args.json)
    if args.summary or not args.json:
        _print_text(diff, args.top)
    if checking:
        return _ci(diff, limits, sys.stderr if args.json == "-" else sys.stdout)
    return EXIT_SAME if diff.identical else EXIT_DIFFERENT


def _limits(args: argparse.Namespace) -> dict[str, int]:
    from slimscope.units import parse_size

    limits: dict[str, int] = {}
    if args.max_growth is not None:
        limits["max-growth"] = parse_size(args.max_growth)
    if args.max_new_files is not None:
        if args.max_new_files < 0:
            raise SlimscopeError("--max-new-files takes a number of files (0 or more)")
        limits["max-new-files"] = args.max_new_files
    if args.max_new_removable is not None:
        limits["max-new-removable"] = parse_size(args.max_new_removable)
    if not limits:
        raise SlimscopeError("--ci needs a threshold: --max-growth, --max-new-files or --max-new-removable")
    return limits


def evaluate(diff: Diff, limits: dict[str, int]) -> list[Check]:
    """Check the growth thresholds against a diff."""
    from slimscope.report.text import human as _human

    def size(n: int) -> str:
        sign = "+" if n > 0 else "-" if n < 0 else ""
        return f"{sign}{abs(n):,} B ({sign}{_human(abs(n))})" if abs(n) >= 1000 else f"{n:+} B"

    s = diff.summary
    checks = []
    if "max-growth" in limits:
        limit = limits["max-growth"]
        checks.append(
            Check(
                "max-growth",
                s.image_bytes_delta <= limit,
                f"growth {size(s.image_bytes_delta)}, at most {limit:,} B",
            )
        )
    if "max-new-files" in limits:
        limit = limits["max-new-files"]
        checks.append(Check("max-new-files", s.added <= limit, f"{s.added:,} new paths, at most {limit:,}"))
    if "max-new-removable" in limits:
        limit = limits["max-new-removable"]
        found = s.new_removable_bytes
        checks.append(
            Check("max-new-removable", found <= limit, f"new removable {size(found)}, at most {limit:,} B")
        )
    return checks


def _ci(diff: Diff, limits: dict[str, int], stream: IO[str]) -> int:
    checks = evaluate(diff, limits)
    failed = [c for c in checks if not c.passed]
    for check in checks:
        stream.write(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}\n")
    verdict = "FAIL" if failed else "PASS"
    stream.write(f"CI result: {verdict} ({len(checks) - len(failed)} of {len(checks)} checks pass)\n")
    stream.flush()
    return EXIT_DIFFERENT if failed else EXIT_SAME


def _write_json(diff: Diff, target: str) -> None:
    from slimscope.analysis.diff import document
    from slimscope.output import write_atomically
    from slimscope.report.json_doc import dump

    doc = document(diff)
    if target == "-":
        dump(doc, sys.stdout)
        sys.stdout.flush()
    else:
        write_atomically(target, lambda out: dump(doc, out))


def _print_text(diff: Diff, top: int) -> None:

    from slimscope.cli import stdout_console
    from slimscope.report.diff_text import render

    console = stdout_console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 140
        console.soft_wrap = True  # long lines stay whole (grep-able), as in `slimscope IMAGE`'s summary
    render(diff, console, top=top)
