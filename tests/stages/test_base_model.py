"""The warm start's SFT set: no held-out problem, every grade present, worked steps noisy at the set rate."""
from __future__ import annotations

import re

from pipeline.config import load_params
from pipeline.data import synthetic
from pipeline.data.schema import normalize_text
from pipeline.utils.io import read_jsonl


def test_sft_problems_exclude_held_out_keep_one_step_chains(tmp_path, monkeypatch, tiny_params_file):
    from pipeline.stages import base_model, prepare

    monkeypatch.chdir(tmp_path)
    params = load_params(tiny_params_file(**{"tracking.enabled": False, "model.sft.n_examples": 800, "data.synthetic.n_train": 900,
                                             "model.sft.step_noise": 0.25}))
    prepare.run(params)
    held_out = {normalize_text(r["problem"]) for r in read_jsonl(tmp_path / "data/prepared/eval.jsonl")}
    sft = base_model.sft_problems(params)
    assert held_out and not held_out & {normalize_text(p.problem) for p in sft}
    # regression: excluding the training split as well left no one-step chain, and the base model
    # then never stopped after one step (grade-1 pass rate 0.05)
    assert {p.level for p in sft} == set(range(1, params.model.sft.max_grade + 1))
    wrong = total = 0
    for p in sft:
        for v, op, r in re.findall(r"[a-l]:(\d)([+-][a-z]+)=(\d)", p.solution):
            wrong += int(r) != synthetic.apply_op(int(v), op)
            total += 1
    assert total > 1000 and 0.21 < wrong / total < 0.29
