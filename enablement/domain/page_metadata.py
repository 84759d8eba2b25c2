"""Reading a web page's title, summary and author from its HTML head (Open Graph, meta, <title>).

Pure: the standard library's tolerant HTML parser; no network. Hostile input (NUL bytes,
huge attributes, unclosed tags) yields at most shortened text, never an error.
"""

from __future__ import annotations

from html.parser import HTMLParser

from enablement.domain.assets import MAX_AUTHOR, MAX_SUMMARY, MAX_TITLE

# Which meta names fill which field, best source first.
SOURCES = {
    "title": ("og:title", "twitter:title", "<title>"),
    "summary": ("og:description", "description", "twitter:description"),
    "author": ("author", "article:author", "twitter:creator", "parsely-author", "dc.creator"),
}
LIMITS = {"title": MAX_TITLE, "summary": MAX_SUMMARY, "author": MAX_AUTHOR}


class _HeadReader(HTMLParser):
    """Collects <meta name|property=... content=...> and the first <title> text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title_parts: list[str] | None = None
        self.title: str | None = None

    def handle_starttag(self, tag, attrs):
        """Remember meta contents; start collecting the title."""
        if tag == "meta":
            found = dict(attrs)
            key = (found.get("property") or found.get("name") or "").strip().lower()
            content = found.get("content")
            if key and content and key not in self.meta:
                self.meta[key] = content
        elif tag == "title" and self.title is None:
            self.title_parts = []

    def handle_data(self, data):
        """Title text."""
        if self.title_parts is not None:
            self.title_parts.append(data)

    def handle_endtag(self, tag):
        """End of the title."""
        if tag == "title" and self.title_parts is not None:
            self.title = "".join(self.title_parts)
            self.title_parts = None


def clean_text(value: str | None, limit: int) -> str | None:
    """Whitespace collapsed, control characters and lone surrogates removed, cut to limit."""
    if not value:
        return None
    kept = (
        "".join(ch for ch in value if ch.isprintable() or ch in " \t\n")
        .encode("utf-8", "ignore")
        .decode("utf-8")
    )
    text = " ".join(kept.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text or None


def read_metadata(html: str) -> dict[str, str | None]:
    """{title, summary, author} from a page's HTML (None where the page says nothing)."""
    reader = _HeadReader()
    try:
        reader.feed(html)
        reader.close()
    except (AssertionError, ValueError):
        # NOTE: the parser is tolerant, but keep what was read before any hostile markup.
        pass
    found = {**reader.meta}
    if reader.title is not None:
        found["<title>"] = reader.title
    elif reader.title_parts:
        found["<title>"] = "".join(reader.title_parts)
    result = {}
    for field, keys in SOURCES.items():
        value = next((found[k] for k in keys if found.get(k, "").strip()), None)
        result[field] = clean_text(value, LIMITS[field])
    return result
