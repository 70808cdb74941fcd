"""Single-item grading run inside verifier worker processes (see verify.py).

Golds are wrapped in $...$ so that math-verify's LaTeX extractor reads bare answers like `\\frac{1}{2}`
or `3\\sqrt{2}`; predictions are the extracted \\boxed{} content, parsed the same way.  Both sides also
try the plain-expression extractor so that `0.5` or `1/2` parse.
"""
from __future__ import annotations

from typing import Optional

from pipeline.rewards.extract import extract_boxed

_CONFIG = None


def _parse(text: str):
    global _CONFIG
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    if _CONFIG is None:
        _CONFIG = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    parsed = parse(f"${text}$", extraction_config=_CONFIG, parsing_timeout=None)
    if not parsed:
        parsed = parse(text, extraction_config=_CONFIG, parsing_timeout=None)
    return parsed


def _structured(parsed) -> bool:
    """math-verify falls back to returning only the raw string when LaTeX parsing fails."""
    return any(not isinstance(x, str) for x in parsed)


def _equal(gold, pred) -> bool:
    from math_verify import verify

    return bool(verify(gold, pred, timeout_seconds=None))


def warm_up() -> None:
    """Import math-verify and compile its parsers once, before the first deadline starts."""
    _equal(_parse("1"), _parse("1"))


def grade_one(kind: str, a: str, b: str) -> tuple[str, Optional[str]]:
    """kind 'score': (completion a, gold b); 'gold': parse check of a; 'equiv': answers a and b."""
    try:
        if kind == "gold":
            return ("ok" if _structured(_parse(a)) else "unparseable_gold"), None
        if kind == "equiv":
            pa, pb = _parse(a), _parse(b)
            return ("ok" if pa and pb and _equal(pa, pb) else "wrong"), None
        pred = extract_boxed(a)
        gold = _parse(b)
        if not _structured(gold):
            return "unparseable_gold", pred
        if pred is None:
            return "no_answer", None
        parsed = _parse(pred)
        if not parsed:
            return "wrong", pred
        return ("ok" if _equal(gold, parsed) else "wrong"), pred
    except Exception as exc:  # sympy/antlr raise anything; the status keeps it visible
        return "error", f"{type(exc).__name__}: {str(exc)[:200]}"
