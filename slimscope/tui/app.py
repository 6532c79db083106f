"""The Textual explorer: wiring only. Widgets live in widgets.py, the logic they show in model.py."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Input, Label, ProgressBar, Static, Tree
from textual.widgets.tree import TreeNode
from textual.worker import get_current_worker

from slimscope.analysis.core import Analysis
from slimscope.fs import Filesystem
from slimscope.report.text import human
from slimscope.sanitize import text as safe
from slimscope.sanitize import visible
from slimscope.sources import Progress
from slimscope.tui.keys import KEYS
from slimscope.tui.model import (
    SIZE_STEPS,
    Filters,
    FsSource,
    LayerSource,
    PathIndex,
    Searcher,
    TreeSource,
    search,
)
from slimscope.tui.widgets import DetailsPane, FileTree, FindingsTree, LayerTable, SummaryHeader, fit

CSS_PATH = Path(__file__).with_name("app.tcss")


class Loaded(Message):
    """The analysis is ready."""

    def __init__(self, analysis: Analysis) -> None:
        super().__init__()
        self.analysis = analysis


class Failed(Message):
    """Reading or analysing failed; the message is one line for the user."""

    def __init__(self, error: str, exc: BaseException) -> None:
        super().__init__()
        self.error = error
        self.exc = exc


class _Cancelled(Exception):
    """Raised in the loading thread's progress callbacks once the app has quit."""


class ProgressUpdate(Message):
    """Bytes read so far (only the newest one matters)."""

    def __init__(self, what: str, done: int, total: int | None, blobs: int) -> None:
        super().__init__()
        self.what, self.done, self.total, self.blobs = what, done, total, blobs

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProgressUpdate)


class LoadingScreen(Screen):
    """Shown while the image is exported and analysed; the work runs in a thread."""

    BINDINGS = [
        Binding("q,escape", "app.quit", "Quit", priority=True),
        Binding("ctrl+c", "app.interrupt", "Quit", priority=True),
    ]

    def __init__(self, reference: str) -> None:
        super().__init__()
        self.reference = reference

    def compose(self) -> ComposeResult:
        with Vertical(id="loading"):
            yield Label(Text.assemble("slimscope  ", ("reading ", "dim")) + safe(self.reference, "bold cyan"))
            yield ProgressBar(id="progress", show_eta=False)
            yield Label("starting…", id="progress-text")
            yield Label(Text("q or ctrl+c to cancel", style="dim"))

    def update_progress(self, message: ProgressUpdate) -> None:
        """Show bytes read of the total and which blob is being read."""
        bar = self.query_one(ProgressBar)
        if message.total:
            bar.update(total=message.total, progress=min(message.done, message.total))
        label = f"{message.what}: {human(message.done)}"
        if message.total:
            label += f" of {human(message.total)}"
        if message.blobs:
            label += f", layer blob {message.blobs}"
        self.query_one("#progress-text", Label).update(label)


class HelpScreen(ModalScreen):
    """Every key binding."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, text: Text | None = None) -> None:
        super().__init__()
        self.text = text

    def on_mount(self) -> None:
        self.query_one("#help").border_subtitle = "escape closes"

    def compose(self) -> ComposeResult:
        if self.text is not None:
            with VerticalScroll(id="help"):
                yield Static(self.text)
            return
        lines = Text()
        lines.append("slimscope explorer keys\n\n", style="bold")
        for key in KEYS:
            keys = ", ".join(_key_name(k) for k in key.keys.split(","))
            lines.append(f"{keys:>22}  ", style="bold cyan")
            lines.append(f"{key.description}\n")
        lines.append(
            "\nMarks: + added  ~ modified  = stored again (chmod/touch)  - deleted  (blank) unchanged\n"
        )
        lines.append(
            "Colours: red toolchain, yellow cache, magenta source, cyan docs; the mouse works everywhere.\n"
        )
        with VerticalScroll(id="help"):
            yield Static(lines)


def _key_name(key: str) -> str:
    return {"question_mark": "?", "slash": "/", "equals_sign": "=", "ctrl+space": "ctrl+space"}.get(key, key)


class SearchingScreen(Screen):
    """What both explorer screens do with their search box: wait for typing to pause, then search."""

    _search_timer = None

    def apply_search(self, query: str) -> None:
        """Filter the screen's tree; each screen says how."""
        raise NotImplementedError

    def debounce_search(self, value: str) -> None:
        """Search 150 ms after the last key press, not on every key."""
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(0.15, lambda: self.apply_search(value))

    def run_search(self, searcher: Searcher, query: str, current: Container[bytes] | None):
        """(ok, matches) for a query: substring, or regex after `re:`; a bad regex is reported, not raised."""
        regex = query.startswith("re:")
        try:
            return True, search(searcher, query[3:] if regex else query, regex)
        except re.error as exc:
            self.notify(f"bad regular expression: {exc}", severity="error", markup=False)
            return False, current


class MainScreen(SearchingScreen):
    """The explorer: header, layers and findings on the left, file tree and details on the right."""

    BINDINGS = [Binding(k.keys, k.action, k.description, show=k.show) for k in KEYS if k.bound == "screen"]

    def __init__(self, analysis: Analysis) -> None:
        super().__init__()
        self.analysis = analysis
        self.filters = Filters()
        self.layer_index = len(analysis.image.layers) - 1
        self.changes_only = False
        self.allowed: Container[bytes] | None = None  # a set, or the PathMatches of a search
        self.focus_paths: list[bytes] | None = None  # a finding's paths, shown with their folders open
        self.focus_rule = ""
        self._fs_cache: dict[int, Filesystem] = {}
        self._source_cache: dict[tuple[int, bool], TreeSource] = {}

    def compose(self) -> ComposeResult:
        yield SummaryHeader(self.analysis, id="summary")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield LayerTable(self.analysis, id="layers")
                yield FindingsTree(self.analysis, id="findings")
            with Vertical(id="right"):
                yield Input(placeholder="search paths (substring; start with re: for a regex)", id="search")
                yield Label("", id="filterline")
                yield FileTree(id="tree")
                yield DetailsPane(self.analysis, id="details")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#layers").border_title = "Layers"
        self.query_one("#findings").border_title = "What need not ship"
        self.query_one("#tree").border_title = "Files"
        self.query_one("#details").border_title = "Details"
        self.query_one("#search", Input).display = False
        self.refresh_tree()
        self.query_one(FileTree).focus()

    # -- tree content ------------------------------------------------------------------------------
    def source(self) -> TreeSource:
        """The tree for the selected layer and mode (cached)."""
        key = (self.layer_index, self.changes_only)
        cached = self._source_cache.get(key)
        if cached is not None:
            return cached
        prepared = self.analysis.extras.get("final_source")
        if (
            not self.changes_only
            and isinstance(prepared, FsSource)
            and self.layer_index == len(self.analysis.image.layers) - 1
        ):
            self._source_cache[key] = prepared
            return prepared
        if self.changes_only:
            source: TreeSource = LayerSource(self.analysis, self.layer_index)
        else:
            source = FsSource(self.analysis, self.filesystem(self.layer_index), self.layer_index)
        if len(self._source_cache) > 6:
            self._source_cache.pop(next(iter(self._source_cache)))
        self._source_cache[key] = source
        return source

    def filesystem(self, layer: int) -> Filesystem:
        """The merged filesystem as of a layer (the final one is the analysis's own)."""
        last = len(self.analysis.image.layers) - 1
        if layer == last:
            return self.analysis.fs
        fs = self._fs_cache.get(layer)
        if fs is None:
            fs = Filesystem(self.analysis.fs.layers[: layer + 1])
            if len(self._fs_cache) > 3:
                self._fs_cache.pop(next(iter(self._fs_cache)))
            self._fs_cache[layer] = fs
        return fs

    def refresh_tree(self, reveal: list[bytes] | None = None) -> None:
        """Rebuild the file tree from the current layer, mode, filters and search.

        A finding's paths are revealed; a search's matches are opened by the tree's one rule.
        """
        tree = self.query_one(FileTree)
        tree.show(self.source(), self.filters, self.allowed, reveal)
        if self.allowed is not None and reveal is None and self.focus_paths is None:
            tree.open_matches()
        self.update_filterline()

    @on(FileTree.Opened)
    def tree_opened(self) -> None:
        self.update_filterline()

    def update_filterline(self) -> None:
        """One line saying what the tree shows: the search (or finding) first, then layer and filters."""
        f = self.filters
        parts = []
        if self.focus_paths is not None:
            n = len(self.focus_paths)
            parts.append(f"{n:,} path{'s' if n != 1 else ''} of {self.focus_rule} (esc clears)")
        elif self.allowed is not None:
            parts.append(search_status(self.allowed, self.query_one(FileTree)))
        view = "changes of" if self.changes_only else "filesystem as of"
        parts.append(f"{view} layer {self.layer_index}")
        hidden = {"+": "added", "~": "modified", "=": "stored again", "-": "deleted", " ": "unchanged"}
        off = [name for mark, name in hidden.items() if mark not in f.marks]
        if off:
            parts.append("hiding " + ", ".join(off))
        if f.removable_only:
            parts.append("only removable")
        if f.min_size:
            parts.append(f"at least {human(f.min_size)}")
        parts.append("sorted by name" if f.sort_by_name else "sorted by size")
        self.query_one("#filterline", Label).update(Text(" · ".join(parts), style="dim"))

    # -- events ------------------------------------------------------------------------------------
    @on(LayerTable.LayerChosen)
    def layer_chosen(self, event: LayerTable.LayerChosen) -> None:
        if event.layer != self.layer_index:
            self.layer_index = event.layer
            self._search_again()
            self.refresh_tree()

    def _search_again(self) -> None:
        """Another layer or mode is another tree: run the search in the box over it (a finding stays)."""
        if self.focus_paths is None:
            query = self.query_one("#search", Input).value
            self.allowed = None
            if query:
                self.allowed = self.run_search(self.source().searcher(), query, None)[1]

    @on(FindingsTree.FindingChosen)
    def finding_chosen(self, event: FindingsTree.FindingChosen) -> None:
        self.layer_index = len(self.analysis.image.layers) - 1
        self.changes_only = event.rule == "hidden" and False
        paths = event.paths
        if event.rule == "hidden":
            self.changes_only = False
            self.layer_index = max(0, min(len(self.analysis.image.layers) - 1, self._hidden_layer(paths[0])))
        allowed: set[bytes] = set()
        for path in paths:
            allowed.add(path)
            parent = path.rpartition(b"/")[0]
            while parent and parent not in allowed:
                allowed.add(parent)
                parent = parent.rpartition(b"/")[0]
        self.allowed = _with_descendants(allowed, self.source(), paths)
        self.focus_paths = paths
        self.focus_rule = "hidden bytes" if event.rule == "hidden" else event.rule
        self.query_one(LayerTable).move_cursor(row=self.layer_index)  # the table shows the tree's layer
        self.refresh_tree(reveal=paths)
        self.query_one(FileTree).focus()

    def _hidden_layer(self, path: bytes) -> int:
        for hidden in self.analysis.waste.hidden:
            if hidden.path == path:
                return hidden.layer
        return len(self.analysis.image.layers) - 1

    @on(FileTree.RowHighlighted)
    def row_highlighted(self, event: FileTree.RowHighlighted) -> None:
        self.query_one(DetailsPane).show_row(event.row)

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        self.debounce_search(event.value)

    @on(Input.Submitted, "#search")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.apply_search(event.value)
        self.query_one(FileTree).focus()

    def apply_search(self, query: str) -> None:
        """Filter the tree to paths matching the query (substring, or regex after `re:`)."""
        ok, self.allowed = self.run_search(self.source().searcher(), query, self.allowed)
        if not ok:
            return
        self.focus_paths = None
        self.refresh_tree()

    # -- actions -----------------------------------------------------------------------------------
    def action_search(self) -> None:
        search_box = self.query_one("#search", Input)
        search_box.display = True
        search_box.focus()

    def action_clear(self) -> None:
        """Escape: close the search (or a finding's paths) first; with none, clear the filters."""
        search_box = self.query_one("#search", Input)
        searching = search_box.display or self.allowed is not None or self.focus_paths is not None
        if search_box.display:
            search_box.value = ""
            search_box.display = False
        self.allowed = None
        self.focus_paths = None
        if not searching:
            self.filters.clear()
        self.refresh_tree()
        self.query_one(FileTree).focus()

    def action_toggle_mark(self, mark: str) -> None:
        marks = self.filters.marks
        if mark in marks:
            marks.discard(mark)
        else:
            marks.add(mark)
        self.refresh_tree()

    def action_removable_only(self) -> None:
        self.filters.removable_only = not self.filters.removable_only
        self.refresh_tree()

    def action_min_size(self) -> None:
        steps = SIZE_STEPS
        current = steps.index(self.filters.min_size) if self.filters.min_size in steps else 0
        self.filters.min_size = steps[(current + 1) % len(steps)]
        self.refresh_tree()

    def action_sort(self) -> None:
        self.filters.sort_by_name = not self.filters.sort_by_name
        self.refresh_tree()

    def action_layer_mode(self) -> None:
        self.changes_only = not self.changes_only
        self._search_again()
        self.refresh_tree()

    def action_collapse_all(self) -> None:
        tree = self.query_one(FileTree)
        for node in tree.root.children:
            node.collapse_all()

    def _focused_node(self) -> TreeNode | None:
        """The cursor node of the focused tree (the file tree or the findings), if any."""
        focused = self.focused
        return focused.cursor_node if isinstance(focused, Tree) else None

    def action_toggle_node(self) -> None:
        node = self._focused_node()
        if node is not None and node.allow_expand:
            node.toggle()

    def action_expand(self) -> None:
        node = self._focused_node()
        if node is not None and node.allow_expand:
            node.expand()

    def action_collapse_or_parent(self) -> None:
        node = self._focused_node()
        if node is not None and node.allow_expand and node.is_expanded:
            node.collapse()
        else:
            self.action_parent()

    def action_parent(self) -> None:
        node = self._focused_node()
        if node is None or node.parent is None:
            return
        tree = node.tree
        if not node.parent.is_root or tree.show_root:
            tree.move_cursor(node.parent)

    def action_cursor_down(self) -> None:
        self.focused.action_cursor_down() if hasattr(self.focused, "action_cursor_down") else None

    def action_cursor_up(self) -> None:
        self.focused.action_cursor_up() if hasattr(self.focused, "action_cursor_up") else None

    def action_focus_pane(self, pane: str) -> None:
        self.query_one(f"#{pane}").focus()

    def action_copy_path(self) -> None:
        row = self.query_one(FileTree).selected_row()
        if row is None:
            self.notify("no path selected")
            return
        shown = "/" + visible(row.path)
        self.app.copy_to_clipboard("/" + row.path.decode("utf-8", "surrogateescape"))
        self.notify("copied " + shown, markup=False)  # notify takes a str; never markup

    def action_suggest(self) -> None:
        suggest = getattr(self.app, "suggest", None)
        if suggest is None:
            self.notify("no suggestion here (run slimscope on an image or archive)", markup=False)
            return
        self.app.push_screen(SuggestScreen(suggest))

    def action_export_json(self) -> None:
        from slimscope.errors import SlimscopeError
        from slimscope.output import write_atomically
        from slimscope.report.json_doc import document, dump

        name = f"slimscope-{self.analysis.image.id.removeprefix('sha256:')[:12]}.json"
        doc = document(self.analysis)
        try:
            write_atomically(name, lambda out: dump(doc, out))
        except SlimscopeError as exc:
            self.notify(visible(str(exc)), severity="error", markup=False)
            return
        self.notify(f"wrote {visible(os.path.abspath(name))}", markup=False)


def search_status(matches: Container[bytes], tree: FileTree) -> str:
    """`N matching paths, all shown` or `N matching paths, K not shown: narrow the search`."""
    total = len(matches)  # type: ignore[arg-type]
    shown = tree.shown_matches()
    if not total:
        return "no matching paths (esc clears)"
    found = "1 matching path" if total == 1 else f"{total:,} matching paths"
    if shown is None or shown >= total:
        return f"{found}, all shown (esc clears)"
    return f"{found}, {total - shown:,} not shown: narrow the search (esc clears)"


def _with_descendants(allowed: set[bytes], source: TreeSource, roots: list[bytes]) -> set[bytes]:
    """Add everything below the chosen roots, so a chosen folder shows its contents."""
    prefixes = tuple(root + b"/" for root in roots)
    for path in source.all_paths():
        if path.startswith(prefixes):
            allowed.add(path)
    return allowed


def prepare(analysis: Analysis) -> None:
    """Work the first screen and first keys would otherwise do on the UI thread, done in the loader.

    Builds the details' path index and the final filesystem's folder totals, then freezes the
    analysis's objects out of the garbage collector: they live as long as the app, and full
    collections over hundreds of thousands of them paused the UI for 100+ ms.
    """
    import gc

    index = PathIndex(analysis)
    index.events(b"")
    owner = index.owner(b"")
    del owner
    analysis.extras["path_index"] = index
    last = len(analysis.image.layers) - 1
    if last >= 0:
        source = FsSource(analysis, analysis.fs, last)
        source.searcher().warm()
        analysis.extras["final_source"] = source
    gc.collect()
    gc.freeze()


class ExplorerApp(App):
    """slimscope's explorer."""

    TITLE = "slimscope"
    CSS_PATH = CSS_PATH
    BINDINGS = [
        Binding("q", "quit", "Quit", show=True),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Help", show=True),
    ]

    def __init__(
        self,
        reference: str,
        load: Callable[[Progress], Analysis] | None = None,
        analysis: Analysis | None = None,
        suggest: Callable[[Progress], Any] | None = None,
    ) -> None:
        super().__init__()
        self.reference = reference
        self.load = load
        self.suggest = suggest  # makes the multi-stage suggestion (slow: reads the image again)
        self.analysis = analysis
        self.error: str | None = None
        self.exc: BaseException | None = None
        self._progress = {"what": "reading", "done": 0, "total": None, "blobs": 0, "last": 0.0}

    def on_mount(self) -> None:
        if self.analysis is not None:
            self.push_screen(MainScreen(self.analysis))
            return
        self.push_screen(LoadingScreen(self.reference))
        self.run_load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def run_load(self) -> None:
        """Read and analyse the image in a thread, posting progress."""
        state = self._progress
        worker = get_current_worker()

        def check() -> None:
            # q or ctrl+c while loading: the app is gone, stop reading (the process waits for this thread)
            if worker.is_cancelled:
                raise _Cancelled

        def start(what: str, total: int | None) -> None:
            check()
            state["what"], state["total"] = what, total
            self._post_progress(force=True)

        def advance(n: int) -> None:
            check()
            state["done"] += n
            self._post_progress()

        def blob(_: str) -> None:
            check()
            state["blobs"] += 1
            self._post_progress(force=True)

        assert self.load is not None
        try:
            analysis = self.load(Progress(start=start, advance=advance, blob=blob, check=check))
        except _Cancelled:
            return
        except BaseException as exc:  # reported on the UI thread, which exits with code 2
            if worker.is_cancelled:
                return
            from slimscope.errors import SlimscopeError

            text = (
                str(exc)
                if isinstance(exc, SlimscopeError)
                else f"internal error: {exc.__class__.__name__}: {exc}"
            )
            self.post_message(Failed(text, exc))
            return
        prepare(analysis)
        self.post_message(Loaded(analysis))

    def _post_progress(self, force: bool = False) -> None:
        state = self._progress
        now = time.monotonic()
        if force or now - state["last"] > 0.05:
            state["last"] = now
            self.post_message(ProgressUpdate(state["what"], state["done"], state["total"], state["blobs"]))

    @on(ProgressUpdate)
    def progress_update(self, message: ProgressUpdate) -> None:
        if isinstance(self.screen, LoadingScreen):
            self.screen.update_progress(message)

    @on(Loaded)
    def loaded(self, message: Loaded) -> None:
        self.analysis = message.analysis
        self.switch_screen(MainScreen(message.analysis))

    @on(Failed)
    def failed(self, message: Failed) -> None:
        self.error = message.error
        self.exc = message.exc
        self.exit(return_code=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_interrupt(self) -> None:
        """Ctrl-C: leave at once with the shell's interrupted status (130), like the command line."""
        self.exit(return_code=130)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, MainScreen):
            for key in KEYS:
                if key.bound != "screen" or key.action.startswith(("cursor_", "focus_pane")):
                    continue
                action = key.action
                yield SystemCommand(
                    key.description, f"key: {key.keys}", lambda action=action: screen.run_action(action)
                )
        yield SystemCommand("Help: every key binding", "key: ?", self.action_help)


class SuggestScreen(ModalScreen):
    """The multi-stage rewrite: the plan and the Dockerfile, computed in a worker on demand.

    A centred box sized to the screen. The plan's `label  value` lines wrap at the box's width under
    their value, never between a number and its unit; the table of copies and the Dockerfile never
    wrap (long paths and RUN lines stay whole: the box scrolls sideways).
    """

    BINDINGS = [Binding("escape,q,d", "dismiss", "Close")]

    def __init__(self, suggest: Callable[[Progress], Any]) -> None:
        super().__init__()
        self.suggest = suggest
        self._shown: tuple[list[str], str] | None = None  # (plan lines, Dockerfile) once computed

    def compose(self) -> ComposeResult:
        with ScrollableContainer(id="suggest"):
            yield Static(
                Text("Working out what the command needs at run time (reads the image again)…", style="dim"),
                id="suggestion",
            )

    def on_mount(self) -> None:
        self.query_one("#suggest").border_title = "Suggested multi-stage Dockerfile (escape closes)"
        self.run_suggest()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def run_suggest(self) -> None:
        """Compute the suggestion off the UI thread; it stops at its next read once the view is gone."""
        worker = get_current_worker()

        def check(*_: object) -> None:
            # escape, q or ctrl+c: the reading (the image, then file contents again) stops here, so
            # quitting does not wait for it (the process waits for this thread)
            if worker.is_cancelled:
                raise _Cancelled

        progress = Progress(start=check, advance=check, blob=check, check=check)
        try:
            suggestion = _abandonable(lambda: self.suggest(progress), lambda: worker.is_cancelled)
            shown = (plan_lines(suggestion), suggestion.dockerfile)
        except _Cancelled:
            return
        except Exception as exc:  # one line in the view, like the command line would print
            from slimscope.errors import SlimscopeError

            message = str(exc) if isinstance(exc, SlimscopeError) else f"{exc.__class__.__name__}: {exc}"
            failed = Text("could not make a suggestion: ", style="red") + safe(message)
            self.app.call_from_thread(self.query_one("#suggestion", Static).update, failed)
            return
        self.app.call_from_thread(self._show, shown)

    def _show(self, shown: tuple[list[str], str]) -> None:
        self._shown = shown
        self._layout()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        if self._shown is None:
            return
        box = self.query_one("#suggest", ScrollableContainer)
        width = box.size.width - box.styles.scrollbar_size_vertical  # the text is taller than the box
        self.query_one("#suggestion", Static).update(render_suggestion(*self._shown, max(width, 40)))


def _abandonable(work: Callable[[], Any], cancelled: Callable[[], bool]) -> Any:
    """`work()` in a daemon thread; raises _Cancelled as soon as `cancelled()` (checked every 0.1 s).

    A Textual thread worker cannot be stopped, and quitting waits for it: the suggestion's read of
    an engine image first waits seconds for `docker save` to start streaming, with nothing to check.
    Left behind, that thread ends with the process (it holds no temporary file).
    """
    import concurrent.futures

    result: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            result.set_result(work())
        except BaseException as exc:  # raised in the waiting thread
            result.set_exception(exc)

    threading.Thread(target=run, name="slimscope-suggest", daemon=True).start()
    while True:
        try:
            return result.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            if cancelled():
                raise _Cancelled from None


def plan_lines(suggestion: Any) -> list[str]:
    """The plan summary as the command line prints it, unwrapped (inert, already sanitized text)."""
    import io

    from rich.console import Console

    from slimscope.report.suggest_text import render

    buffer = io.StringIO()
    # wide enough that Rich wraps nothing and the table of copies keeps every path whole
    render(suggestion, Console(file=buffer, width=4000, no_color=True, highlight=False))
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


_LABEL = re.compile(r"  [a-z]+ +(?=\S)")  # `  size      ` (12 characters): a value's column
_SIZE_GAP = re.compile(r"(\d) (B|kB|MB|GB|TB)\b")
_KEEP = "\x00"  # never in sanitized text (a NUL is shown as the four characters \x00)


def wrap_value(line: str, width: int) -> list[str]:
    """A `  label     value` line wrapped at `width`, continued under the value; a size (`250.1 MB`)
    is never split from its unit. Other lines (the table, headings) are returned whole."""
    label = _LABEL.match(line)
    if label is None or label.end() != 12 or len(line) <= width:
        return [line]
    indent = " " * label.end()
    words = _SIZE_GAP.sub(r"\1" + _KEEP + r"\2", line[label.end() :]).split(" ")
    out: list[str] = []
    current = line[: label.end()]
    for word in words:
        if len(current) > len(indent) and len(current) + 1 + len(word) > width:
            out.append(current)
            current = indent + word
        else:
            current += word if len(current) == len(indent) else " " + word
    out.append(current)
    return [piece.replace(_KEEP, " ") for piece in out]


def render_suggestion(plan: list[str], dockerfile: str, width: int) -> Text:
    """The plan (wrapped at `width`) and the Dockerfile (one screen line per line, never wrapped) as
    inert text. Dockerfile text is shown as written: a backslash stays one, so it can be copied."""
    out = Text(no_wrap=True, overflow="ignore")
    for line in plan:
        for piece in wrap_value(line, width):
            out.append_text(safe(piece, command=True))  # already sanitized: only controls would change
            out.append("\n")
    out.append("\n")
    for line in dockerfile.splitlines():
        out.append_text(safe(line, "cyan", command=True))
        out.append("\n")
    out.rstrip()
    return out


class DiffScreen(SearchingScreen):
    """`slimscope diff OLD NEW` in a terminal: the changed paths as a tree, with what else changed."""

    BINDINGS = [
        Binding("slash,ctrl+f", "search", "Search", show=True),
        Binding("escape", "clear", "Clear", show=False),
        Binding("a,ctrl+a", "toggle_mark('+')", "Added", show=True),
        Binding("r,ctrl+r", "toggle_mark('-')", "Removed", show=True),
        Binding("m", "toggle_mark('~')", "Modified", show=True),
        Binding("v", "toggle_mark('>')", "Moved", show=True),
        Binding("s,ctrl+o", "sort", "Sort", show=False),
        Binding("z", "min_size", "Min size", show=False),
    ]

    def __init__(self, diff: Any) -> None:
        super().__init__()
        from slimscope.tui.model import DiffSource

        self.diff = diff
        self.source_tree = DiffSource(diff)
        marks = {"+", "-", "~", ">", " "}
        self.filters = Filters(marks=set(marks), every_mark=frozenset(marks))
        self.allowed: Container[bytes] | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._header(), id="summary")
        with Horizontal(id="body"):
            with VerticalScroll(id="left"):
                yield Static(self._overview(), id="overview")
            with Vertical(id="right"):
                yield Input(placeholder="search paths (substring; start with re: for a regex)", id="search")
                yield Label("", id="filterline")
                yield FileTree(id="tree")
                yield Static("", id="details")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#left").border_title = "Layers, packages, config, findings"
        self.query_one("#tree").border_title = "Changed files (+ added, - removed, ~ modified, > moved)"
        self.query_one("#details").border_title = "Details"
        self.query_one("#search", Input).display = False
        self.refresh_tree()
        self.query_one(FileTree).focus()

    def _header(self) -> Text:
        d = self.diff
        s = d.summary
        out = Text()
        out.append("slimscope diff ", style="bold")
        out.append_text(safe(d.old.image.reference, "bold cyan"))
        out.append(" -> ")
        out.append_text(safe(d.new.image.reference, "bold cyan"))
        out.append("  identical\n" if s.identical else "\n", style="green")
        out.append(
            f"stored {_signed(s.image_bytes_delta)}  visible {_signed(s.bytes_delta)}  "
            f"files {s.files_delta:+,}  hidden {_signed(s.hidden_bytes_delta)}  "
            f"removable {_signed(s.removable_bytes_delta)}\n"
        )
        out.append(
            f"{s.added:,} added  {s.removed:,} removed  {s.modified:,} modified  {s.moved:,} moved  "
            f"({s.ignored:,} ignored paths)",
            style="dim",
        )
        return out

    def _overview(self, width: int | None = None) -> Text:
        from slimscope.report.diff_text import package_versions, shared_layers_read

        d = self.diff
        out = Text()
        layers = d.layers
        out.append("Layers\n", style="bold")
        out.append(f"  {len(layers.shared)} shared ({shared_layers_read(layers)})")
        out.append(
            f", diverge at layer {layers.diverged_at}\n"
            if layers.diverged_at is not None
            else ", same layers\n"
        )
        for side, history in (("old", layers.old_history), ("new", layers.new_history)):
            for line in history[:8]:
                # a history line as written (a backslash stays one), cut to the pane with an ellipsis
                command = " ".join(str(line.line).split())
                shown = Text(f"  {side}: ", style="dim") + safe(command, command=True)
                out.append_text(fit(shown, width) if width else shown)
                out.append("\n")
        out.append("\nPackages\n", style="bold")
        if not d.packages:
            out.append("  no change\n", style="dim")
        for change in d.packages[:40]:  # the size first, so a narrow pane cuts the version, not it
            line = Text(f"  {_signed(change.delta):>9} ", style="dim")
            line.append(f"{change.kind:<10} ", style=_KIND_STYLE.get(change.kind, ""))
            line.append_text(safe(f"{change.manager}:{change.name} {package_versions(change)}"))
            out.append_text(fit(line, width) if width else line)
            out.append("\n")
        out.append("\nConfig\n", style="bold")
        if not d.config:
            out.append("  no change\n", style="dim")
        for change in d.config[:40]:
            key = f"{change.field}" + (f"[{change.key}]" if change.key else "")
            out.append(f"  {change.kind:<8} ", style=_KIND_STYLE.get(change.kind, ""))
            out.append_text(safe(f"{key}: {change.old!r} -> {change.new!r}"))
            out.append("\n")
        out.append("\nFindings (old -> new)\n", style="bold")
        for category, (old, new) in d.findings.categories.items():
            out.append(f"  {category:<10} {human(old):>9} -> {human(new):>9}  {_signed(new - old)}\n")
        old, new = d.findings.hidden
        out.append(f"  {'hidden':<10} {human(old):>9} -> {human(new):>9}  {_signed(new - old)}\n")
        return out

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_overview)

    def _fit_overview(self) -> None:
        overview = self.query_one("#overview", Static)
        if overview.size.width:
            overview.update(self._overview(overview.size.width))

    def refresh_tree(self) -> None:
        """Rebuild the tree from filters and search (its matches opened by the tree's one rule)."""
        tree = self.query_one(FileTree)
        tree.show(self.source_tree, self.filters, self.allowed)
        if self.allowed is not None:
            tree.open_matches()
        self.update_filterline()

    @on(FileTree.Opened)
    def tree_opened(self) -> None:
        self.update_filterline()

    def update_filterline(self) -> None:
        """The search first, then sort and filters."""
        f = self.filters
        names = {"+": "added", "-": "removed", "~": "modified", ">": "moved"}
        parts = [] if self.allowed is None else [search_status(self.allowed, self.query_one(FileTree))]
        parts.append("sorted by name" if f.sort_by_name else "biggest change first")
        off = [name for mark, name in names.items() if mark not in f.marks]
        if off:
            parts.append("hiding " + ", ".join(off))
        if f.min_size:
            parts.append(f"at least {human(f.min_size)}")
        self.query_one("#filterline", Label).update(Text(" · ".join(parts), style="dim"))

    @on(FileTree.RowHighlighted)
    def row_highlighted(self, event: FileTree.RowHighlighted) -> None:
        from slimscope.tui.model import describe_change

        row = event.row
        out = Text()
        if row is not None:
            change = self.source_tree.change(row.path)
            pairs = (
                describe_change(change)
                if change is not None
                else [
                    ("path", "/" + row.path.decode("utf-8", "surrogateescape")),
                    ("below", f"{row.files:,} changed paths, {row.delta or 0:+,} bytes"),
                ]
            )
            for label, value in pairs:
                out.append(f"{label:>10} ", style="bold")
                out.append_text(safe(value))
                out.append("\n")
        self.query_one("#details", Static).update(out)

    @on(Input.Changed, "#search")
    def search_changed(self, event: Input.Changed) -> None:
        self.debounce_search(event.value)

    @on(Input.Submitted, "#search")
    def search_submitted(self, event: Input.Submitted) -> None:
        self.apply_search(event.value)
        self.query_one(FileTree).focus()

    def apply_search(self, query: str) -> None:
        """Filter to changed paths matching a substring (or a regex after `re:`)."""
        ok, self.allowed = self.run_search(self.source_tree.searcher(), query, self.allowed)
        if ok:
            self.refresh_tree()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    def action_clear(self) -> None:
        """Escape: close the search first; with none, clear the filters."""
        box = self.query_one("#search", Input)
        searching = box.display or self.allowed is not None
        box.value = ""
        box.display = False
        self.allowed = None
        if not searching:
            self.filters.clear()
        self.refresh_tree()
        self.query_one(FileTree).focus()

    def action_toggle_mark(self, mark: str) -> None:
        marks = self.filters.marks
        marks.symmetric_difference_update({mark})
        self.refresh_tree()

    def action_sort(self) -> None:
        self.filters.sort_by_name = not self.filters.sort_by_name
        self.refresh_tree()

    def action_min_size(self) -> None:
        steps = SIZE_STEPS
        current = steps.index(self.filters.min_size) if self.filters.min_size in steps else 0
        self.filters.min_size = steps[(current + 1) % len(steps)]
        self.refresh_tree()


_KIND_STYLE = {
    "added": "green",
    "removed": "red",
    "upgraded": "yellow",
    "downgraded": "magenta",
    "changed": "yellow",
}


def _signed(value: int) -> str:
    return ("+" if value > 0 else "-" if value < 0 else "±") + human(abs(value))


class DiffApp(App):
    """The explorer in diff mode, for an already computed diff."""

    TITLE = "slimscope diff"
    CSS_PATH = CSS_PATH
    BINDINGS = [
        Binding("q", "quit", "Quit", show=True),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Help", show=True),
    ]

    def action_help(self) -> None:
        lines = Text("slimscope diff keys\n\n", style="bold")
        for keys, what in (
            ("/, ctrl+f", "search changed paths (re: for a regex)"),
            ("escape", "clear the search"),
            ("a", "show/hide added"),
            ("r", "show/hide removed"),
            ("m", "show/hide modified"),
            ("v", "show/hide moved"),
            ("s", "sort by change / by name"),
            ("z", "minimum change size"),
            ("arrows, enter, space", "move, open folders"),
            ("q", "quit"),
            ("ctrl+c", "quit (130)"),
        ):
            lines.append(f"{keys:>22}  ", style="bold cyan")
            lines.append(f"{what}\n")
        lines.append("\nMarks: + added  - removed  ~ modified  > moved; sizes are NEW minus OLD.\n")
        self.push_screen(HelpScreen(lines))

    async def action_interrupt(self) -> None:
        """Ctrl-C: leave with status 130."""
        self.exit(return_code=130)

    def __init__(self, diff: Any) -> None:
        super().__init__()
        self.diff = diff

    def on_mount(self) -> None:
        self.push_screen(DiffScreen(self.diff))
