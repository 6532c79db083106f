"""Every key binding of the explorer, in one table: the app binds from it and the help screen lists it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    """One binding: keys (comma-separated), the action, a description, and whether the footer shows it.

    `bound` says who binds it: "screen" (the main screen binds it from this table), "app" (the app or
    Textual binds it itself: quit, help, ctrl+c, ctrl+p) or "widget" (the focused pane's own key, such as
    Enter in the findings; listed here so that the help, made from this table, tells every key).
    """

    keys: str
    action: str
    description: str
    show: bool = False
    group: str = "general"
    bound: str = "screen"


KEYS: tuple[Key, ...] = (
    Key("q", "quit", "Quit", True, bound="app"),
    Key("ctrl+c", "interrupt", "Quit at once with exit status 130, like Ctrl-C elsewhere", bound="app"),
    Key("question_mark,f1", "help", "Help", True, bound="app"),
    Key("ctrl+p", "command_palette", "Command palette: every action by name", bound="app"),
    Key("tab", "app.focus_next", "Next pane (like dive)", bound="app"),
    Key("shift+tab", "app.focus_previous", "Previous pane", bound="app"),
    # Enter is the focused tree's own key (Tree.select_cursor); the README promises both uses
    Key(
        "enter",
        "select_cursor",
        "Findings: show the finding's paths in the tree",
        group="findings",
        bound="widget",
    ),
    Key(
        "enter",
        "select_cursor",
        "Files: open a folder, or show a long folder's next rows",
        group="tree",
        bound="widget",
    ),
    Key("slash,ctrl+f", "search", "Search paths", True, "tree"),
    Key("escape", "clear", "Close search / clear filters", False, "tree"),
    Key("a,ctrl+a", "toggle_mark('+')", "Show/hide added", False, "filters"),
    Key("r,ctrl+r", "toggle_mark('-')", "Show/hide deleted", False, "filters"),
    Key("m", "toggle_mark('~')", "Show/hide modified (dive's ctrl+m arrives as Enter)", False, "filters"),
    Key("u,ctrl+u", "toggle_mark(' ')", "Show/hide unchanged", False, "filters"),
    Key("equals_sign", "toggle_mark('=')", "Show/hide stored again (metadata only)", False, "filters"),
    Key("x", "removable_only", "Only removable paths", True, "filters"),
    Key("z", "min_size", "Minimum size: cycle 0, 1 kB, 100 kB, 1 MB, 10 MB, 100 MB", False, "filters"),
    Key("s,ctrl+o", "sort", "Sort by size / name", True, "tree"),
    Key("c,ctrl+l", "layer_mode", "Layer view: filesystem as of layer / only its changes", True, "layers"),
    Key("ctrl+space,ctrl+@", "collapse_all", "Collapse all folders", False, "tree"),  # terminals send ctrl+@
    Key("space", "toggle_node", "Expand/collapse folder", False, "tree"),
    Key("l,right", "expand", "Expand folder", False, "tree"),
    Key("h,left", "collapse_or_parent", "Collapse folder or go to parent", False, "tree"),
    Key("p,backspace", "parent", "Jump to parent folder", False, "tree"),
    Key("j", "cursor_down", "Down", False, "tree"),
    Key("k", "cursor_up", "Up", False, "tree"),
    Key("1", "focus_pane('layers')", "Focus layers", False, "panes"),
    Key("2", "focus_pane('findings')", "Focus findings", False, "panes"),
    Key("3", "focus_pane('tree')", "Focus file tree", False, "panes"),
    Key("y", "copy_path", "Copy the selected path", False, "general"),
    Key("e", "export_json", "Export the JSON report", True, "general"),
    Key("d", "suggest", "Suggest the multi-stage Dockerfile (reads the image again)", True, "general"),
)
