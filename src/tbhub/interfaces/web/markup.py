"""Notes as HTML: escape everything, then allow a tiny safe subset of markdown.

The subset: ``**bold**``, ``*italic*``, ```code```, ``http(s)://`` links and line breaks. It works on
text that is already escaped, so no character of the note can open a tag or leave an attribute: a
``<script>`` in a note is shown as the text ``<script>``.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

__all__ = ["render_note"]

_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
# After escaping, a URL cannot hold < > " ' (they became entities); stop at whitespace or an entity's &.
_LINK = re.compile(r"\bhttps?://[^\s<>\"']+?(?=[.,;:!?)]?(?:\s|$|&lt;|&gt;|&quot;|&#x27;))")


def _inline(text: str) -> str:
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    return _LINK.sub(lambda m: f'<a href="{m.group(0)}" rel="noopener nofollow">{m.group(0)}</a>', text)


def render_note(text: str) -> Markup:
    escaped = html.escape(text, quote=True)
    # Code spans first, and left alone by the other rules.
    parts = _CODE.split(escaped)
    out = []
    for i, part in enumerate(parts):
        out.append(f"<code>{part}</code>" if i % 2 else _inline(part))
    return Markup("<br>".join("".join(out).splitlines()))
