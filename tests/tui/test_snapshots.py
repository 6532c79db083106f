"""SVG snapshots of the explorer at 120x40 (synthetic images only, so they never depend on the engine).

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update` and review
the SVGs in tests/tui/__snapshots__/.
"""

from __future__ import annotations

from collections.abc import Callable

from conftest import find_node, settle
from textual.pilot import Pilot
from textual.widgets import Input

from slimscope.analysis import Analysis
from slimscope.tui.app import ExplorerApp
from slimscope.tui.widgets import FileTree

SIZE = (120, 40)
MakeApp = Callable[[Analysis], ExplorerApp]


def test_main_screen(snap_compare, explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """/usr and /usr/bin open, the cursor on /usr/bin/gcc-12: its details, package and finding."""
    app = make_app(explorer_analysis)
    assert snap_compare(app, terminal_size=SIZE, press=["j", "l", "j", "j", "j", "l", "j"])


def test_findings_view(snap_compare, explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """The findings pane focused, hidden bytes and the GCC finding opened, the cursor on GCC."""
    app = make_app(explorer_analysis)
    assert snap_compare(app, terminal_size=SIZE, press=["2", "down", "right", *["down"] * 8, "right"])


def test_finding_chosen(snap_compare, explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """Enter on the GCC finding: the tree shows only its paths, the cursor on the first."""
    app = make_app(explorer_analysis)
    assert snap_compare(app, terminal_size=SIZE, press=["2", "down", "down", "down", "enter"])


def test_help_screen(snap_compare, explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """Every binding of keys.py."""
    app = make_app(explorer_analysis)
    assert snap_compare(app, terminal_size=SIZE, press=["question_mark"])


def test_search_in_progress(snap_compare, explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """`/gcc` typed: the box keeps focus, the tree shows the matches and their folders."""

    async def type_query(pilot: Pilot) -> None:
        pilot.app.screen.query_one("#search", Input).cursor_blink = False
        await pilot.press("slash", *"gcc")
        await pilot.pause(0.3)  # the search runs 0.15 s after the last key
        await settle(pilot)

    app = make_app(explorer_analysis)
    assert snap_compare(app, terminal_size=SIZE, run_before=type_query)


def test_hostile_main_screen(snap_compare, hostile_analysis: Analysis, make_app: MakeApp) -> None:
    """Hostile names, history and reference as inert visible text; the cursor on `[@click=app.quit()]x`."""

    async def open_all(pilot: Pilot) -> None:
        tree = pilot.app.screen.query_one(FileTree)
        for path in (
            "/hostile",
            "/hostile/[link=http:",
            "/hostile/a[",
            "/hostile/[b]bold[",
            "/hostile/[red]big[",
        ):
            find_node(tree, path).expand()
            await settle(pilot, 1)
        tree.move_cursor(find_node(tree, "/hostile/[@click=app.quit()]x"))
        await settle(pilot)

    app = make_app(hostile_analysis)
    assert snap_compare(app, terminal_size=SIZE, run_before=open_all, press=["enter"])
