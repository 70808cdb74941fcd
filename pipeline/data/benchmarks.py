"""Loaders for the six math benchmarks RLVR papers report, from a hub id or a local jsonl.

Each name maps to a default hub id and field mapping (the hub copies differ in field names); a local
path with `problem`/`answer` fields (as in the shared test copies) is accepted for every name.  The
trailing "Please reason step by step..." sentence is stripped so the prompt template adds it once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.data.schema import BadRow, Problem
from pipeline.data.sources import load_records, map_rows


@dataclass(frozen=True)
class BenchmarkSpec:
    hub_id: str
    split: str
    problem_field: str
    answer_field: str
    local_name: str  # file name used when a directory is given


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "aime24": BenchmarkSpec("HuggingFaceH4/aime_2024", "train", "problem", "answer", "aime24.jsonl"),
    "aime25": BenchmarkSpec("yentinglin/aime_2025", "train", "problem", "answer", "aime25.jsonl"),
    "amc23": BenchmarkSpec("math-ai/amc23", "test", "question", "answer", "amc23.jsonl"),
    "math500": BenchmarkSpec("HuggingFaceH4/MATH-500", "test", "problem", "answer", "math500.jsonl"),
    "minerva": BenchmarkSpec("math-ai/minervamath", "test", "question", "answer", "minerva.jsonl"),
    "olympiadbench": BenchmarkSpec("math-ai/olympiadbench", "test", "question", "final_answer",
                                   "olympiadbench.jsonl"),
}


def load_benchmark(name: str, path: str | None = None) -> tuple[list[Problem], list[BadRow]]:
    """Load benchmark `name` from `path` (a jsonl file, a directory holding `<name>.jsonl`, or a hub id)
    or, when `path` is None, from its default hub id."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark '{name}'; known: {', '.join(sorted(BENCHMARKS))}")
    spec = BENCHMARKS[name]
    target = path or spec.hub_id
    if path and Path(path).is_dir():
        target = str(Path(path) / spec.local_name)
    local = target.endswith((".jsonl", ".json", ".parquet"))
    records = load_records(target, spec.split)
    first = records.rows[0][1]
    # Local copies use the normalised field names; hub copies use the spec's mapping.
    pf, af = ("problem", "answer") if local and "problem" in first else (spec.problem_field, spec.answer_field)
    if local and "final_answer" in first and "answer" not in first:
        af = "final_answer"
    problems, bad, _ = map_rows([r for _, r in records.rows], file=target, source=name, problem_field=pf,
                                answer_field=af, row_numbers=[n for n, _ in records.rows])
    bad = sorted(records.bad + bad, key=lambda b: b.row)
    problems = [Problem(id=f"{name}-{i:04d}", problem=p.problem, answer=_first(p.answer), source=name,
                        level=p.level, solution=p.solution) for i, p in enumerate(problems)]
    return problems, bad


def _first(answer: str) -> str:
    """OlympiadBench hub rows store answers as a one-element list rendered to text."""
    a = answer.strip()
    if a.startswith("['") and a.endswith("']"):
        return a[2:-2]
    return a
