"""Explorer responsiveness on a 200,000-file image: first screen, cursor, a 5,000-entry folder, search.

Usage: .venv/bin/python bench/tui_bench.py [--files N] [--wide N] [--rebuild] [--repeat N]

The image is synthetic (fixtures/synth.py), cached in bench/out/tui/: four layers, N files in total, one
folder (`wide/`) with 5,000 entries, a few findings (docs, pip cache, a compiler), whiteouts and rewrites.
After the analysis (timed for information), each row measures CPU time (`time.process_time`, this process,
all threads) around direct calls, with wall time (`time.perf_counter`) beside it:

* first screen: from starting a headless ExplorerApp (120x40) with the finished analysis until the main
  screen has been composed, mounted and rendered (the Pilot's first idle); target 1 s;
* cursor move: `FileTree.action_cursor_down` plus the work it causes until idle (the details pane
  describes the row, the line is repainted); the first move, which builds the path index behind the
  details pane, is a row of its own; target 50 ms per key;
* expand `wide/`: the model's `children` + `arrange` of 5,000 rows, then the widget (`expand`, its
  `_fill` of the first 300 rows, repaint); and the next chunk via the "more" row; target 50 ms;
* search typing: `model.search` for each prefix (1..6 characters) of a query plus the count of matching
  paths the filter line shows (the matches answer the tree's questions lazily, so the count is most of
  a key's model work), and the screen's `apply_search` (search + tree rebuild + opening matches +
  repaint) for the same prefixes; target 50 ms per key (the search box waits 0.15 s after the last
  key, so each row is the work of one key at most). Each run types the query afresh: the matches the
  searcher keeps for deleting characters are dropped first.

Prints one table with PASS/FAIL per row (slowest sample of --repeat runs). Timings are never asserted in
tests; this script is the place to look at them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out" / "tui"
sys.path.insert(0, str(ROOT / "fixtures"))
sys.path.insert(0, str(ROOT))

import synth  # noqa: E402

from slimscope.analysis import Analysis, analyze  # noqa: E402
from slimscope.sources import load_image  # noqa: E402

RECIPE = "1"
FIRST_SCREEN_TARGET = 1.0
KEY_TARGET = 0.050
QUERY = "mod07/"  # each prefix is one keystroke: m, mo, mod, mod0, mod07, mod07/
REGEX = "re:mod0[0-7]/"  # a regex that is not a plain literal (re:m ... re:mod0 are searched as substrings)


@dataclass
class Row:
    """One measured operation: CPU and wall seconds of each sample."""

    name: str
    target: float
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def worst(self) -> float:
        """The slowest sample's CPU time (what PASS/FAIL is judged on)."""
        return max(self.cpu)

    @property
    def passed(self) -> bool:
        """Whether the slowest sample is within the target."""
        return self.worst <= self.target


@contextmanager
def timed(row: Row) -> Iterator[None]:
    """Add one CPU and wall sample to a row."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    row.cpu.append(time.process_time() - cpu)
    row.wall.append(time.perf_counter() - wall)


# -- the image --------------------------------------------------------------------------------------------


def build_image(files: int, wide: int) -> synth.Image:
    """Four layers with `files` files in all, `wide` of them in the single folder wide/."""
    rest = files - wide
    per_module, modules_per_pkg = 100, 10
    entries: list[synth.Entry] = [synth.directory("srv")]
    made = 0
    pkg = 0
    while made < rest * 3 // 4:
        entries.append(synth.directory(f"srv/pkg{pkg:04d}"))
        for mod in range(modules_per_pkg):
            folder = f"srv/pkg{pkg:04d}/mod{mod:02d}"
            entries.append(synth.directory(folder))
            for i in range(per_module):
                entries.append(
                    synth.file(f"{folder}/file{i:03d}.py", b"x" * ((pkg * 7 + mod * 13 + i) % 400))
                )
            made += per_module
        pkg += 1
    entries += [synth.directory("usr"), synth.directory("usr/share"), synth.directory("usr/share/doc")]
    for i in range(200):
        entries.append(synth.directory(f"usr/share/doc/p{i:03d}"))
        entries.append(synth.file(f"usr/share/doc/p{i:03d}/copyright", b"c" * 300))
    entries.append(synth.directory("usr/bin"))
    entries.append(synth.file("usr/bin/gcc-12", b"\x7fELF" + b"g" * 5000))
    made += 201
    base = synth.Layer(entries, created_by=synth.created_by("RUN", "install the base"))

    second: list[synth.Entry] = [synth.directory("opt")]
    index = 0
    while made < rest:
        folder = f"opt/lib{index:04d}"
        second.append(synth.directory(folder))
        for i in range(min(250, rest - made)):
            second.append(synth.file(f"{folder}/mod{i % 10:02d}_{i:03d}.so", b"s" * (i % 700)))
            made += 1
        index += 1
    second += [synth.directory("root"), synth.directory("root/.cache"), synth.directory("root/.cache/pip")]
    second += [synth.file(f"root/.cache/pip/w{i}.whl", b"w" * 1000) for i in range(50)]
    layer2 = synth.Layer(second, created_by=synth.created_by("RUN", "pip install -r requirements.txt"))

    third = [synth.directory("wide")]
    third += [synth.file(f"wide/entry{i:05d}.dat", b"d" * (i % 997)) for i in range(wide)]
    layer3 = synth.Layer(third, created_by=synth.created_by("COPY", "data /wide"))

    fourth = [synth.directory("srv"), synth.directory("srv/pkg0000"), synth.directory("srv/pkg0000/mod00")]
    fourth += [synth.file(f"srv/pkg0000/mod00/file{i:03d}.py", b"new" * 50) for i in range(50)]
    fourth += [synth.directory("srv/pkg0001"), synth.whiteout("srv/pkg0001/mod01")]
    layer4 = synth.Layer(fourth, created_by=synth.created_by("RUN", "patch and clean up"))
    return synth.Image([base, layer2, layer3, layer4], tags=["tui-bench:latest"])


def archive(files: int, wide: int, rebuild: bool) -> Path:
    """The cached archive for these parameters (built when missing)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"tui-{files}-{wide}.tar"
    sidecar = path.with_suffix(".json")
    key = {"recipe": RECIPE, "files": files, "wide": wide}
    if not rebuild and path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == key:
        return path
    start = time.perf_counter()
    synth.write_archive(path, build_image(files, wide), "docker-oci")
    sidecar.write_text(json.dumps(key))
    print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s")
    return path


# -- measurements ------------------------------------------------------------------------------------------


def measure_model(analysis: Analysis, rows: dict[str, Row]) -> None:
    """Direct calls into slimscope.tui.model."""
    from slimscope.tui.model import Filters, FsSource, arrange, search

    last = len(analysis.image.layers) - 1
    with timed(rows["source"]):
        source = FsSource(analysis, analysis.fs, last)
    with timed(rows["all_paths"]):
        paths = source.all_paths()
    rows["all_paths"].note = f"{len(paths):,} paths"
    with timed(rows["model_expand"]):
        wide = arrange(source.children(b"wide"), Filters())
    rows["model_expand"].note = f"{len(wide):,} rows"
    searcher = source.searcher()  # kept with the view, as the screen does
    for n in range(1, len(QUERY) + 1):
        with timed(rows["search"]):
            found = search(searcher, QUERY[:n])
            count = len(found or ())  # the screen shows how many paths match: part of the key's work
        rows["search"].note = f"'{QUERY}': {count:,} matching paths"


async def measure_app(analysis: Analysis, rows: dict[str, Row]) -> None:
    """The explorer in a headless app: first screen, cursor, expanding, search through the screen."""
    from slimscope.tui.app import ExplorerApp, MainScreen
    from slimscope.tui.widgets import FileTree

    prepared = analysis.extras.get("final_source")
    if prepared is not None:
        prepared.searcher().forget()  # each run types the query afresh, with no matches kept from the last
    app = ExplorerApp(analysis.image.reference, analysis=analysis)
    with timed(rows["first_screen"]):
        context = app.run_test(size=(120, 40))
        pilot = await context.__aenter__()
        await pilot.pause()
    try:
        assert isinstance(app.screen, MainScreen)
        screen = app.screen
        tree = screen.query_one(FileTree)
        rows["first_screen"].note = f"{len(tree.root.children)} top rows"

        with timed(rows["first_move"]):
            tree.action_cursor_down()
            await pilot.pause()
        for _ in range(30):
            with timed(rows["cursor"]):
                tree.action_cursor_down()
                await pilot.pause()
        for _ in range(10):
            with timed(rows["cursor"]):
                tree.action_cursor_up()
                await pilot.pause()

        node = next(n for n in tree.root.children if n.data[1].path == b"wide")
        tree.move_cursor(node)
        await pilot.pause()
        with timed(rows["widget_expand"]):
            node.expand()
            await pilot.pause()
        rows["widget_expand"].note = f"{len(node.children)} nodes shown"
        more = node.children[-1]
        tree.move_cursor(more)
        await pilot.pause()
        with timed(rows["more"]):
            tree.action_select_cursor()
            await pilot.pause()
        rows["more"].note = f"{len(node.children)} nodes shown"
        for _ in range(10):  # moving inside the open folder
            with timed(rows["cursor"]):
                tree.action_cursor_down()
                await pilot.pause()

        for n in range(1, len(QUERY) + 1):
            with timed(rows["screen_search"]):
                screen.apply_search(QUERY[:n])
                await pilot.pause()
        with timed(rows["screen_search"]):
            screen.action_clear()
            await pilot.pause()
        screen.source().searcher().forget()  # re:m .. re:mod0 are substrings: do not reuse the ones above
        for n in range(len("re:") + 1, len(REGEX) + 1):
            with timed(rows["screen_regex"]):
                screen.apply_search(REGEX[:n])  # 're:mod0[' ... 're:mod0[0-7' are bad: a notice, no search
                await pilot.pause()
        screen.action_clear()
        await pilot.pause()
    finally:
        await context.__aexit__(None, None, None)


class GcPauses:
    """Wall time of each garbage collection while enabled (a full one over a big analysis is slow)."""

    def __init__(self) -> None:
        self.enabled = False
        self.start = 0.0
        self.row = Row("largest garbage collection pause during the UI rows", KEY_TARGET)
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict) -> None:
        """gc.callbacks hook."""
        if phase == "start":
            self.start = time.perf_counter()
        elif self.enabled:
            pause = time.perf_counter() - self.start
            self.row.cpu.append(pause)
            self.row.wall.append(pause)
            self.row.note = f"{len(self.row.cpu)} collections (wall time; CPU rows above include them)"


def run(files: int, wide: int, rebuild: bool, repeat: int, freeze: bool = False) -> list[Row]:
    """Build or reuse the image, analyse it, measure everything `repeat` times."""
    path = archive(files, wide, rebuild)
    analysis_row = Row("analysis (load_image + analyze), for reference", float("inf"))
    with timed(analysis_row):
        image = load_image(str(path))
        image.reference = "tui-bench:latest"
        analysis = analyze(image)
    from slimscope.tui.app import prepare

    prepare_row = Row("loader thread: path index, folder totals, gc.freeze (off the UI thread)", float("inf"))
    with timed(prepare_row):
        prepare(analysis)  # what the explorer's loader does before the first screen
    del freeze  # prepare() always freezes now
    pauses = GcPauses()
    rows = {
        "first_screen": Row("first screen (app start, MainScreen mount, first render)", FIRST_SCREEN_TARGET),
        "source": Row("  of which: FsSource (folder totals) for the last layer", FIRST_SCREEN_TARGET),
        "first_move": Row("first cursor move (details from the prepared path index)", KEY_TARGET),
        "cursor": Row("cursor move (action_cursor_down/up + details + repaint)", KEY_TARGET),
        "model_expand": Row("expand wide/: model children + arrange", KEY_TARGET),
        "widget_expand": Row("expand wide/: widget expand + fill 300 + repaint", KEY_TARGET),
        "more": Row("wide/: 'more' row, next 300", KEY_TARGET),
        "all_paths": Row("search: all_paths (once per view, cached)", KEY_TARGET),
        "search": Row("search typing: model.search per prefix (1..6 chars)", KEY_TARGET),
        "screen_search": Row("search typing: screen.apply_search per prefix + repaint", KEY_TARGET),
        "screen_regex": Row(
            "  for reference: the same for a regex (re:m .. re:mod0[0-7]/)",
            float("inf"),
            note="4 of the prefixes are bad regexes (a notice, no search); no target set for regexes yet",
        ),
    }
    for _ in range(repeat):
        measure_model(analysis, rows)
        gc.collect()  # the previous run's app is garbage: do not bill its collection to this run
        pauses.enabled = True
        asyncio.run(measure_app(analysis, rows))
        pauses.enabled = False
    if not pauses.row.cpu:
        pauses.row.cpu.append(0.0)
        pauses.row.wall.append(0.0)
    seen = sum(1 for _ in analysis.fs.walk())
    print(f"image: {path.name}, {len(analysis.image.layers)} layers, {seen:,} paths in the final filesystem")
    return [analysis_row, prepare_row, *rows.values(), pauses.row]


def report(rows: list[Row]) -> bool:
    """Print the table; True when every row with a target passes."""
    print()
    print(f"{'operation':<60} {'n':>3} {'CPU max':>9} {'CPU med':>9} {'wall max':>9} {'target':>8}  result")
    print("-" * 110)
    ok = True
    for row in rows:
        target = "" if row.target == float("inf") else f"{row.target * 1000:.0f} ms"
        result = "" if not target else ("PASS" if row.passed else "FAIL")
        ok = ok and (not target or row.passed)
        print(
            f"{row.name:<60} {len(row.cpu):>3} {ms(row.worst):>9} {ms(statistics.median(row.cpu)):>9} "
            f"{ms(max(row.wall)):>9} {target:>8}  {result}"
        )
        if row.note:
            print(f"{'':<4}{row.note}")
    return ok


def ms(seconds: float) -> str:
    """Milliseconds, or seconds above 10 s."""
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds * 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a row misses its target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200_000, help="files in the image (default 200,000)")
    parser.add_argument("--wide", type=int, default=5_000, help="entries of wide/ (default 5,000)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached archive")
    parser.add_argument("--repeat", type=int, default=3, help="runs of every measurement (default 3)")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after the analysis (shows what GC pauses cost)"
    )
    args = parser.parse_args(argv)
    rows = run(args.files, args.wide, args.rebuild, args.repeat, args.gc_freeze)
    return 0 if report(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
