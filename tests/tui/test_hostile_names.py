"""Hostile names render as inert, visible text; no key or click on them runs an action."""

from __future__ import annotations

from collections.abc import Callable

from conftest import (
    SIZE,
    cursor_path,
    details,
    find_node,
    open_folders,
    screen_lines,
    screen_text,
    settle,
    tree_rows,
    widget_lines,
)
from textual.pilot import Pilot

from slimscope.analysis import Analysis
from slimscope.tui.app import ExplorerApp, MainScreen
from slimscope.tui.widgets import FileTree, LayerTable

MakeApp = Callable[[Analysis], ExplorerApp]

# What each hostile name looks like on screen: the sanitizer's escapes, markup as literal text.
SHOWN = [
    r"esc-\x1b[31mred",
    r"new\nline",
    r"c1-\u009bx",
    r"bidi-\u202etxt.exe",
    "[@click=app.quit()]x",
    "[link=x]y",
    "[link=http:/",  # the folder of touch '[link=http://x]y' ...
    "x]y",  # ... and the file in it
    "a[/",  # the folder of touch 'a[/]b' ...
    "]b",
    r"bad-\xff-byte",
    "[b]bold[/",
    r"tab\there",
    "[red]big[/",
    r"link-\x1b]0;title\x07 -> esc-\x1b[31mred",
]
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\t", "\r", "\udcff"]


async def open_hostile(pilot: Pilot) -> FileTree:
    """Open hostile/ and every folder below it."""
    tree = pilot.app.screen.query_one(FileTree)
    await open_folders(
        pilot,
        tree,
        "/hostile",
        "/hostile/[link=http:",
        "/hostile/a[",
        "/hostile/[b]bold[",
        "/hostile/[red]big[",
    )
    return tree


def assert_inert(text: str) -> None:
    """No raw control, bidi or undecodable character reached the screen."""
    for raw in RAW:
        assert raw not in text, repr(raw)


async def test_names_render_as_visible_text(hostile_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(hostile_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = await open_hostile(pilot)
        lines = widget_lines(pilot.app, tree)
        shown = "\n".join(lines)
        for name in SHOWN:
            assert any(f"+ {name}  " in line for line in lines), name
        assert_inert(screen_text(pilot.app))
        assert len(tree_rows(tree)) == 18
        assert "[@click=app.quit()]x  0 B" in shown
        # at 120 columns the reference gives way to the numbers (an ellipsis), the header keeps its lines
        header = screen_lines(pilot.app)[0]
        assert header == (
            r" slimscope hostile:[@click=app.quit()]\x…  linux/amd64  1 layers  5.0 kB stored  5.0 kB visible"
            "  dive efficiency 100.0% "
        )
        table = pilot.app.screen.query_one(LayerTable)
        instruction = table.get_row_at(0)[5].plain
        assert instruction == r" RUN touch \x1b[2J[@click=app.quit()]evil [link=http://x]y"
        row = widget_lines(pilot.app, table)[2]
        assert row == r"│0   5.0 kB █████                    RUN touch \x1b[2J[@cl…│"
    async with make_app(hostile_analysis).run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        header = screen_lines(pilot.app)[0]
        assert r" slimscope hostile:[@click=app.quit()]\x1b[31m  linux/amd64  1 layers" in header
        assert_inert(screen_text(pilot.app))


async def test_details_of_hostile_names(hostile_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(hostile_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = await open_hostile(pilot)
        tree.move_cursor(find_node(tree, "/hostile/esc-\x1b[31mred"))
        await settle(pilot)
        shown = details(pilot.app)
        assert shown["path"] == r"/hostile/esc-\x1b[31mred"
        assert shown["created"] == r"layer 0: RUN touch \x1b[2J[@click=app.quit()]evil [link=http://x]y"
        tree.move_cursor(find_node(tree, "/hostile/link-\x1b]0;title\x07"))
        await settle(pilot)
        shown = details(pilot.app)
        assert shown["path"] == r"/hostile/link-\x1b]0;title\x07"
        assert shown["link"] == r"-> esc-\x1b[31mred"
        tree.move_cursor(find_node(tree, "/hostile/new\nline"))
        await settle(pilot)
        assert details(pilot.app)["path"] == r"/hostile/new\nline"
        assert_inert(screen_text(pilot.app))


async def click_text(pilot: Pilot, text: str) -> None:
    """Click the first character of `text` where it is on screen."""
    for y, line in enumerate(screen_lines(pilot.app)):
        x = line.find(text)
        if x >= 0:
            await pilot.click(offset=(x, y))
            await settle(pilot)
            return
    raise AssertionError(f"{text!r} is not on screen")


async def test_clicking_and_choosing_hostile_rows_runs_nothing(
    hostile_analysis: Analysis, make_app: MakeApp
) -> None:
    app = make_app(hostile_analysis)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        tree = await open_hostile(pilot)
        for text, path in [
            ("[@click=app.quit()]x", "/hostile/[@click=app.quit()]x"),
            ("[link=x]y", "/hostile/[link=x]y"),
            ("x]y", "/hostile/[link=http:/x]y"),
            (r"esc-\x1b[31mred", "/hostile/esc-\x1b[31mred"),
        ]:
            await click_text(pilot, text)
            assert app.is_running and isinstance(app.screen, MainScreen)
            assert cursor_path(tree) == path
            await pilot.press("enter")
            await settle(pilot)
            assert app.is_running and isinstance(app.screen, MainScreen)
            assert cursor_path(tree) == path
        await click_text(pilot, "[@click=app.quit()]x")
        await pilot.press("y")  # the toast shows the visible form, as plain text
        await settle(pilot)
        assert app.clipboard == "/hostile/[@click=app.quit()]x"
        await click_text(pilot, "copied /hostile/[@click=app.quit()]x")
        assert app.is_running
        await click_text(pilot, "RUN touch")
        assert app.is_running
        await click_text(pilot, r"hostile:[@click=app.quit()]\x…")
        assert app.is_running
        await click_text(pilot, "[link=http:/")
        assert app.is_running
    assert app.return_code is None


async def test_search_for_a_hostile_name(hostile_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(hostile_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("slash", *"[@click", "enter")
        await settle(pilot)
        tree = pilot.app.screen.query_one(FileTree)
        assert tree_rows(tree) == ["/hostile", "/hostile/[@click=app.quit()]x"]
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"re:\\x1b\\[", "enter")
        await settle(pilot)
        assert tree_rows(tree) == [
            "/hostile",
            "/hostile/esc-\x1b[31mred",
        ]
        assert pilot.app.is_running
