"""Stop tokens in both backends, vLLM sleep mode around updates, the progress bar, and backend choice.

The stop test needs no special model: sample once without a stop token, take a token the samples use,
then sample again with the same seeds and that token as a stop: every completion must be the first
one cut just after the token's first occurrence, finished as "stop"."""
from __future__ import annotations

import sys
import types
from collections import Counter

import pytest

from pipeline.rollout import SamplingConfig, make_engine

PROMPTS = ["Q: Start with 3. Add 4. What is the result?\nA:", "Q: Start with 12. Subtract 5. What is the result?\nA:"]
CFG = SamplingConfig(n=3, temperature=1.0, top_p=1.0, max_new_tokens=24, seed=7)


def _check_cut_at_stop(free, stopped, stop: int, eos: int) -> int:
    n_cut = 0
    for row_f, row_s in zip(free, stopped):
        for f, s in zip(row_f, row_s):
            toks = list(f.token_ids)
            if stop in toks:
                cut = toks[:toks.index(stop) + 1]
                assert list(s.token_ids) == cut and s.finish_reason == "stop" and s.logprobs == f.logprobs[:len(cut)]
                n_cut += len(toks) > len(cut) or toks[-1] != eos
            else:
                assert s.token_ids == f.token_ids and s.finish_reason == f.finish_reason
    return n_cut


def _common_token(rows, eos: int) -> int:
    counts = Counter(t for row in rows for c in row for t in c.token_ids[:-1] if t != eos)
    return counts.most_common(1)[0][0]


def test_hf_backend_stops_at_any_stop_id(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    free = make_engine("hf", model=model, tokenizer=tok, batch_size=4).generate(PROMPTS, CFG)
    stop = _common_token(free, tok.eos_token_id)
    engine = make_engine("hf", model=model, tokenizer=tok, batch_size=4, stop_ids=[stop])
    assert engine.stop_ids == [tok.eos_token_id, stop]
    assert _check_cut_at_stop(free, engine.generate(PROMPTS, CFG), stop, tok.eos_token_id) >= 1


@pytest.mark.slow
def test_vllm_backend_stops_at_any_stop_id(tiny_model_dir):
    free_engine = make_engine("vllm", model_path=str(tiny_model_dir), seed=0)
    free = free_engine.generate(PROMPTS, CFG)
    eos = free_engine.tokenizer.eos_token_id
    free_engine.close()
    stop = _common_token(free, eos)
    engine = make_engine("vllm", model_path=str(tiny_model_dir), seed=0, stop_ids=[stop])
    try:
        assert _check_cut_at_stop(free, engine.generate(PROMPTS, CFG), stop, eos) >= 1
    finally:
        engine.close()


class FakeTokenizer:
    eos_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1, 2]}

    def decode(self, toks, skip_special_tokens=True):
        return "x" * len(toks)


class FakeLLM:
    """Records the calls VLLMEngine makes; generates one fixed token per request."""
    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, requests, params, use_tqdm):
        self.calls.append(("generate", use_tqdm, [p.stop_token_ids for p in params][:1]))
        out = types.SimpleNamespace(token_ids=[5], logprobs=[{5: types.SimpleNamespace(logprob=-0.5)}],
                                    finish_reason="stop")
        return [types.SimpleNamespace(outputs=[out]) for _ in requests]

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tags))

    def collective_rpc(self, method, kwargs):
        self.calls.append((method,))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


@pytest.fixture
def fake_vllm(monkeypatch):
    import vllm

    FakeLLM.instances = []
    monkeypatch.setattr(vllm, "LLM", FakeLLM)
    return FakeLLM


@pytest.mark.parametrize("tty", [False, True])
def test_vllm_sleeps_after_generate_and_wakes_for_sync_and_generate(fake_vllm, monkeypatch, tty):
    from pipeline.rollout.vllm_engine import VLLMEngine

    monkeypatch.setattr(sys, "stderr", types.SimpleNamespace(isatty=lambda: tty, write=lambda s: None))
    engine = VLLMEngine("m", sleep_mode=True, stop_ids=[0, 9])
    llm = fake_vllm.instances[-1]
    assert llm.kwargs["enable_sleep_mode"] is True
    engine.generate(["a"], SamplingConfig(1, 1.0, 1.0, 4, 0))
    engine.sync_weights({"w": __import__("torch").zeros(1)})
    engine.generate(["a"], SamplingConfig(1, 1.0, 1.0, 4, 0))
    assert llm.calls == [("generate", tty, [[9]]), ("sleep", 1), ("wake_up", None), ("reload_weights",),
                         ("reset_prefix_cache",), ("generate", tty, [[9]]), ("sleep", 1)]


def test_vllm_without_sleep_mode_never_sleeps(fake_vllm):
    from pipeline.rollout.vllm_engine import VLLMEngine

    engine = VLLMEngine("m")
    engine.generate(["a"], SamplingConfig(2, 1.0, 1.0, 4, 0))
    llm = fake_vllm.instances[-1]
    assert "enable_sleep_mode" not in llm.kwargs and [c[0] for c in llm.calls] == ["generate"]
