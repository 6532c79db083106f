"""Pilot tests of the explorer on synthetic images: panes, keys, filters, search, findings, details."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    SIZE,
    cursor_path,
    details,
    find_node,
    label_of,
    move_to,
    open_folders,
    screen_lines,
    screen_text,
    settle,
    tree_rows,
    visible_nodes,
    widget_lines,
)
from textual.pilot import Pilot
from textual.widgets import Input, Label, ProgressBar, Static

from slimscope.analysis import Analysis
from slimscope.errors import SlimscopeError
from slimscope.sources import Progress
from slimscope.tui.app import ExplorerApp, HelpScreen, LoadingScreen, MainScreen, _key_name
from slimscope.tui.keys import KEYS
from slimscope.tui.widgets import FileTree, FindingsTree, LayerTable

MakeApp = Callable[[Analysis], ExplorerApp]

TOP = ["/usr", "/tmp-big", "/root", "/app", "/var", "/etc"]
TAIL = " · filesystem as of layer 4 · sorted by size"  # the filter line after a search's own part
# Every row of the final layer's filesystem with all folders open, largest first.
EVERYTHING = [
    "/usr",
    "/usr/lib",
    "/usr/lib/gcc",
    "/usr/lib/gcc/x86_64-linux-gnu",
    "/usr/lib/gcc/x86_64-linux-gnu/12",
    "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
    "/usr/share",
    "/usr/share/doc",
    "/usr/share/doc/base-files",
    "/usr/share/doc/base-files/copyright",
    "/usr/bin",
    "/usr/bin/gcc-12",
    "/usr/bin/app",
    "/usr/local",
    "/usr/local/lib",
    "/usr/local/lib/python3.11",
    "/usr/local/lib/python3.11/site-packages",
    "/usr/local/lib/python3.11/site-packages/flask",
    "/usr/local/lib/python3.11/site-packages/flask/__init__.py",
    "/tmp-big",
    "/root",
    "/root/.cache",
    "/root/.cache/pip",
    "/root/.cache/pip/wheel.whl",
    "/app",
    "/app/main.py",
    "/app/tests",
    "/app/tests/test_main.py",
    "/app/.env",
    "/app/VERSION",
    "/var",
    "/var/lib",
    "/var/lib/dpkg",
    "/var/lib/dpkg/status",
    "/var/lib/dpkg/info",
    "/var/lib/dpkg/info/gcc-12:amd64.list",
    "/var/tmp",
    "/var/tmp/build",
    "/etc",
    "/etc/passwd",
    "/etc/hostname",
]


def tree_of(pilot: Pilot) -> FileTree:
    """The main screen's file tree."""
    return pilot.app.screen.query_one(FileTree)


def filterline(pilot: Pilot) -> str:
    """The line above the tree saying which filters are on."""
    return str(pilot.app.screen.query_one("#filterline", Label).render())


async def open_everything(pilot: Pilot) -> list[str]:
    """Expand every folder of the file tree (depth first) and return the rows."""
    tree = tree_of(pilot)
    changed = True
    while changed:
        changed = False
        for node in visible_nodes(tree):
            if node is not tree.root and node.allow_expand and not node.is_expanded:
                node.expand()
                changed = True
        await settle(pilot, 1)
    return tree_rows(tree)


def mark_of(pilot: Pilot, path: str) -> str:
    """The change mark a row shows (its label's first character)."""
    return label_of(find_node(tree_of(pilot), path))[0]


# -- the first screen -----------------------------------------------------------------------------------


async def test_first_screen(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    app = make_app(explorer_analysis)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        layers = app.screen.query_one(LayerTable)
        assert layers.row_count == 5
        assert layers.cursor_row == 4
        tree = tree_of(pilot)
        assert app.focused is tree
        assert tree_rows(tree) == TOP
        assert label_of(tree.root) == "/  (filesystem as of layer 4)"
        assert cursor_path(tree) == "/"
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by size"
        assert details(app) == {"Select": "a path to see where it came from."}
        text = screen_text(app)
        assert "slimscope explorer:latest  linux/amd64  5 layers  13.5 kB stored  9.2 kB visible" in text
        assert "1 possible secret file(s)" in text
        # the instruction takes the room the numbers leave and ends in an ellipsis; no sideways scrolling
        assert widget_lines(app, layers)[1:7] == [
            "│#     size         hidden removable instruction           │",
            "│0   6.3 kB █████   4.3 kB    2.0 kB ADD rootfs.tar /      │",
            "│1   5.3 kB ████░             5.0 kB RUN apt-get install -…│",
            "│2    428 B ░░░░░              120 B COPY . /app           │",
            "│3   1.2 kB █░░░░              500 B RUN pip install flask │",
            "│4    210 B ░░░░░                    RUN chmod 0755 /usr/b…│",
        ]
        assert layers.virtual_size.width == layers.size.width
        findings = "\n".join(widget_lines(app, app.screen.query_one(FindingsTree)))
        for line in (
            "4.3 kB hidden bytes",
            "5.0 kB toolchain",
            "5.0 kB GCC compiler [SS101]",
            "2.0 kB Package documentation [SS402]",
            "500 B pip cache [SS205]",
            "120 B Test suites [SS303]",
            "8 B Credential and environment files",
        ):
            assert line in findings
        rows = "\n".join(widget_lines(app, tree))
        assert "▶   usr/  7.9 kB  89% removable" in rows
        assert "- tmp-big  3.0 kB" in rows
        assert "▶   root/  500 B  100% removable" in rows


async def test_everything_largest_first(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        assert await open_everything(pilot) == EVERYTHING
        assert [mark_of(pilot, p) for p in ("/usr/bin/app", "/etc/hostname", "/app/VERSION", "/tmp-big")] == [
            "=",
            "~",
            "+",
            "-",
        ]
        assert mark_of(pilot, "/var/tmp/build") == "-"
        assert mark_of(pilot, "/etc/passwd") == " "


# -- details ------------------------------------------------------------------------------------------


async def test_details_of_a_package_file_with_a_finding(
    explorer_analysis: Analysis, make_app: MakeApp
) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await open_folders(pilot, tree, "/usr", "/usr/bin")
        await move_to(pilot, tree, "/usr/bin/gcc-12")
        shown = details(pilot.app)
        assert shown["path"] == "/usr/bin/gcc-12"
        assert shown["type"] == "file"
        assert shown["size"] == "1,000 bytes"
        assert shown["mode"] == "-rwxr-xr-x"
        assert shown["owner"] == "0:0"
        assert shown["created"] == "layer 1: RUN apt-get install -y gcc-12"
        assert "changed" not in shown  # no later layer touched it
        assert shown["history"] == "layer 1 added"
        assert shown["package"] == "dpkg gcc-12 12.2.0-14"
        assert shown["finding"] == "GCC compiler [SS101, toolchain]"
        assert shown["digest"].startswith("sha256:") or len(shown["digest"]) == 64
        assert "remedy" in shown


async def test_details_history_across_layers(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await open_folders(pilot, tree, "/usr", "/usr/bin", "/etc", "/var", "/var/tmp")
        await move_to(pilot, tree, "/usr/bin/app")
        shown = details(pilot.app)
        assert shown["mode"] == "-rwxr-xr-x"
        assert shown["size"] == "200 bytes"
        assert shown["created"] == "layer 0: ADD rootfs.tar /"
        assert shown["changed"].startswith("layer 4: RUN chmod 0755 /usr/bin/app && echo changed")
        assert shown["history"] == "layer 0 added; layer 4 stored again"
        assert "package" not in shown and "finding" not in shown
        await move_to(pilot, tree, "/etc/hostname")
        shown = details(pilot.app)
        assert shown["size"] == "8 bytes"
        assert shown["history"] == "layer 0 added; layer 4 modified"
        assert shown["mode"] == "-rw-r--r--"
        await move_to(pilot, tree, "/tmp-big")
        assert details(pilot.app) == {
            "path": "/tmp-big",
            "status": "deleted (1 path(s), 3,000 bytes)",
            "history": "layer 0 added; layer 4 deleted",
        }
        await move_to(pilot, tree, "/var/tmp/build")
        shown = details(pilot.app)
        assert shown["status"] == "deleted (3 path(s), 1,000 bytes)"
        assert shown["history"] == "layer 0 added; layer 4 deleted"
        await move_to(pilot, tree, "/usr")
        shown = details(pilot.app)
        # a folder: made by layer 0, listed again by layers 1, 3 and 4 (their files below), never changed
        assert shown["history"] == (
            "layer 0 added; layer 1 listed again; layer 3 listed again; layer 4 listed again"
        )
        assert shown["created"] == "layer 0: ADD rootfs.tar /"
        assert shown["changed"] == "never: later layers only listed it again"
        assert shown["size"] == "7,900 bytes in 5 files below"
        assert shown["removable"] == "7,000 of 7,900 bytes below"
        await move_to(pilot, tree, "/")
        assert details(pilot.app) == {"Select": "a path to see where it came from."}


async def test_details_of_a_secret(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await open_folders(pilot, tree, "/app")
        await move_to(pilot, tree, "/app/.env")
        shown = details(pilot.app)
        assert shown["finding"] == "Credential and environment files [SS502, secret]"
        assert shown["created"] == "layer 2: COPY . /app"
        assert "TOKEN" not in screen_text(pilot.app)


# -- layers ---------------------------------------------------------------------------------------------


async def test_layer_selection_changes_the_tree(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("1")
        layers = pilot.app.screen.query_one(LayerTable)
        assert pilot.app.focused is layers
        await pilot.press("up")
        await settle(pilot)
        assert layers.cursor_row == 3
        tree = tree_of(pilot)
        assert label_of(tree.root) == "/  (filesystem as of layer 3)"
        assert filterline(pilot) == "filesystem as of layer 3 · sorted by size"
        assert tree_rows(tree) == ["/usr", "/tmp-big", "/var", "/root", "/app", "/etc"]
        assert [mark_of(pilot, p) for p in ("/tmp-big", "/root")] == [" ", "+"]
        await pilot.press("k", "k", "k")
        await settle(pilot)
        assert layers.cursor_row == 0
        assert tree_rows(tree) == ["/tmp-big", "/usr", "/var", "/etc"]
        assert {mark_of(pilot, p) for p in tree_rows(tree)} == {"+"}
        await pilot.press("j")
        await settle(pilot)
        assert layers.cursor_row == 1
        assert label_of(tree.root) == "/  (filesystem as of layer 1)"
        await pilot.press("3")
        assert pilot.app.focused is tree


async def test_layer_changes_view(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("c")
        await settle(pilot)
        tree = tree_of(pilot)
        assert label_of(tree.root) == "/  (changes of layer 4)"
        assert filterline(pilot) == "changes of layer 4 · sorted by size"
        rows = await open_everything(pilot)
        assert rows == [
            "/tmp-big",
            "/var",
            "/var/tmp",
            "/var/tmp/build",
            "/usr",
            "/usr/bin",
            "/usr/bin/app",
            "/etc",
            "/etc/hostname",
            "/app",
            "/app/VERSION",
        ]
        await pilot.press("c")
        await settle(pilot)
        assert tree_rows(tree) == TOP


# -- filters --------------------------------------------------------------------------------------------


def without(*paths: str) -> list[str]:
    """EVERYTHING minus some rows."""
    return [p for p in EVERYTHING if p not in paths]


FILTERS = [
    ("a", "hiding added", without("/app/VERSION")),
    ("r", "hiding deleted", without("/tmp-big", "/var/tmp/build")),
    ("m", "hiding modified", without("/etc/hostname")),
    ("equals_sign", "hiding stored again", without("/usr/bin/app")),
]


@pytest.mark.parametrize(("key", "line", "rows"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_mark_filters(
    explorer_analysis: Analysis, make_app: MakeApp, key: str, line: str, rows: list[str]
) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press(key)
        await settle(pilot)
        assert filterline(pilot) == f"filesystem as of layer 4 · {line} · sorted by size"
        assert await open_everything(pilot) == rows
        await pilot.press(key)
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by size"
        assert await open_everything(pilot) == EVERYTHING


async def test_hide_unchanged(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("u")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · hiding unchanged · sorted by size"
        files = [p for p in await open_everything(pilot) if not find_node(tree_of(pilot), p).allow_expand]
        assert files == ["/usr/bin/app", "/tmp-big", "/app/VERSION", "/etc/hostname"]


async def test_hidden_changes_leave_no_empty_folders(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("c", "r")  # layer 4's changes without its deletions: /var held only one
        await settle(pilot)
        assert filterline(pilot) == "changes of layer 4 · hiding deleted · sorted by size"
        assert await open_everything(pilot) == [
            "/usr",
            "/usr/bin",
            "/usr/bin/app",
            "/etc",
            "/etc/hostname",
            "/app",
            "/app/VERSION",
        ]
        await pilot.press("c", "u")  # the filesystem as of layer 4, only what layer 4 changed
        await settle(pilot)
        assert await open_everything(pilot) == [
            "/usr",
            "/usr/bin",
            "/usr/bin/app",
            "/app",
            "/app/VERSION",
            "/etc",
            "/etc/hostname",
        ]
        await pilot.press("u", "r")  # all back: empty folders show again
        await settle(pilot)
        assert await open_everything(pilot) == EVERYTHING


async def test_removable_only(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("x")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · only removable · sorted by size"
        assert await open_everything(pilot) == [
            "/usr",
            "/usr/lib",
            "/usr/lib/gcc",
            "/usr/lib/gcc/x86_64-linux-gnu",
            "/usr/lib/gcc/x86_64-linux-gnu/12",
            "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
            "/usr/share",
            "/usr/share/doc",
            "/usr/share/doc/base-files",
            "/usr/share/doc/base-files/copyright",
            "/usr/bin",
            "/usr/bin/gcc-12",
            "/root",
            "/root/.cache",
            "/root/.cache/pip",
            "/root/.cache/pip/wheel.whl",
            "/app",
            "/app/tests",
            "/app/tests/test_main.py",
            "/app/.env",
        ]


async def test_escape_clears_the_search_first_then_the_filters(
    explorer_analysis: Analysis, make_app: MakeApp
) -> None:
    """As the help says ("Close search / clear filters"): one Escape per step; the sort order stays."""
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("x", "z", "z", "s", "slash", "g", "c", "c", "enter")
        await pilot.pause(0.3)
        await settle(pilot)
        assert filterline(pilot) == (
            "6 matching paths, 6 not shown: narrow the search (esc clears) · filesystem as of layer 4"
            " · only removable · at least 100.0 kB · sorted by name"
        )
        await pilot.press("escape")
        await settle(pilot)
        assert filterline(pilot) == (
            "filesystem as of layer 4 · only removable · at least 100.0 kB · sorted by name"
        )
        await pilot.press("escape")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by name"
        await pilot.press("x", "1", "escape")  # from the Layers pane too
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by name"
        await pilot.press("3", "slash", "c", "c", "1", "enter")
        await pilot.pause(0.3)
        await settle(pilot)
        assert filterline(pilot) == (
            "1 matching path, all shown (esc clears) · filesystem as of layer 4 · sorted by name"
        )


async def test_removable_only_in_the_changes_view(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("1", "up", "up", "up", "3")  # layer 1: apt-get install gcc-12
        await pilot.press("c", "x")
        await settle(pilot)
        assert filterline(pilot) == "changes of layer 1 · only removable · sorted by size"
        assert await open_everything(pilot) == [
            "/usr",
            "/usr/lib",
            "/usr/lib/gcc",
            "/usr/lib/gcc/x86_64-linux-gnu",
            "/usr/lib/gcc/x86_64-linux-gnu/12",
            "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
            "/usr/bin",
            "/usr/bin/gcc-12",
        ]


async def test_min_size_cycles(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await pilot.press("z")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · at least 1.0 kB · sorted by size"
        assert await open_everything(pilot) == [
            "/usr",
            "/usr/lib",
            "/usr/lib/gcc",
            "/usr/lib/gcc/x86_64-linux-gnu",
            "/usr/lib/gcc/x86_64-linux-gnu/12",
            "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
            "/usr/share",
            "/usr/share/doc",
            "/usr/share/doc/base-files",
            "/usr/share/doc/base-files/copyright",
            "/usr/bin",
            "/usr/bin/gcc-12",
            "/tmp-big",  # /var (297 B) is below the limit, so its deleted 1,000-byte build/ is not shown
        ]
        for step in ("100.0 kB", "1.0 MB", "10.0 MB", "100.0 MB"):
            await pilot.press("z")
            await settle(pilot)
            assert filterline(pilot) == f"filesystem as of layer 4 · at least {step} · sorted by size"
            assert tree_rows(tree) == []
        await pilot.press("z")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by size"
        assert tree_rows(tree) == TOP


async def test_sort_by_name(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("s")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by name"
        assert tree_rows(tree_of(pilot)) == ["/app", "/etc", "/root", "/tmp-big", "/usr", "/var"]
        await open_folders(pilot, tree_of(pilot), "/app")
        assert tree_rows(tree_of(pilot))[1:5] == ["/app/.env", "/app/VERSION", "/app/main.py", "/app/tests"]
        await pilot.press("s")
        await settle(pilot)
        assert tree_rows(tree_of(pilot)) == TOP


# -- search ---------------------------------------------------------------------------------------------


async def test_search_filters_the_tree(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        box = pilot.app.screen.query_one("#search", Input)
        assert not box.display
        await pilot.press("slash")
        assert box.display and pilot.app.focused is box
        await pilot.press(*"gcc")
        await pilot.pause(0.3)
        await settle(pilot)
        assert box.value == "gcc"
        tree = tree_of(pilot)
        assert tree_rows(tree) == [
            "/usr",
            "/usr/lib",
            "/usr/lib/gcc",
            "/usr/lib/gcc/x86_64-linux-gnu",
            "/usr/lib/gcc/x86_64-linux-gnu/12",
            "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
            "/usr/bin",
            "/usr/bin/gcc-12",
            "/var",
            "/var/lib",
            "/var/lib/dpkg",
            "/var/lib/dpkg/info",
            "/var/lib/dpkg/info/gcc-12:amd64.list",
        ]
        assert filterline(pilot) == "6 matching paths, all shown (esc clears)" + TAIL
        assert pilot.app.focused is box  # typing goes on
        await pilot.press("enter")
        assert pilot.app.focused is tree
        await pilot.press("escape")
        await settle(pilot)
        assert not box.display and box.value == ""
        assert tree_rows(tree) == TOP
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by size"


GCC_ROWS = [
    "/usr",
    "/usr/lib",
    "/usr/lib/gcc",
    "/usr/lib/gcc/x86_64-linux-gnu",
    "/usr/lib/gcc/x86_64-linux-gnu/12",
    "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
    "/usr/bin",
    "/usr/bin/gcc-12",
    "/var",
    "/var/lib",
    "/var/lib/dpkg",
    "/var/lib/dpkg/info",
    "/var/lib/dpkg/info/gcc-12:amd64.list",
]


async def test_search_narrows_and_widens_back(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """Typing more narrows the tree; deleting characters gives back exactly the wider result."""
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)

        async def typed(*keys: str) -> list[str]:
            await pilot.press(*keys)
            await pilot.pause(0.3)
            await settle(pilot)
            return tree_rows(tree)

        assert await typed("slash", *"GCC") == GCC_ROWS  # case does not matter
        assert filterline(pilot) == "6 matching paths, all shown (esc clears)" + TAIL
        assert await typed(*"-12:") == [
            "/var",
            "/var/lib",
            "/var/lib/dpkg",
            "/var/lib/dpkg/info",
            "/var/lib/dpkg/info/gcc-12:amd64.list",
        ]
        assert filterline(pilot) == "1 matching path, all shown (esc clears)" + TAIL
        assert await typed("backspace") == [
            "/usr",
            "/usr/bin",
            "/usr/bin/gcc-12",
            "/var",
            "/var/lib",
            "/var/lib/dpkg",
            "/var/lib/dpkg/info",
            "/var/lib/dpkg/info/gcc-12:amd64.list",
        ]
        assert filterline(pilot) == "2 matching paths, all shown (esc clears)" + TAIL
        assert await typed("backspace", "backspace", "backspace") == GCC_ROWS
        assert filterline(pilot) == "6 matching paths, all shown (esc clears)" + TAIL
        assert await typed(*"z") == []
        assert filterline(pilot) == "no matching paths (esc clears)" + TAIL
        assert await typed("backspace") == GCC_ROWS
        assert await typed("backspace", "backspace", "backspace") == TOP  # an empty box shows everything
        assert filterline(pilot) == "filesystem as of layer 4 · sorted by size"


async def test_search_keys_are_typed_not_bound(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """Letters that are bindings elsewhere (q, a, x, s) go into the search box."""
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("ctrl+f", *"xqas")
        await pilot.pause(0.3)
        assert pilot.app.screen.query_one("#search", Input).value == "xqas"
        assert pilot.app.is_running
        assert filterline(pilot) == "no matching paths (esc clears)" + TAIL
        assert tree_rows(tree_of(pilot)) == []


async def test_search_regex(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("slash", *r"re:\.py$", "enter")
        await settle(pilot)
        rows = tree_rows(tree_of(pilot))
        assert [r for r in rows if r.endswith(".py")] == [
            "/usr/local/lib/python3.11/site-packages/flask/__init__.py",
            "/app/main.py",
            "/app/tests/test_main.py",
        ]
        await pilot.press("slash", "ctrl+a", "ctrl+k")  # a bad regex keeps the last good filter
        await pilot.press(*"re:(", "enter")
        await settle(pilot)
        assert pilot.app.screen.query_one("#search", Input).value == "re:("
        assert tree_rows(tree_of(pilot)) == rows
        assert any("bad regular expression" in str(n.message) for n in pilot.app._notifications)


# -- findings -------------------------------------------------------------------------------------------


async def test_choosing_a_finding_reveals_its_paths(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("1", "up", "up")
        await settle(pilot)
        assert filterline(pilot) == "filesystem as of layer 2 · sorted by size"
        await pilot.press("2")
        findings = pilot.app.screen.query_one(FindingsTree)
        assert pilot.app.focused is findings
        assert findings.cursor_line == -1
        await pilot.press("down", "down", "down")  # hidden bytes, toolchain, GCC compiler
        assert label_of(findings.cursor_node).strip() == "5.0 kB GCC compiler [SS101]"
        await pilot.press("enter")
        await settle(pilot)
        tree = tree_of(pilot)
        assert pilot.app.focused is tree
        assert tree_rows(tree) == [
            "/usr",
            "/usr/lib",
            "/usr/lib/gcc",
            "/usr/bin",
            "/usr/bin/gcc-12",
        ]
        assert cursor_path(tree) == "/usr/lib/gcc"
        assert label_of(tree.root) == "/  (filesystem as of layer 4)"
        assert pilot.app.screen.query_one(LayerTable).cursor_row == 4
        assert details(pilot.app)["finding"] == "GCC compiler [SS101, toolchain]"
        assert filterline(pilot) == "2 paths of SS101 (esc clears)" + TAIL
        await pilot.press("escape")
        await settle(pilot)
        assert tree_rows(tree) == TOP


async def test_choosing_one_path_of_a_finding(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        findings = pilot.app.screen.query_one(FindingsTree)
        await pilot.press("2", "down", "down", "down", "right", "down", "down")
        assert label_of(findings.cursor_node).strip() == "1.0 kB /usr/bin/gcc-12"
        await pilot.press("enter")
        await settle(pilot)
        tree = tree_of(pilot)
        assert tree_rows(tree) == ["/usr", "/usr/bin", "/usr/bin/gcc-12"]
        assert cursor_path(tree) == "/usr/bin/gcc-12"
        assert details(pilot.app)["path"] == "/usr/bin/gcc-12"


async def test_choosing_hidden_bytes_shows_the_layer_that_holds_them(
    explorer_analysis: Analysis, make_app: MakeApp
) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        findings = pilot.app.screen.query_one(FindingsTree)
        await pilot.press("2", "down", "right", "down")  # open "hidden bytes", first entry
        assert label_of(findings.cursor_node).strip() == "3.0 kB /tmp-big  deleted in layer 4"
        await pilot.press("enter")
        await settle(pilot)
        tree = tree_of(pilot)
        assert label_of(tree.root) == "/  (filesystem as of layer 0)"
        assert tree_rows(tree) == ["/tmp-big"]
        assert cursor_path(tree) == "/tmp-big"
        assert details(pilot.app)["history"] == "layer 0 added; layer 4 deleted"
        assert pilot.app.screen.query_one(LayerTable).cursor_row == 0  # the table follows the tree


# -- keys -----------------------------------------------------------------------------------------------


async def test_tree_keys(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await pilot.press("j")
        assert cursor_path(tree) == "/usr"
        await pilot.press("l")
        assert tree_rows(tree)[:5] == ["/usr", "/usr/lib", "/usr/share", "/usr/bin", "/usr/local"]
        await pilot.press("j", "j", "j", "right")  # /usr/bin
        assert cursor_path(tree) == "/usr/bin"
        assert "/usr/bin/gcc-12" in tree_rows(tree)
        await pilot.press("j")
        await settle(pilot)
        assert cursor_path(tree) == "/usr/bin/gcc-12"
        assert details(pilot.app)["path"] == "/usr/bin/gcc-12"
        await pilot.press("h")  # a file: go to the parent
        assert cursor_path(tree) == "/usr/bin"
        await pilot.press("left")  # an open folder: close it
        assert cursor_path(tree) == "/usr/bin" and "/usr/bin/gcc-12" not in tree_rows(tree)
        await pilot.press("space")  # toggle opens it again
        assert "/usr/bin/gcc-12" in tree_rows(tree)
        await pilot.press("space")
        assert "/usr/bin/gcc-12" not in tree_rows(tree)
        await pilot.press("k")
        assert cursor_path(tree) == "/usr/share"
        await pilot.press("p")
        assert cursor_path(tree) == "/usr"
        await pilot.press("j", "backspace")
        assert cursor_path(tree) == "/usr"
        await pilot.press("backspace")
        assert cursor_path(tree) == "/"
        await pilot.press("ctrl+space")
        assert tree_rows(tree) == TOP
        await pilot.press("down", "down", "down", "enter")  # enter opens a folder too
        assert cursor_path(tree) == "/root"
        assert "/root/.cache" in tree_rows(tree)
        await pilot.press("ctrl+space")
        assert tree_rows(tree) == TOP
        await pilot.press("up", "up")
        assert cursor_path(tree) == "/usr"


async def test_focus_keys(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        screen = pilot.app.screen
        layers, findings, tree = screen.query_one(LayerTable), screen.query_one(FindingsTree), tree_of(pilot)
        assert pilot.app.focused is tree
        await pilot.press("tab")
        assert pilot.app.focused is layers
        await pilot.press("tab")
        assert pilot.app.focused is findings
        await pilot.press("tab")
        assert pilot.app.focused is tree
        await pilot.press("shift+tab")
        assert pilot.app.focused is findings
        await pilot.press("1")
        assert pilot.app.focused is layers
        await pilot.press("3")
        assert pilot.app.focused is tree
        await pilot.press("2", "j", "j")
        assert label_of(findings.cursor_node).strip() == "5.0 kB toolchain"
        await pilot.press("k")
        assert label_of(findings.cursor_node).strip() == "4.3 kB hidden bytes"


async def test_help_lists_every_binding(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("question_mark")
        assert isinstance(pilot.app.screen, HelpScreen)
        body = pilot.app.screen.query_one(Static).render()
        text = body.plain if hasattr(body, "plain") else str(body)
        lines = text.splitlines()
        for key in KEYS:
            names = ", ".join(_key_name(k) for k in key.keys.split(","))
            assert any(line.strip() == f"{names}  {key.description}" for line in lines), key
        assert "?" in text and "equals_sign" not in text and "question_mark" not in text
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, MainScreen)
        await pilot.press("f1")
        assert isinstance(pilot.app.screen, HelpScreen)
        await pilot.press("q")  # closes help, does not quit
        assert isinstance(pilot.app.screen, MainScreen) and pilot.app.is_running


async def test_every_key_is_bound(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """Every key of keys.KEYS reaches its action: the main screen's, the app's, or the focused pane's."""
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        app_keys = pilot.app._bindings.key_to_bindings
        screen_keys = pilot.app.screen._bindings.key_to_bindings
        panes = [pilot.app.screen.query_one(FindingsTree), tree_of(pilot)]
        for key in KEYS:
            for name in key.keys.split(","):
                if key.action in ("quit", "help", "interrupt", "command_palette"):
                    (binding,) = app_keys[name]
                    assert binding.action == key.action
                    assert binding.priority or name not in screen_keys, name  # ctrl+c beats copy_text
                elif key.bound == "widget":
                    for pane in panes:  # the findings and the file tree both choose with Enter
                        assert pane._bindings.key_to_bindings[name][0].action == key.action, (pane, name)
                else:
                    assert screen_keys[name][0].action == key.action, name


async def test_copy_path(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await open_folders(pilot, tree, "/usr", "/usr/bin")
        await move_to(pilot, tree, "/usr/bin/gcc-12")
        await pilot.press("y")
        await settle(pilot)
        assert pilot.app.clipboard == "/usr/bin/gcc-12"
        assert pilot.app.is_running
        assert "copied /usr/bin/gcc-12" in screen_text(pilot.app)  # the toast
        await move_to(pilot, tree, "/")
        await pilot.press("y")
        await settle(pilot)
        assert pilot.app.clipboard == "/usr/bin/gcc-12"
        assert "no path selected" in screen_text(pilot.app)


async def test_export_json(
    explorer_analysis: Analysis, make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("e")
        await settle(pilot)
        name = f"slimscope-{explorer_analysis.image.id.removeprefix('sha256:')[:12]}.json"
        doc = json.loads((tmp_path / name).read_text(encoding="utf-8"))
        assert doc["summary"]["hidden_bytes"] == 4288
        assert {f["rule"] for f in doc["findings"]} == {"SS101", "SS402", "SS205", "SS303", "SS502"}
        assert any(f"wrote {tmp_path / name}" in str(n.message) for n in pilot.app._notifications)
        assert pilot.app.is_running and "wrote " in screen_text(pilot.app)


async def test_export_json_failure_is_a_toast_and_leaves_no_file(
    explorer_analysis: Analysis, make_app: MakeApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"slimscope-{explorer_analysis.image.id.removeprefix('sha256:')[:12]}.json"
    (tmp_path / name).mkdir()  # the name is taken by a folder: the rename fails
    monkeypatch.chdir(tmp_path)
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("e")
        await settle(pilot)
        messages = [str(n.message) for n in pilot.app._notifications]
        assert messages == [f"cannot write {name}: Is a directory"]
        assert pilot.app.is_running
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# -- quitting and loading -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
async def test_quit_keys(explorer_analysis: Analysis, make_app: MakeApp, key: str) -> None:
    app = make_app(explorer_analysis)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press(key)
        await settle(pilot)
        assert not app.is_running
    assert app.return_code == (130 if key == "ctrl+c" else 0)  # ctrl+c: the shell's "interrupted"
    assert app.error is None


async def test_ctrl_c_quits_from_search_and_help(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    for keys in (["slash", "a"], ["question_mark"]):
        app = make_app(explorer_analysis)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.press(*keys, "ctrl+c")
            await settle(pilot)
            assert not app.is_running
        assert app.return_code == 130


class SlowLoad:
    """A load callable that reports progress, then waits until released (or gives up after 10 s)."""

    def __init__(self, analysis: Analysis | None = None, error: BaseException | None = None) -> None:
        self.analysis = analysis
        self.error = error
        self.reported = threading.Event()
        self.release = threading.Event()

    def __call__(self, progress: Progress) -> Analysis:
        assert progress.start and progress.advance and progress.blob
        progress.start("reading", 1000)
        progress.blob("sha256:abc")
        time.sleep(0.06)  # progress is posted at most every 50 ms (start and blob always)
        progress.advance(250)
        self.reported.set()
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        assert self.analysis is not None
        return self.analysis


async def wait_for(pilot: Pilot, condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Pause until a condition holds."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


async def test_loading_screen_shows_progress_then_the_explorer(explorer_analysis: Analysis) -> None:
    load = SlowLoad(explorer_analysis)
    app = ExplorerApp("explorer:latest", load=load)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        assert isinstance(app.screen, LoadingScreen)
        await wait_for(pilot, load.reported.is_set)
        label = app.screen.query_one("#progress-text", Label)
        await wait_for(pilot, lambda: "250 B" in str(label.render()))
        assert str(label.render()) == "reading: 250 B of 1.0 kB, layer blob 1"
        bar = app.screen.query_one(ProgressBar)
        assert (bar.total, bar.progress) == (1000, 250)
        assert "reading explorer:latest" in screen_text(app)
        load.release.set()
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.analysis is explorer_analysis
        await settle(pilot)
        assert tree_rows(tree_of(pilot)) == TOP


@pytest.mark.parametrize("key", ["q", "ctrl+c", "escape"])
async def test_quit_while_loading(explorer_analysis: Analysis, key: str) -> None:
    load = SlowLoad(explorer_analysis)
    app = ExplorerApp("explorer:latest", load=load)
    try:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_for(pilot, load.reported.is_set)
            await pilot.press(key)
            await settle(pilot)
            assert not app.is_running
    finally:
        load.release.set()
    assert app.return_code == (130 if key == "ctrl+c" else 0)
    assert app.error is None


async def test_quitting_stops_the_loading_thread(explorer_analysis: Analysis) -> None:
    """After q the reading stops at its next progress report, so the process can exit at once."""
    stopped = threading.Event()
    raised: list[BaseException] = []

    def load(progress: Progress) -> Analysis:
        assert progress.advance
        try:
            for _ in range(1000):  # 10 s of reading unless stopped
                progress.advance(1)
                time.sleep(0.01)
        except BaseException as exc:
            raised.append(exc)
            raise
        finally:
            stopped.set()
        return explorer_analysis

    app = ExplorerApp("explorer:latest", load=load)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause(0.1)
        await pilot.press("q")
    assert stopped.wait(2), "the loading thread still runs"
    assert raised and app.return_code == 0 and app.error is None


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (SlimscopeError("no such image: nope"), "no such image: nope"),
        (RuntimeError("boom"), "internal error: RuntimeError: boom"),
    ],
)
async def test_failing_load_exits_with_2(error: BaseException, message: str) -> None:
    load = SlowLoad(error=error)
    load.release.set()
    app = ExplorerApp("nope", load=load)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: not app.is_running)
    assert app.return_code == 2
    assert app.error == message
    assert app.exc is error


# -- chunks ---------------------------------------------------------------------------------------------


async def test_a_wide_folder_is_shown_in_chunks_largest_first(
    wide_analysis: Analysis, make_app: MakeApp
) -> None:
    async with make_app(wide_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        assert tree_rows(tree) == ["/many", "/top.txt"]
        await open_folders(pilot, tree, "/many")
        rows = tree_rows(tree)
        assert rows[1:301] == [f"/many/file-{i:04d}" for i in range(1000, 700, -1)]
        assert rows[301:] == ["more:/many", "/top.txt"]
        more = find_node(tree, "more:/many")
        assert label_of(more) == "… 700 more (enter to show the next 300)"
        for shown, rest, step in ((600, 400, 300), (900, 100, 100)):
            await move_to(pilot, tree, "more:/many")
            assert details(pilot.app) == {"Select": "a path to see where it came from."}
            await pilot.press("enter")
            await settle(pilot)
            rows = tree_rows(tree)
            assert rows[1 : shown + 1] == [f"/many/file-{i:04d}" for i in range(1000, 1000 - shown, -1)]
            assert rows[shown + 1 :] == ["more:/many", "/top.txt"]
            assert (
                label_of(find_node(tree, "more:/many")) == f"… {rest:,} more (enter to show the next {step})"
            )
        await move_to(pilot, tree, "more:/many")
        await pilot.press("enter")
        await settle(pilot)
        rows = tree_rows(tree)
        assert rows[1:1001] == [f"/many/file-{i:04d}" for i in range(1000, 0, -1)]
        assert rows[1001:] == ["/top.txt"]
        assert cursor_path(tree) is not None


async def test_a_filter_moves_the_cursor_to_the_root(explorer_analysis: Analysis, make_app: MakeApp) -> None:
    """The rebuilt tree has new rows: the cursor, the details and `y` must not keep the old row."""
    async with make_app(explorer_analysis).run_test(size=SIZE, notifications=True) as pilot:
        tree = tree_of(pilot)
        await pilot.press("j", "j")
        await settle(pilot)
        assert cursor_path(tree) == "/tmp-big" and details(pilot.app)["path"] == "/tmp-big"
        await pilot.press("x")
        await settle(pilot)
        assert "/tmp-big" not in tree_rows(tree)
        assert cursor_path(tree) == "/"
        assert details(pilot.app) == {"Select": "a path to see where it came from."}
        await pilot.press("y")
        await settle(pilot)
        assert pilot.app.clipboard == ""
        await pilot.press("j")
        await settle(pilot)
        assert cursor_path(tree) == "/usr" and details(pilot.app)["path"] == "/usr"


async def test_a_narrow_tree_keeps_folder_names_before_their_removable_share(
    explorer_analysis: Analysis, make_app: MakeApp
) -> None:
    """At 80x24 the share gives way ("51% removable" -> "51%" -> gone) before a name is cut to "…"."""
    async with make_app(explorer_analysis).run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("3")
        tree = tree_of(pilot)
        usr = next(node for node in tree.root.children if node.data[1].path == b"usr")
        usr.expand()
        await settle(pilot)
        folder = usr
        for name in (b"lib", b"gcc", b"x86_64-linux-gnu"):
            folder = next(node for node in folder.children if node.data[1].name == name)
            folder.expand()
            await settle(pilot)
        lines = ["".join(s.text for s in tree.render_line(y)).rstrip() for y in range(tree.size.height)]
        assert tree.size.width == 38
        assert lines[:5] == [
            "▼ /  (filesystem as of layer 4)",
            "├─ ▼   usr/  7.9 kB  89% removable",
            "│  ├─ ▼   lib/  4.0 kB  100%",
            "│  │  └─ ▼   gcc/  4.0 kB  100%",
            "│  │     └─ ▼   x86_64-linu…  4.0 kB",
        ]


async def test_help_fits_a_small_terminal_and_says_how_to_close(
    explorer_analysis: Analysis, make_app: MakeApp
) -> None:
    async with make_app(explorer_analysis).run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("question_mark")
        await settle(pilot)
        lines = screen_lines(pilot.app)
        top = next(line for line in lines if line.startswith("╭"))
        bottom = next(line for line in lines if "escape closes" in line)
        assert top == "╭" + "─" * 78 + "╮"  # the whole box on screen, the width of the terminal
        assert bottom.startswith("╰") and bottom.endswith(" escape closes ─╯") and len(bottom) == 80
        assert any("Quit at once with exit status 130" in line for line in lines)


@pytest.mark.parametrize("width", [80, 100])
async def test_the_header_keeps_every_number_in_a_narrow_terminal(
    explorer_analysis: Analysis, make_app: MakeApp, width: int
) -> None:
    """Fewer words and narrower columns instead of numbers cut off with an ellipsis."""
    from slimscope.tui.widgets import SummaryHeader

    async with make_app(explorer_analysis).run_test(size=(width, 24), notifications=True) as pilot:
        await settle(pilot)
        header = pilot.app.screen.query_one(SummaryHeader)
        lines = [line.rstrip() for line in widget_lines(pilot.app, header)]
        text = "\n".join(lines)
        assert "…" not in "\n".join(lines[1:]), text  # (the image's name on the first line may give way)
        assert lines[0].endswith("  5 layers  13.5 kB stored  9.2 kB visible  eff. 76.6%"), text
        for label in ("hidden", "toolchain", "cache", "source", "docs", "slim est."):
            assert label in text
        assert lines[2].rstrip().endswith("%)")
