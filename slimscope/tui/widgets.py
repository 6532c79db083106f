"""The explorer's widgets. They render rows and numbers from slimscope.tui.model; untrusted text goes
through slimscope.sanitize and into `rich.text.Text`, never into markup."""

from __future__ import annotations

from functools import lru_cache

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static, Tree
from textual.widgets.data_table import ColumnKey
from textual.widgets.tree import TreeNode

from slimscope.analysis.core import Analysis
from slimscope.analysis.rules import CATEGORIES
from slimscope.report.text import human, percent
from slimscope.sanitize import text as safe
from slimscope.sanitize import visible
from slimscope.tui.model import (
    CHUNK,
    COMMAND_LABELS,
    MARK_ADDED,
    MARK_DELETED,
    MARK_META,
    MARK_MODIFIED,
    SEARCH_ROWS,
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


NAME_MIN = 12  # cells of a file tree name kept before a folder's removable share gives way


def fit(text: Text, width: int, keep: int = 0) -> Text:
    """`text` on one line of at most `width` cells, ending in an ellipsis when cut.

    The last `keep` characters (a rule id such as ` [SS101]`) stay whole: the ellipsis goes before them.
    """
    if text.cell_len <= width:
        return text
    if 0 < keep < len(text):
        tail = text[len(text) - keep :]
        if tail.cell_len + 2 <= width:
            head = text[: len(text) - keep]
            head.truncate(width - tail.cell_len, overflow="ellipsis")
            return head + tail
    out = text.copy()
    out.truncate(max(1, width), overflow="ellipsis")
    return out


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
        self.update(self.render_summary(self.size.width or None))

    def on_resize(self) -> None:
        self.update(self.render_summary(self.size.width or None))

    def render_summary(self, width: int | None = None) -> Text:
        """The header's lines; with a `width`, each line fits it (a long reference ends in an ellipsis)."""
        a = self.analysis
        s = a.summary
        total = s.image_bytes
        name = Text("slimscope ", style="bold")
        reference = safe(a.image.reference, "bold cyan")
        layers, efficiency = len(a.image.layers), f"{100 * s.dive_efficiency:.1f}%"
        numbers = Text(
            f"  {a.image.platform}  {layers} layers  {human(total)} stored  "
            f"{human(s.filesystem_bytes)} visible  dive efficiency {efficiency}"
        )
        if width is not None and width - name.cell_len - numbers.cell_len < 20:
            # narrow: the numbers in fewer words, without the platform, before anything is cut
            stored, shown = human(total), human(s.filesystem_bytes)
            numbers = Text(f"  {layers} layers  {stored} stored  {shown} visible  eff. {efficiency}")
        if width is not None:  # the reference gives way first, the numbers after it
            room = width - name.cell_len - numbers.cell_len
            reference = fit(reference, max(room, min(reference.cell_len, 12)))
        lines = [name + reference + numbers, Text(), Text()]
        items: list[tuple[str, int, str]] = [("hidden", s.hidden_bytes, "magenta")]
        items += [(c, s.removable_bytes[c], CATEGORY_STYLE[c]) for c in CATEGORIES if c != "secret"]
        items.append(("slim est.", s.estimated_slim_bytes, "green"))
        # three to a line: 3 x 28 cells and the saving (90 in all), or 3 x 24 with shorter bars
        wide = width is None or width >= 90
        label_width, bar_width, number_width = (10, 5, 9) if wide else (9, 3, 8)
        for i, (label, value, style) in enumerate(items):
            line = lines[1 if i < 3 else 2]
            line.append(f"{label:>{label_width}} ", style="bold" if label == "slim est." else "")
            line.append_text(bar(value, total, bar_width, style))
            line.append(f" {human(value):>{number_width}}")
            if i < 2 or 2 < i < 5:
                line.append("  ")
        lines[2].append("  " if wide else " ")
        lines[2].append(f"(-{percent(total - s.estimated_slim_bytes, total)})", style="dim")
        count = sum(len(f.paths) for f in a.findings if f.rule.category == "secret")
        if count:
            # shorter, or left out, rather than cut (the findings list them)
            for note in (f"  {count} possible secret file(s)", f"  {count} secret(s)?"):
                if width is None or lines[2].cell_len + len(note) <= width:
                    lines[2].append(note, style="bold red")
                    break
        if width is not None:
            lines = [fit(line, width) for line in lines]
        return Text("\n").join(lines)


class LayerTable(DataTable):
    """One row per layer: index, bytes with a bar, hidden and removable bytes, the instruction.

    The number columns have fixed widths; the instruction takes the rest of the pane's width (set again
    on every resize) and ends in an ellipsis, so the table never scrolls sideways.
    """

    BINDINGS = [Binding("j", "cursor_down", show=False), Binding("k", "cursor_up", show=False)]

    class LayerChosen(Message):
        """The highlighted layer changed."""

        def __init__(self, layer: int) -> None:
            super().__init__()
            self.layer = layer

    # (label, width) of the fixed columns; cell padding is 0, so each width holds a leading space
    BAR = 5
    FIXED = (("size", 9), ("", BAR + 1), ("hidden", 9), ("removable", 10))

    def __init__(self, analysis: Analysis, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kwargs)
        self.analysis = analysis
        self._index_width = len(str(max(len(analysis.image.layers) - 1, 0)))

    def on_mount(self) -> None:
        a = self.analysis
        self.add_column(Text("#", justify="right"), width=self._index_width, key="index")
        for label, width in self.FIXED:
            self.add_column(Text(label, justify="right"), width=width, key=label or "bar")
        self.add_column(Text(" instruction"), width=self.instruction_width(), key="instruction")
        largest = max((layer.size_bytes for layer in a.image.layers), default=0)
        for layer, where in zip(a.image.layers, a.layer_bytes):
            removable = sum(v for k, v in where.removable.items() if k != "secret")
            instruction = a.instruction_of(layer.index) or "(no history)"
            shown = Text(" ") + safe(" ".join(instruction.split())[:1000], command=True)
            shown.no_wrap, shown.overflow = True, "ellipsis"
            self.add_row(
                Text(str(layer.index), justify="right"),
                Text(human(layer.size_bytes), justify="right"),
                Text(" ") + bar(layer.size_bytes, largest, self.BAR, "cyan"),
                Text(human(where.hidden) if where.hidden else "", justify="right", style="magenta"),
                Text(human(removable) if removable else "", justify="right", style="red"),
                shown,
                key=str(layer.index),
            )
        if a.image.layers:
            self.move_cursor(row=len(a.image.layers) - 1)

    def instruction_width(self) -> int:
        """What the other columns (and a vertical scrollbar, when the rows need one) leave."""
        width = self.size.width
        if len(self.analysis.image.layers) + 1 > self.size.height:
            width -= self.styles.scrollbar_size_vertical
        fixed = self._index_width + sum(w for _, w in self.FIXED)
        return max(12, width - fixed)

    def on_resize(self) -> None:
        column = self.columns.get(ColumnKey("instruction"))
        width = self.instruction_width()
        if column is not None and column.width != width:
            column.width = width
            self._require_update_dimensions = True  # DataTable's own: recompute the virtual width
            self.refresh()

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

    def label_room(self, node: TreeNode) -> int:
        """The cells a node's label has before the pane's edge (after the guides), or 0 if unknown."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return 0
        level, parent = 0, node.parent
        while parent is not None and (parent is not self.root or self.show_root):
            level, parent = level + 1, parent.parent
        return max(1, width - level * self.guide_depth)

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
        self._keep: dict[int, int] = {}  # node id -> characters at the end of its label kept whole

    def render_label(self, node: TreeNode, base_style: Style, style: Style) -> Text:
        """The label cut to the pane's width with an ellipsis (a finding's rule id stays whole)."""
        label = super().render_label(node, base_style, style)
        room = self.label_room(node)
        return fit(label, room, self._keep.get(node.id, 0)) if room else label

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
                why = f"  {hidden.reason} in layer {hidden.hidden_in}"
                label.append(why, style="dim")
                self._keep[node.add_leaf(label, data=("hidden", [hidden.path])).id] = len(why)
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
                self._keep[node.id] = len(finding.rule.id) + 3  # " [SS101]"
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

    class Opened(Message):
        """Folders were opened or closed: the number of search matches shown may have changed."""

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, FileTree.Opened)

    def __init__(self, **kwargs) -> None:
        super().__init__(Text("/"), **kwargs)
        self.source: TreeSource | None = None
        self.filters = Filters()
        self.allowed: set[bytes] | None = None
        self.guide_depth = 3
        self._keep: dict[int, int] = {}  # node id -> characters at the end of its label kept whole

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
        self._keep.clear()
        self.root.set_label(Text(f"/  ({source.title})", style="bold"))
        self.root.data = ("dir", b"")
        self._fill(self.root, b"")
        self.root.expand()
        # The old nodes are gone, but Tree keeps the cursor's line and its old node: start at the root,
        # which also tells the details pane (it showed a row that may no longer be there).
        self.cursor_line = 0
        if reveal:
            self.reveal(reveal)

    def open_matches(self, rows: int = SEARCH_ROWS) -> None:
        """The one rule for showing search matches: open folders from the top, depth first in the order
        shown, each one that starts within the first `rows` rows of the tree; the rest stay closed.

        The tree holds only matches and the folders above them, so the first screens fill with matches
        and the work is bounded (about `rows` folders opened, a chunk of children each at most).
        """
        line = 0
        stack = list(reversed(self.root.children))
        while stack and line < rows:
            node = stack.pop()
            line += 1
            if node.allow_expand:
                self._ensure_filled(node)
                node.expand()
                stack.extend(reversed(node.children))

    def shown_matches(self) -> int | None:
        """How many search matches the open folders show (None when the tree is not a search)."""
        matched = getattr(self.allowed, "matched", None)
        if matched is None:
            return None
        count = 0
        stack = [self.root]
        while stack:
            for child in stack.pop().children:
                data = child.data
                if isinstance(data, tuple) and data[0] == "row":
                    if matched(data[1].path):
                        count += 1
                    if child.is_expanded:
                        stack.append(child)
        return count

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
            rows = arrange(self.source.children(path, self.allowed), self.filters, source=self.source)
        # Tree invalidates its caches and asks for a layout on every added node: once is enough
        self._batching = True
        try:
            keep = self._keep
            for row in rows[start : start + CHUNK]:
                label, tail = self.label_parts(row)
                if row.is_dir:
                    child = node.add(label, data=("row", row, False), allow_expand=True)
                else:
                    child = node.add_leaf(label, data=("row", row, True))
                keep[child.id] = tail
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

    def render_label(self, node: TreeNode, base_style: Style, style: Style) -> Text:
        """The label cut to the pane's width with an ellipsis in the name; the size after it stays whole.

        Where that would leave the name fewer than NAME_MIN cells, a folder's "63% removable" gives way
        first: to "63%", then to nothing (the name tells folders apart; the share is in the details).
        """
        label = super().render_label(node, base_style, style)
        room = self.label_room(node)
        if not room or label.cell_len <= room:
            return label
        keep = self._keep.get(node.id, 0)
        plain = label.plain
        word = " removable"
        if plain.endswith(word) and room - keep < NAME_MIN:
            label, keep = label[: len(plain) - len(word)], keep - len(word)
            if label.cell_len <= room:
                return label
            if room - keep < NAME_MIN:
                share = plain.rfind("  ", 0, len(plain) - len(word))
                dropped = len(label) - share
                label, keep = label[:share], keep - dropped
                if label.cell_len <= room:
                    return label
        return fit(label, room, keep)

    def process_label(self, label: str | Text) -> Text:
        """Our labels are one line of Text already: skip Tree's split into lines (a copy per node)."""
        if isinstance(label, Text) and "\n" not in label.plain:
            return label
        return super().process_label(label)

    @staticmethod
    def label_parts(row: Row) -> tuple[Text, int]:
        """A row's label, and how many characters at its end are its numbers (kept whole when the pane
        is narrow: the name is cut first)."""
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
        head = len(label)
        if row.delta is not None:
            sign = "+" if row.delta > 0 else "-" if row.delta < 0 else "±"
            growth = "red" if row.delta > 0 else "green" if row.delta < 0 else "dim"
            label.append(f"  {sign}{human(abs(row.delta))}", style=growth)
            return label, len(label) - head
        label.append(f"  {human(row.size)}", style="dim")
        if row.is_dir and row.removable and row.size:
            label.append(f"  {percent(row.removable, row.size)} removable", style="red")
        return label, len(label) - head

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        if event.control is not self:
            return
        event.stop()
        self._ensure_filled(event.node)
        if self.allowed is not None:
            self.post_message(self.Opened())

    def on_tree_node_collapsed(self, event: Tree.NodeCollapsed) -> None:
        if event.control is not self:
            return
        event.stop()
        if self.allowed is not None:
            self.post_message(self.Opened())

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
                if self.allowed is not None:
                    self.post_message(self.Opened())

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
            out.append_text(safe(value, command=label in COMMAND_LABELS))
            out.append("\n")
        self.update(out)
