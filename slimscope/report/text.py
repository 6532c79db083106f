"""The plain-words summary printed when there is no terminal UI (pipes, CI, `--summary`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from slimscope.analysis.core import Analysis
from slimscope.report.json_doc import _config
from slimscope.sanitize import text as safe


def human(size: int) -> str:
    """Bytes in a short human form (1.2 MB), with the exact count kept for small numbers."""
    import humanize

    return humanize.naturalsize(size, binary=False, format="%.1f") if size >= 1000 else f"{size} B"


def render(analysis: Analysis, console: Console) -> None:
    """Print the summary of one image."""
    image = analysis.image
    stats = analysis.stats
    config = _config(image.runtime_config)
    head = Text()
    head.append("Image ", style="bold")
    head.append_text(safe(image.reference, "bold cyan"))
    head.append(f"  ({image.source}, {image.platform})\n")
    head.append(f"id {image.id}\n")
    if image.tags:
        head.append("tags ")
        head.append_text(safe(", ".join(image.tags)))
        head.append("\n")
    total_layers = sum(layer.size_bytes for layer in image.layers)
    head.append(
        f"{len(image.layers)} layers, {human(total_layers)} in layers, "
        f"{human(sum(layer.compressed_bytes for layer in image.layers))} stored; "
        f"final filesystem {human(stats.bytes)} in {stats.files:,} files, {stats.dirs:,} directories, "
        f"{stats.symlinks:,} symlinks\n"
    )
    if total_layers > stats.bytes:
        head.append(
            f"{human(total_layers - stats.bytes)} of layer bytes are not visible in the final filesystem "
            "(overwritten or deleted by later layers)\n"
        )
    run = config["entrypoint"] or []
    run = run + (config["cmd"] or [])
    if run:
        head.append("runs ")
        head.append_text(safe(" ".join(run)))
        head.append("\n")
    for label, value in (("workdir", config["workdir"]), ("user", config["user"])):
        if value:
            head.append(f"{label} ")
            head.append_text(safe(value))
            head.append("\n")
    if config["exposed_ports"]:
        head.append("ports " + ", ".join(config["exposed_ports"]) + "\n")
    console.print(head, end="")

    table = Table(title=None, box=None, pad_edge=False, show_edge=False, header_style="bold", expand=True)
    table.add_column("#", justify="right")
    table.add_column("size", justify="right")
    table.add_column("stored", justify="right")
    table.add_column("entries", justify="right")
    table.add_column("+added", justify="right")
    table.add_column("~modified", justify="right")
    table.add_column("-deleted", justify="right")
    table.add_column("instruction", overflow="ellipsis", no_wrap=True, ratio=1)
    for layer, changes in zip(image.layers, analysis.fs.changes):
        hist = analysis.history_of(layer)
        if hist is None:
            what = Text("(no history)", style="dim")
        elif hist.instruction:
            what = safe(_short(f"{hist.instruction} {hist.arguments}"))
        else:
            what = safe(_short(hist.created_by or hist.comment or "(empty)"))
        table.add_row(
            str(layer.index),
            human(layer.size_bytes),
            human(layer.compressed_bytes),
            f"{len(layer.entries):,}",
            f"{changes.added.count:,}",
            f"{changes.modified.count + changes.metadata_only.count:,}",
            f"{changes.deleted.count:,}",
            what,
        )
    console.print()
    console.print(table)
    problems = analysis.problems
    if problems:
        console.print()
        console.print(Text(f"{len(problems)} problem(s) found while reading:", style="yellow"))
        for problem in problems[:20]:
            console.print(Text("  ") + safe(problem))
        if len(problems) > 20:
            console.print(f"  ... and {len(problems) - 20} more (see --json)")


def _short(value: str, limit: int = 160) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"
