"""The explorer on images built by a real Docker engine (fixtures/images/layers and hostile).

The images are read through the loading screen, as `slimscope IMAGE` does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import (
    SIZE,
    cursor_path,
    details,
    find_node,
    label_of,
    open_folders,
    screen_text,
    settle,
    tree_rows,
)
from test_hostile_names import SHOWN, assert_inert, click_text
from textual.pilot import Pilot

from slimscope.analysis import analyze
from slimscope.sources import Progress, load_image
from slimscope.tui.app import ExplorerApp, MainScreen
from slimscope.tui.widgets import FileTree, FindingsTree, LayerTable

pytestmark = pytest.mark.engine


def explorer(tag: str) -> ExplorerApp:
    """The explorer reading an engine image in its worker thread."""

    def load(progress: Progress):
        return analyze(load_image(tag, progress=progress))

    return ExplorerApp(tag, load=load)


async def main_screen(pilot: Pilot) -> FileTree:
    """Wait (up to 60 s) for the analysis, then return the file tree."""
    for _ in range(1200):
        if isinstance(pilot.app.screen, MainScreen):
            await settle(pilot)
            return pilot.app.screen.query_one(FileTree)
        assert pilot.app.is_running, pilot.app.error
        await pilot.pause(0.05)
    raise AssertionError("the explorer did not open")


async def test_layers_image(build_fixture_image: Callable[[str], str]) -> None:
    tag = build_fixture_image("layers")
    app = explorer(tag)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        tree = await main_screen(pilot)
        layers = app.screen.query_one(LayerTable)
        assert layers.row_count == 9 and layers.cursor_row == 8
        assert label_of(tree.root) == "/  (filesystem as of layer 8)"
        assert tree_rows(tree) == ["/bin", "/data", "/app", "/opq"]
        text = screen_text(app)
        assert f"slimscope {tag}  linux/amd64  9 layers" in text
        assert "19.2 kB hidden bytes" in text
        await open_folders(pilot, tree, "/data")
        assert tree_rows(tree)[2:7] == [
            "/data/b",
            "/data/a",
            "/data/mode.sh",
            "/data/a-link",
            "/data/b-symlink",
        ]
        tree.move_cursor(find_node(tree, "/data/b"))
        await settle(pilot)
        shown = details(app)
        assert shown["size"] == "20,000 bytes"
        assert shown["history"] == "layer 2 added; layer 3 modified"
        assert shown["created"].startswith("layer 2: ")
        assert shown["changed"].startswith("layer 3: RUN yes B | head -c 20000 > /data/b")
        tree.move_cursor(find_node(tree, "/data/mode.sh"))
        await settle(pilot)
        shown = details(app)
        assert shown["mode"] == "-rwxr-xr-x"
        assert shown["history"] == "layer 2 added; layer 5 stored again"
        tree.move_cursor(find_node(tree, "/data/b-symlink"))
        await settle(pilot)
        assert details(app)["link"] == "-> /data/b"

        # layer 3's own changes: /data/b rewritten, /data/c and /data/dir deleted
        await pilot.press("1", *["up"] * 5, "c", "3")
        await settle(pilot)
        assert layers.cursor_row == 3
        assert label_of(tree.root) == "/  (changes of layer 3)"
        await open_folders(pilot, tree, "/data")
        assert tree_rows(tree) == ["/data", "/data/b", "/data/dir", "/data/c"]
        assert [label_of(find_node(tree, p))[0] for p in tree_rows(tree)[1:]] == ["~", "-", "-"]

        # the hidden bytes: the overwritten /data/b of layer 2
        await pilot.press("2", "down", "right", "down", "enter")
        await settle(pilot)
        assert label_of(tree.root) == "/  (filesystem as of layer 2)"
        assert layers.cursor_row == 2
        assert cursor_path(tree) == "/data/b"
        assert details(app)["size"] == "10,000 bytes"
        assert isinstance(app.screen.query_one(FindingsTree), FindingsTree)
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code == 0 and app.error is None


async def test_hostile_image(build_fixture_image: Callable[[str], str]) -> None:
    tag = build_fixture_image("hostile")
    app = explorer(tag)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        tree = await main_screen(pilot)
        await open_folders(pilot, tree, "/hostile", "/hostile/[link=http:", "/hostile/a[")
        text = screen_text(app)
        assert_inert(text)
        for name in SHOWN:
            if name.startswith(("[b]", "[red]", "tab")):
                continue  # only in the synthetic image
            assert f"+ {name}  " in text, name
        for text_, path in [
            ("[@click=app.quit()]x", "/hostile/[@click=app.quit()]x"),
            ("[link=x]y", "/hostile/[link=x]y"),
            ("x]y", "/hostile/[link=http:/x]y"),
        ]:
            await click_text(pilot, text_)
            await pilot.press("enter")
            await settle(pilot)
            assert app.is_running and isinstance(app.screen, MainScreen)
            assert cursor_path(tree) == path
        tree.move_cursor(find_node(tree, "/hostile/esc-\x1b[31mred"))
        await settle(pilot)
        assert details(app)["path"] == r"/hostile/esc-\x1b[31mred"
        assert_inert(screen_text(app))
    assert app.return_code is None
