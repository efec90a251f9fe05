"""Blocks rendered to Markdown and HTML: text never turns into markup."""

from __future__ import annotations

from backprop_lab.report.blocks import (
    Bullets,
    Code,
    CodeBlock,
    Heading,
    Link,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)

IMG = "<img src=x onerror=alert(1)>"


def _blocks(text: str) -> list:
    return [
        Heading(1, text),
        Heading(2, text, "anchor"),
        Paragraph((text, Code(text), Link(text, "a.md", "a.html"))),
        Bullets([text]),
        Table([text], [[text], [Code(text)]], caption=text),
        CodeBlock(text, text, collapsed=True),
        CodeBlock(text, text),
    ]


def test_html_escapes_every_text():
    page = render_html(IMG, _blocks(IMG))
    assert IMG not in page and "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_markdown_escapes_text_outside_code():
    markdown = render_markdown([Paragraph(IMG), Table(["a|b"], [["`x`*y*"]])])
    assert markdown.splitlines()[0] == "&lt;img src=x onerror=alert(1)&gt;"
    assert "| a\\|b |" in markdown and "\\`x\\`\\*y\\*" in markdown


def test_code_spans_and_fences_outgrow_the_backticks_they_hold():
    markdown = render_markdown([Paragraph(Code("a`b")), CodeBlock("s", "```\ncode\n```")])
    assert "`` a`b ``" in markdown
    assert "````\n```\ncode\n```\n````" in markdown


def test_a_long_page_gets_a_table_of_contents():
    sections = [Heading(2, f"section {n}", f"s{n}") for n in range(4)]
    page = render_html("t", [Heading(1, "t"), *sections])
    assert '<nav><ul><li><a href="#s0">section 0</a></li>' in page
    assert "<nav>" not in render_html("t", [Heading(1, "t"), *sections[:3]])
