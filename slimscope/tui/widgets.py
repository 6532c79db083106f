"""The explorer's widgets. They render rows and numbers from slimscope.tui.model; untrusted text goes
through slimscope.sanitize and into `rich.text.Text`, never into markup."""

from __future__ import annotations

from functools import lru_cache

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static, Tree
from textual.widgets.tree import TreeNode

from slimscope.analysis.core import Analysis
from slimscope.analysis.rules import CATEGORIES
from slimscope.report.text import human, percent
from slimscope.sanitize import text as safe
from slimscope.sanitize import visible
from slimscope.tui.model import (
    CHUNK,
    MARK_ADDED,
    MARK_DELETED,
    MARK_META,
    MARK_MODIFIED,
    Filters,
    PathIndex,
    Row,
    TreeSource,
    arrange,
    describe,
)

CATEGORY_STYLE = {
    "toolchain": "red",
    "cache": "yellow",
    "source": "magenta",
    "docs": "cyan",
    "secret": "bold red",
}
MARK_STYLE = {
    MARK_ADDED: "green",
    MARK_MODIFIED: "yellow",
    MARK_META: "blue",
    MARK_DELETED: "red",
    ">": "cyan",
}


@lru_cache(maxsize=256)
def _rule_category(rule: str) -> str | None:
    from slimscope.analysis.rules import load_catalog

    return next((r.category for r in load_catalog() if r.id == rule), None)


def bar(part: int, whole: int, width: int = 12, style: str = "white") -> Text:
    """A small horizontal bar of part/whole."""
    filled = 0 if not whole else max(0, min(width, round(width * part / whole)))
    return Text("█" * filled, style=style) + Text("░" * (width - filled), style="dim")


class SummaryHeader(Static):
    """Image reference and the headline numbers, each with a small bar."""

    def __init__(self, analysis: Analysis, **kwargs) -> None:
        super().__init__(**kwargs)
        self.analysis = analysis

    def on_mount(self) -> None:
        self.update(self.render_summary())

    def render_summary(self) -> Text:
        """The header's lines."""
        a = self.analysis
        s = a.summary
        total = s.image_bytes
        out = Text()
        out.append("slimscope ", style="bold")
        out.append_text(safe(a.image.reference, "bold cyan"))
        out.append(
            f"  {a.image.platform}  {len(a.image.layers)} layers  {human(total)} stored  "
            f"{human(s.filesystem_bytes)} visible  dive efficiency {100 * s.dive_efficiency:.1f}%\n"
        )
        items: list[tuple[str, int, str]] = [("hidden", s.hidden_bytes, "magenta")]
        items += [(c, s.removable_bytes[c], CATEGORY_STYLE[c]) for c in CATEGORIES if c != "secret"]
        items.append(("slim est.", s.estimated_slim_bytes, "green"))
        for i, (name, value, style) in enumerate(items):
            out.append(f"{name:>10} ", style="bold" if name == "slim est." else "")
            out.append_text(bar(value, total, 5, style))
            out.append(f" {human(value):>9}")
            out.append("\n" if i == 2 else "  ")
        out.append(f"(-{percent(total - s.estimated_slim_bytes, total)})", style="dim")
        count = sum(len(f.paths) for f in a.findings if f.rule.category == "secret")
        if count:
            out.append(f"  {count} possible secret file(s)", style="bold red")
        return out


class LayerTable(DataTable):
    """One row per layer: index, bytes with a bar, hidden and removable bytes, the instruction."""

    BINDINGS = [Binding("j", "cursor_down", show=False), Binding("k", "cursor_up", show=False)]

    class LayerChosen(Message):
        """The highlighted layer changed."""

        def __init__(self, layer: int) -> None:
            super().__init__()
            self.layer = layer

    def __init__(self, analysis: Analysis, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.analysis = analysis

    def on_mount(self) -> None:
        a = self.analysis
        self.add_columns("#", "size", "", "hidden", "removable", "instruction")
        largest = max((layer.size_bytes for layer in a.image.layers), default=0)
        for layer, where in zip(a.image.layers, a.layer_bytes):
            removable = sum(v for k, v in where.removable.items() if k != "secret")
            instruction = a.instruction_of(layer.index) or "(no history)"
            self.add_row(
                Text(str(layer.index), justify="right"),
                Text(human(layer.size_bytes), justify="right"),
                bar(layer.size_bytes, largest, 8, "cyan"),
                Text(human(where.hidden) if where.hidden else "", justify="right", style="magenta"),
                Text(human(removable) if removable else "", justify="right", style="red"),
                safe(" ".join(instruction.split())[:200]),
                key=str(layer.index),
            )
        if a.image.layers:
            self.move_cursor(row=len(a.image.layers) - 1)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.LayerChosen(event.cursor_row))


class _FolderKeys(Tree[object]):
    """dive-like folder keys for a tree: l/right open, h/left close or go up, p/backspace go up.

    Tree is a ScrollView, whose left/right would scroll sideways instead.
    """

    BINDINGS = [
        Binding("j", "cursor_down", show=False),
        Binding("k", "cursor_up", show=False),
        Binding("l,right", "expand", show=False),
        Binding("h,left", "collapse_or_parent", show=False),
        Binding("p,backspace", "parent", show=False),
    ]

    def action_expand(self) -> None:
        """Open the folder under the cursor."""
        node = self.cursor_node
        if node is not None and node.allow_expand:
            node.expand()

    def action_collapse_or_parent(self) -> None:
        """Close the folder under the cursor, or go to its parent."""
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and node.is_expanded:
            node.collapse()
        else:
            self.action_parent()

    def action_parent(self) -> None:
        """Move to the parent folder (the root only when it is shown)."""
        node = self.cursor_node
        if node is not None and node.parent is not None and (not node.parent.is_root or self.show_root):
            self.move_cursor(node.parent)


class FindingsTree(_FolderKeys):
    """Findings grouped by category, biggest first; choosing one shows its paths in the file tree."""

    class FindingChosen(Message):
        """A finding (or one of its paths) was chosen."""

        def __init__(self, rule: str, paths: list[bytes]) -> None:
            super().__init__()
            self.rule = rule
            self.paths = paths

    def __init__(self, analysis: Analysis, **kwargs) -> None:
        super().__init__("findings", **kwargs)
        self.analysis = analysis
        self.show_root = False

    def on_mount(self) -> None:
        a = self.analysis
        by_category: dict[str, list] = {}
        for finding in a.findings:
            by_category.setdefault(finding.rule.category, []).append(finding)
        totals = {c: sum(f.bytes for f in fs) for c, fs in by_category.items()}
        if a.summary.hidden_bytes:
            node = self.root.add(
                Text.assemble((f"{human(a.summary.hidden_bytes):>9} ", "bold"), ("hidden bytes", "magenta")),
                data=None,
                expand=False,
            )
            for hidden in a.waste.hidden[:50]:
                label = Text(f"{human(hidden.bytes):>9} ") + safe("/" + visible(hidden.path))
                label.append(f"  {hidden.reason} in layer {hidden.hidden_in}", style="dim")
                node.add_leaf(label, data=("hidden", [hidden.path]))
        for category in sorted(by_category, key=lambda c: -totals[c]):
            style = CATEGORY_STYLE.get(category, "")
            group = self.root.add(
                Text.assemble((f"{human(totals[category]):>9} ", "bold"), (category, style)), expand=True
            )
            for finding in by_category[category]:
                label = Text.assemble(
                    (f"{human(finding.bytes):>9} ", "bold"),
                    f"{finding.rule.title} ",
                    (f"[{finding.rule.id}]", "dim"),
                )
                node = group.add(label, data=(finding.rule.id, [p.path for p in finding.paths]))
                for path in finding.paths[:100]:
                    node.add_leaf(
                        Text(f"{human(path.bytes):>9} ") + safe("/" + visible(path.path)),
                        data=(finding.rule.id, [path.path]),
                    )
        if not a.findings and not a.summary.hidden_bytes:
            self.root.add_leaf(Text("nothing to remove found", style="green"))
        self.root.expand()

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if event.control is not self:
            return
        event.stop()
        data = event.node.data
        if isinstance(data, tuple):
            rule, paths = data
            self.post_message(self.FindingChosen(rule, list(paths)))


class FileTree(_FolderKeys):
    """The lazily built file tree: children are made when a folder opens, largest first, in chunks."""

    class RowHighlighted(Message):
        """The cursor moved to a row (None for the root or a 'more' line)."""

        def __init__(self, row: Row | None) -> None:
            super().__init__()
            self.row = row

    def __init__(self, **kwargs) -> None:
        super().__init__(Text("/"), **kwargs)
        self.source: TreeSource | None = None
        self.filters = Filters()
        self.allowed: set[bytes] | None = None
        self.guide_depth = 3

    def show(
        self,
        source: TreeSource,
        filters: Filters,
        allowed: set[bytes] | None = None,
        reveal: list[bytes] | None = None,
    ) -> None:
        """Show a tree source with filters; `reveal` opens folders down to these paths."""
        self.source = source
        self.filters = filters
        self.allowed = allowed
        self.clear()
        self.root.set_label(Text(f"/  ({source.title})", style="bold"))
        self.root.data = ("dir", b"")
        self._fill(self.root, b"")
        self.root.expand()
        # The old nodes are gone, but Tree keeps the cursor's line and its old node: start at the root,
        # which also tells the details pane (it showed a row that may no longer be there).
        self.cursor_line = 0
        if reveal:
            self.reveal(reveal)

    def reveal(self, paths: list[bytes]) -> None:
        """Open the folders above each path and move the cursor to the first one."""
        first: TreeNode | None = None
        for path in paths[:50]:
            node = self.root
            parts = path.split(b"/")
            prefix = b""
            for part in parts:
                prefix = prefix + b"/" + part if prefix else part
                found = None
                for child in node.children:
                    data = child.data
                    if isinstance(data, tuple) and data[0] == "row" and data[1].path == prefix:
                        found = child
                        break
                if found is None:
                    break
                node = found
                if prefix != path and node.allow_expand:
                    self._ensure_filled(node)
                    node.expand()
            if first is None and node is not self.root:
                first = node
        if first is not None:
            # the new nodes get their line numbers when the tree is next built: move after that
            self.call_after_refresh(self.move_cursor, first)

    def _ensure_filled(self, node: TreeNode) -> None:
        data = node.data
        if isinstance(data, tuple) and data[0] == "row" and not data[2]:
            row = data[1]
            node.data = ("row", row, True)
            self._fill(node, row.path)

    def _fill(self, node: TreeNode, path: bytes, start: int = 0, rows: list[Row] | None = None) -> None:
        if self.source is None:
            return
        if rows is None:
            # children() already keeps only allowed rows: arrange need not ask the search again
            rows = arrange(self.source.children(path, self.allowed), self.filters)
        # Tree invalidates its caches and asks for a layout on every added node: once is enough
        self._batching = True
        try:
            for row in rows[start : start + CHUNK]:
                label = self.label_for(row)
                if row.is_dir:
                    node.add(label, data=("row", row, False), allow_expand=True)
                else:
                    node.add_leaf(label, data=("row", row, True))
            rest = len(rows) - start - CHUNK
            if rest > 0:
                node.add_leaf(
                    Text(f"… {rest:,} more (enter to show the next {min(rest, CHUNK)})", style="italic dim"),
                    data=("more", path, start + CHUNK, rows),
                )
        finally:
            self._batching = False
            if self._invalidated:
                self._invalidated = False
                self._invalidate()

    _batching = False
    _invalidated = False

    def _invalidate(self) -> None:
        # Tree's own cache invalidation (a private hook), deferred to the end of a _fill
        if self._batching:
            self._invalidated = True
        else:
            super()._invalidate()

    def process_label(self, label: str | Text) -> Text:
        """Our labels are one line of Text already: skip Tree's split into lines (a copy per node)."""
        if isinstance(label, Text) and "\n" not in label.plain:
            return label
        return super().process_label(label)

    @staticmethod
    def label_for(row: Row) -> Text:
        """A row as one line: change symbol, name tinted by finding category, size, removable share."""
        label = Text()
        label.append(row.mark + " ", style=MARK_STYLE.get(row.mark, "dim"))
        name = visible(row.name) + ("/" if row.is_dir else "")
        style = None
        if row.rule is not None:
            style = CATEGORY_STYLE.get(_rule_category(row.rule) or "")
        if row.mark == MARK_DELETED:
            style = "red strike"
        label.append(name, style=style)
        if row.link is not None and not row.is_dir:
            label.append(" -> " + visible(row.link), style="dim")
        if row.delta is not None:
            sign = "+" if row.delta > 0 else "-" if row.delta < 0 else "±"
            growth = "red" if row.delta > 0 else "green" if row.delta < 0 else "dim"
            label.append(f"  {sign}{human(abs(row.delta))}", style=growth)
            return label
        label.append(f"  {human(row.size)}", style="dim")
        if row.is_dir and row.removable and row.size:
            label.append(f"  {percent(row.removable, row.size)} removable", style="red")
        return label

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        if event.control is not self:
            return
        event.stop()
        self._ensure_filled(event.node)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if event.control is not self:
            return
        data = event.node.data
        if isinstance(data, tuple) and data[0] == "more":
            event.stop()
            _, path, start, rows = data
            parent = event.node.parent
            event.node.remove()
            if parent is not None:
                self._fill(parent, path, start, rows)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.control is not self:
            return
        event.stop()
        data = event.node.data
        row = data[1] if isinstance(data, tuple) and data[0] == "row" else None
        self.post_message(self.RowHighlighted(row))

    def selected_row(self) -> Row | None:
        """The row under the cursor."""
        node = self.cursor_node
        if node is None:
            return None
        data = node.data
        return data[1] if isinstance(data, tuple) and data[0] == "row" else None


class DetailsPane(Static):
    """Everything known about the selected path."""

    def __init__(self, analysis: Analysis, **kwargs) -> None:
        super().__init__(**kwargs)
        self.analysis = analysis
        index = analysis.extras.get("path_index")
        self.index = index if isinstance(index, PathIndex) else PathIndex(analysis)

    def show_row(self, row: Row | None) -> None:
        """Describe a row (or clear)."""
        if row is None:
            self.update(Text("Select a path to see where it came from.", style="dim"))
            return
        out = Text()
        for label, value in describe(self.analysis, self.index, row):
            out.append(f"{label:>9} ", style="bold")
            out.append_text(safe(value))
            out.append("\n")
        self.update(out)
