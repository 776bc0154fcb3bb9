"""The one renderer of every report section: a list of blocks -> Markdown, or HTML, the same way.

A section (the benchmark tables, the comparison, the traces) is built once as blocks;
:func:`markdown` and :func:`html` render any list of them, and :func:`html_page` wraps
the HTML with the figures into one self-contained page. All text is :data:`Text`,
escaped by :mod:`lenet.analysis.formatting`.
"""

from __future__ import annotations

import base64
import html as html_lib
from collections.abc import Sequence
from dataclasses import dataclass

from lenet.analysis.formatting import Text, html_inline, html_table, markdown_table, md_inline, md_line


@dataclass(frozen=True)
class Heading:
    level: int  # 1-3
    text: Text


@dataclass(frozen=True)
class Paragraph:
    """Lines of one paragraph: soft line breaks in Markdown, <br> in HTML."""

    lines: tuple[Text, ...]


@dataclass(frozen=True)
class BulletList:
    items: tuple[Text, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[Text, ...]
    rows: tuple[tuple[Text, ...], ...]
    aligns: tuple[str, ...]  # formatting.LEFT or RIGHT, per column


Block = Heading | Paragraph | BulletList | Table


def paragraph(*lines: Text) -> Paragraph:
    return Paragraph(tuple(lines))


def markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown: each block followed by a blank line."""
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines.append(f"{'#' * block.level} {md_inline(block.text)}")
        elif isinstance(block, Paragraph):
            lines += [md_line(line) for line in block.lines]
        elif isinstance(block, BulletList):
            lines += [f"- {md_line(item)}" for item in block.items]
        else:
            lines += markdown_table(block.header, block.rows, block.aligns)
        lines.append("")
    return "\n".join(lines)


def html(blocks: Sequence[Block]) -> str:
    """The same blocks as HTML; every string is escaped."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append("<p>" + "<br>".join(html_inline(line) for line in block.lines) + "</p>")
        elif isinstance(block, BulletList):
            parts.append("<ul>" + "".join(f"<li>{html_inline(item)}</li>" for item in block.items) + "</ul>")
        else:
            parts.append(html_table(block.header, block.rows, block.aligns))
    return "\n".join(parts)


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #111; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; }
figure { margin: 1em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
p { color: #444; }
"""


def html_page(title: str, blocks: Sequence[Block], figures: Sequence[tuple[str, bytes]] = ()) -> str:
    """One self-contained page: the blocks, then the figures as PNG data URIs (caption, PNG bytes).

    Every string that came from a file is escaped; the page loads nothing from the network.
    """
    esc = html_lib.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        html(blocks),
    ]
    if figures:
        parts.append("<h2>Plots</h2>")
    for caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
