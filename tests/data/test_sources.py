"""Source mapping: field mappings, bad rows reported with file and physical line, unreadable files named."""
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
    problems, bad, _ = load_source(path, source="gsm8k", problem_field="question", answer_format="gsm8k")
    assert [p.answer for p in problems] == ["7", "1200"]
    assert [(b.file, b.row) for b in bad] == [(path, 2), (path, 3)]
    assert "not non-empty text" in bad[0].reason and "gsm8k" in bad[1].reason


def test_boxed_solution_mapping_and_limit():
    rows = [{"problem": "p1", "solution": "so \\boxed{\\frac{1}{2}}"}, {"problem": "p2", "solution": "x"},
            {"problem": "p3", "solution": "\\boxed{3}"}]
    problems, bad, _ = map_rows(rows, file="mem", source="math", answer_field="solution", answer_format="boxed",
                             limit=1)
    assert [p.answer for p in problems] == ["\\frac{1}{2}"] and bad == []


def test_missing_fields_and_numeric_answers():
    rows = [{"problem": "a", "answer": 12}, {"problem": "b"}, {"text": "c", "answer": "1"},
            {"problem": "d", "answer": 2.0}, {"problem": "e", "answer": "  "}]
    problems, bad, _ = map_rows(rows, file="f.jsonl", source="s")
    assert [p.answer for p in problems] == ["12", "2"]
    assert [(b.row, b.reason.split(" '")[0]) for b in bad] == [
        (2, "missing answer field"), (3, "missing field"), (5, "empty or unreadable answer in")]


def test_parquet_source(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"problem": ["1+1?"], "answer": ["2"]}), path)
    problems, bad, rows = load_source(str(path), source="pq")
    assert problems[0].problem == "1+1?" and problems[0].answer == "2" and not bad and rows == [1]


def test_unreadable_sources_are_named(tmp_path):
    with pytest.raises(SourceError, match="missing.jsonl: file not found"):
        load_source(str(tmp_path / "missing.jsonl"), source="x")
    with pytest.raises(SourceError, match="no-such/dataset-id: cannot be read.*hub access is off"):
        load_source("no-such/dataset-id", source="x")


def test_regression_row_numbers_shift_after_a_blank_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"problem": "a", "answer": "1"}\n\n\n{"problem": "", "answer": "2"}\n'
                    '{"problem": "c", "answer": "3"}\r\n')
    problems, bad, rows = load_source(str(path), source="s")
    assert [(b.row, b.reason.split(" '")[0]) for b in bad] == [(4, "field")]
    assert rows == [1, 5] and [p.id for p in problems] == ["s-000001", "s-000005"]


@pytest.mark.parametrize("line,reason", [
    (b"{not json\n", "not valid JSON"),
    (b"\x00\x00\x00\n", "contains a NUL byte"),
    (b"[1, 2]\n", "not a JSON object (a list)"),
    (b"null\n", "not a JSON object"),
])
def test_regression_one_bad_line_rejects_the_whole_file(tmp_path, line, reason):
    """Regression: `datasets` refused the whole file over one line, naming "row 1" for line 2."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"problem": "a", "answer": "1"}\n' + line + b'{"problem": "b", "answer": "2"}\n')
    problems, bad, rows = load_source(str(path), source="s")
    assert [p.problem for p in problems] == ["a", "b"] and rows == [1, 3]
    assert [(b.file, b.row) for b in bad] == [(str(path), 2)] and reason in bad[0].reason


def test_regression_truncated_last_line_rejects_the_whole_file(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b", "ans')
    problems, bad, _ = load_source(str(path), source="s")
    assert [p.problem for p in problems] == ["a"]
    assert bad[0].row == 2 and "truncated" in bad[0].reason


def test_regression_latin1_file_gives_a_raw_traceback(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes('{"problem": "plain", "answer": "1"}\n{"problem": "caf\u00e9 costs?", "answer": "2"}\n'
                     .encode("latin-1"))
    problems, bad, _ = load_source(str(path), source="s")
    assert [p.problem for p in problems] == ["plain"]
    assert bad[0].row == 2 and "not UTF-8 text (byte 0xe9" in bad[0].reason and "latin-1" in bad[0].reason
    path.write_bytes('{"problem": "caf\u00e9", "answer": "2"}\n'.encode("latin-1"))
    with pytest.raises(SourceError, match=r"s.jsonl:1: not UTF-8 text.*no row of the file could be read"):
        load_source(str(path), source="s")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_regression_empty_file_says_stopiteration(tmp_path, content):
    path = tmp_path / "s.jsonl"
    path.write_text(content)
    with pytest.raises(SourceError, match=r"s.jsonl: no rows \(the file is empty\)"):
        load_source(str(path), source="s")


def test_regression_csv_and_directory_named_jsonl_get_misleading_messages(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("problem,answer\n1+1,2\n")
    with pytest.raises(SourceError, match=r"s.csv: unsupported file type '.csv'. Fix: convert it to .jsonl"):
        load_source(str(csv), source="s")
    with pytest.raises(SourceError, match=r"gone.csv: file not found"):
        load_source(str(tmp_path / "gone.csv"), source="s")
    (tmp_path / "x.jsonl").mkdir()
    with pytest.raises(SourceError, match=r"x.jsonl: is a directory, not a file"):
        load_source(str(tmp_path / "x.jsonl"), source="s")


def test_json_array_file_rows_are_numbered_by_position(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"problem": "a", "answer": "1"}, 5, {"problem": "b"}]))
    problems, bad, rows = load_source(str(path), source="s")
    assert [p.problem for p in problems] == ["a"] and rows == [1]
    assert [(b.row, b.reason.split(" (")[0]) for b in bad] == [(2, "not a JSON object"), (3, "missing answer field 'answer'")]


def test_regression_null_id_becomes_the_string_none():
    rows = [{"id": None, "problem": "a", "answer": "1"}, {"id": None, "problem": "b", "answer": "2"},
            {"id": 17, "problem": "c", "answer": "3"}, {"id": " ", "unique_id": "u-4", "problem": "d", "answer": "4"},
            {"id": ["x"], "problem": "e", "answer": "5"}]
    problems, bad, rows_out = map_rows(rows, file="f.jsonl", source="s", row_numbers=[2, 3, 5, 6, 9])
    assert [p.id for p in problems] == ["s-000002", "s-000003", "17", "u-4"] and rows_out == [2, 3, 5, 6]
    assert [(b.row, b.reason) for b in bad] == [(9, "field 'id' = ['x'] is not text or an integer")]
