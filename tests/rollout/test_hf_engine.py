"""The HF reference rollout backend: structure, seeded reproducibility, log-prob parity, top-p."""
from __future__ import annotations

import pytest
import torch

from pipeline.models.forward import pack, response_logprobs_entropy
from pipeline.rollout import SamplingConfig, make_engine, resolve_backend, vllm_installed
from pipeline.rollout.hf import _filter_top_p

PROMPTS = ["Q: Start with 3. Add 4. What is the result?\nA:", "Q: Start with 12. Subtract 5. What is the result?\nA:"]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return make_engine("hf", model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer=tok, batch_size=4)


def test_structure_and_reproducibility(engine):
    cfg = SamplingConfig(n=3, temperature=1.0, top_p=1.0, max_new_tokens=40, seed=11)
    a, b = engine.generate(PROMPTS, cfg), engine.generate(PROMPTS, cfg)
    assert a == b
    c = engine.generate(PROMPTS, SamplingConfig(3, 1.0, 1.0, 40, seed=12))
    assert c != a
    assert len(a) == 2 and all(len(row) == 3 for row in a)
    eos = engine.tokenizer.eos_token_id
    for row in a:
        for comp in row:
            assert len(comp.token_ids) == len(comp.logprobs) <= 40
            assert all(lp <= 0 for lp in comp.logprobs)
            assert comp.finish_reason == ("stop" if comp.token_ids[-1] == eos else "length")
            assert comp.text == engine.tokenizer.decode(comp.token_ids, skip_special_tokens=True)
    assert len({comp.seed for row in a for comp in row}) == 6


def test_logprobs_match_teacher_forcing(engine):
    cfg = SamplingConfig(n=2, temperature=0.8, top_p=0.9, max_new_tokens=30, seed=3)
    out = engine.generate(PROMPTS, cfg)
    tok = engine.tokenizer
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS for _ in range(2)]
    comps = [c for row in out for c in row]
    batch = pack(prompts, [c.token_ids for c in comps], tok.pad_token_id)
    with torch.no_grad():
        lp, _, _ = response_logprobs_entropy(engine.model, batch)
    want = torch.tensor([x for c in comps for x in c.logprobs])
    assert torch.allclose(lp[batch.response_mask], want, atol=1e-5)


def test_greedy_is_deterministic_across_seeds(engine):
    a = engine.generate(PROMPTS[:1], SamplingConfig(2, 0.0, 1.0, 20, seed=1))
    b = engine.generate(PROMPTS[:1], SamplingConfig(1, 0.0, 1.0, 20, seed=99))
    assert a[0][0].token_ids == a[0][1].token_ids == b[0][0].token_ids


def test_top_p_filter_golden():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.equal(_filter_top_p(p, 0.7) > 0, torch.tensor([[True, True, False, False]]))
    assert torch.equal(_filter_top_p(p, 0.8) > 0, torch.tensor([[True, True, False, False]]))
    assert torch.equal(_filter_top_p(p, 1.0), p)


def test_backend_resolution():
    assert resolve_backend("auto") == ("vllm" if torch.cuda.is_available() and vllm_installed() else "hf")
    with pytest.raises(ValueError, match="unknown rollout backend 'tgi'"):
        resolve_backend("tgi")
