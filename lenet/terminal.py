"""Text from outside (other processes' names, file names, fields of saved runs) made safe to print.

A process may name itself ``"\\nALL GOOD\\x1b[1m"`` (``prctl(PR_SET_NAME)``), a file name may
hold a line break or bytes that are not UTF-8 (Python reads them as lone surrogates), and a
saved run may hold any string. Printed raw, they inject lines and terminal escapes into a
report or crash the writer. :func:`printable` escapes them, as ``repr`` would, and leaves
everything else (accents, CJK, emoji) as it is.
"""

from __future__ import annotations

import unicodedata

# Categories escaped: control characters (C0, DEL, C1) and lone surrogates; and the bidirectional
# overrides and isolates, which reorder what a terminal shows (Trojan Source, CVE-2021-42574).
_ESCAPED_CATEGORIES = ("Cc", "Cs")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` (str() of any value) with control characters, lone surrogates and bidi controls escaped."""
    text = str(text)
    if text.isprintable():  # the common case, at C speed: nothing to escape (spaces are printable too)
        return text
    return "".join(
        _escape(char) if char in _BIDI or unicodedata.category(char) in _ESCAPED_CATEGORIES else char for char in text
    )
