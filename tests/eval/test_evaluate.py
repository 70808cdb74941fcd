"""Evaluation metrics on hand-made samples: avg@n, pass@k, maj@k with equivalence, CIs, per level."""
from __future__ import annotations

import pytest

from pipeline.data import synthetic
from pipeline.eval.evaluate import evaluate, ks_for, majority_correct, summarise
from pipeline.rollout import SamplingConfig, make_engine


def _eq(a, b):
    return {a, b} in ({"1/2", "0.5"}, {"0.5", "\\frac{1}{2}"}, {"1/2", "\\frac{1}{2}"})


def test_ks():
    assert ks_for(1) == [1] and ks_for(8) == [1, 2, 4, 8] and ks_for(6) == [1, 2, 4, 6]


def test_majority_groups_equivalent_answers():
    # "1/2" and "0.5" are one class of 2 votes and beat "3" (1 vote) even though "3" comes first.
    assert majority_correct(["3", "1/2", "0.5"], [0.0, 1.0, 1.0], _eq) == 1.0
    assert majority_correct(["3", "3", "0.5"], [0.0, 0.0, 1.0], _eq) == 0.0
    assert majority_correct([None, None], [0.0, 0.0], _eq) == 0.0
    assert majority_correct(["4", "5"], [1.0, 0.0], _eq) == 1.0  # tie: first seen wins


def test_majority_with_real_math_verify():
    assert majority_correct(["7", "\\frac{1}{2}", "0.5"], [0.0, 1.0, 1.0]) == 1.0


def _row(pid, j, score, pred, level=1):
    return {"problem_id": pid, "sample": j, "seed": j, "level": level, "completion": "", "extracted": pred,
            "score": score, "status": "ok" if score else "wrong", "n_tokens": 10, "truncated": False}


def test_summarise_golden():
    rows = [_row("a", 0, 1.0, "2"), _row("a", 1, 0.0, "3"), _row("a", 2, 0.0, "3"), _row("a", 3, 1.0, "2"),
            _row("b", 0, 0.0, "9"), _row("b", 1, 0.0, "8"), _row("b", 2, 0.0, None), _row("b", 3, 0.0, "8")]
    m = summarise(rows, 4, bootstrap=200, seed=0, equivalent=lambda a, b: False)
    assert m["avg@n"]["mean"] == pytest.approx(0.25)
    assert m["pass@1"]["mean"] == pytest.approx(0.25)
    assert m["pass@2"]["mean"] == pytest.approx((1 - 1 / 6) / 2)  # problem a: 1 - C(2,2)/C(4,2)
    assert m["pass@4"]["mean"] == pytest.approx(0.5)
    assert m["maj@1"]["mean"] == pytest.approx(0.5) and m["maj@4"]["mean"] == pytest.approx(0.5)
    assert m["status"] == {"ok": 2, "wrong": 6}
    lo, hi = m["avg@n"]["ci95"]
    assert lo <= 0.25 <= hi


def test_evaluate_is_reproducible(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    engine = make_engine("hf", model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer=tok)
    probs = synthetic.generate(4, "ev", [1, 2], 2)
    kw = dict(template="Q: {problem}\nA:", use_chat_template=False, sampling=SamplingConfig(4, 0.6, 0.95, 32, 3),
              bootstrap=100)
    rows, metrics = evaluate(engine, tok, probs, **kw)
    assert len(rows) == 16 and {r["sample"] for r in rows} == {0, 1, 2, 3}
    assert set(metrics["by_level"]) == {"1", "2"} and "maj@4" in metrics and "pass@4" in metrics
    again_rows, again = evaluate(engine, tok, probs, **kw)
    assert again == metrics and again_rows == rows
