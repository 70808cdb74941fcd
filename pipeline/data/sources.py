"""Loading problem rows from hub dataset ids or local jsonl/json/parquet files through `datasets`.

A source names a path and a field mapping (MATH-style `problem`/`answer`, GSM8K-style `question` with a
`#### answer` tail, or a solution whose last \\boxed{} holds the answer).  `map_rows` turns raw records
into `Problem`s and `BadRow`s; it never drops a row without recording why.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from pipeline.data.schema import BadRow, Problem, answer_to_text, strip_instruction
from pipeline.rewards.extract import extract_boxed

_LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class SourceError(RuntimeError):
    """A source that cannot be read at all (missing file, bad format, hub id unavailable offline)."""


def is_local(path: str) -> bool:
    return Path(path).suffix.lower() in _LOCAL_BUILDERS or os.path.exists(path)


def load_records(path: str, split: str = "train") -> list[dict[str, Any]]:
    """All rows of a local file or hub dataset as dicts; errors name the path."""
    import datasets

    datasets.disable_progress_bars()
    suffix = Path(path).suffix.lower()
    try:
        if suffix in _LOCAL_BUILDERS:
            if not Path(path).is_file():
                raise SourceError(f"{path}: file not found")
            ds = datasets.load_dataset(_LOCAL_BUILDERS[suffix], data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(path, split=split)
    except SourceError:
        raise
    except Exception as exc:  # datasets raises many types; the caller needs the path and the cause
        hint = " (hub access is off: HF_DATASETS_OFFLINE=1; use a local copy)" if not is_local(path) else ""
        raise SourceError(f"{path}: cannot be read{hint}: {type(exc).__name__}: {exc}") from exc
    return [dict(r) for r in ds]


def gsm8k_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().replace(",", "") or None


def map_rows(records: Iterable[dict[str, Any]], *, file: str, source: str, problem_field: str = "problem",
             answer_field: str = "answer", answer_format: str = "plain",
             limit: int | None = None) -> tuple[list[Problem], list[BadRow]]:
    """Map raw rows to Problems; rows are numbered from 1 in `BadRow.row`."""
    problems: list[Problem] = []
    bad: list[BadRow] = []
    for row_no, rec in enumerate(records, 1):
        if limit is not None and len(problems) >= limit:
            break
        if problem_field not in rec:
            bad.append(BadRow(file, row_no, f"missing field '{problem_field}'"))
            continue
        text = rec[problem_field]
        if not isinstance(text, str) or not text.strip():
            bad.append(BadRow(file, row_no, f"field '{problem_field}' is not non-empty text"))
            continue
        raw = rec.get(answer_field)
        if raw is None:
            bad.append(BadRow(file, row_no, f"missing answer field '{answer_field}'"))
            continue
        answer = _answer(raw, answer_format)
        if answer is None:
            bad.append(BadRow(file, row_no, f"empty or unreadable answer in '{answer_field}' ({answer_format})"))
            continue
        level = rec.get("level")
        problems.append(Problem(
            id=str(rec.get("id", rec.get("unique_id", f"{source}-{row_no:06d}"))),
            problem=strip_instruction(text), answer=answer, source=source,
            level=level if isinstance(level, int) and not isinstance(level, bool) else None,
            solution=rec.get("solution") if isinstance(rec.get("solution"), str) else None,
        ))
    return problems, bad


def _answer(raw: Any, answer_format: str) -> str | None:
    if answer_format == "gsm8k":
        return gsm8k_answer(raw) if isinstance(raw, str) else None
    if answer_format == "boxed":
        return extract_boxed(raw) if isinstance(raw, str) else None
    return answer_to_text(raw)


def load_source(path: str, *, source: str, split: str = "train", problem_field: str = "problem",
                answer_field: str = "answer", answer_format: str = "plain",
                limit: int | None = None) -> tuple[list[Problem], list[BadRow]]:
    records = load_records(path, split)
    return map_rows(records, file=path, source=source, problem_field=problem_field,
                    answer_field=answer_field, answer_format=answer_format, limit=limit)
