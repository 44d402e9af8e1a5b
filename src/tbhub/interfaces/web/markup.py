"""Notes as HTML: escape everything, then allow a tiny safe subset of markdown.

The subset: ``**bold**``, ``*italic*``, ```code```, ``http(s)://`` links, ``[text](url)`` links and
line breaks. It works on text that is already escaped, so no character of the note can open a tag or
leave an attribute: a ``<script>`` in a note is shown as the text ``<script>``. A ``[text](url)`` link
is made only for an ``http(s)://`` URL or a path on the hub (``stays_on_hub``); any other (``javascript:``,
``data:``, ``//elsewhere``) stays text.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

from tbhub.core.bookmarks import stays_on_hub

__all__ = ["note_text", "render_note"]

_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
# After escaping, a URL cannot hold < > " ' (they became entities); stop at whitespace or an entity's &.
# A ``<`` ends a URL too: the placeholders of ``[text](url)`` links start with one (no escaped text can).
_LINK = re.compile(r"\bhttps?://[^\s<>\"']+?(?=[.,;:!?)]?(?:\s|$|<|&lt;|&gt;|&quot;|&#x27;))")
# ``[text](url)`` on escaped text: no brackets in the text, no whitespace or parentheses in the URL.
_MARKDOWN_LINK = re.compile(r"\[([^\[\]\n]+)\]\(([^\s()]+)\)")
_PLACEHOLDER = re.compile(r"<link:(\d+)>")
_WEB = re.compile(r"^https?://[^/\\]", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_REL = "noopener noreferrer nofollow"


def _safe_href(url: str) -> str | None:
    """``url`` (as written, unescaped) escaped for an ``href``, if it is http(s) or a hub path; else None."""
    if _CONTROL.search(url):
        return None
    if _WEB.match(url) or stays_on_hub(url):
        return html.escape(url, quote=True)
    return None


def _emphasis(text: str) -> str:
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _ITALIC.sub(r"<em>\1</em>", text)


def _inline(text: str) -> str:
    # [text](url) links become placeholders first: the other rules never see inside them.
    links: list[str] = []

    def hold(match: re.Match[str]) -> str:
        href = _safe_href(html.unescape(match.group(2)))
        if href is None:
            return match.group(0)
        links.append(f'<a href="{href}" rel="{_REL}">{_emphasis(match.group(1))}</a>')
        return f"<link:{len(links) - 1}>"

    text = _emphasis(_MARKDOWN_LINK.sub(hold, text))
    text = _LINK.sub(lambda m: f'<a href="{m.group(0)}" rel="{_REL}">{m.group(0)}</a>', text)
    return _PLACEHOLDER.sub(lambda m: links[int(m.group(1))], text)


def render_note(text: str) -> Markup:
    escaped = html.escape(text, quote=True)
    # Code spans first, and left alone by the other rules.
    parts = _CODE.split(escaped)
    out = []
    for i, part in enumerate(parts):
        out.append(f"<code>{part}</code>" if i % 2 else _inline(part))
    return Markup("<br>".join("".join(out).splitlines()))


def note_text(text: str) -> str:
    """A note as one line of plain text, for a preview (the runs explorer's notes cell): the text of
    ``[text](url)`` links, no emphasis or code marks, whitespace folded. Escaped by the template."""
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text))
    text = _CODE.sub(r"\1", text)
    return " ".join(text.split())
