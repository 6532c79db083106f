"""Tests for slimscope.sanitize: escapes, markup safety and the lossless JSON name form."""

from __future__ import annotations

import base64
import io
import timeit

import pytest
from rich.console import Console
from rich.text import Text

from slimscope.sanitize import content, json_name, text, visible

MARKUP_LIKE = ["[@click=app.quit()]x", "[link=http://x]y", "a[/]b", "[b]bold[/b] :smile:"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb", "a\\nb"),
        ("a\tb\rc", "a\\tb\\rc"),
        ("\x00\x07\x7f", "\\x00\\x07\\x7f"),
        ("x\u009by", "x\\u009by"),
        ("\u0085", "\\u0085"),
        ("abc\u202edef", "abc\\u202edef"),
        (
            "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069",
            "\\u061c\\u200e\\u200f\\u202a\\u202b\\u202c\\u202d\\u2066\\u2067\\u2068\\u2069",
        ),
        ("a\u200bb\u200cc\u200dd\ufeffe", "a\\u200bb\\u200cc\\u200dd\\ufeffe"),
        ("l\u2028p\u2029", "l\\u2028p\\u2029"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("back\\slash", "back\\\\slash"),
        ("\\x1b", "\\\\x1b"),  # a literal backslash-x-1-b never looks like an escaped ESC
        ("plain/ascii path-1.0_~", "plain/ascii path-1.0_~"),
        ("café/ü/日本語", "café/ü/日本語"),
        ("caf\udce9", "caf\\xe9"),  # surrogateescape'd byte shows as that byte
        ("", ""),
    ],
)
def test_visible_str(raw: str, expected: str) -> None:
    assert visible(raw) == expected


@pytest.mark.parametrize("raw", MARKUP_LIKE)
def test_visible_leaves_markup_like_text_alone(raw: str) -> None:
    assert visible(raw) == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"caf\xe9", "caf\\xe9"),
        (b"caf\xc3\xa9", "café"),
        (b"\xff\xfe", "\\xff\\xfe"),
        (b"\xed\xa0\x80", "\\xed\\xa0\\x80"),  # an encoded surrogate is not valid UTF-8
        (b"\xc2\x9b", "\\u009b"),  # a valid C1 control differs from the raw byte \x9b
        (b"\x9b", "\\x9b"),
        (b"a\\b\n", "a\\\\b\\n"),
        (bytearray(b"x\x1b"), "x\\x1b"),
        (b"usr/bin/env", "usr/bin/env"),
    ],
)
def test_visible_bytes(raw: bytes, expected: str) -> None:
    assert visible(raw) == expected


def test_visible_non_string_input_is_stringified() -> None:
    assert visible(42) == "42"  # type: ignore[arg-type]
    assert visible(["a\nb"]) == "['a\\\\nb']"  # type: ignore[arg-type]


def test_visible_output_has_no_controls() -> None:
    every = "".join(chr(c) for c in range(0x2100)) + "\ufeff\U000e0001\udc80\ud800"
    out = visible(every)
    assert all(0x20 <= ord(ch) != 0x7F and not 0x80 <= ord(ch) <= 0x9F for ch in out)
    for invisible in "\u061c\u200b\u200e\u202e\u2028\u2029\u2066\ufeff\U000e0001\ud800":
        assert invisible not in out


def test_visible_is_unambiguous_for_distinct_inputs() -> None:
    inputs = ["\\x1b", "\x1b", "\\\\x1b", "\u009b", "\\u009b", "caf\udce9", "caf\\xe9"]
    outputs = [visible(v) for v in inputs]
    assert len(set(outputs)) == len(inputs)


def test_visible_fast_path_returns_same_object_and_is_fast() -> None:
    path = "usr/lib/python3.11/site-packages/pip/_internal/cli/main.py"
    assert visible(path) is path
    n = 20_000
    per_call = min(timeit.repeat(lambda: visible(path), number=n, repeat=5)) / n
    assert per_call < 5e-6  # about 0.1-0.2 us on a developer machine; generous for slow CI


def _render(renderable: Text) -> tuple[str, str]:
    """Render with a truecolor terminal console; return (exported text, raw terminal output)."""
    out = io.StringIO()
    console = Console(file=out, record=True, force_terminal=True, color_system="truecolor", width=200)
    console.print(renderable, end="")
    return console.export_text(styles=False), out.getvalue()


@pytest.mark.parametrize("raw", [*MARKUP_LIKE, "\x1b[31mred", "x\u202ey\n"])
def test_text_is_plain_and_renders_literally(raw: str) -> None:
    rendered = text(raw)
    assert isinstance(rendered, Text)
    assert rendered.plain == visible(raw)
    assert rendered.spans == []
    assert rendered.style == ""
    assert not rendered.get_style_at_offset(Console(), 0).link
    exported, terminal = _render(rendered)
    assert exported == visible(raw)
    assert terminal == visible(raw)
    assert "\x1b" not in terminal


def test_text_with_style_only_applies_that_style() -> None:
    rendered = text("[@click=app.quit()]x", style="bold")
    assert rendered.plain == "[@click=app.quit()]x"
    assert rendered.spans == []
    assert rendered.style == "bold"
    exported, terminal = _render(rendered)
    assert exported == "[@click=app.quit()]x"
    assert "\x1b[1m" in terminal
    assert "\x1b]8;" not in terminal  # no hyperlink


def test_text_of_bytes() -> None:
    assert text(b"caf\xe9").plain == "caf\\xe9"


@pytest.mark.parametrize("raw", MARKUP_LIKE)
def test_content_is_literal(raw: str) -> None:
    rendered = content(raw)
    assert rendered.plain == raw
    assert list(rendered.spans) == []


def test_content_escapes_controls() -> None:
    assert content("\x1b[2J\n").plain == "\\x1b[2J\\n"


def test_json_name_valid_utf8() -> None:
    assert json_name(b"usr/share/caf\xc3\xa9") == {"path": "usr/share/café"}
    assert json_name(b"a\nb") == {"path": "a\nb"}  # JSON escapes it; nothing is lost


def test_json_name_invalid_utf8_round_trips() -> None:
    raw = b"caf\xe9/\xff\x00x"
    entry = json_name(raw)
    assert entry == {"path": "caf\\xe9/\\xff\x00x", "path_b64": "Y2Fm6S//AHg="}
    assert base64.b64decode(entry["path_b64"]) == raw


def test_command_text_keeps_backslashes_and_still_escapes_controls() -> None:
    from slimscope.sanitize import visible

    assert visible("RUN apt-get update \\") == "RUN apt-get update \\\\"
    assert visible("RUN apt-get update \\", command=True) == "RUN apt-get update \\"
    assert visible("printf 'a\\n'\x1b[2J\u202e", command=True) == "printf 'a\\n'\\x1b[2J\\u202e"
    assert visible(b"x\\\xff", command=True) == "x\\\\xff"
