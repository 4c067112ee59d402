"""The call script's Markdown as HTML: the little the scripts use, every word escaped first.

Headings (`#`, `##`, `###`), bullet lists (nested by two spaces), paragraphs, `**bold**` and
`*emphasis*`. No raw HTML, no links, no images: the text is escaped before any tag is added,
so a person's name or a note cannot inject markup.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
_ITEM = re.compile(r"^(\s*)[-*]\s+(.*)$")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])")


def _inline(text: str) -> str:
    """Escape, then bold and emphasis."""
    html = str(escape(text))
    html = _STRONG.sub(r"<strong>\1</strong>", html)
    return _EM.sub(r"<em>\1</em>", html)


class _Writer:
    """Open lists and the paragraph being gathered, closed in order."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.para: list[str] = []
        self.depths: list[int] = []  # indentation of each open list

    def flush(self) -> None:
        if self.para:
            self.out.append("<p>" + "<br>\n".join(self.para) + "</p>")
            self.para = []

    def close_lists(self, to: int = -1) -> None:
        while self.depths and self.depths[-1] > to:
            self.depths.pop()
            self.out.append("</li></ul>")

    def item(self, indent: int, text: str) -> None:
        self.flush()
        if self.depths and indent < self.depths[-1]:
            self.close_lists(indent)
        if not self.depths or indent > self.depths[-1]:
            self.out.append("<ul><li>")
            self.depths.append(indent)
        else:
            self.out.append("</li><li>")
        self.out.append(_inline(text))


def render_markdown(source: str) -> Markup:
    """The script as safe HTML."""
    w = _Writer()
    for raw in source.splitlines():
        line = raw.rstrip()
        if not line.strip():
            w.flush()
            if w.depths:
                w.close_lists()
            continue
        if h := _HEADING.match(line):
            w.flush()
            w.close_lists()
            level = min(len(h.group(1)) + 2, 6)  # the page has its own h1 and h2
            w.out.append(f"<h{level}>{_inline(h.group(2))}</h{level}>")
        elif li := _ITEM.match(line):
            w.item(len(li.group(1)), li.group(2))
        else:
            w.close_lists()
            w.para.append(_inline(line.strip()))
    w.flush()
    w.close_lists()
    return Markup("\n".join(w.out))  # built from escaped text only
