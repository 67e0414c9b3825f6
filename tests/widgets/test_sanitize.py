"""sanitize: untrusted text is shown, never obeyed, and bounded."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text

from widgets.sanitize import ELLIPSIS, sanitize

# Anything a terminal could act on: C0, DEL, C1, bidi/zero-width format chars, separators.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),
        ("\x1b]8;;https://e.vil\x1b\\click\x1b]8;;\x1b\\",
         "\\x1b]8;;https://e.vil\\x1b\\click\\x1b]8;;\\x1b\\"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),
        ("abc\u202edef", "abc\\u202edef"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ],
    ids=["ansi-sgr", "osc52-clipboard", "osc8-hyperlink", "newline-cr-tab", "nul-del-c1-csi",
         "bidi-override", "zero-width"],
)
def test_control_sequences_become_visible_escapes(raw: str, shown: str) -> None:
    assert sanitize(raw, 500) == shown


@pytest.mark.parametrize(
    "markup", ["[bold red]x[/]", "[link=https://e.vil]a[/link]", "[@click=app.quit]q[/]"]
)
def test_markup_is_kept_as_text_and_renders_literally(markup: str) -> None:
    cleaned = sanitize(markup, 100)
    assert cleaned == markup
    # Drawn the way every widget draws it, the brackets are on screen and no style applies.
    text = Text(cleaned)
    assert text.plain == markup
    assert text.spans == []


def test_printable_unicode_is_left_alone() -> None:
    assert sanitize("Zürich — 東京 ✓", 50) == "Zürich — 東京 ✓"


def test_long_strings_are_cut_to_max_len_with_an_ellipsis() -> None:
    result = sanitize("x" * 10_000_000, 40)
    assert len(result) == 40
    assert result.endswith(ELLIPSIS)
    assert sanitize("x" * 40, 40) == "x" * 40


def test_escapes_count_towards_the_length_limit() -> None:
    result = sanitize("\x1b" * 100, 10)
    assert len(result) == 10
    assert "\x1b" not in result


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="max_len"):
        sanitize("x", 0)
    with pytest.raises(TypeError, match="str"):
        sanitize(b"x", 10)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=1, max_value=300))
def test_output_never_holds_a_control_character_and_respects_max_len(
    raw: str, max_len: int
) -> None:
    result = sanitize(raw, max_len)
    assert len(result) <= max_len
    assert not UNSAFE.search(result)
    assert not re.search("[\ud800-\udfff]", result)
