"""The text summary of a suggestion (`slimscope suggest`): base, packages, copies, sizes, verification.

Every untrusted string (paths, reasons, commands, container output) goes through `sanitize.text()`:
Rich never reads it as markup.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from slimscope.analysis.suggest import Suggestion
from slimscope.sanitize import text, visible

MAX_LISTED = 40


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{sign}{n / scale:.1f} {unit}"
    return f"{sign}{n} B"


def _line(*parts: str | Text) -> Text:
    out = Text()
    for part in parts:
        out.append(part if isinstance(part, Text) else Text(part))
    return out


def render(suggestion: Suggestion, console: Console) -> None:
    """Print the summary of a suggestion (and of its verification, when there is one)."""
    s = suggestion
    closure = s.closure
    console.print(_line("Suggested runtime for ", text(s.image, "bold")))
    command = " ".join(closure.argv) if closure.argv else "(no command)"
    console.print(_line("  runs      ", text(command, command=True), f"  ({closure.runtime})"))
    console.print(_line("  base      ", text(s.base.name, "bold"), f"  (found by: {s.base.how})"))
    saved = s.original_bytes - s.estimated_bytes
    console.print(
        _line(
            "  size      ",
            f"estimated {_size(s.estimated_bytes)}: base {_size(s.base.bytes)}, packages "
            f"{_size(s.package_bytes)}, copied {_size(s.copy_bytes)}; the original is "
            f"{_size(s.original_bytes)} (saves about {_size(saved)})",
        )
    )
    if s.packages:
        console.print(
            _line(f"  packages  {len(s.packages)} via {s.base.manager}: ", text(" ".join(s.packages)))
        )
    if s.copies:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("bytes", justify="right")
        table.add_column("from")
        table.add_column("copy")
        table.add_column("why")
        for copy in s.copies[:MAX_LISTED]:
            path = "/" + visible(copy.src)
            if copy.dest != copy.src:
                path += " -> /" + visible(copy.dest)
            table.add_row(_size(copy.bytes), text(copy.stage), Text(path), text(copy.reason))
        console.print(table)
        if len(s.copies) > MAX_LISTED:
            console.print(f"  ... and {len(s.copies) - MAX_LISTED} more copies")
    if s.links:
        console.print(f"  symlinks  {len(s.links)} made with ln -s in the runtime stage")
    if s.prune:
        paths = "path" if len(s.prune) == 1 else "paths"
        console.print(f"  pruned    {len(s.prune)} {paths} removed in the {visible('slimscope-prune')} stage")
    for item in closure.missing:
        console.print(_line("  missing   ", text(item, "yellow")))
    for note in [*closure.notes, *s.notes]:
        console.print(_line("  note      ", text(note)))
    if s.verification is not None:
        render_verification(s.verification, console)


def render_verification(result: dict, console: Console) -> None:
    """Print what `--verify` found."""
    verdict = "PASS" if result.get("passed") else "FAIL"
    console.print(
        _line("Verification: ", Text(verdict, "bold green" if result.get("passed") else "bold red"))
    )
    if not result.get("built"):
        console.print(_line("  the suggested Dockerfile did not build: ", text(result.get("error", ""))))
        for line in (result.get("build_log") or "").splitlines()[-15:]:
            console.print(_line("    ", text(line)))
        return
    command = result.get("command")
    console.print(_line("  command   ", text(" ".join(command) if command else "(the image's own)")))
    for label in ("original", "suggested"):
        run = result.get(label) or {}
        state = "timed out (still running)" if run.get("timed_out") else f"exit {run.get('exit_code')}"
        console.print(_line(f"  {label:<9} ", state))
    if not result.get("same_exit"):
        console.print("  the exit status differs")
    if not result.get("same_output"):
        console.print("  the output differs (dates and times aside):")
        for label in ("original", "suggested"):
            output = (result.get(label) or {}).get("output", "")
            console.print(_line(f"    {label}: ", text(output[-500:])))
    size = result.get("size_bytes")
    original = result.get("original_size_bytes")
    console.print(
        f"  size      {_size(size)} (the original: {_size(original)}, "
        f"saved {_size(result.get('saved_bytes'))}; "
        f"estimated {_size(result.get('estimated_bytes'))})"
    )
    if result.get("kept"):
        console.print(_line("  image     ", text(result.get("tag", ""))))
