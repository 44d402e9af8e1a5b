from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tbhub.core.selection import SelectionError, parse_selection


def old_if_even(i: int) -> bool:
    return i % 2 == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 2 5", [0, 2, 5]),
        ("0-5", [0, 1, 2, 3, 4, 5]),
        ("0-3 7 9-10", [0, 1, 2, 3, 7, 9, 10]),
        ("5, 1,1 3", [1, 3, 5]),
        ("all", list(range(12))),
        (" ALL ", list(range(12))),
        ("old", [0, 2, 4, 6, 8, 10]),
        ("4-4", [4]),
        ("", None),
        ("   ", None),
    ],
)
def test_valid(text: str, expected: list[int] | None) -> None:
    assert parse_selection(text, 12, old_if_even) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "'abc' is not an index"),
        ("5-2", "runs backwards"),
        ("12", "index 12 is out of range (valid: 0-11)"),
        ("3-20", "index 20 is out of range"),
        ("-1", "is not an index"),
        ("all 3", "'all' must be used alone"),
        ("1.5", "is not an index"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_selection(text, 12, old_if_even)


def test_out_of_range_on_empty_table() -> None:
    with pytest.raises(SelectionError, match="valid: none"):
        parse_selection("0", 0, old_if_even)


@given(st.sets(st.integers(0, 49)), st.integers(50, 60))
def test_round_trip_of_index_lists(indices: set[int], count: int) -> None:
    text = " ".join(str(i) for i in sorted(indices))
    assert parse_selection(text, count, old_if_even) == (sorted(indices) or None)
