"""The plain-words summary of `slimscope diff`: what changed between two images, biggest changes first.

Every string that comes from an image (references, paths, history, env, labels, package names and
versions) goes through `slimscope.sanitize`; nothing here builds markup.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from slimscope.analysis.diff import Change, Diff, LayerDiff, LayerInfo, PackageChange
from slimscope.analysis.rules import CATEGORIES
from slimscope.report.text import human
from slimscope.sanitize import text as safe
from slimscope.sanitize import visible

TOP = 15
MARKS = {"added": "+", "removed": "-", "modified": "~", "moved": ">"}
_STYLE = {"added": "green", "removed": "red", "modified": "yellow", "moved": "cyan"}


def signed(size: int) -> str:
    """A byte delta with its sign: `+1.2 MB`, `-300 B`, `0 B`."""
    if not size:
        return "0 B"
    return ("+" if size > 0 else "-") + human(abs(size))


def count(n: int, word: str) -> str:
    """`1 file`, `2,000 files`."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def render(diff: Diff, console: Console, *, top: int = TOP) -> None:
    """Print the summary of a diff."""
    _header(diff, console)
    _layers(diff, console)
    _config(diff, console)
    _packages(diff, console, top)
    _findings(diff, console, top)
    _files(diff, console, top)
    _result(diff, console)


def _header(diff: Diff, console: Console) -> None:
    out = Text()
    out.append("Diff ", style="bold")
    out.append_text(safe(diff.old.image.reference, "bold cyan"))
    out.append(" -> ", style="bold")
    out.append_text(safe(diff.new.image.reference, "bold cyan"))
    out.append("\n")
    for label, analysis in (("old", diff.old), ("new", diff.new)):
        image = analysis.image
        out.append(f"  {label}  {image.id[:19]}  {image.source}, ")
        out.append_text(safe(image.platform))
        out.append(
            f", {count(len(image.layers), 'layer')} store {human(analysis.summary.image_bytes)}; "
            f"the filesystem shows {human(analysis.stats.bytes)} in {count(analysis.stats.files, 'file')}\n"
        )
    s = diff.summary
    out.append("  change ", style="bold")
    out.append(
        f"image {signed(s.image_bytes_delta)}, filesystem {signed(s.bytes_delta)}, "
        f"{s.files_delta:+,} files, hidden {signed(s.hidden_bytes_delta)}, "
        f"stored blobs {signed(s.compressed_bytes_delta)}\n"
    )
    console.print(out, end="")


def _instruction(layer: LayerInfo) -> Text:
    if not layer.instruction:
        return Text("(no history)", style="dim")
    return safe(_short(layer.instruction, 110), command=True)


def _layers(diff: Diff, console: Console) -> None:
    layers = diff.layers
    out = Text("\nLayers: ", style="bold")
    shared = len(layers.shared)
    # A shared layer NEW did not take from OLD was read for each image (taken from the layer cache
    # for each, or stored differently in the two sources).
    once = shared_layers_read(layers)
    if layers.diverged_at is None:
        once = "each read once" if layers.reused >= shared else once
        out.append(f"all {count(shared, 'layer')} shared ({once})\n")
        console.print(out, end="")
        return
    if shared:
        total = f"{len(diff.old.image.layers)}/{len(diff.new.image.layers)}"
        out.append(f"{shared} of {total} shared ({once}), diverging at layer {shared}\n")
        last = layers.shared[-1]
        out.append(f"  = {last.index:>3}  ", style="dim")
        out.append_text(_instruction(last))
        out.append("\n")
    else:
        out.append("none shared\n")
    for label, side in (("old", layers.old), ("new", layers.new)):
        mark = "-" if label == "old" else "+"
        for layer in side[:12]:
            out.append(f"  {mark} {layer.index:>3}  ", style=_STYLE["removed" if mark == "-" else "added"])
            out.append(f"{human(layer.size_bytes):>9}  ")
            out.append_text(_instruction(layer))
            if layer.in_other:
                out.append("  (also in the other image)", style="dim")
            out.append("\n")
        if len(side) > 12:
            out.append(f"        ... and {len(side) - 12} more {label} layers\n", style="dim")
    old_steps = [h.line for h in layers.old_history]
    new_steps = [h.line for h in layers.new_history]
    if old_steps != new_steps:
        out.append("  build steps after the last shared layer:\n")
        for label, steps in (("old", old_steps), ("new", new_steps)):
            for line in steps[:10]:
                out.append(f"    {label} ", style="dim")
                out.append_text(safe(_short(line, 110), command=True))
                out.append("\n")
            if len(steps) > 10:
                out.append(f"    {label} ... and {len(steps) - 10} more\n", style="dim")
    console.print(out, end="")


def _value(value: Any) -> Text:
    if value is None or value == "":
        return Text("(none)", style="dim")
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return safe(_short(str(value), 80))


def _config(diff: Diff, console: Console) -> None:
    if not diff.config:
        console.print(Text("\nConfig: no change", style="bold"))
        return
    out = Text(f"\nConfig: {count(len(diff.config), 'change')}\n", style="bold")
    for change in diff.config:
        out.append(f"  {change.field}")
        if change.key is not None and change.field not in ("exposed_ports", "volumes"):
            out.append(" ")
            out.append_text(safe(_short(change.key, 60)))
        out.append("  ")
        if change.field in ("exposed_ports", "volumes"):
            out.append(f"{change.kind} ", style=_STYLE.get(change.kind, ""))
            out.append_text(safe(str(change.key)))
        else:
            out.append_text(_value(change.old))
            out.append(" -> ")
            out.append_text(_value(change.new))
        out.append("\n")
    console.print(out, end="")


def package_versions(change: PackageChange) -> str:
    """The version a package change is about: the one added or removed, else `OLD -> NEW`."""
    if change.kind == "added":
        return change.new_version or ""
    if change.kind == "removed" or change.old_version == change.new_version:
        return change.old_version or change.new_version or ""
    return f"{change.old_version} -> {change.new_version}"


def shared_layers_read(layers: LayerDiff) -> str:
    """How the shared layers were read: once, or once for each image (see LayerDiff.reused)."""
    shared = len(layers.shared)
    if layers.reused >= shared:
        return "read once"
    if layers.reused:
        return f"{layers.reused} read once, {shared - layers.reused} for each image"
    return "read for each image"


def _packages(diff: Diff, console: Console, top: int) -> None:
    changes = diff.packages
    if not changes:
        console.print(Text("\nPackages: no change", style="bold"))
        return
    kinds = ("added", "removed", "upgraded", "downgraded", "changed")
    counts = {kind: sum(1 for c in changes if c.kind == kind) for kind in kinds}
    out = Text("\nPackages: ", style="bold")
    out.append(", ".join(f"{counts[k]:,} {k}" for k in kinds if counts[k]))
    out.append(f" ({signed(sum(c.delta for c in changes))})\n")
    for change in changes[:top]:
        out.append(f"  {signed(change.delta):>10}  ")
        out.append(f"{change.kind:<10} ", style=_STYLE.get(change.kind, "yellow"))
        out.append_text(safe(f"{change.manager} {change.name} {package_versions(change)}"))
        if change.build_only:
            out.append("  (build-only)", style="dim")
        out.append("\n")
    if len(changes) > top:
        out.append(f"  ... and {len(changes) - top} more (see --json)\n", style="dim")
    console.print(out, end="")


def _findings(diff: Diff, console: Console, top: int) -> None:
    f = diff.findings
    rows = [(c, *f.categories[c]) for c in CATEGORIES]
    rows += [("hidden", *f.hidden), ("duplicate", *f.duplicates)]
    rows = [row for row in rows if row[1] != row[2]]
    hidden_changed = f.hidden_introduced or f.hidden_fixed
    if not rows and not f.rules and not hidden_changed:
        console.print(Text("\nFindings: no change", style="bold"))
        return
    out = Text("\nFindings: net change per category\n", style="bold")
    for name, old, new in rows:
        out.append(f"  {name:<10}{signed(new - old):>10}  ({human(old)} -> {human(new)})\n")
    slim_old, slim_new = f.estimated_slim
    if slim_old != slim_new:
        out.append(f"  estimated slim size {human(slim_old)} -> {human(slim_new)}\n", style="dim")
    for rule in f.rules[:top]:
        out.append(f"  {signed(rule.delta):>10}  ")
        out.append(f"{rule.status:<10} ", style="green" if rule.delta < 0 else "red" if rule.delta else "")
        out.append(f"{rule.finding.rule.title} [{rule.finding.rule.id}]")
        paths = rule.introduced or rule.fixed
        if paths:
            word = "new" if rule.introduced else "gone"
            shown = ", ".join(f"{visible(p)} ({human(n)})" for p, n in paths[:3])
            more = len(paths) - 3
            out.append(f"\n{'':14}{word}: {shown}" + (f" and {more} more" if more > 0 else ""), style="dim")
        out.append("\n")
    if len(f.rules) > top:
        out.append(f"  ... and {len(f.rules) - top} more rules (see --json)\n", style="dim")
    for word, items in (("new hidden", f.hidden_introduced), ("no longer hidden", f.hidden_fixed)):
        if items:
            biggest = sorted(items, key=lambda h: -h.bytes)[:3]
            shown = ", ".join(f"{visible(h.path)} ({human(h.bytes)}, {h.reason})" for h in biggest)
            out.append(f"  {word}: {count(len(items), 'file')}, e.g. {shown}\n", style="dim")
    console.print(out, end="")


def _change_line(change: Change) -> Text:
    row = Text()
    row.append(f"  {signed(change.delta):>10}  ")
    row.append(MARKS[change.kind] + " ", style=_STYLE[change.kind])
    if change.kind == "moved" and change.old_path is not None:
        row.append_text(safe(change.old_path))
        row.append(" -> ")
    row.append_text(safe(change.path))
    if change.type == "dir":
        row.append("/")
    details = list(change.what)
    if change.kind == "modified" and "type" in change.what:
        details[details.index("type")] = f"{change.old_type} -> {change.type}"
    if details:
        row.append(f"  ({', '.join(details)})", style="dim")
    return row


def _files(diff: Diff, console: Console, top: int) -> None:
    s = diff.summary
    out = Text("\nFiles: ", style="bold")
    if not diff.changes:
        out.append("no change")
    else:
        out.append(
            f"{s.added:,} added, {s.removed:,} removed, {s.modified:,} modified, {s.moved:,} moved "
            f"({signed(s.added_bytes)} / {signed(-s.removed_bytes)})"
        )
    if s.ignored:
        out.append(f"; {count(s.ignored, 'ignored path')} ({signed(s.ignored_bytes_delta)})", style="dim")
    out.append("\n")
    if diff.changes:
        folders = diff.directories(top)
        if folders:
            out.append("  Biggest changes by directory\n")
            for folder in folders:
                out.append(f"  {signed(folder.delta):>10}  ")
                out.append_text(safe(folder.path + b"/"))
                parts = [
                    f"{getattr(folder, kind):,} {kind}"
                    for kind in ("added", "removed", "modified", "moved")
                    if getattr(folder, kind)
                ]
                if parts:
                    out.append(f"  ({', '.join(parts)})", style="dim")
                out.append("\n")
        biggest = sorted(
            (c for c in diff.changes if c.type != "dir" or c.kind == "modified"),
            key=lambda c: (-max(abs(c.delta), c.old_size or 0), c.path),
        )[:top]
        if biggest:
            out.append("  Biggest changes\n")
            for change in biggest:
                out.append_text(_change_line(change))
                out.append("\n")
    console.print(out, end="")


def _result(diff: Diff, console: Console) -> None:
    if diff.identical:
        note = f" (ignoring {count(diff.summary.ignored, 'path')})" if diff.summary.ignored else ""
        console.print(Text(f"\nNo differences{note}.", style="bold green"))
    else:
        console.print(Text("\nThe images differ.", style="bold"))


def _short(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"
