"""Source mapping: field mappings, bad rows reported with file and row, unreadable files named."""
from __future__ import annotations

import json

import pytest

from pipeline.data.sources import SourceError, load_source, map_rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_gsm8k_mapping_and_bad_rows(tmp_path):
    path = _write(tmp_path / "gsm.jsonl", [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
        {"question": "", "answer": "#### 1"},
        {"question": "No marker", "answer": "just text"},
        {"question": "Big", "answer": "#### 1,200"},
    ])
    problems, bad = load_source(path, source="gsm8k", problem_field="question", answer_format="gsm8k")
    assert [p.answer for p in problems] == ["7", "1200"]
    assert [(b.file, b.row) for b in bad] == [(path, 2), (path, 3)]
    assert "not non-empty text" in bad[0].reason and "gsm8k" in bad[1].reason


def test_boxed_solution_mapping_and_limit():
    rows = [{"problem": "p1", "solution": "so \\boxed{\\frac{1}{2}}"}, {"problem": "p2", "solution": "x"},
            {"problem": "p3", "solution": "\\boxed{3}"}]
    problems, bad = map_rows(rows, file="mem", source="math", answer_field="solution", answer_format="boxed",
                             limit=1)
    assert [p.answer for p in problems] == ["\\frac{1}{2}"] and bad == []


def test_missing_fields_and_numeric_answers():
    rows = [{"problem": "a", "answer": 12}, {"problem": "b"}, {"text": "c", "answer": "1"},
            {"problem": "d", "answer": 2.0}, {"problem": "e", "answer": "  "}]
    problems, bad = map_rows(rows, file="f.jsonl", source="s")
    assert [p.answer for p in problems] == ["12", "2"]
    assert [(b.row, b.reason.split(" '")[0]) for b in bad] == [
        (2, "missing answer field"), (3, "missing field"), (5, "empty or unreadable answer in")]


def test_parquet_source(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"problem": ["1+1?"], "answer": ["2"]}), path)
    problems, bad = load_source(str(path), source="pq")
    assert problems[0].problem == "1+1?" and problems[0].answer == "2" and not bad


def test_unreadable_sources_are_named(tmp_path):
    with pytest.raises(SourceError, match="missing.jsonl: file not found"):
        load_source(str(tmp_path / "missing.jsonl"), source="x")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"problem": "a", "answer": "1"}\n{not json\n')
    with pytest.raises(SourceError, match="broken.jsonl: cannot be read"):
        load_source(str(broken), source="x")
    with pytest.raises(SourceError, match="no-such/dataset-id: cannot be read.*hub access is off"):
        load_source("no-such/dataset-id", source="x")
