"""The normalised problem schema shared by training data, benchmarks and evaluation.

Every source is mapped to `Problem(id, problem, answer, source, level?, solution?)`.  Rows that cannot
be mapped become `BadRow` records (file, row number, reason) so that nothing is dropped silently.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Optional

# Benchmark files (MATH-500 and the other shared copies) already end with this instruction; the prompt
# template adds its own, so it is stripped on load to avoid saying it twice.
INSTRUCTION_RE = re.compile(
    r"\s*Please reason step by step,? and put your final answer within \\boxed\{\}\.?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: str
    source: str
    level: Optional[int] = None
    solution: Optional[str] = None

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str = "<row>") -> "Problem":
        missing = [k for k in ("id", "problem", "answer", "source") if k not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing} in prepared problem row")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int
    reason: str

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def strip_instruction(text: str) -> str:
    return INSTRUCTION_RE.sub("", text).strip()


def normalize_text(text: str) -> str:
    """Key used for dedup: instruction stripped, lower-cased, whitespace collapsed."""
    return " ".join(strip_instruction(text).lower().split())


def answer_to_text(value: Any) -> Optional[str]:
    """Gold answers arrive as strings or numbers; None or blank means missing."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def load_problems(path) -> list[Problem]:
    """Prepared problems from a jsonl file; a malformed row names the file and its physical line."""
    from pipeline.utils.io import InputError, scan_jsonl

    problems = []
    for lineno, row, problem in scan_jsonl(path):
        if problem is not None:
            raise InputError(f"{path}:{lineno}: {problem}")
        try:
            problems.append(Problem.from_row(row, f"{path}:{lineno}"))
        except (TypeError, ValueError) as exc:
            raise InputError(str(exc)) from None
    return problems
