"""The explorer's diff mode: the union of changed paths as a tree, filters, search and details."""

from __future__ import annotations

import asyncio
from pathlib import Path

import synth

from slimscope.analysis import analyze
from slimscope.analysis.diff import diff_analyses
from slimscope.sources import load_image
from slimscope.tui.app import DiffApp, DiffScreen
from slimscope.tui.widgets import FileTree


def _diff(tmp_path: Path):
    base = [
        synth.directory("app"),
        synth.file("app/keep", b"k" * 100),
        synth.file("app/old", b"o" * 300),
        synth.file("app/edit", b"e" * 50),
        synth.file("app/move-me", b"m" * 70),
    ]
    old = synth.Image([synth.Layer(base)], tags=["d:old"], env=["A=1"])
    newer = [
        synth.directory("app"),
        synth.file("app/keep", b"k" * 100),
        synth.file("app/new", b"n" * 1000),
        synth.file("app/edit", b"E" * 80),
        synth.directory("app/sub"),
        synth.file("app/sub/moved", b"m" * 70),
    ]
    new = synth.Image([synth.Layer(newer)], tags=["d:new"], env=["A=2"])
    synth.write_archive(tmp_path / "old.tar", old, "docker-oci")
    synth.write_archive(tmp_path / "new.tar", new, "docker-oci")
    return diff_analyses(
        analyze(load_image(str(tmp_path / "old.tar"))), analyze(load_image(str(tmp_path / "new.tar")))
    )


def _lines(tree: FileTree) -> list[str]:
    return ["".join(s.text for s in tree.render_line(y)).rstrip() for y in range(tree.size.height)]


def test_diff_mode_tree_filters_and_details(tmp_path: Path) -> None:
    diff = _diff(tmp_path)

    async def scenario() -> None:
        app = DiffApp(diff)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, DiffScreen)
            tree = app.screen.query_one(FileTree)
            tree.root.children[0].expand()
            await pilot.pause()
            text = "\n".join(_lines(tree))
            assert "+ new  +1.0 kB" in text
            assert "- old  -300 B" in text
            assert "~ edit  +30 B" in text
            assert "app/  +730 B" in text  # 1000 - 300 + 30; the move out of app/ and into app/sub cancel
            await pilot.press("a")  # hide added
            tree.root.children[0].expand()
            await pilot.pause()
            text = "\n".join(_lines(tree))
            assert "new" not in text and "- old" in text
            await pilot.press("a", "slash")
            await pilot.press(*"edit")
            await pilot.pause(0.3)
            tree.root.children[0].expand()
            await pilot.pause()
            lines = [line for line in _lines(tree) if line.strip()]
            assert any("~ edit" in line for line in lines) and not any("old" in line for line in lines)
            await pilot.press("enter")
            await pilot.pause()
            tree.root.children[0].expand()
            await pilot.pause()
            node = next(n for n in tree.root.children[0].children if n.data[1].name == b"edit")
            tree.move_cursor(node)
            await pilot.pause()
            details = app.screen.query_one("#details").render()
            plain = str(details)
            assert "modified" in plain and "50 -> 80 bytes (+30)" in plain
            overview = str(app.screen.query_one("#overview").render())
            assert "changed  env[A]: '1' -> '2'" in overview
            await pilot.press("q")
        assert app.return_code in (0, None)

    asyncio.run(scenario())


def test_diff_mode_history_as_written_and_search_opens_matches(tmp_path: Path) -> None:
    """A history line keeps its backslash (`\\n` as written, not `\\\\n`), cut with an ellipsis to
    the pane; a search opens the matching folders by the same rule as the main screen."""
    line = r"printf 'a\nb\n' > /app/notes && echo done with a rather long command line for the pane"
    old = synth.Image([synth.Layer([synth.directory("app"), synth.file("app/x", b"x")])], tags=["h:old"])
    new = synth.Image(
        [
            synth.Layer([synth.directory("app"), synth.file("app/x", b"x")]),
            synth.Layer(
                [synth.directory("app"), synth.directory("app/sub"), synth.file("app/sub/notes", b"a\nb\n")],
                created_by=synth.created_by("RUN", line),
            ),
        ],
        tags=["h:new"],
    )
    synth.write_archive(tmp_path / "old.tar", old, "docker-oci")
    synth.write_archive(tmp_path / "new.tar", new, "docker-oci")
    diff = diff_analyses(
        analyze(load_image(str(tmp_path / "old.tar"))), analyze(load_image(str(tmp_path / "new.tar")))
    )

    async def scenario() -> None:
        app = DiffApp(diff)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.pause()
            overview = str(app.screen.query_one("#overview").render()).splitlines()
            news = [row for row in overview if row.startswith("  new: RUN")]
            assert news == [r"  new: RUN printf 'a\nb\n' > /app/notes && echo done with a…"]
            await pilot.press("slash", *"notes")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await pilot.pause()
            tree = app.screen.query_one(FileTree)
            assert [n.is_expanded for n in (tree.root.children[0], tree.root.children[0].children[0])] == [
                True,
                True,
            ]
            line = str(app.screen.query_one("#filterline").render())
            assert line == "1 matching path, all shown (esc clears) · biggest change first"

    asyncio.run(scenario())


def test_diff_mode_overview_lists_packages_one_line_each(tmp_path: Path) -> None:
    """Size first, then the version added or removed (no dangling '->'); cut to the pane, not wrapped."""
    import dataclasses

    from slimscope.analysis.diff import PackageChange

    packages = [
        PackageChange("removed", "dpkg", "libperl5.36", "amd64", "5.36.0-7+deb12u3", None, 29_100_000, 0),
        PackageChange("added", "pip", "flask", None, None, "3.0.3", 0, 1_200_000),
        PackageChange(
            "upgraded", "dpkg", "libc6", "amd64", "2.36-9", "2.36-9+deb12u9", 12_000_000, 12_100_000
        ),
        PackageChange(
            "removed", "dpkg", "libpython3.11-dev-with-a-very-long-name-indeed", None, "3.11.2-6", None, 9, 0
        ),
    ]
    diff = dataclasses.replace(_diff(tmp_path), packages=packages)

    async def scenario() -> list[str]:
        app = DiffApp(diff)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.pause()
            await pilot.pause()
            overview = app.screen.query_one("#overview")
            width = overview.size.width
            text = str(overview.render())
            await pilot.press("q")
        lines = text.splitlines()
        start = lines.index("Packages") + 1
        rows = lines[start : start + 4]
        assert all(len(row) <= width for row in rows)
        assert width == 80  # the overview pane at 160 columns
        return rows

    rows = asyncio.run(scenario())
    assert rows[0] == "   -29.1 MB removed    dpkg:libperl5.36 5.36.0-7+deb12u3"
    assert rows[1] == "    +1.2 MB added      pip:flask 3.0.3"
    assert rows[2] == "  +100.0 kB upgraded   dpkg:libc6 2.36-9 -> 2.36-9+deb12u9"
    assert rows[3] == "       -9 B removed    dpkg:libpython3.11-dev-with-a-very-long-name-indeed 3.11…"
