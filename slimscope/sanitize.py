r"""The one sanitizer for untrusted text.

Filenames, history lines, labels and environment values are written by whoever built the image. They
must never reach the terminal as control sequences, nor be read as Rich or Textual markup. Everything
that shows such text goes through `visible()` (or `text()` / `content()`, which wrap it without markup).

Escape style of `visible()`, like `ls -b` but fixed, and unambiguous because the backslash is escaped too:

- backslash -> ``\\``; newline, tab, carriage return -> ``\n`` ``\t`` ``\r``
- other C0 controls U+0000..U+001F and DEL U+007F -> ``\x1b`` style (two hex digits)
- C1 controls U+0080..U+009F -> ``\u009b`` style
- a byte that is not valid UTF-8 (bytes input) -> ``\xff`` style (always >= 0x80)
- format characters (category Cf: bidi controls, zero-width characters, BOM, soft hyphen, tags ...),
  line and paragraph separators (Zl, Zp) and surrogates -> ``\u202e`` style, ``\U000e0001`` beyond the BMP

Hex digits are lower case. ``\xNN`` below 0x80 is a control character and at or above 0x80 a raw byte, so
the two never collide. A `str` holding a lone surrogate U+DC80..U+DCFF (what `os.fsdecode` and
``errors="surrogateescape"`` make of an undecodable byte) is shown as that byte, ``\xNN``. Everything
else, including spaces, combining marks and private-use or unassigned code points, is left as is.

Text is escaped once, where it is shown, never where it is made: messages such as an image's
`problems` hold the raw names (undecodable bytes as those lone surrogates). The terminal gets
`visible()`; JSON gets `json_text()`, the raw text (which `json.dump` then writes with JSON's own
escapes, ``\u001b`` for ESC) with each undecodable byte as ``\xNN``, as in `json_name`'s ``path``.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text
    from textual.content import Content

__all__ = ["content", "json_name", "json_text", "text", "visible"]

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAMED = {0x5C: "\\\\", 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}
_CACHE_LIMIT = 1 << 16
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_code_point(cp: int) -> str | int:
    """Return the escape for one code point, or the code point itself when it may be shown as is."""
    named = _NAMED.get(cp)
    if named is not None:
        return named
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    if 0x80 <= cp <= 0x9F:
        return f"\\u{cp:04x}"
    if 0xDC80 <= cp <= 0xDCFF:  # surrogateescape'd byte
        return f"\\x{cp - 0xDC00:02x}"
    if unicodedata.category(chr(cp)) in _ESCAPED_CATEGORIES:
        return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"
    return cp


class _EscapeTable(dict[int, "str | int"]):
    """A `str.translate` table that works out (and caches, up to a limit) each code point on first use."""

    def __missing__(self, cp: int) -> str | int:
        result = _escape_code_point(cp)
        if len(self) < _CACHE_LIMIT:
            self[cp] = result
        return result


_TABLE = _EscapeTable()
_COMMAND_TABLE = _EscapeTable({0x5C: 0x5C})  # the same, but a backslash stays one backslash


def visible(value: str | bytes, *, command: bool = False) -> str:
    r"""Return `value` with every control and invisible formatting character shown as an escape.

    Bytes are decoded as UTF-8; each byte that is not part of valid UTF-8 is shown as ``\xNN``.
    Printable ASCII without a backslash comes back unchanged (and fast). See the module docstring.
    With `command` (shell commands, history lines, Dockerfile text: what a person copies and runs),
    a backslash is left as it is, so `RUN a \` and `printf 'x\n'` read as written; controls are still
    escaped, so the terminal stays safe (only the rare literal ``\x1b`` text becomes ambiguous).
    """
    if isinstance(value, str):
        # Fast path (~100 ns for a typical path): printable ASCII without a backslash is already safe.
        # For an ASCII string `isprintable()` is true exactly when every character is in U+0020..U+007E.
        if value.isascii() and value.isprintable() and (command or "\\" not in value):
            return value
        return value.translate(_COMMAND_TABLE if command else _TABLE)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return visible(bytes(value).decode("utf-8", "surrogateescape"), command=command)
    return visible(str(value), command=command)  # hostile JSON may put numbers or lists where strings belong


def text(value: str | bytes, style: str | None = None, *, command: bool = False) -> Text:
    """Return a Rich `Text` of `visible(value)`: plain text, never parsed as markup or emoji codes."""
    from rich.text import Text

    return Text(visible(value, command=command), style=style or "")


def content(value: str | bytes, *, command: bool = False) -> Content:
    """Return a Textual `Content` of `visible(value)`: plain, never markup.

    Textual is imported here, not at module level, so the analysis core can use this module without it.
    """
    from textual.content import Content

    return Content(visible(value, command=command))


def json_name(raw: bytes) -> dict[str, str]:
    r"""Return the JSON export form of a raw (tar) name, losslessly.

    Valid UTF-8: ``{"path": <decoded>}``. Otherwise ``{"path": <decoded with each bad byte as \xNN>,
    "path_b64": <standard base64 of the raw bytes>}``; consumers that need the exact name use
    ``path_b64`` whenever it is present.
    """
    raw = bytes(raw)
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "path": raw.decode("utf-8", "backslashreplace"),
            "path_b64": base64.b64encode(raw).decode("ascii"),
        }


def json_text(value: str) -> str:
    r"""Return raw text (a message, e.g. a problem) for a JSON string: as is, JSON escapes it.

    Lone surrogates cannot be written as UTF-8 (nor safely as ``\udcff`` JSON escapes): a
    surrogateescape'd byte U+DC80..U+DCFF becomes ``\xNN`` (as in `json_name`'s ``path``), any
    other surrogate ``\uNNNN``. Nothing else is changed: controls stay raw, for `json.dump` to escape.
    """
    if value.isascii():
        return value
    return _SURROGATE.sub(_surrogate_escape, value)


def _surrogate_escape(match: re.Match[str]) -> str:
    cp = ord(match.group())
    return f"\\x{cp - 0xDC00:02x}" if 0xDC80 <= cp <= 0xDCFF else f"\\u{cp:04x}"
