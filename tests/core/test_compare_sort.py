"""core.compare sort specs: tag figures and columns, both directions, round trip to the URL form; the
sparkline's SVG breaks at NaN and marks a non-finite last value."""

from __future__ import annotations

import pytest

from tbhub.core.compare import SortSpec, parse_sort
from tbhub.interfaces.web.sparkline import sparkline_svg


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("eval/loss:min", SortSpec("eval/loss", "min", False)),
        ("eval/acc:max", SortSpec("eval/acc", "max", True)),
        ("loss:last:desc", SortSpec("loss", "last", True)),
        ("eval/acc:max:asc", SortSpec("eval/acc", "max", False)),
        ("a:b/loss:min", SortSpec("a:b/loss", "min", False)),
        ("duration", SortSpec("duration", "column", False)),
        ("steps/s:desc", SortSpec("steps/s", "column", True)),
        ("run", SortSpec("run", "column", False)),
    ],
)
def test_parse_and_round_trip(text: str, spec: SortSpec) -> None:
    assert parse_sort(text) == spec
    assert parse_sort(str(spec)) == spec
    assert parse_sort(str(spec.toggled())) == spec.toggled() and spec.toggled().descending != spec.descending


@pytest.mark.parametrize("text", ["loss", "loss:best", ":min", "x:desc", "duration:sideways"])
def test_bad_sorts(text: str) -> None:
    with pytest.raises(ValueError, match="is not a sort like"):
        parse_sort(text)


def test_sparkline() -> None:
    svg = str(sparkline_svg([3.0, 2.0, float("nan"), 1.0, float("inf")], label="a<b"))
    path = svg.split(' d="')[1].split('"')[0]
    assert path.count("M") == 2 and path.count("L") == 1  # broken at the NaN
    assert "sparkline-nonfinite" in svg and "a&lt;b" in svg and "style" not in svg
    assert "<circle" in str(sparkline_svg([1.0])) and "path" not in str(sparkline_svg([]))
