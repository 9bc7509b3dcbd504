"""Markdown as GitHub reads it."""

from __future__ import annotations

import re


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (outside code blocks); repeats get -1, -2..."""
    anchors: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            anchor = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            unique, n = anchor, 0
            while unique in anchors:
                n += 1
                unique = f"{anchor}-{n}"
            anchors.add(unique)
    return anchors
