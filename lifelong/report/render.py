"""A report is a list of blocks (headings, text, tables, figures, code), rendered two ways: one
self-contained HTML page (figures inline as base64 PNG, no external files or CDN) and Markdown
(tables and text; figures are named and live in the HTML).

User text (strategy labels, stream and task names, the config name, paths, error messages) never
becomes markup in either rendering: headings, table cells and code blocks are escaped whole, and
inside a Text or caption, where `code` and **bold** spans are ours, user text goes through `user()`."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass


_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use characters around user text inside a Text
_USER = re.compile(f"{_OPEN}(.*?){_CLOSE}", re.S)
# Markdown syntax a plain character can start; "_" only at a word's edge (inside a word it is literal)
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def user(text) -> str:
    """Mark user text inside a Text or caption so that no rendering reads it as markup."""
    clean = " ".join(str(text).replace(_OPEN, "").replace(_CLOSE, "").split())
    return f"{_OPEN}{clean}{_CLOSE}"


def _md_escape(text) -> str:
    """Plain text as Markdown that shows the same characters: HTML and Markdown syntax escaped."""
    text = html.escape(" ".join(str(text).replace(_OPEN, "").replace(_CLOSE, "").split()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_text(text: str) -> str:
    return _USER.sub(lambda match: _md_escape(match.group(1)), text)


def _html_text(text: str) -> str:
    """Escape, then turn our `code` and **bold** spans into tags; user spans can open neither."""
    text = _USER.sub(lambda match: match.group(1).replace("`", "&#96;").replace("*", "&#42;"),
                     html.escape(text))
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _plain(text) -> str:
    return str(text).replace(_OPEN, "").replace(_CLOSE, "")


class Best(str):
    """A table cell holding the best value of its column: bold in both renderings."""


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str  # `code` spans allowed


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    png: bytes
    caption: str


@dataclass
class Code:
    text: str


Block = Heading | Text | Table | Figure | Code

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: 0.9em; padding-top: 4px; }
img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; margin-bottom: 1.5em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
code { background: #f3f3f3; padding: 0 2px; }
"""


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {_md_escape(block.text)}")
        elif isinstance(block, Text):
            out.append(_md_text(block.text))
        elif isinstance(block, Table):
            out.append(_markdown_table(block))
        elif isinstance(block, Figure):
            out.append(f"*Figure (in report.html): {_md_text(block.caption)}*")
        else:
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", block.text)), default=0))
            out.append(f"{fence}\n{_plain(block.text).rstrip()}\n{fence}")
    return "\n\n".join(out) + "\n"


def _markdown_table(table: Table) -> str:
    def cell(value: str) -> str:
        text = _md_escape(value)
        return f"**{text}**" if isinstance(value, Best) else text

    lines = ["| " + " | ".join(map(cell, table.header)) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.rows]
    return "\n".join(lines) + (f"\n\n{_md_text(table.caption)}" if table.caption else "")


def to_html(title: str, blocks: list[Block]) -> str:
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(_plain(block.text))}</h{block.level}>")
        elif isinstance(block, Text):
            body.append(f"<p>{_html_text(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode()
            body.append(f'<figure><img alt="{html.escape(_plain(block.caption))}" '
                        f'src="data:image/png;base64,{data}"><figcaption>{_html_text(block.caption)}</figcaption>'
                        "</figure>")
        else:
            body.append(f"<pre>{html.escape(_plain(block.text))}</pre>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(_plain(title))}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _html_table(table: Table) -> str:
    def cell(tag: str, value: str) -> str:
        text = html.escape(_plain(value))
        return f"<{tag}><b>{text}</b></{tag}>" if isinstance(value, Best) else f"<{tag}>{text}</{tag}>"

    rows = ["<tr>" + "".join(cell("th", h) for h in table.header) + "</tr>"]
    rows += ["<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in table.rows]
    caption = f"<caption>{_html_text(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}{''.join(rows)}</table>"
