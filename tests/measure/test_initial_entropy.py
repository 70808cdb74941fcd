"""H0 measurement: golden summary arithmetic, bootstrap CI, and a real run with SIREN/AEnt anchors."""
from __future__ import annotations

import math

import pytest

from pipeline.data import synthetic
from pipeline.eval.metrics import bootstrap_ratio_ci
from pipeline.measure.initial_entropy import measure, summarise
from pipeline.rl.methods.aent import AEnt, AentCfg
from pipeline.rl.methods.siren import Siren, SirenCfg
from pipeline.rollout import SamplingConfig, make_engine


def test_summarise_golden():
    stats = {"sum": [2.0, 1.0, 3.0], "count": [4, 2, 2],
             "anchors": {"siren_anchor": (2.0, 3.0), "aent_clamped_entropy": (4.0, 8.0)}}
    out = summarise(stats, ["a", "a", "b"], {"a": "hard", "b": "easy"}, bootstrap=0, seed=0)
    assert out["h0"] == pytest.approx(6 / 8) and out["n_tokens"] == 8
    assert out["per_bucket"]["hard"]["h0"] == pytest.approx(3 / 6) and out["per_bucket"]["easy"]["h0"] == 1.5
    assert out["siren_anchor"] == pytest.approx(2 / 3) and out["aent_clamped_entropy"] == pytest.approx(0.5)


def test_bootstrap_ci_contains_point_and_shrinks():
    nums = [float(i % 7) for i in range(200)]
    lo, hi = bootstrap_ratio_ci(nums, [1.0] * 200, resamples=500, seed=1)
    point = sum(nums) / 200
    assert lo < point < hi
    lo2, hi2 = bootstrap_ratio_ci(nums * 4, [1.0] * 800, resamples=500, seed=1)
    assert hi2 - lo2 < hi - lo


def test_measure_real(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    engine = make_engine("hf", model=model, tokenizer=tok)
    probs = synthetic.generate(2, "e", [1, 2], 3)
    res = measure(model, tok, engine, probs, {p.id: f"L{p.level}" for p in probs}, template="Q: {problem}\nA:",
                  use_chat_template=False, sampling=SamplingConfig(2, 1.0, 1.0, 32, seed=0), temperature=1.0,
                  chunk_size=64, bootstrap=200, anchors={"siren": (Siren, SirenCfg(top_k=100)),
                                                         "aent": (AEnt, AentCfg(clamp_p=0.33))})
    assert math.isfinite(res["h0"]) and 0 < res["h0"] < math.log(len(tok))
    assert res["h0_ci95"][0] <= res["h0"] <= res["h0_ci95"][1]
    assert set(res["per_bucket"]) == {"L1", "L2"} and res["n_responses"] == 12
    # the clamped entropy drops the lowest third of the vocabulary: below the full entropy, above zero
    assert 0 < res["aent_clamped_entropy"] < res["h0"] < math.log(len(tok))
    # the peak tokens' nucleus entropy, averaged over all responses: positive, and at most log(top_k)
    assert 0 < res["siren_anchor"] < math.log(100)
