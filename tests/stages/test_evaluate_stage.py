"""Stage `evaluate` on the tiny model: base and trained, per-level breakdown, manifest, exact re-run."""
from __future__ import annotations

import json
import shutil

import pytest

from pipeline.config import load_params
from pipeline.data import synthetic
from pipeline.eval import manifest
from pipeline.utils.io import read_json, read_jsonl
from tests.train.helpers import make_workdir

pytestmark = pytest.mark.slow


def test_evaluate_stage_end_to_end_and_reproducible(tmp_path, monkeypatch, tiny_model_dir, shared_benchmarks):
    from pipeline.stages import evaluate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    shutil.copytree(tiny_model_dir, tmp_path / "models/trained/final")
    held_out = synthetic.generate(9, "eval", [1, 2, 5], 2)
    (tmp_path / "data/prepared").mkdir(parents=True, exist_ok=True)
    params_path = make_workdir(tmp_path, tiny_model_dir, **{
        "eval.n_samples": 4, "eval.max_new_tokens": 24, "eval.bootstrap": 50,
        "eval.benchmarks": [{"name": "synthetic"},
                            {"name": "amc23", "path": str(shared_benchmarks / "amc23.jsonl"), "n_samples": 1}]})
    (tmp_path / "data/prepared/eval.jsonl").write_text("".join(json.dumps(p.to_row()) + "\n" for p in held_out))
    params = load_params(params_path)
    summary = evaluate.run(params)
    assert set(summary) == {"base", "trained", "delta"}
    assert summary["delta"]["synthetic"]["avg@n"] == pytest.approx(0.0)  # same weights -> same numbers
    m = read_json(tmp_path / "data/eval/trained/synthetic/metrics.json")
    assert set(m["by_level"]) == {"1", "2", "5"} and m["n_problems"] == 6 and "pass@4" in m and "maj@4" in m
    rows = read_jsonl(tmp_path / "data/eval/trained/synthetic/samples.jsonl")
    assert len(rows) == 24 and {"problem_id", "sample", "seed", "completion", "extracted", "score", "status"} <= set(rows[0])
    assert len(read_jsonl(tmp_path / "data/eval/base/amc23/samples.jsonl")) == 40
    man = read_json(tmp_path / "data/eval/trained/manifest.json")
    assert manifest.check(man) == [] and {"torch", "transformers", "math-verify"} <= set(man["versions"])
    assert man["benchmarks"]["amc23"]["hash"] == manifest.file_hash(shared_benchmarks / "amc23.jsonl")
    first = read_json(tmp_path / "metrics/eval.json")
    evaluate.run(params)
    assert read_json(tmp_path / "metrics/eval.json") == first
    (tmp_path / "data/prepared/eval.jsonl").write_text("")
    assert any("synthetic" in d for d in manifest.check(man))
