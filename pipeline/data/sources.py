"""Loading problem rows from hub dataset ids or local jsonl/json/parquet files through `datasets`.

A source names a path and a field mapping (MATH-style `problem`/`answer`, GSM8K-style `question` with a
`#### answer` tail, or a solution whose last \\boxed{} holds the answer).  `map_rows` turns raw records
into `Problem`s and `BadRow`s; it never drops a row without recording why.  Local jsonl files are read
here, line by line, so a bad line is one bad row (with its physical line number) and the rest loads;
parquet files and hub ids go through `datasets`.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Optional, Sequence

from pipeline.data.schema import BadRow, Problem, answer_to_text, strip_instruction
from pipeline.rewards.extract import extract_boxed
from pipeline.utils.io import InputError, check_file, scan_jsonl

_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
# Suffixes that mean "a local file" even when it does not exist, so the error is not about the hub.
_OTHER_FILE_SUFFIXES = (".csv", ".tsv", ".txt", ".gz", ".zip", ".xz", ".bz2", ".arrow", ".xlsx", ".xls", ".yaml")


class SourceError(InputError):
    """A source that cannot be read at all (missing file, bad format, hub id unavailable offline)."""


@dataclass
class Records:
    """Raw rows of one file with the row number of each (the physical line for jsonl files, the 1-based
    position for parquet and hub datasets) and the lines that could not be read at all."""
    rows: list[tuple[int, dict[str, Any]]]
    bad: list[BadRow]


class Mapped(NamedTuple):
    problems: list[Problem]
    bad: list[BadRow]
    rows: list[int]  # rows[i] is the row number of problems[i] in its file


def is_local(path: str) -> bool:
    return Path(path).suffix.lower() in _FILE_SUFFIXES + _OTHER_FILE_SUFFIXES or os.path.exists(path)


def load_records(path: str, split: str = "train") -> Records:
    """All rows of a local file or hub dataset; an unreadable jsonl line becomes a bad row while the rest
    loads.  A file that cannot be used at all raises SourceError naming the path (and line)."""
    suffix = Path(path).suffix.lower()
    if is_local(path):
        try:
            check_file(path)
        except InputError as exc:
            raise SourceError(str(exc)) from None
        if suffix not in _FILE_SUFFIXES:
            raise SourceError(f"{path}: unsupported file type '{suffix or Path(path).name}'. "
                              "Fix: convert it to .jsonl (one JSON object per line) or .parquet")
        records = _read_json_file(path) if suffix in (".jsonl", ".json") else _read_with_datasets(path, split)
    else:
        records = _read_with_datasets(path, split)
    if not records.rows:
        if records.bad:
            first = records.bad[0]
            raise SourceError(f"{path}:{first.row}: {first.reason}; no row of the file could be read")
        raise SourceError(f"{path}: no rows (the file is empty). Fix: point the source at a file with data")
    return records


def _read_json_file(path: str) -> Records:
    """jsonl (one object per line), or for .json also a whole-file JSON array of objects."""
    if path.lower().endswith(".json"):
        with contextlib.suppress(ValueError):
            whole = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
            if isinstance(whole, list):
                rows = [(i, r) for i, r in enumerate(whole, 1) if isinstance(r, dict)]
                bad = [BadRow(path, i, f"not a JSON object (a {type(r).__name__})")
                       for i, r in enumerate(whole, 1) if not isinstance(r, dict)]
                return Records(rows, bad)
    records = Records([], [])
    for lineno, value, problem in scan_jsonl(path):
        if problem is None:
            records.rows.append((lineno, value))
        else:
            records.bad.append(BadRow(path, lineno, problem))
    return records


def _read_with_datasets(path: str, split: str) -> Records:
    import datasets

    datasets.disable_progress_bars()
    try:
        if Path(path).suffix.lower() == ".parquet":
            ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
        else:
            ds = datasets.load_dataset(path, split=split)
    except Exception as exc:  # datasets raises many types; the caller needs the path and the cause
        hint = " (hub access is off: HF_DATASETS_OFFLINE=1; use a local copy)" if not is_local(path) else ""
        raise SourceError(f"{path}: cannot be read{hint}: {type(exc).__name__}: {exc}") from exc
    return Records([(i, dict(r)) for i, r in enumerate(ds, 1)], [])


def gsm8k_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    return text.rsplit("####", 1)[1].strip().replace(",", "") or None


def map_rows(records: Iterable[dict[str, Any]], *, file: str, source: str, problem_field: str = "problem",
             answer_field: str = "answer", answer_format: str = "plain", limit: int | None = None,
             row_numbers: Optional[Sequence[int]] = None) -> Mapped:
    """Map raw rows to Problems.  `row_numbers[i]` is the row number of `records[i]` in its file (default
    1, 2, ...); every BadRow and `Mapped.rows` carry it."""
    out = Mapped([], [], [])
    for i, rec in enumerate(records):
        if limit is not None and len(out.problems) >= limit:
            break
        row_no = row_numbers[i] if row_numbers is not None else i + 1
        problem = _map_row(rec, row_no, source, problem_field, answer_field, answer_format)
        if isinstance(problem, str):
            out.bad.append(BadRow(file, row_no, problem))
        else:
            out.problems.append(problem)
            out.rows.append(row_no)
    return out


def _map_row(rec: dict, row_no: int, source: str, problem_field: str, answer_field: str,
             answer_format: str) -> Problem | str:
    """The row as a Problem, or the reason it cannot be one."""
    if problem_field not in rec:
        return f"missing field '{problem_field}'"
    text = rec[problem_field]
    if not isinstance(text, str) or not text.strip():
        return f"field '{problem_field}' is not non-empty text"
    raw = rec.get(answer_field)
    if raw is None:
        return f"missing answer field '{answer_field}'"
    answer = _answer(raw, answer_format)
    if answer is None:
        return f"empty or unreadable answer in '{answer_field}' ({answer_format})"
    row_id = _row_id(rec, source, row_no)
    if row_id is None:
        return f"field 'id' = {rec.get('id')!r} is not text or an integer"
    level = rec.get("level")
    return Problem(id=row_id, problem=strip_instruction(text), answer=answer, source=source,
                   level=level if isinstance(level, int) and not isinstance(level, bool) else None,
                   solution=rec.get("solution") if isinstance(rec.get("solution"), str) else None)


def _row_id(rec: dict, source: str, row_no: int) -> str | None:
    """`id` (or `unique_id`) as text; a missing, null or blank id gets `<source>-<row>` (null used to become
    the string 'None', shared by every such row).  None for an id that is not text or an integer."""
    value = rec.get("id")
    if value is None or (isinstance(value, str) and not value.strip()):
        value = rec.get("unique_id")
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"{source}-{row_no:06d}"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip()


def _answer(raw: Any, answer_format: str) -> str | None:
    if answer_format == "gsm8k":
        return gsm8k_answer(raw) if isinstance(raw, str) else None
    if answer_format == "boxed":
        return extract_boxed(raw) if isinstance(raw, str) else None
    return answer_to_text(raw)


def load_source(path: str, *, source: str, split: str = "train", problem_field: str = "problem",
                answer_field: str = "answer", answer_format: str = "plain",
                limit: int | None = None) -> Mapped:
    """Problems of one source, its bad rows (unreadable lines first) and the row number of each problem."""
    records = load_records(path, split)
    mapped = map_rows([r for _, r in records.rows], file=path, source=source, problem_field=problem_field,
                      answer_field=answer_field, answer_format=answer_format, limit=limit,
                      row_numbers=[n for n, _ in records.rows])
    return Mapped(mapped.problems, sorted(records.bad + mapped.bad, key=lambda b: b.row), mapped.rows)
