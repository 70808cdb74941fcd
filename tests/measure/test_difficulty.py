"""Pass-rate estimation: Wilson intervals, buckets, filters, and a real run through the HF engine."""
from __future__ import annotations

import pytest

from pipeline.data import synthetic
from pipeline.measure.difficulty import bucket_of, estimate, pass_rate_rows, wilson_interval
from pipeline.rollout import SamplingConfig, make_engine


def test_wilson_golden():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) == (0.0, 1.0)


def test_buckets_and_filters():
    edges = (0.25, 0.5, 0.75)
    assert [bucket_of(p, edges) for p in (0.0, 0.25, 0.6, 1.0)] == ["0.00-0.25", "0.25-0.50", "0.50-0.75", "0.75-1.00"]
    probs = synthetic.generate(0, "t", [1], 3)
    rows = pass_rate_rows(probs, [0, 2, 4], 4, edges, drop_always_solved=True, drop_never_solved=True)
    assert [r["kept"] for r in rows] == [False, True, False] and rows[1]["pass_rate"] == 0.5


def test_estimate_with_real_rollouts(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = make_engine("hf", model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer=tok)
    probs = synthetic.generate(1, "d", [1, 3], 3)
    rows, metrics = estimate(engine, tok, probs, template="Q: {problem}\nA:", use_chat_template=False,
                             sampling=SamplingConfig(4, 1.0, 1.0, 40, seed=0), edges=(0.5,), prompts_per_call=4)
    assert [r["id"] for r in rows] == [p.id for p in probs]
    assert all(r["n"] == 4 and 0 <= r["correct"] <= 4 for r in rows)
    assert sum(metrics["verifier_status"].values()) == 24
    assert sum(metrics["bucket_counts"].values()) == 6 and set(metrics["pass_rate_by_level"]) == {"1", "3"}
    again, _ = estimate(engine, tok, probs, template="Q: {problem}\nA:", use_chat_template=False,
                        sampling=SamplingConfig(4, 1.0, 1.0, 40, seed=0), edges=(0.5,), prompts_per_call=4)
    assert again == rows
