"""The explorer's suggestion view (`d`): computed in a worker, shown as inert text, errors in one line."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from slimscope.errors import SlimscopeError
from slimscope.tui.app import ExplorerApp, SuggestScreen


def _run(analysis, suggest, keys=("d",)) -> str:
    async def scenario() -> str:
        app = ExplorerApp("explorer:latest", analysis=analysis, suggest=suggest)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press(*keys)
            for _ in range(50):
                await pilot.pause(0.05)
                shown = (
                    str(app.screen.query_one("#suggestion").render())
                    if isinstance(app.screen, SuggestScreen)
                    else ""
                )
                if shown and not shown.startswith("Working"):
                    break
            assert isinstance(app.screen, SuggestScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, SuggestScreen) and app.is_running
            return shown

    return asyncio.run(scenario())


def test_suggestion_view_shows_the_plan_and_dockerfile(explorer_analysis, monkeypatch) -> None:
    import slimscope.report.suggest_text as suggest_text

    monkeypatch.setattr(
        suggest_text, "render", lambda s, console: console.print("Suggested runtime for x\n  base scratch")
    )
    fake = SimpleNamespace(
        dockerfile="FROM naive:1 AS build\nFROM scratch\nCOPY --from=build /app /app\n\x1b[31mX\n"
    )
    shown = _run(explorer_analysis, lambda progress: fake)
    assert "Suggested runtime for x" in shown
    assert "FROM scratch\nCOPY --from=build /app /app" in shown
    assert "\x1b" not in shown and "\\x1b[31mX" in shown  # hostile text stays visible and inert


def test_suggestion_errors_are_one_line(explorer_analysis) -> None:
    def broken(progress):
        raise SlimscopeError("cannot reach the Docker engine at unix:///nope.sock: No such file or directory")

    shown = _run(explorer_analysis, broken)
    reason = "cannot reach the Docker engine at unix:///nope.sock: No such file or directory"
    assert shown == f"could not make a suggestion: {reason}"


def _quit_while_suggesting(analysis, suggest, started, keys: tuple[str, ...]) -> None:
    """Open the suggestion, wait until `suggest` runs, press `keys` (which end the app)."""

    async def scenario() -> None:
        app = ExplorerApp("explorer:latest", analysis=analysis, suggest=suggest)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("d")
            assert started.wait(5)
            await pilot.press(*keys)
        assert not app.is_running

    asyncio.run(scenario())


def test_closing_the_view_or_quitting_stops_the_suggestion_at_its_next_read(explorer_analysis) -> None:
    """The reading reports progress; once the view is gone a report raises, so q does not wait for it."""
    import threading
    import time

    stopped: list[str] = []
    started = threading.Event()

    def slow(progress):
        started.set()
        try:
            for _ in range(1000):  # 10 s of reading, unless stopped
                progress.advance(4096)
                time.sleep(0.01)
        except BaseException as exc:
            stopped.append(type(exc).__name__)
            raise
        stopped.append("finished")

    for keys in (("q",), ("escape", "q")):
        stopped.clear()
        started.clear()
        _quit_while_suggesting(explorer_analysis, slow, started, keys)
        assert stopped == ["_Cancelled"], keys  # not "finished": nothing waited for the 10 s read


def test_quitting_does_not_wait_for_a_suggestion_blocked_without_reports(explorer_analysis) -> None:
    """As an engine's `docker save` that takes seconds to start streaming: nothing to check meanwhile."""
    import threading

    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def blocked(progress):
        started.set()
        release.wait(30)
        finished.append(True)

    try:
        _quit_while_suggesting(explorer_analysis, blocked, started, ("q",))
        assert finished == []  # the app ended while the suggestion was still blocked
    finally:
        release.set()
