"""The page as blocks, rendered to Markdown and to HTML, so the two always agree.

Text in a block is plain text: the renderers escape it (Markdown markup characters, HTML
entities), so a value read from MLflow can never turn into markup or script.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple


class Code(NamedTuple):
    """Inline code (a run id, a command)."""

    text: str


class Link(NamedTuple):
    text: str
    markdown_href: str
    html_href: str


Span = str | Code | Link
Inline = str | Code | Link | tuple


class Heading(NamedTuple):
    level: int
    text: str
    anchor: str = ""


class Paragraph(NamedTuple):
    content: Inline


class Bullets(NamedTuple):
    items: list


class Table(NamedTuple):
    headers: list[str]
    rows: list[list]
    caption: str = ""
    # Columns aligned right (numbers).
    numeric: tuple[int, ...] = ()


class Figure(NamedTuple):
    filename: str
    caption: str


class Figures(NamedTuple):
    """Figures shown side by side in HTML."""

    figures: list[Figure]


class CodeBlock(NamedTuple):
    """A block of text: fenced in Markdown; in HTML inside ``<details>`` when ``collapsed``."""

    summary: str
    text: str
    language: str = ""
    collapsed: bool = False


Block = Heading | Paragraph | Bullets | Table | Figures | CodeBlock


def _spans(content: Inline) -> list[Span]:
    # Code and Link are NamedTuples: a tuple of spans is any other tuple.
    return (
        list(content)
        if isinstance(content, tuple) and not isinstance(content, Code | Link)
        else [content]
    )


# ---------------------------------------------------------------------------------------------
# Markdown


def _markdown_text(text: str) -> str:
    """Plain text for Markdown: characters that would turn into markup are escaped."""
    text = str(text).replace("\\", "\\\\")
    for character in "`*[]|":
        text = text.replace(character, "\\" + character)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _markdown_code(text: str) -> str:
    text = str(text).replace("\n", " ").replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if longest else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _markdown_inline(content: Inline) -> str:
    parts = []
    for span in _spans(content):
        if isinstance(span, Code):
            parts.append(_markdown_code(span.text))
        elif isinstance(span, Link):
            parts.append(f"[{_markdown_text(span.text)}]({span.markdown_href})")
        else:
            parts.append(_markdown_text(span))
    return "".join(parts)


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks inside ``text``."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    return "`" * (longest + 1)


def _markdown_table(table: Table) -> list[str]:
    lines = [f"**{_markdown_text(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_markdown_text(header) for header in table.headers) + " |")
    alignments = (
        "---:" if index in table.numeric else "---" for index in range(len(table.headers))
    )
    lines.append("| " + " | ".join(alignments) + " |")
    lines += [
        "| " + " | ".join(_markdown_inline(cell) for cell in row) + " |" for row in table.rows
    ]
    return [*lines, ""]


def _markdown_figures(block: Figures) -> list[str]:
    lines = []
    for figure in block.figures:
        alt = _markdown_text(figure.caption)
        lines += [f"![{alt}](figures/{figure.filename})", "", f"*{alt}*", ""]
    return lines


def _markdown_code_block(block: CodeBlock) -> list[str]:
    fence = _fence(block.text)
    return [
        f"**{_markdown_text(block.summary)}**",
        "",
        fence + block.language,
        block.text.rstrip("\n"),
        fence,
        "",
    ]


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + _markdown_text(block.text), ""]
    if isinstance(block, Paragraph):
        return [_markdown_inline(block.content), ""]
    if isinstance(block, Bullets):
        return [f"- {_markdown_inline(item)}" for item in block.items] + [""]
    if isinstance(block, Table):
        return _markdown_table(block)
    if isinstance(block, Figures):
        return _markdown_figures(block)
    return _markdown_code_block(block)


def render_markdown(blocks: Sequence[Block]) -> str:
    lines = [line for block in blocks for line in _markdown_block(block)]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------
# HTML


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
  max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.5em; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 90%; }
code { background: #f6f8fa; padding: .1em .3em; border-radius: 4px; }
pre { background: #f6f8fa; padding: .8em 1em; border-radius: 6px; overflow-x: auto; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: 92%; }
caption { text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0 0 1em; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 88%; color: #57606a; max-width: 600px; }
details { margin: .5em 0 1em; }
summary { cursor: pointer; font-weight: 600; }
nav ul { columns: 2; }
ul.findings li { margin-bottom: .3em; }
"""


def _html_inline(content: Inline) -> str:
    parts = []
    for span in _spans(content):
        if isinstance(span, Code):
            parts.append(f"<code>{html.escape(span.text)}</code>")
        elif isinstance(span, Link):
            parts.append(f'<a href="{html.escape(span.html_href)}">{html.escape(span.text)}</a>')
        else:
            parts.append(html.escape(str(span)))
    return "".join(parts)


def _html_page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_heading(block: Heading, sections: list[Heading]) -> list[str]:
    anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
    parts = [f"<h{block.level}{anchor}>{html.escape(block.text)}</h{block.level}>"]
    # A long page gets a table of contents under its title.
    if block.level == 1 and len(sections) > 3:
        links = "".join(
            f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.text)}</a></li>'
            for s in sections
        )
        parts.append(f"<nav><ul>{links}</ul></nav>")
    return parts


def _html_table(table: Table) -> str:
    rows = [f"<caption>{html.escape(table.caption)}</caption>"] if table.caption else []
    rows.append(
        "<thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
        + "</tr></thead><tbody>"
    )
    for row in table.rows:
        cells = "".join(
            (
                f'<td class="num">{_html_inline(cell)}</td>'
                if index in table.numeric
                else f"<td>{_html_inline(cell)}</td>"
            )
            for index, cell in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    return "<table>" + "".join(rows) + "</tbody></table>"


def _html_figures(block: Figures, figure_dir: Path | None) -> str:
    figures = []
    for figure in block.figures:
        data = (
            base64.b64encode((figure_dir / figure.filename).read_bytes()).decode("ascii")
            if figure_dir
            else ""
        )
        caption = html.escape(figure.caption)
        figures.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return '<div class="figures">' + "".join(figures) + "</div>"


def _html_code_block(block: CodeBlock) -> str:
    language = f' class="language-{html.escape(block.language)}"' if block.language else ""
    pre = f"<pre><code{language}>{html.escape(block.text)}</code></pre>"
    if block.collapsed:
        return f"<details><summary>{html.escape(block.summary)}</summary>{pre}</details>"
    return f"<p><strong>{html.escape(block.summary)}</strong></p>{pre}"


def _html_block(block: Block, sections: list[Heading], figure_dir: Path | None) -> list[str]:
    if isinstance(block, Heading):
        return _html_heading(block, sections)
    if isinstance(block, Paragraph):
        return [f"<p>{_html_inline(block.content)}</p>"]
    if isinstance(block, Bullets):
        items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
        return [f'<ul class="findings">{items}</ul>']
    if isinstance(block, Table):
        return [_html_table(block)]
    if isinstance(block, Figures):
        return [_html_figures(block, figure_dir)]
    return [_html_code_block(block)]


def render_html(title: str, blocks: Sequence[Block], figure_dir: Path | None = None) -> str:
    """A self-contained page: figures from ``figure_dir`` are embedded as base64 PNGs."""
    sections = [
        block
        for block in blocks
        if isinstance(block, Heading) and block.level == 2 and block.anchor
    ]
    body = [part for block in blocks for part in _html_block(block, sections, figure_dir)]
    return _html_page(title, body)
