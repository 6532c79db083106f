"""`slimscope cache [info|clear]`: where the layer cache is, what it holds, and emptying it."""

from __future__ import annotations

import argparse
import os
import sys

from slimscope import __version__

EXIT_OK = 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `slimscope cache`."""
    parser = argparse.ArgumentParser(
        prog="slimscope cache",
        description="Show or empty the layer cache (SLIMSCOPE_CACHE_DIR, SLIMSCOPE_CACHE_SIZE).",
    )
    parser.add_argument(
        "action", nargs="?", choices=("info", "clear"), default="info", help="info (default) or clear"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="version", version=f"slimscope {__version__}")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the cache's location and contents, or empty it."""
    from slimscope.cache import LayerCache
    from slimscope.report.text import human
    from slimscope.sanitize import visible

    cache = LayerCache()
    if args.action == "clear":
        freed = cache.clear()
        print(f"removed {human(freed)} from {visible(str(cache.root))}")
        return EXIT_OK
    files = cache.entries()
    layers = [row for row in files if os.path.dirname(row[0]) == cache.layers_dir]
    images = [row for row in files if os.path.dirname(row[0]) == cache.images_dir]
    archives = [row for row in files if os.path.dirname(row[0]) == cache.archives_dir]
    total = sum(size for _, size, _ in files)
    bound = "off" if cache.max_bytes <= 0 else human(cache.max_bytes)
    out = sys.stdout
    out.write(f"layer cache: {visible(str(cache.root))}\n")
    out.write(f"  {_count(len(layers), 'layer')}, {_count(len(images), 'engine image')}, ")
    out.write(f"{_count(len(archives), 'archive')}, {human(total)}")
    out.write(f" (bound {bound})\n")
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
