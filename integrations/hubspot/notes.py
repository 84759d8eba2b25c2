"""How a note's plain text is shown in HubSpot, whose hs_note_body is rich text (HTML)."""

from __future__ import annotations

import html
import re

_URL = re.compile(r"https?://\S+")


def note_html(text: str) -> str:
    """The note's text as HubSpot rich text: a paragraph per line, a line that is only a URL as a link."""
    paragraphs = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if _URL.fullmatch(line):
            body = f'<a href="{html.escape(line, quote=True)}">{html.escape(line, quote=False)}</a>'
        else:
            body = html.escape(line, quote=False)
        paragraphs.append(f"<p>{body}</p>")
    return "".join(paragraphs)


def in_note_html(marker: str) -> str:
    """The marker as it appears inside a note body rendered by note_html."""
    return html.escape(marker, quote=False)
