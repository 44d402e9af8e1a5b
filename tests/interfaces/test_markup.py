"""Notes as HTML: ``[text](url)`` links for http(s) and hub paths only, everything else escaped."""

from __future__ import annotations

import re

import pytest

from tbhub.interfaces.web.markup import note_text, render_note

REL = 'rel="noopener noreferrer nofollow"'


def links(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<a href="([^"]*)" rel="noopener noreferrer nofollow">(.*?)</a>', html)


def test_markdown_links_to_the_web_and_the_hub() -> None:
    html = str(render_note("see [the run](https://wandb.example/r/1?a=1&b=2) and [compare](/compare?tags=loss)"))
    assert links(html) == [("https://wandb.example/r/1?a=1&amp;b=2", "the run"), ("/compare?tags=loss", "compare")]
    assert "[" not in html and "](" not in html
    assert str(render_note("[**bold** link](http://x.example/)")) == (
        f'<a href="http://x.example/" {REL}><strong>bold</strong> link</a>'
    )
    assert links(str(render_note("**see [x](HTTP://x.example/a_b_c)**"))) == [("HTTP://x.example/a_b_c", "x")]
    # A bare URL still links, with the same rel; a bare URL as link text is not linked twice.
    assert links(str(render_note("at https://x.example/a."))) == [("https://x.example/a", "https://x.example/a")]
    assert links(str(render_note("[https://a.example/](https://b.example/)"))) == [
        ("https://b.example/", "https://a.example/")
    ]
    assert links(str(render_note("https://a.example/x[y](/runs/lora/ds/r)"))) == [
        ("https://a.example/x", "https://a.example/x"),
        ("/runs/lora/ds/r", "y"),
    ]


@pytest.mark.parametrize(
    "note",
    [
        "[x](javascript:alert(1))",
        "[x](javascript:alert`1`)",
        "[x](JaVaScRiPt:alert)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        "[x](//evil.example/)",
        "[x](/\\evil.example/)",
        "[x](https:\\\\evil.example)",
        "[x](jav&#x61;script:alert)",
        "[x](java\tscript:alert)",
        "[x](relative/path)",
        "[x](mailto:a@b.example)",
    ],
)
def test_other_schemes_and_hosts_stay_text(note: str) -> None:
    html = str(render_note(note))
    assert "<a" not in html and "href" not in html, html
    assert html.startswith("[x](")


def test_hostile_text_and_urls_are_escaped() -> None:
    html = str(render_note('[<img src=x onerror=alert(1)>](https://x.example/)'))
    assert links(html) == [("https://x.example/", "&lt;img src=x onerror=alert(1)&gt;")] and "<img" not in html
    html = str(render_note('[x](https://x.example/"onmouseover="alert(1))'))
    assert "onmouseover=\"" not in html and '"onmouseover' not in html.replace('&quot;', "")
    html = str(render_note("[x](https://x.example/'><script>alert(1)</script>)"))
    assert "<script>" not in html and "'>" not in html
    html = str(render_note('[a "quoted" \'text\'](https://x.example/?q="1")'))
    assert links(html) == [("https://x.example/?q=&quot;1&quot;", "a &quot;quoted&quot; &#x27;text&#x27;")]
    # Nested brackets: the inner link is made, the outer brackets stay text; never an anchor in an anchor.
    html = str(render_note("[a [b](https://b.example/) c](https://c.example/)"))
    assert links(html)[0] == ("https://b.example/", "b") and html.startswith("[a <a ")
    assert not re.search(r"<a [^>]*>[^<]*<a ", html)
    # A placeholder-looking text is just text.
    assert str(render_note("<link:0> [x](https://x.example/)")).startswith("&lt;link:0&gt; <a ")
    # Code spans keep their text.
    assert str(render_note("`[x](https://x.example/)`")) == "<code>[x](https://x.example/)</code>"
    assert "<script>" not in str(render_note("<script>alert(1)</script>"))


def test_a_note_preview_is_its_plain_text() -> None:
    """The runs explorer's notes cell: what the note says, not its markdown."""
    note = "LR **too** high,\nsee [the *sweep*](https://example.org/sweep) and `lr=3e-4` <b>x</b>"
    assert note_text(note) == "LR too high, see the sweep and lr=3e-4 <b>x</b>"  # the template escapes it
    assert note_text("[x](javascript:evil) y") == "x y"  # no link in a preview, whatever the scheme
