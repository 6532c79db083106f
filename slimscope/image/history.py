"""Docker image history: which build step made which layer.

`config.history` lists every build step, including the ones that made no layer (`empty_layer: true`);
`parse_created_by` turns a step's `created_by` line into (instruction, arguments, builder) and
`map_history` pairs the steps with the layers. The config comes from whoever built the image, so both
take any input without raising; nothing here sanitizes for display (that is `slimscope.sanitize`).

The `created_by` forms understood, by `builder` value (which names the *format* of the line):

``"classic"``: the legacy Docker builder, and buildah/podman, which imitate it. Metadata steps are
    ``<shell> #(nop)  CMD ["sh"]`` (two spaces from Docker, one from older Docker and buildah), copies
    ``<shell> #(nop) ADD file:3b8a... in / ``; RUN steps are ``<shell> apt-get update`` or, with build
    args, ``|2 A=1 B=2 <shell> make``. ``<shell>`` is ``/bin/sh -c`` unless SHELL changed it, e.g.
    ``/bin/bash -o pipefail -c``, or ``cmd /S /C`` / ``powershell -Command`` on Windows.
``"buildkit"``: Dockerfile-instruction syntax: ``RUN /bin/sh -c apt-get update # buildkit``,
    ``COPY . /app # buildkit``, ``ENV A=b``, ``CMD ["python" "app.py"]`` (Go's %q of a list, without
    commas), ``EXPOSE map[8080/tcp:{}]`` or ``EXPOSE [8080/tcp]`` ... BuildKit appends `` # buildkit`` only
    to steps that ran (RUN, COPY, ADD); exec-form RUN is written as its words joined by spaces,
    ``RUN /bin/busybox --install -s /bin # buildkit``. kaniko writes the Dockerfile line as it was
    written (``RUN apt-get update``, ``RUN ["a","b"]``), which lands here too.
``"unknown"``: anything else (``docker import`` leaves it empty; rootfs scripts, ko, jib, bazel and
    ``docker commit`` write free text): instruction ``""`` and the whole line, stripped, as arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["HistoryEntry", "map_history", "parse_created_by"]

BUILDKIT = "buildkit"
CLASSIC = "classic"
UNKNOWN = "unknown"

# Dockerfile instructions; only upper-case spellings are taken as instructions.
INSTRUCTIONS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
        "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip

_BUILDKIT_SUFFIX = "# buildkit"
_MAX_FIELD_PROBLEMS = 20

# The shell wrapper that RUN steps (and classic metadata steps) start with. The option loops are lazy, so
# that `/bin/sh -c make -c x` stops at the first `-c`, and bounded, so hostile lines cannot make the
# match slow (it is tried at every word of a build-args block).
_SHELL = re.compile(
    r"""
    (?P<shell>
        (?:\S*/)?(?:ba|da|z|k|mk|a)?sh          # sh, /bin/sh, /bin/bash, /usr/bin/zsh ...
        (?:\s+-[A-Za-z]+(?:\s+(?!-)\w+)??){0,6}?  # options: -e, -eux, -o pipefail
        \s+-[A-Za-z]*c(?=\s|$)                  # -c, or combined like -ec
      | cmd(?:\.exe)?\s+/[Ss]\s+/[Cc](?=\s|$)   # Windows default
      | (?P<ps>(?:powershell|pwsh)(?:\.exe)?
        (?:\s+-(?!Command\b)\w+(?:\s+(?!-)\S+)??){0,6}?
        \s+-[Cc]ommand)(?=\s|$)
    )
    \s*
    """,
    re.VERBOSE | re.DOTALL,
)
_BUILD_ARGS = re.compile(r"\|(?P<count>\d{1,6})(?:\s+|$)")
_KEYWORD = re.compile(r"(?P<word>[A-Z]+)(?:\s+(?P<rest>.*))?", re.DOTALL)
_NOP = "#(nop)"
_EXPOSE_MAP = re.compile(r"map\[(?P<inner>.*)\]", re.DOTALL)
_EXPOSE_LIST = re.compile(r"\[(?P<inner>.*)\]", re.DOTALL)


@dataclass(slots=True)
class HistoryEntry:
    """One step of `config.history`, with its `created_by` parsed."""

    created_by: str
    created: str | None
    author: str | None
    comment: str | None
    empty_layer: bool
    layer_index: int | None  # the layer this step made; None for empty steps or when layers ran out
    instruction: str  # "RUN", "COPY", ... or "" when unknown
    arguments: str
    builder: str  # "buildkit", "classic" or "unknown"


def _strip_shell(command: str) -> str:
    """Remove a leading shell wrapper (`/bin/sh -c`, `cmd /S /C` ...) if there is one."""
    match = _SHELL.match(command)
    return command[match.end() :] if match else command


def _strip_build_args(command: str) -> tuple[str, bool]:
    """Remove a leading `|N K=V ...` build-args block; return the rest and whether there was one.

    The block is N `K=V` words. Values are not quoted, so when the words after them are not a shell
    wrapper but one comes later, a value held spaces and the block ends at that wrapper; with no wrapper
    anywhere (exec form) it is the N words.
    """
    match = _BUILD_ARGS.match(command)
    if match is None:
        return command, False
    rest = command[match.end() :]
    count = int(match["count"])
    words = rest.split(None, count)
    after = words[count] if len(words) > count else ""
    if after == "" or _SHELL.match(after):
        return after, True
    for word in re.finditer(r"(?<!\S)\S", rest):
        if _SHELL.match(rest, word.start()):
            return rest[word.start() :], True
    return after, True


def _run_arguments(command: str) -> str:
    """Arguments of a RUN step: the command without build args and shell wrapper."""
    command, _ = _strip_build_args(command.strip())
    return _strip_shell(command).strip()


def _expose_arguments(arguments: str) -> str:
    """Turn Go's `map[80/tcp:{} 443/tcp:{}]` or `[80/tcp 443/tcp]` into `80/tcp 443/tcp`."""
    match = _EXPOSE_MAP.fullmatch(arguments)
    if match is not None:
        return " ".join(port.removesuffix(":{}") for port in match["inner"].split())
    match = _EXPOSE_LIST.fullmatch(arguments)
    if match is not None and '"' not in arguments:
        return " ".join(match["inner"].split())
    return arguments


def _instruction(body: str) -> tuple[str, str] | None:
    """Split `KEYWORD args` when KEYWORD is a Dockerfile instruction; RUN/EXPOSE arguments normalized."""
    match = _KEYWORD.fullmatch(body)
    if match is None or match["word"] not in INSTRUCTIONS:
        return None
    word, rest = match["word"], (match["rest"] or "").strip()
    if word == "RUN":
        rest = _run_arguments(rest)
    elif word == "EXPOSE":
        rest = _expose_arguments(rest)
    return word, rest


def _classic_nop(body: str) -> str | None:
    """Return what follows `#(nop)` when `body` is `<shell> #(nop) ...`, else None."""
    at = body.find(_NOP)
    if at < 0:
        return None
    prefix = body[:at]
    match = _SHELL.match(prefix)
    # Only a bare shell may precede #(nop), so a RUN that merely mentions it stays a RUN. A PowerShell
    # SHELL often carries a preamble (`powershell -Command $ErrorActionPreference = 'Stop'; #(nop) ...`).
    if match is None or (match.end() != len(prefix) and match["ps"] is None):
        return None
    return body[at + len(_NOP) :].strip()


def parse_created_by(created_by: str) -> tuple[str, str, str]:
    """Return (instruction, arguments, builder) for one history `created_by` line.

    `arguments` are the instruction's arguments with the shell wrapper (`/bin/sh -c`, `cmd /S /C`, a
    SHELL-set one), the ``#(nop)`` marker and the `` # buildkit`` suffix removed, and stripped. For RUN,
    the build-args block (`|2 A=1 B=2`) that the builders record is dropped: those values are in the
    image config already and are not part of the command. EXPOSE ports written as a Go map or list are
    listed plainly (`8080/tcp 443/tcp`). Other arguments are kept as written, e.g. `["python" "app.py"]`.
    Unrecognised lines give ``("", line.strip(), "unknown")``. Never raises.
    """
    if not isinstance(created_by, str):
        return "", "", UNKNOWN
    raw = created_by.strip()
    if not raw:
        return "", "", UNKNOWN

    body = raw
    if body.endswith(_BUILDKIT_SUFFIX):
        before = body[: -len(_BUILDKIT_SUFFIX)]
        if before == "" or before[-1].isspace():
            body = before.rstrip()

    parsed = _instruction(body)
    if parsed is not None:
        return parsed[0], parsed[1], BUILDKIT

    after_nop = _classic_nop(body)
    if after_nop is not None:
        parsed = _instruction(after_nop)
        if parsed is not None:
            return parsed[0], parsed[1], CLASSIC
        return "", after_nop, CLASSIC

    command, had_build_args = _strip_build_args(body)
    shell = _SHELL.match(command)
    if had_build_args or shell is not None:
        return "RUN", (command[shell.end() :] if shell else command).strip(), CLASSIC
    return "", raw, UNKNOWN


def _optional_str(item: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    """`item[key]` when it is a string; None when missing or null; None plus a problem otherwise."""
    value = item.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(f"{where}.{key} is not a string")
    return None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def map_history(
    history: list[dict], layer_count: int
) -> tuple[list[HistoryEntry], list[int | None], list[str]]:
    """Pair `config.history` with the image's layers.

    Walks the history in order; each entry whose `empty_layer` is not `true` takes the next layer index
    (an entry that is not even an object counts as one that made a layer). Returns every entry in order;
    for each layer index, the index of the history entry that made it (None when the history ran out);
    and a list of problems found (counts that disagree, fields of the wrong type). Never raises.
    """
    problems: list[str] = []
    field_problems: list[str] = []
    if isinstance(layer_count, bool) or not isinstance(layer_count, int) or layer_count < 0:
        problems.append(f"layer count {layer_count!r} is not a non-negative integer; using 0")
        layer_count = 0
    if history is None:
        items: list[Any] = []
    elif isinstance(history, list):
        items = history
    else:
        problems.append(f"history is a {type(history).__name__}, not a list; ignoring it")
        items = []

    entries: list[HistoryEntry] = []
    layer_to_history: list[int | None] = [None] * layer_count
    made_layers = 0
    for position, item in enumerate(items):
        where = f"history[{position}]"
        if not isinstance(item, dict):
            field_problems.append(f"{where} is a {type(item).__name__}, not an object")
            item = {}
        empty_value = item.get("empty_layer", False)
        if not isinstance(empty_value, bool):
            field_problems.append(f"{where}.empty_layer is not a boolean")
        empty = empty_value is True
        created_by = item.get("created_by")
        if created_by is not None and not isinstance(created_by, str):
            field_problems.append(f"{where}.created_by is not a string")
            created_by = None
        created_by = created_by or ""
        layer_index: int | None = None
        if not empty:
            if made_layers < layer_count:
                layer_index = made_layers
                layer_to_history[made_layers] = position
            made_layers += 1
        instruction, arguments, builder = parse_created_by(created_by)
        entries.append(
            HistoryEntry(
                created_by=created_by,
                created=_optional_str(item, "created", where, field_problems),
                author=_optional_str(item, "author", where, field_problems),
                comment=_optional_str(item, "comment", where, field_problems),
                empty_layer=empty,
                layer_index=layer_index,
                instruction=instruction,
                arguments=arguments,
                builder=builder,
            )
        )

    if made_layers != layer_count:
        problems.append(f"history describes {_plural(made_layers, 'layer')} but the image has {layer_count}")
    problems.extend(field_problems[:_MAX_FIELD_PROBLEMS])
    if len(field_problems) > _MAX_FIELD_PROBLEMS:
        problems.append(f"... and {len(field_problems) - _MAX_FIELD_PROBLEMS} more history problems")
    return entries, layer_to_history, problems
