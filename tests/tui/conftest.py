"""Fixtures and helpers for the explorer tests: synthetic analyses, screen text, tree rows.

Pilot tests run the app headless at 120x40. Helpers read what is on screen from the compositor
(`screen_lines`) and what the file tree holds from its nodes (`tree_rows`), so assertions are exact.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.text import Text
from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets.tree import TreeNode

from slimscope.analysis import Analysis
from slimscope.tui.app import ExplorerApp
from slimscope.tui.widgets import DetailsPane, FileTree

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import tui_images as images  # noqa: E402  (tests/tui/tui_images.py; HERE is on sys.path)

SIZE = (120, 40)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the synthetic archives are written."""
    return tmp_path_factory.mktemp("tui-images")


@pytest.fixture(scope="session")
def explorer_analysis(image_dir: Path) -> Analysis:
    """The five-layer synthetic image (see images.explorer_image)."""
    return images.analysis_of(images.explorer_image(), image_dir, "explorer:latest")


@pytest.fixture(scope="session")
def wide_analysis(image_dir: Path) -> Analysis:
    """One folder with 1,000 files."""
    return images.analysis_of(images.wide_image(), image_dir, "wide:latest")


@pytest.fixture(scope="session")
def hostile_analysis(image_dir: Path) -> Analysis:
    """Hostile file names and history, shown under a hostile reference."""
    return images.analysis_of(images.hostile_image(), image_dir, "hostile:[@click=app.quit()]\x1b[31m")


@pytest.fixture(scope="session")
def shell_analysis(image_dir: Path) -> Analysis:
    """Histories that all start with `RUN set -eux;`, one with a backslash (see images.shell_image)."""
    return images.analysis_of(images.shell_image(), image_dir, "shell:latest")


@pytest.fixture(scope="session")
def search_analysis(image_dir: Path) -> Analysis:
    """6,000 files in 300 folders, 301 of them named file13 (see images.search_image)."""
    return images.analysis_of(images.search_image(), image_dir, "search:1")


@pytest.fixture
def make_app() -> Callable[[Analysis], ExplorerApp]:
    """Factory: an explorer over an analysis (its reference is the image's)."""

    def make(analysis: Analysis) -> ExplorerApp:
        return ExplorerApp(analysis.image.reference, analysis=analysis)

    return make


# -- reading the screen -------------------------------------------------------------------------------


def screen_lines(app: App) -> list[str]:
    """The text of every terminal line of the current screen, as the compositor renders it."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def widget_lines(app: App, widget: Widget) -> list[str]:
    """The on-screen text inside a widget's region (border included)."""
    region = widget.region
    return [line[region.x : region.right] for line in screen_lines(app)[region.y : region.bottom]]


def screen_text(app: App) -> str:
    """The whole screen as one string."""
    return "\n".join(screen_lines(app))


def label_of(node: TreeNode) -> str:
    """The plain text of a tree node's label."""
    label = node.label
    return label.plain if isinstance(label, Text) else str(label)


def visible_nodes(tree: FileTree) -> list[TreeNode]:
    """Every node the tree shows (expanded ancestors), top to bottom, the root included."""
    return [line.node for line in tree._tree_lines]


def node_path(node: TreeNode) -> str:
    """`/path` for a file or folder row, `more:/folder` for a "more" row, `/` for the root."""
    data = node.data
    if isinstance(data, tuple) and data[0] == "row":
        return "/" + data[1].path.decode("utf-8", "surrogateescape")
    if isinstance(data, tuple) and data[0] == "more":
        return "more:/" + data[1].decode("utf-8", "surrogateescape")
    return "/"


def tree_rows(tree: FileTree) -> list[str]:
    """The paths of the rows the tree shows, root excluded, in screen order."""
    return [node_path(node) for node in visible_nodes(tree) if node is not tree.root]


def cursor_path(tree: FileTree) -> str | None:
    """The path of the row under the cursor."""
    node = tree.cursor_node
    return None if node is None else node_path(node)


def find_node(tree: FileTree, path: str) -> TreeNode:
    """The visible node of `/path` (fails the test when it is not shown)."""
    for node in visible_nodes(tree):
        if node_path(node) == path:
            return node
    raise AssertionError(f"{path!r} is not shown; rows: {tree_rows(tree)}")


def details(app: App) -> dict[str, str]:
    """The details pane as {label: value} (values as shown: sanitized, one line each)."""
    pane = app.screen.query_one(DetailsPane)
    content = pane.render()
    plain = content.plain if hasattr(content, "plain") else str(content)
    out: dict[str, str] = {}
    for line in plain.splitlines():
        label, _, value = line.strip().partition(" ")
        if label:
            out[label] = value.strip()
    return out


async def settle(pilot: Pilot, rounds: int = 3) -> None:
    """Let messages (highlight -> details, timers) work through."""
    for _ in range(rounds):
        await pilot.pause()


async def move_to(pilot: Pilot, tree: FileTree, path: str) -> None:
    """Put the tree's cursor on a visible row and let the details follow."""
    tree.move_cursor(find_node(tree, path))
    await settle(pilot)


async def open_folders(pilot: Pilot, tree: FileTree, *paths: str) -> None:
    """Expand visible folders in order (each must be shown once its parent is open)."""
    for path in paths:
        find_node(tree, path).expand()
        await settle(pilot, 1)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests of this folder with asyncio.run (no pytest-asyncio needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


# -- real-engine fixtures (tests/engine/conftest.py), for the few tests that use engine-built images -------


def _engine_fixtures():
    """tests/engine/conftest.py as a module of its own, so its fixtures can be reused here."""
    import importlib.util

    path = HERE.parent / "engine" / "conftest.py"
    spec = importlib.util.spec_from_file_location("slimscope_tui_engine_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_engine = _engine_fixtures()
busybox_binary = _engine.busybox_binary
docker_client = _engine.docker_client
build_context = _engine.build_context
build_fixture_image = _engine.build_fixture_image
