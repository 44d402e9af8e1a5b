from __future__ import annotations

import os

import pytest

from tbhub.adapters.db.names import from_db, to_db
from tbhub.core.names import shown, without_surrogates


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("run-α β/训练", "run-α β/训练"),
        (os.fsdecode(b"bad-\xff\xfe"), "bad-\\xff\\xfe"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\nb\tc\r", "a\\nb\\tc\\r"),
        ("\x9b2J\x7f", "\\x9b2J\\x7f"),
        ("abc\u202edcba", "abc\\u202edcba"),
    ],
)
def test_shown_escapes_only_what_cannot_be_shown_safely(name: str, expected: str) -> None:
    assert shown(name) == expected
    shown(name).encode("utf-8")  # always encodable


def test_without_surrogates_keeps_line_breaks() -> None:
    assert without_surrogates(os.fsdecode(b"x\xff\nline 2")) == "x\\xff\nline 2"


@pytest.mark.parametrize(
    "text",
    ["", "plain", "ünïcode ✓", "/lead", "a\\xffb", "//", os.fsdecode(b"ds/\xff\\x41/\xfe"), "\ud800", "/\\\\"],
)
def test_database_form_is_valid_text_and_exactly_reversible(text: str) -> None:
    stored = to_db(text)
    stored.encode("utf-8")
    assert from_db(stored) == text


@pytest.mark.parametrize("text", ["plain", "ünïcode ✓", "a\\xffb", "ds/run/events.out.tfevents.1"])
def test_ordinary_text_is_stored_as_it_is(text: str) -> None:
    assert to_db(text) == text
