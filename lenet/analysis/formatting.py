"""Text for every report: inline markup, Markdown and HTML escaping, tables, numbers and times.

Every string a report shows goes through here, so a value read from a file is escaped the
same way wherever it lands (a section table, a trace block, the comparison table).
Report text is a :data:`Text`: plain strings (escaped when rendered) mixed with
:class:`Code`, :class:`Strong` and :class:`Emphasis` spans. Presentation only: every
function takes values and returns a string.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Code:
    """A code span: a name, id or path shown literally."""

    text: str


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Emphasis:
    text: str


Inline = str | Code | Strong | Emphasis
Text = Inline | tuple[Inline, ...]

LEFT, RIGHT = "left", "right"


def spans(text: Text) -> tuple[Inline, ...]:
    return text if isinstance(text, tuple) else (text,)


def code_list(values: Iterable[str], separator: str = ", ") -> tuple[Inline, ...]:
    """``a``, ``b``, ``c``: each value a code span."""
    listed: list[Inline] = []
    for value in values:
        listed += [separator] * bool(listed) + [Code(value)]
    return tuple(listed)


# --- Markdown ------------------------------------------------------------------------------------


# Line breaks and other control characters: a value from a file never starts a new line (a heading, a table).
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# What would make Markdown of a value: emphasis, code, a link or image (](), an HTML tag, comment or entity.
_MARKDOWN = re.compile(r"[\\`*]|\](?=[(\[])|<(?=[A-Za-z/!?])|&(?=[A-Za-z#])")
_HTML_ESCAPES = {"<": "&lt;", "&": "&amp;"}


def md_text(text: str) -> str:
    """Plain text for one line of Markdown: shown as it is, never read as markup.

    Line breaks become spaces; backslashes, backticks, asterisks and the ``]`` of a link
    are backslash-escaped; ``<`` and ``&`` become entities where they would start a tag or
    an entity. Text that cannot be markup (``p < 0.05``, ``test_join[10]``) stays as it is.
    """
    text = _CONTROL.sub(" ", text)
    return _MARKDOWN.sub(lambda m: _HTML_ESCAPES.get(m.group(), "\\" + m.group()), text)


def md_code(text: str) -> str:
    """A code span that shows ``text`` literally, whatever backticks it holds (CommonMark's rule:
    a fence longer than any run of backticks inside, padded when the text starts or ends with one)."""
    text = _CONTROL.sub(" ", text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_inline(text: Text) -> str:
    parts = []
    for span in spans(text):
        if isinstance(span, Code):
            parts.append(md_code(span.text))
        elif isinstance(span, Strong):
            parts.append(f"**{md_text(span.text)}**")
        elif isinstance(span, Emphasis):
            parts.append(f"*{md_text(span.text)}*")
        else:
            parts.append(md_text(span))
    return "".join(parts)


_BLOCK_START = re.compile(r"^([#>+=-]|\d{1,9}(?=[.)](?:\s|$)))")


def md_line(text: Text) -> str:
    """Inline Markdown that starts a line: a leading ``#``, ``>``, ``-``, ``+``, ``=`` or ``1.`` escaped,
    so that a value from a file never turns the line into a heading, a quote or a list."""
    line = md_inline(text)
    return _BLOCK_START.sub(lambda m: m.group() + "\\" if m.group()[0].isdigit() else "\\" + m.group(), line)


def md_cell(text: Text) -> str:
    """Inline Markdown that stays inside its table cell: pipes escaped (in code spans too, as GFM requires)."""
    return md_inline(text).replace("|", "\\|")


def markdown_table(header: Sequence[Text], rows: Sequence[Sequence[Text]], aligns: Sequence[str]) -> list[str]:
    """A GitHub-flavoured table as lines: header, alignment row, a line per row."""
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |"]
    lines.append("| " + " | ".join("---:" if a == RIGHT else "---" for a in aligns) + " |")
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


# --- HTML ----------------------------------------------------------------------------------------


def html_inline(text: Text) -> str:
    """Escaped HTML; code spans as <code>."""
    parts = []
    for span in spans(text):
        if isinstance(span, Code):
            parts.append(f"<code>{html.escape(span.text)}</code>")
        elif isinstance(span, Strong):
            parts.append(f"<strong>{html.escape(span.text)}</strong>")
        elif isinstance(span, Emphasis):
            parts.append(f"<em>{html.escape(span.text)}</em>")
        else:
            parts.append(html.escape(span))
    return "".join(parts)


def html_table(header: Sequence[Text], rows: Sequence[Sequence[Text]], aligns: Sequence[str]) -> str:
    head = "".join(f"<th>{html_inline(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html_inline(c)}</td>' if a == RIGHT else f"<td>{html_inline(c)}</td>"
            for c, a in zip(row, aligns, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def plain_text(text: Text) -> str:
    """The text without markup (for JSON and logs)."""
    return "".join(span if isinstance(span, str) else span.text for span in spans(text))


def aligns(columns: int, left: int = 2) -> tuple[str, ...]:
    """The first ``left`` columns are text (left-aligned), the rest numbers (right-aligned)."""
    return tuple(LEFT if i < left else RIGHT for i in range(columns))


def single_line(text: str) -> str:
    """The text with every line break or other control character as a space: a message stays one line."""
    return _CONTROL.sub(" ", text)


def one_line(text: str, limit: int = 300) -> str:
    """Text for a one-line message: whitespace runs (line breaks too) become one space, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# --- numbers -------------------------------------------------------------------------------------


def is_missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def number(value: float, digits: int = 3) -> str:
    """Three significant digits, thousands separated: 6.87, 0.301, 1,234; a dash when missing."""
    if is_missing(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def time_unit(seconds: Sequence[float]) -> tuple[str, float]:
    """A unit that suits the smallest value: (name, multiplier)."""
    finite = [s for s in seconds if not is_missing(s) and s > 0]
    smallest = min(finite) if finite else 1.0
    if smallest < 1e-6:
        return "ns", 1e9
    if smallest < 1e-3:
        return "µs", 1e6
    if smallest < 1.0:
        return "ms", 1e3
    return "s", 1.0


def change(ratio: float) -> str:
    """A ratio as a signed percent change: 1.031 -> ``+3.1%``."""
    return f"{(ratio - 1) * 100:+.1f}%"


def or_dash(value: object) -> str:
    """The value as text, or a dash when it is missing."""
    return "–" if is_missing(value) else str(value)
