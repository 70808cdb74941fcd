"""Final-answer extraction: last box wins, nested braces, malformed boxes."""
from __future__ import annotations

import pytest

from pipeline.rewards import extract_boxed


@pytest.mark.parametrize("text,expected", [
    ("so \\boxed{12}", "12"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("answer \\fbox{7}", "7"),
    ("\\boxed 5.", "5"),
    ("\\boxed{a \\{ b \\} c}", "a \\{ b \\} c"),
    ("\\boxed{3} and a broken \\boxed{4", "3"),
    ("\\boxed{}", None),
    ("no box here: 42", None),
    ("", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_non_text_is_none():
    assert extract_boxed(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("\\boxed{" * 34_000, None),                                   # 240 KB of unterminated nested boxes
    ("\\boxed{" * 34_000 + "7" + "}" * 34_000, "7"),                # the same, closed: the innermost box
    ("\\boxed " * 34_000 + "9", "9"),
    ("{" * 240_000 + "\\boxed{2}", "2"),
])
def test_regression_nested_boxed_row_hangs_extraction(text, expected):
    """Regression: rescanning to the end from every box was quadratic (177 s on a 240 KB row in the
    main process).  Pairing braces in one pass makes it linear; the bound is a hang guard, 100x slack."""
    import time

    start = time.perf_counter()
    assert extract_boxed(text) == expected
    assert time.perf_counter() - start < 2.0


def test_escaped_braces_do_not_pair():
    assert extract_boxed("\\boxed{\\}}") == "\\}"
    assert extract_boxed("\\boxed{\\{") is None
