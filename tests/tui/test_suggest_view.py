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
    shown = _run(explorer_analysis, lambda: fake)
    assert "Suggested runtime for x" in shown
    assert "FROM scratch\nCOPY --from=build /app /app" in shown
    assert "\x1b" not in shown and "\\x1b[31mX" in shown  # hostile text stays visible and inert


def test_suggestion_errors_are_one_line(explorer_analysis) -> None:
    def broken():
        raise SlimscopeError("cannot reach the Docker engine at unix:///nope.sock: No such file or directory")

    shown = _run(explorer_analysis, broken)
    reason = "cannot reach the Docker engine at unix:///nope.sock: No such file or directory"
    assert shown == f"could not make a suggestion: {reason}"
