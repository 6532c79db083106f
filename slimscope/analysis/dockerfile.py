"""A Dockerfile's stages and instructions, and which instruction made which history entry of an image.

`parse_dockerfile` reads a Dockerfile with the `dockerfile-parse` package and adds what that package
leaves out: stages (`FROM ... AS name`, global ARGs before the first FROM, `--build-arg` overrides),
instruction flags (`COPY --from=builder`), heredocs (`RUN <<EOF`), and one-line errors naming the file
and line.

`align` pairs the instructions of a target stage (and of the stages it is built FROM) with an image's
`config.history`, as the classic builder and BuildKit write it. What each builder writes, observed with
Docker 20.10 (see tests/engine/test_dockerfile_engine.py for a whole multi-stage build):

=============  ====================================================  =====================================
instruction    classic builder                                       BuildKit
=============  ====================================================  =====================================
FROM           nothing                                               nothing
RUN (shell)    ``/bin/sh -c cmd``, ``|1 A=b /bin/sh -c cmd``          ``RUN /bin/sh -c cmd # buildkit``
RUN (exec)     ``/bin/busybox --install -s /bin`` (no marker)         ``RUN /bin/busybox --install ...``
COPY / ADD     ``#(nop) COPY file:<sha> in /dest`` (also ``dir:``,    ``COPY src dest # buildkit``, flags
               ``multi:``; ``--chown=1:1file:...``)                   such as ``--from`` dropped
WORKDIR        ``#(nop) WORKDIR /abs/path`` (resolved)                ``WORKDIR /abs/path`` (always a layer)
ARG            ``#(nop)  ARG A=b``                                    ``ARG A=b``
ONBUILD        ``#(nop)  ONBUILD RUN x``                              nothing
others         ``#(nop)  ENV A=b`` ...                                ``ENV A=b`` ...
=============  ====================================================  =====================================

A SHELL instruction changes ``/bin/sh -c`` in later classic lines; ONBUILD triggers of the parent stage
run (and are recorded like ordinary instructions) before the first instruction of the child stage.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache

from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import WordSplitter

from slimscope.errors import SlimscopeError
from slimscope.image.history import BUILDKIT, CLASSIC, INSTRUCTIONS, UNKNOWN, HistoryEntry, parse_created_by

__all__ = [
    "Alignment",
    "Attribution",
    "Dockerfile",
    "Heredoc",
    "Instruction",
    "Stage",
    "align",
    "parse_dockerfile",
    "read_dockerfile",
    "stage_copies",
]

_COMMENT = "COMMENT"  # dockerfile-parse's keyword for comment lines
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_FLAG_KEYWORDS = frozenset({"RUN", "COPY", "ADD", "HEALTHCHECK"})
_EXEC_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "VOLUME", "COPY", "ADD"})
# `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`; not `<<<` (a here-string) and not `1 << 2`.
_HEREDOC = re.compile(r"(?<!<)<<(?P<dash>-?)(?P<quote>[\"']?)(?P<word>[A-Za-z_][A-Za-z0-9_]*)(?P=quote)")
_FLAG = re.compile(r"--(?P<name>[A-Za-z][A-Za-z0-9-]*)(?:=(?P<value>\S*))?(?:\s+|$)")
# ${NAME:-word}, ${NAME-word}, ${NAME:+word}, ${NAME+word}: the forms WordSplitter does not know.
_MODIFIER = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-+])(?P<word>[^}]*)\}")
_CLASSIC_COPY = re.compile(r"(?:file|dir|multi):[0-9a-f]{6,} in (?P<dest>.*)$", re.DOTALL)
_TOKEN = re.compile(r"[^\s\[\]\",]+")
_MAX_TEXT = 20_000  # characters of a text compared
_MAX_CELLS = 200_000  # alignment table size limit; older history entries beyond it count as base
_MAX_SHOWN = 60


# --- parsing -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heredoc:
    """One here-document of an instruction: `<<EOF` ... `EOF`."""

    name: str
    body: str  # the lines between the marker line and the terminator, with newlines


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction (not FROM, not a comment) inside a stage."""

    stage: int
    line: int  # 1-based first line
    end_line: int  # 1-based last line (the heredoc terminator, if any)
    keyword: str  # upper case: "RUN", "COPY" ...
    value: str  # the arguments as written, flags included, continuation lines joined
    flags: tuple[tuple[str, str], ...] = ()  # leading --name=value flags of RUN/COPY/ADD/HEALTHCHECK
    copy_from: int | str | None = None  # COPY --from: an earlier stage's index, or an image name
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def arguments(self) -> str:
        """The value without its leading flags."""
        return _split_flags(self.keyword, self.value)[1]

    def flag(self, name: str) -> str | None:
        """The value of the last `--name` flag ("" for a bare `--name`), or None."""
        found = [value for key, value in self.flags if key == name]
        return found[-1] if found else None

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array form (`["a", "b"]`) as a list, or None for the shell form."""
        return _exec_form(self.keyword, self.arguments)

    @property
    def src(self) -> list[str]:
        """COPY/ADD sources as written (a heredoc source is its `<<NAME` word); [] for others."""
        words = self._copy_words()
        return words[:-1] if len(words) > 1 else []

    @property
    def dest(self) -> str | None:
        """COPY/ADD destination, or None for other instructions."""
        words = self._copy_words()
        return words[-1] if len(words) > 1 else None

    def _copy_words(self) -> list[str]:
        if self.keyword not in ("COPY", "ADD"):
            return []
        exec_form = self.exec_form
        if exec_form is not None:
            return exec_form
        try:
            return list(WordSplitter(self.arguments).split())
        except Exception:  # WordSplitter on odd quoting; fall back to plain words
            return self.arguments.split()


@dataclass
class Stage:
    """One build stage: its FROM line and the instructions after it."""

    index: int
    name: str | None  # from `AS name`, as written
    base: str  # the FROM image after ARG substitution ("scratch", "python:3.12", or a stage name)
    base_stage: int | None  # index of the earlier stage that FROM names
    line: int  # the FROM line, 1-based
    instructions: list[Instruction] = field(default_factory=list)
    platform: str | None = None  # FROM --platform=..., as written

    @property
    def label(self) -> str:
        """The name, or `#index` for an unnamed stage."""
        return self.name if self.name is not None else f"#{self.index}"


@dataclass
class Dockerfile:
    """A parsed Dockerfile."""

    path: str  # the name errors and reports use
    stages: list[Stage]
    args: dict[str, str]  # global ARGs (before the first FROM) after --build-arg overrides

    def stage(self, ref: str | int | Stage | None = None) -> Stage:
        """The stage named or numbered `ref` (default: the last); SlimscopeError if there is none."""
        if isinstance(ref, Stage):
            return ref
        if ref is None:
            return self.stages[-1]
        if isinstance(ref, int) and not isinstance(ref, bool):
            if 0 <= ref < len(self.stages):
                return self.stages[ref]
        elif isinstance(ref, str):
            found = _stage_named(self.stages, ref)
            if found is not None:
                return self.stages[found]
            if ref.isdigit() and int(ref) < len(self.stages):
                return self.stages[int(ref)]
        names = ", ".join(stage.label for stage in self.stages)
        raise SlimscopeError(f"{self.path}: no build stage {_show(str(ref))} (stages: {names})")


def read_dockerfile(path: str, build_args: dict[str, str] | None = None) -> Dockerfile:
    """Read and parse the Dockerfile at `path`; SlimscopeError when it cannot be read or parsed."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(16 << 20)
    except OSError as exc:
        raise SlimscopeError(f"cannot read Dockerfile {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SlimscopeError(f"{path}:{line}: not a Dockerfile (not UTF-8 text)") from None
    return parse_dockerfile(text, build_args, path=path)


def parse_dockerfile(
    text: str, build_args: dict[str, str] | None = None, *, path: str = "Dockerfile"
) -> Dockerfile:
    """Parse Dockerfile text into stages; SlimscopeError (naming `path` and the line) when it is not one."""
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SlimscopeError(f"{path}:{line}: not a Dockerfile (binary data)")
    original = text.split("\n")
    if original and original[-1] == "":
        original.pop()
    structure, heredocs = _structure(original, path)

    build_args = dict(build_args or {})
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    last_line = max(len(original), 1)
    for item in structure:
        keyword = item["instruction"]
        if keyword == _COMMENT:
            continue
        line = item["startline"] + 1
        if keyword not in INSTRUCTIONS:
            raise SlimscopeError(f"{path}:{line}: unknown instruction {_show(item['content'].split()[0])}")
        value = item["value"].strip()
        if not value:
            raise SlimscopeError(f"{path}:{line}: {keyword} needs arguments")
        if keyword == "FROM":
            stages.append(_stage(value, len(stages), line, stages, global_args, path))
            continue
        if not stages:
            if keyword != "ARG":
                raise SlimscopeError(f"{path}:{line}: {keyword} before the first FROM")
            for name, default in _arg_pairs(value):
                if name in build_args:
                    global_args[name] = build_args[name]
                elif default is not None:
                    global_args[name] = _expand(default, global_args)
            continue
        docs = heredocs.get(item["startline"])
        end_line = min((docs[0] if docs else item["endline"]) + 1, last_line)
        flags, _ = _split_flags(keyword, value)
        stage = stages[-1]
        stage.instructions.append(
            Instruction(
                stage=stage.index,
                line=line,
                end_line=max(end_line, line),
                keyword=keyword,
                value=value,
                flags=flags,
                copy_from=_copy_from(keyword, flags, stages, global_args),
                heredocs=docs[1] if docs else (),
            )
        )
    if not stages:
        raise SlimscopeError(f"{path}:{last_line}: no FROM instruction")
    return Dockerfile(path=path, stages=stages, args=global_args)


def stage_copies(dockerfile: Dockerfile, stage: str | int | Stage | None = None) -> list[Instruction]:
    """The `COPY --from` instructions of a stage (default: the last); see `Instruction.src`/`dest`."""
    found = dockerfile.stage(stage)
    return [ins for ins in found.instructions if ins.keyword == "COPY" and ins.copy_from is not None]


def _show(text: str) -> str:
    """A short quoted form of user text for an error line."""
    text = text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
    return repr(text)


def _run_parser(lines: list[str]) -> list[dict]:
    """dockerfile-parse's `structure` of these lines (0-based line numbers)."""
    data = "".join(line + "\n" for line in lines) + "\n"  # a final blank line ends a trailing `\`
    return DockerfileParser(fileobj=io.BytesIO(data.encode("utf-8")), env_replace=False).structure


# instruction start line (0-based) -> (its last line, its heredocs)
_Heredocs = dict[int, tuple[int, tuple[Heredoc, ...]]]


def _structure(original: list[str], path: str) -> tuple[list[dict], _Heredocs]:
    """Parse, taking heredoc bodies out (they are not instructions) one heredoc instruction at a time.

    Blank lines become `#` lines first: Docker skips empty lines inside a continuation, and so does
    dockerfile-parse with comments, while it would end the instruction at an empty line.
    """
    work = ["#" if not line.strip() else line for line in original]
    heredocs: _Heredocs = {}
    while True:
        structure = _run_parser(work)
        found = False
        for item in structure:
            start = item["startline"]
            if item["instruction"] not in _HEREDOC_KEYWORDS or start in heredocs:
                continue
            markers = list(_HEREDOC.finditer(item["value"] or ""))
            if not markers:
                continue
            position = item["endline"] + 1
            docs = []
            for marker in markers:
                strip_tabs, name = marker["dash"] == "-", marker["word"]
                body: list[str] = []
                while True:
                    if position >= len(original):
                        raise SlimscopeError(
                            f"{path}:{start + 1}: unterminated heredoc <<{name} (no line {name!r} follows)"
                        )
                    text = original[position].rstrip("\r")
                    text = text.lstrip("\t") if strip_tabs else text
                    position += 1
                    if text == name:
                        break
                    body.append(text + "\n")
                docs.append(Heredoc(name=name, body="".join(body)))
            for index in range(item["endline"] + 1, position):
                work[index] = "#"
            heredocs[start] = (position - 1, tuple(docs))
            found = True
            break
        if not found:
            return structure, heredocs


def _split_flags(keyword: str, value: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """Leading `--name[=value]` flags of instructions that take them, and the rest of the value."""
    if keyword not in _FLAG_KEYWORDS:
        return (), value.strip()
    rest = value.lstrip()
    flags = []
    while True:
        match = _FLAG.match(rest)
        if match is None:
            break
        flags.append((match["name"], match["value"] or ""))
        rest = rest[match.end() :]
    return tuple(flags), rest.strip()


def _exec_form(keyword: str, arguments: str) -> list[str] | None:
    """`["a", "b"]` as a list of strings, or None."""
    if keyword not in _EXEC_KEYWORDS or not arguments.startswith("["):
        return None
    try:
        words = json.loads(arguments)
    except ValueError:
        return None
    if isinstance(words, list) and all(isinstance(word, str) for word in words):
        return words
    return None


def _expand(text: str, args: dict[str, str]) -> str:
    """Substitute ARGs (`$A`, `${A}`, `${A:-default}`, `${A:+alt}`) and remove quotes, as FROM does."""

    def modifier(match: re.Match[str]) -> str:
        name, op, word = match["name"], match["op"], match["word"]
        value = args.get(name)
        is_set = value is not None and (value != "" or not op.startswith(":"))
        if op.endswith("-"):
            return value if is_set and value is not None else word
        return word if is_set else ""

    text = _MODIFIER.sub(modifier, text)
    try:
        return WordSplitter(text, args=args).dequote()
    except Exception:  # odd quoting: keep the text as written
        return text


def _arg_pairs(value: str) -> list[tuple[str, str | None]]:
    """`ARG A=1 B` as [("A", "1"), ("B", None)]."""
    try:
        words = list(WordSplitter(value).split(dequote=False))
    except Exception:
        words = value.split()
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        name, equals, default = word.partition("=")
        if name:
            pairs.append((name, default if equals else None))
    return pairs


def _stage_named(stages: list[Stage], name: str) -> int | None:
    """Index of the stage called `name` (case-insensitive, as Docker does), or None."""
    wanted = name.lower()
    for stage in stages:
        if stage.name is not None and stage.name.lower() == wanted:
            return stage.index
    return None


def _stage(value: str, index: int, line: int, stages: list[Stage], args: dict[str, str], path: str) -> Stage:
    """A new stage from a FROM line: `FROM [--platform=p] image [AS name]`."""
    words = value.split()
    platform = None
    while words and words[0].startswith("--"):
        name, _, flag_value = words.pop(0)[2:].partition("=")
        if name == "platform":
            platform = flag_value
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise SlimscopeError(f"{path}:{line}: FROM {_show(value)}: expected 'FROM image [AS name]'")
    base = _expand(words[0], args)
    if not base:
        raise SlimscopeError(f"{path}:{line}: FROM {_show(words[0])} is empty after ARG substitution")
    name = words[2] if len(words) == 3 else None
    return Stage(
        index=index,
        name=name,
        base=base,
        base_stage=_stage_named(stages, base),
        line=line,
        platform=platform,
    )


def _copy_from(
    keyword: str, flags: tuple[tuple[str, str], ...], stages: list[Stage], args: dict[str, str]
) -> int | str | None:
    """COPY --from=X: the index of an earlier stage named (or numbered) X, else X as an image name."""
    if keyword != "COPY":
        return None
    values = [value for key, value in flags if key == "from"]
    if not values:
        return None
    ref = _expand(values[-1], args)
    named = _stage_named(stages, ref)
    if named is not None:
        return named
    if ref.isdigit() and int(ref) < len(stages):
        return int(ref)
    return ref


# --- alignment ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where one history entry (or layer) came from."""

    stage: int  # the stage that was being built
    stage_name: str | None
    instruction: Instruction | None  # None: an entry of the base image of `stage`'s FROM line
    base: bool  # True for the base image's own entries
    line: int  # the Dockerfile line: the instruction's, or the FROM line for base entries
    trigger: bool = False  # an ONBUILD trigger of the parent stage (`instruction` is the ONBUILD line)
    score: float = 0.0  # how well the instruction matched the entry, 0..1 (0 for base entries)


@dataclass
class Alignment:
    """Which instruction made each history entry and each layer of an image."""

    target: int  # the stage index aligned
    builder: str  # "classic", "buildkit" or "unknown": the format of the newest recognised entries
    history: list[Attribution | None]  # per history index; None when nothing matched
    layers: dict[int, Attribution | None]  # per layer index (HistoryEntry.layer_index)
    unmatched: list[Instruction]  # instructions expected in the history that no entry matched

    def for_layer(self, index: int) -> Attribution | None:
        """The attribution of layer `index`, or None."""
        return self.layers.get(index)


@dataclass(slots=True)
class _Item:
    """One instruction expected to appear in the history."""

    stage: Stage  # the stage being built when it ran
    instruction: Instruction  # for a trigger: the ONBUILD instruction
    keyword: str
    text: str  # arguments used for matching
    exec_words: list[str] | None
    extra: tuple[str, ...]  # more texts that may match (resolved WORKDIR, heredoc bodies)
    skip_cost: float
    trigger: bool = False


_MATCH_BASE = 0.5  # a keyword match alone is worth this much; similar arguments add up to 0.5 more
_SKIP_ENTRY = 0.6  # an entry inside the stage's part of the history that no instruction explains
_SKIP_ITEM = 0.3  # an instruction that should have made an entry but matched none
_OPTIONAL = {CLASSIC: {"ARG"}, BUILDKIT: {"ARG", "ONBUILD"}, UNKNOWN: {"ARG", "ONBUILD"}}


def align(dockerfile: Dockerfile, history: list[HistoryEntry], target: str | int | None = None) -> Alignment:
    """Attribute each history entry (and layer) to the target stage's instructions; never raises on data.

    The instructions of the target stage, after those of the stages it is built FROM (recursively) and
    the ONBUILD triggers of each parent stage, are aligned with the history by dynamic programming from
    the newest entry backwards: entries older than the first matched instruction are the base image's
    (when the first stage is FROM an image, not `scratch`; ONBUILD triggers of such an image land there
    too). Entries no instruction explains stay None. Only an unknown `target` raises (SlimscopeError).
    """
    stage = dockerfile.stage(target)
    entries = list(history or [])
    builder = _builder(entries)
    chain = _chain(dockerfile, stage)
    items = _items(dockerfile, chain, builder)

    # Very long histories: only the newest entries take part, the rest count as base.
    first = max(0, len(entries) - _MAX_CELLS // max(len(items), 1))
    pairs = _best_alignment(items, entries[first:])
    attributions: list[Attribution | None] = [None] * len(entries)
    matched_items: set[int] = set()
    region_start = len(entries)
    for item_index, entry_index, gain in pairs:
        item = items[item_index]
        matched_items.add(item_index)
        region_start = min(region_start, first + entry_index)
        attributions[first + entry_index] = Attribution(
            stage=item.stage.index,
            stage_name=item.stage.name,
            instruction=item.instruction,
            base=False,
            line=item.instruction.line,
            trigger=item.trigger,
            score=round((gain - _MATCH_BASE) / (1 - _MATCH_BASE), 3),
        )
    root = chain[0]
    if root.base.lower() != "scratch":
        for index in range(region_start):
            if attributions[index] is None:
                attributions[index] = Attribution(
                    stage=root.index, stage_name=root.name, instruction=None, base=True, line=root.line
                )
    layers: dict[int, Attribution | None] = {}
    for index, entry in enumerate(entries):
        layer = getattr(entry, "layer_index", None)
        if isinstance(layer, int):
            layers[layer] = attributions[index]
    unmatched = [
        items[i].instruction for i in range(len(items)) if i not in matched_items and items[i].skip_cost > 0
    ]
    return Alignment(
        target=stage.index, builder=builder, history=attributions, layers=layers, unmatched=unmatched
    )


def _builder(entries: list[HistoryEntry]) -> str:
    """The builder format of the newest entry that has a recognisable one."""
    for entry in reversed(entries):
        builder = getattr(entry, "builder", UNKNOWN)
        if builder in (CLASSIC, BUILDKIT):
            return builder
    return UNKNOWN


def _chain(dockerfile: Dockerfile, stage: Stage) -> list[Stage]:
    """The stage and the stages it is built FROM, oldest first."""
    chain = [stage]
    while chain[-1].base_stage is not None and chain[-1].base_stage < chain[-1].index:
        chain.append(dockerfile.stages[chain[-1].base_stage])
    return chain[::-1]


def _items(dockerfile: Dockerfile, chain: list[Stage], builder: str) -> list[_Item]:
    """The instructions of a stage chain that may appear in the history, oldest first."""
    optional = _OPTIONAL.get(builder, _OPTIONAL[UNKNOWN])
    items: list[_Item] = []
    workdir, shell = "/", ["/bin/sh", "-c"]

    def add(stage: Stage, instruction: Instruction, keyword: str, value: str, trigger: bool) -> None:
        nonlocal workdir, shell
        item = _item(stage, instruction, keyword, value, workdir, shell, optional)
        item.trigger = trigger
        items.append(item)
        if keyword == "WORKDIR" and item.extra:
            workdir = item.extra[0]
        elif keyword == "SHELL" and item.exec_words:
            shell = item.exec_words

    for stage in chain:
        if stage.base_stage is not None:
            for onbuild in dockerfile.stages[stage.base_stage].instructions:
                keyword, _, rest = onbuild.arguments.partition(" ")
                if onbuild.keyword == "ONBUILD" and keyword.upper() in INSTRUCTIONS:
                    add(stage, onbuild, keyword.upper(), rest.strip(), True)
        for instruction in stage.instructions:
            add(stage, instruction, instruction.keyword, instruction.value, False)
    return items


def _item(
    stage: Stage,
    instruction: Instruction,
    keyword: str,
    value: str,
    workdir: str,
    shell: list[str],
    optional: set[str],
) -> _Item:
    """One expected entry, given the working directory and the SHELL before it."""
    _, text = _split_flags(keyword, value)
    exec_words = _exec_form(keyword, text)
    extra: list[str] = []
    if keyword == "RUN" and instruction.heredocs:
        # BuildKit records `cmd <<EOF\nbody\nEOF`; the bodies alone may match too.
        extra.append(text + "\n" + "".join(doc.body + doc.name + "\n" for doc in instruction.heredocs))
        extra.extend(doc.body for doc in instruction.heredocs)
    elif keyword == "WORKDIR" and "$" not in text:
        extra.append(posixpath.normpath(posixpath.join(workdir, text.strip("\"'"))))
    elif keyword in ("CMD", "ENTRYPOINT") and exec_words is None:
        extra.append(" ".join([*shell, text]))  # recorded as ["/bin/sh" "-c" "text"]
    return _Item(
        stage=stage,
        instruction=instruction,
        keyword=keyword,
        text=text,
        exec_words=exec_words,
        extra=tuple(extra),
        skip_cost=0.0 if keyword in optional else _SKIP_ITEM,
    )


def _best_alignment(items: list[_Item], entries: list[HistoryEntry]) -> list[tuple[int, int, float]]:
    """(item, entry, gain) triples of the best order-keeping alignment; leading entries are free."""
    n, m = len(items), len(entries)
    if n == 0 or m == 0:
        return []
    by_instruction: dict[str, list[int]] = {}
    for j, entry in enumerate(entries):
        by_instruction.setdefault(getattr(entry, "instruction", ""), []).append(j)
    scores: dict[tuple[int, int], float] = {}
    for i, item in enumerate(items):
        candidates = by_instruction.get(item.keyword, [])
        if item.keyword == "RUN" and item.exec_words is not None:
            candidates = sorted(candidates + by_instruction.get("", []))
        for j in candidates:
            similarity = _score(item, entries[j])
            if similarity > 0:
                scores[i, j] = _MATCH_BASE + (1 - _MATCH_BASE) * similarity
    table = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        table[i][0] = table[i - 1][0] - items[i - 1].skip_cost
    for i in range(1, n + 1):
        row, above, skip = table[i], table[i - 1], items[i - 1].skip_cost
        for j in range(1, m + 1):
            best = max(above[j] - skip, row[j - 1] - _SKIP_ENTRY)
            gain = scores.get((i - 1, j - 1))
            if gain is not None and above[j - 1] + gain > best:
                best = above[j - 1] + gain
            row[j] = best
    pairs = []
    i, j = n, m
    eps = 1e-9
    while i > 0 and j > 0:
        gain = scores.get((i - 1, j - 1))
        if gain is not None and abs(table[i][j] - (table[i - 1][j - 1] + gain)) < eps:
            pairs.append((i - 1, j - 1, gain))
            i, j = i - 1, j - 1
        elif abs(table[i][j] - (table[i - 1][j] - items[i - 1].skip_cost)) < eps:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def _score(item: _Item, entry: HistoryEntry) -> float:
    """How well `entry` fits `item`: 0 when it cannot have made it, else a similarity in (0, 1]."""
    instruction = getattr(entry, "instruction", "")
    arguments = getattr(entry, "arguments", "") or ""
    if instruction == "" and item.keyword == "RUN" and item.exec_words is not None:
        # The classic builder writes an exec-form RUN as its bare words, without a marker.
        similarity = _token_ratio(" ".join(item.exec_words), arguments)
        return similarity if similarity >= 0.6 else 0.0
    if instruction != item.keyword:
        return 0.0
    keyword = item.keyword
    if keyword == "RUN":
        similarity = _run_similarity(item, arguments)
    elif keyword in ("COPY", "ADD"):
        similarity = _copy_similarity(item, arguments)
    elif keyword in ("ENV", "LABEL", "ARG"):
        similarity = _keys_similarity(item, arguments)
    elif keyword == "EXPOSE":
        similarity = _jaccard(_ports(item.text), _ports(arguments))
    elif keyword == "WORKDIR":
        similarity = max(
            1.0 if _squash(text) == _squash(arguments) else 0.5 * _token_ratio(text, arguments)
            for text in (item.text, *item.extra)
        )
    else:
        similarity = max(
            1.0 if _squash(text) == _squash(arguments) else _token_ratio(text, arguments)
            for text in (item.text, *item.extra)
        )
    return max(similarity, 1e-3)


def _run_similarity(item: _Item, arguments: str) -> float:
    """RUN: the command as written against the recorded one (wrapper, build args and flags removed)."""
    if arguments.startswith("--"):  # newer BuildKit may keep RUN flags: `RUN --mount=... /bin/sh -c x`
        _, rest = _split_flags("RUN", arguments)
        arguments = parse_created_by(f"RUN {rest}")[1]
    candidates = [" ".join(item.exec_words) if item.exec_words is not None else item.text, *item.extra]
    best = 0.0
    for candidate in candidates:
        if _squash(candidate) == _squash(arguments):
            return 1.0
        best = max(best, _token_ratio(candidate, arguments))
    return best


def _copy_similarity(item: _Item, arguments: str) -> float:
    """COPY/ADD: the destination for the classic `file:<sha> in /dest`, else sources and destination."""
    words = item.exec_words if item.exec_words is not None else item.text.split()
    dest = words[-1] if words else ""
    classic = _CLASSIC_COPY.search(arguments)
    if classic is not None:
        recorded = classic["dest"].strip()
        if recorded == dest or (recorded.rstrip("/") or "/") == (dest.rstrip("/") or "/"):
            return 1.0
        return 0.5 * _token_ratio(dest, recorded)
    _, arguments = _split_flags("COPY", arguments)
    if _squash(" ".join(words)) == _squash(arguments):
        return 1.0
    return _token_ratio(" ".join(words), arguments)


def _keys_similarity(item: _Item, arguments: str) -> float:
    """ENV/LABEL/ARG: the names set, then the values."""
    words = item.text.split()
    if item.keyword == "ARG" or (words and "=" in words[0]):
        mine = {name for name, _ in _arg_pairs(item.text)}
    else:
        mine = set(words[:1])  # legacy `ENV NAME value`
    recorded = {word.partition("=")[0] for word in arguments.split() if "=" in word or item.keyword == "ARG"}
    text = _dequoted(item.text)
    if not mine or not recorded:
        return _token_ratio(text, arguments)
    return _jaccard(mine, recorded) * (0.8 + 0.2 * _token_ratio(text, arguments))


def _dequoted(text: str) -> str:
    """The words of `text` with shell quotes removed: `a="b c"` -> `a=b c`."""
    try:
        return " ".join(WordSplitter(text).split())
    except Exception:  # odd quoting
        return text


def _ports(text: str) -> set[str]:
    """EXPOSE ports with the default protocol made explicit: `8080` -> `8080/tcp`."""
    return {port.lower() if "/" in port else f"{port}/tcp" for port in text.split()}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@lru_cache(maxsize=4096)
def _squash(text: str) -> str:
    return " ".join(text.split())


@lru_cache(maxsize=4096)
def _tokens(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text, 0, _MAX_TEXT))


def _token_ratio(a: str, b: str) -> float:
    """Dice similarity of the words of two texts (brackets, quotes and commas ignored)."""
    left, right = _tokens(a), _tokens(b)
    if not left and not right:
        return 1.0
    return 2 * len(left & right) / (len(left) + len(right))
