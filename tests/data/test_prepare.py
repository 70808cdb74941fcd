"""`prepare` on configured sources: every bad row keeps its physical line, ids stay unique."""
from __future__ import annotations

import json

from pipeline.config.schema import DataCfg, SourceCfg, SyntheticCfg
from pipeline.data.prepare import prepare


def _cfg(*paths, synthetic: bool = False) -> DataCfg:
    return DataCfg(synthetic=SyntheticCfg(enabled=synthetic, n_train=5, n_eval_per_grade=1, train_grades=(1,),
                                          eval_grades=(1,)),
                   sources=tuple(SourceCfg(name=f"s{i}", path=str(p)) for i, p in enumerate(paths)))


def _write(path, lines):
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    return path


def test_regression_gold_check_rows_numbered_among_good_rows(tmp_path):
    """Regression: a failing gold was numbered by its position among the good rows (here 2, not 5)."""
    path = _write(tmp_path / "a.jsonl", [{"problem": "one", "answer": "1"}, "", {"problem": "no answer"},
                                         "{broken", {"problem": "bad gold", "answer": "\\frac{"}])
    result = prepare(_cfg(path), seed=0)
    assert [(b.row, b.reason.split(" ")[0]) for b in result.bad_rows] == [(3, "missing"), (4, "not"), (5, "gold")]
    assert [p.problem for p in result.train] == ["one"]


def test_regression_duplicate_ids_with_different_text_both_pass(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"id": "q1", "problem": "What is 1+1?", "answer": "2"},
                                      {"id": "q2", "problem": "What is 2+2?", "answer": "4"},
                                      {"id": "q1", "problem": "What is 1 + 1?", "answer": "2"},
                                      {"id": "q2", "problem": "what is 2+2?  ", "answer": "4"}])
    b = _write(tmp_path / "b.jsonl", [{"id": "q1", "problem": "What is 9+9?", "answer": "18"}])
    result = prepare(_cfg(a, b), seed=0)
    assert sorted(p.id for p in result.train) == ["q1", "q2"]
    assert [(b.file, b.row) for b in result.bad_rows] == [(str(a), 3), (str(b), 1)]
    assert all(f"with different problem text (first at {a}:1)" in b.reason for b in result.bad_rows)
    assert result.metrics["n_duplicates"] == 1 and result.metrics["n_bad_rows"] == 2


def test_source_id_colliding_with_a_generated_id_is_a_bad_row(tmp_path):
    generated = prepare(_cfg(synthetic=True), seed=0).train[0]
    path = _write(tmp_path / "a.jsonl", [{"id": generated.id, "problem": "Other text?", "answer": "3"}])
    result = prepare(_cfg(path, synthetic=True), seed=0)
    assert [(b.row, b.reason) for b in result.bad_rows] == [
        (1, f"duplicate id {generated.id!r} (already used by a generated problem)")]
    assert sum(p.id == generated.id for p in result.train) == 1
