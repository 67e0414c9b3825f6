"""Make an untrusted string safe to put on a terminal cell by cell.

Strings that came from Azure or a queue may hold terminal control sequences (ANSI colours,
OSC 52 clipboard writes, OSC 8 hyperlinks), bidirectional overrides that reorder what the
operator reads, or simply newlines that would break a one-line cell. `sanitize` turns every
such character into a visible escape (``"\\x1b"`` becomes the four characters ``\\x1b``),
so the sequence is shown, not obeyed, and bounds the length.

It does not escape Rich/Textual markup: the widgets never parse untrusted text as markup
(they build `rich.text.Text` objects), so ``"[bold]"`` is already shown literally.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"

# C0 controls, DEL, C1 controls (0x80-0x9f: 0x9b is a one-byte CSI on some terminals),
# zero-width and bidi format characters (Trojan-Source style reordering), the Unicode line
# and paragraph separators, the BOM / zero-width no-break space, and lone surrogates
# (which cannot be encoded for the terminal at all).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)

# Familiar short forms for the controls an operator is most likely to recognise.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def sanitize(text: str, max_len: int = 200) -> str:
    """Return `text` with control characters shown as escapes, at most `max_len` characters.

    Control characters (C0, DEL, C1), zero-width and bidi format characters, line separators
    and lone surrogates become visible escapes: ``\\n``, ``\\t``, ``\\x1b``, ``\\u202e``.
    A result longer than `max_len` is cut and ends with "…". Markup is left as text: render
    the result with `rich.text.Text` (never as markup).

    Raises:
        TypeError: `text` is not a str.
        ValueError: `max_len` is less than 1.
    """
    if not isinstance(text, str):
        raise TypeError(f"sanitize expects a str, got {type(text).__name__}")
    if max_len < 1:
        raise ValueError(f"sanitize max_len must be at least 1, got {max_len}")
    # Escaping only lengthens a string, so looking past max_len + 1 input characters can
    # never change the result; this keeps a multi-megabyte payload cheap.
    escaped = _UNSAFE.sub(_escape, text[: max_len + 1])
    if len(escaped) <= max_len:
        return escaped
    return escaped[: max_len - 1] + ELLIPSIS
