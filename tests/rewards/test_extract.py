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
