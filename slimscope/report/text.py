"""The plain-words summary for pipes, CI and `--summary`: biggest wins first."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from slimscope.analysis.core import Analysis
from slimscope.image.settings import settings
from slimscope.sanitize import text as safe
from slimscope.sanitize import visible

TOP_FINDINGS = 12


def human(size: int) -> str:
    """Bytes in a short human form (1.2 MB), exact below 1 kB."""
    import humanize

    if abs(size) < 1000:
        return f"{size} B"
    return humanize.naturalsize(size, binary=False, format="%.1f")


def percent(part: int, whole: int) -> str:
    """`12%` of a whole (0% when the whole is 0)."""
    return f"{100 * part / whole:.0f}%" if whole else "0%"


def render(analysis: Analysis, console: Console) -> None:
    """Print the summary of one image."""
    _header(analysis, console)
    _wins(analysis, console)
    _attribution(analysis, console)
    _layers(analysis, console)
    _packages(analysis, console)
    _problems(analysis, console)


def _header(analysis: Analysis, console: Console) -> None:
    image = analysis.image
    stats = analysis.stats
    summary = analysis.summary
    config = settings(image.runtime_config)
    head = Text()
    head.append("Image ", style="bold")
    head.append_text(safe(image.reference, "bold cyan"))
    head.append(f"  ({image.source}, {image.platform})\n")
    head.append(f"id {image.id}\n")
    if image.tags:
        head.append("tags ")
        head.append_text(safe(", ".join(image.tags)))
        head.append("\n")
    head.append(
        f"{len(image.layers)} layers store {human(summary.image_bytes)} "
        f"({human(sum(layer.compressed_bytes for layer in image.layers))} as stored blobs); "
        f"the final filesystem shows {human(stats.bytes)} in {stats.files:,} files, "
        f"{stats.dirs:,} directories, "
        f"{stats.symlinks:,} symlinks\n"
    )
    run = (config["entrypoint"] or []) + (config["cmd"] or [])
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


def _wins(analysis: Analysis, console: Console) -> None:
    summary = analysis.summary
    total = summary.image_bytes
    out = Text()
    out.append("\nWhat need not ship, biggest first\n", style="bold")
    findings = [f for f in analysis.findings if f.rule.category != "secret" and f.bytes]
    rows: list[tuple[int, Text]] = []
    for finding in findings[:TOP_FINDINGS]:
        row = Text()
        row.append(f"{human(finding.bytes):>9}  ", style="bold")
        row.append(f"{finding.rule.category:<9} ", style=_CATEGORY_STYLE.get(finding.rule.category, ""))
        row.append(f"{finding.rule.title} [{finding.rule.id}]")
        shown = ", ".join(f"{visible(p.path)} ({human(p.bytes)})" for p in finding.paths[:3])
        more = len(finding.paths) - 3
        row.append(f"\n{'':11}{shown}" + (f" and {more} more" if more > 0 else ""), style="dim")
        instruction = analysis.instruction_of(finding.layer)
        if finding.layer is not None:
            row.append(f"\n{'':11}added by layer {finding.layer}: ")
            row.append_text(safe(_short(instruction or "(no history)", 100), command=True))
        if finding.packages:
            row.append(f"\n{'':11}packages: ")
            row.append_text(safe(_short(", ".join(p.split(":", 1)[1] for p in finding.packages), 100)))
        row.append(f"\n{'':11}fix: {finding.rule.remedy}", style="green")
        rows.append((finding.bytes, row))
    if summary.hidden_bytes:
        row = Text()
        row.append(f"{human(summary.hidden_bytes):>9}  ", style="bold")
        row.append(f"{'hidden':<9} ", style="magenta")
        row.append("stored in layers but not visible (overwritten, stored again or deleted by a later layer)")
        top = analysis.waste.hidden[:3]
        if top:
            shown = ", ".join(
                f"{visible(h.path)} ({human(h.bytes)}, {h.reason} in layer {h.hidden_in})" for h in top
            )
            row.append(f"\n{'':11}{shown}", style="dim")
        row.append(
            f"\n{'':11}fix: delete files in the same RUN that creates them, or build in a separate stage",
            style="green",
        )
        rows.append((summary.hidden_bytes, row))
    if summary.duplicate_bytes:
        row = Text()
        row.append(f"{human(summary.duplicate_bytes):>9}  ", style="bold")
        row.append(f"{'duplicate':<9} ", style="blue")
        group = analysis.waste.duplicates[0]
        row.append(
            f"identical contents under several paths, e.g. {', '.join(visible(p) for p in group.paths[:3])}"
        )
        rows.append((summary.duplicate_bytes, row))
    rows.sort(key=lambda r: -r[0])
    rest = findings[TOP_FINDINGS:]
    if rest:
        more = Text()
        more.append(f"{human(sum(f.bytes for f in rest)):>9}  ", style="bold")
        more.append(f"{len(rest)} more finding(s): ")
        more.append(", ".join(f"{f.rule.title} [{f.rule.id}] {human(f.bytes)}" for f in rest))
        more.append(" (see --json)", style="dim")
        rows.append((-1, more))
    if not rows:
        out.append("  nothing: no toolchains, caches, sources, docs or hidden bytes found\n")
    for _, row in rows:
        out.append("  ")
        out.append_text(row)
        out.append("\n")
    slim = summary.estimated_slim_bytes
    out.append(
        f"\nWithout toolchains, caches, sources and docs: {human(slim)} instead of {human(total)} "
        f"({percent(total - slim, total)} smaller)\n",
        style="bold",
    )
    out.append(
        "`slimscope suggest IMAGE` works out what the image's command needs and writes the multi-stage "
        "Dockerfile\n",
        style="dim",
    )
    out.append(
        f"dive would score this image {100 * summary.dive_efficiency:.1f}% efficient "
        f"(wasted {human(summary.dive_wasted_bytes)}); its score ignores toolchains, caches and sources\n",
        style="dim",
    )
    secrets = [f for f in analysis.findings if f.rule.category == "secret"]
    if secrets:
        out.append("\nPossible secrets baked into the image (contents not shown):\n", style="bold red")
        for finding in secrets:
            for p in finding.paths[:5]:
                out.append(f"  {finding.rule.title} [{finding.rule.id}]: ")
                out.append_text(safe(p.path))
                out.append("\n")
    console.print(out, end="")


_CATEGORY_STYLE = {
    "toolchain": "red",
    "cache": "yellow",
    "source": "cyan",
    "docs": "green",
    "secret": "bold red",
}


def _attribution(analysis: Analysis, console: Console) -> None:
    """Bytes per Dockerfile line and stage (--dockerfile), and builder stage images (--stage)."""
    report = analysis.extras.get("attribution")
    if not report:
        return
    out = Text()
    if report.get("lines"):
        out.append(
            f"\nBytes by Dockerfile line ({report['dockerfile']}, target stage {report['target']})\n",
            style="bold",
        )
        for line in sorted(report["lines"], key=lambda x: -x["bytes"])[:12]:
            out.append(f"  {human(line['bytes']):>9}  line {line['line']:<4} ")
            out.append_text(safe(f"[{line['stage']}] {_short(line['instruction'], 90)}", command=True))
            out.append("\n")
        for stage in report.get("stages", []):
            out.append(f"  stage {stage['stage']}: {human(stage['bytes'])}\n", style="dim")
    unmatched = report.get("unmatched") or []
    attributed = sum(
        1 for layer in report.get("layers", []) if layer["line"] is not None and not layer["base"]
    )
    if report.get("layers") is not None and unmatched and not attributed:
        out.append(
            f"  warning: no layer matched the Dockerfile's instructions ({len(unmatched)} unmatched); "
            "is it the Dockerfile this image was built from?\n",
            style="yellow",
        )
    elif unmatched:
        out.append(
            f"  {len(unmatched)} instruction(s) matched no history entry: "
            + ", ".join(f"line {u['line']}" for u in unmatched[:8])
            + "\n",
            style="dim",
        )
    for stage in report.get("stage_images", []):
        out.append(f"\nBuilder stage {stage['stage']} ", style="bold")
        out.append_text(safe(f"({stage['reference']})"))
        out.append(
            f": {human(stage['image_bytes'])} stored; the final stage copies {human(stage['copied_bytes'])}"
            f" from it\n"
        )
        for copy in stage["copies"]:
            out.append(f"  line {copy['line']}: ")
            out.append_text(safe(f"{' '.join(copy['src'])} -> {copy['dest']}"))
            out.append(f"  {human(copy['bytes'] or 0)}\n")
    console.print(out, end="")


def _layers(analysis: Analysis, console: Console) -> None:
    image = analysis.image
    table = Table(title=None, box=None, pad_edge=False, show_edge=False, header_style="bold", expand=True)
    table.add_column("#", justify="right")
    table.add_column("size", justify="right")
    table.add_column("hidden", justify="right")
    table.add_column("removable", justify="right")
    table.add_column("+added", justify="right")
    table.add_column("~changed", justify="right")
    table.add_column("-deleted", justify="right")
    table.add_column("instruction", overflow="ellipsis", no_wrap=True, ratio=1)
    for layer, changes, where in zip(image.layers, analysis.fs.changes, analysis.layer_bytes):
        instruction = analysis.instruction_of(layer.index)
        what = safe(_short(instruction), command=True) if instruction else Text("(no history)", style="dim")
        removable = sum(v for k, v in where.removable.items() if k != "secret")
        table.add_row(
            str(layer.index),
            human(layer.size_bytes),
            human(where.hidden) if where.hidden else "",
            human(removable) if removable else "",
            f"{changes.added.count:,}",
            f"{changes.modified.count + changes.metadata_only.count:,}",
            f"{changes.deleted.count:,}",
            what,
        )
    console.print()
    console.print(Text("Layers", style="bold"))
    console.print(table)


def _packages(analysis: Analysis, console: Console) -> None:
    if not analysis.packages:
        return
    out = Text("\nPackages: ", style="bold")
    managers: dict[str, list] = {}
    for package in analysis.packages:
        managers.setdefault(package.manager, []).append(package)
    parts = []
    for manager, packages in sorted(managers.items()):
        build = [p for p in packages if p.build_only]
        part = f"{len(packages)} {manager} ({human(sum(p.bytes for p in packages))})"
        if build:
            part += f", {len(build)} build-only ({human(sum(p.bytes for p in build))})"
        parts.append(part)
    out.append("; ".join(parts) + "\n")
    build = sorted((p for p in analysis.packages if p.build_only), key=lambda p: -p.bytes)[:8]
    if build:
        out.append("  largest build-only: ")
        out.append_text(safe(", ".join(f"{p.name} {human(p.bytes)}" for p in build)))
        out.append("\n")
    console.print(out, end="")


def _problems(analysis: Analysis, console: Console) -> None:
    problems = analysis.problems
    if not problems:
        return
    console.print()
    console.print(Text(f"{len(problems)} problem(s) found while reading:", style="yellow"))
    for problem in problems[:20]:
        console.print(Text("  ") + safe(problem))
    if len(problems) > 20:
        console.print(f"  ... and {len(problems) - 20} more (see --json)")


def _short(value: str, limit: int = 160) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"
