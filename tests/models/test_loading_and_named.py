"""Model loading on a resolved device and the randomly initialised named architecture (Qwen2.5-1.5B)."""
from __future__ import annotations

import pytest
import torch

from pipeline.models.named import NAMED_CONFIGS, build_named_model
from pipeline.models.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["Q: 1 + 2 = 3. The answer is 3."] * 4, 300)


def test_named_config_is_qwen25_15b_architecture(tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = NAMED_CONFIGS["qwen2.5-1.5b"]
    with torch.device("meta"):  # full size without allocating 6 GB
        model = Qwen2ForCausalLM(Qwen2Config(**cfg))
    n = sum(p.numel() for p in model.parameters())
    assert n == 1_543_714_304 and model.get_output_embeddings().weight.shape == (151936, 1536)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_build_named_model_random_init_reproducible_and_tokenizer_compatible(tokenizer):
    small = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1)
    a = build_named_model("qwen2.5-1.5b", tokenizer, seed=3, dtype=torch.bfloat16, **small)
    b = build_named_model("qwen2.5-1.5b", tokenizer, seed=3, dtype=torch.bfloat16, **small)
    assert a.config.vocab_size == 151936 and a.dtype == torch.bfloat16
    assert a.config.eos_token_id == tokenizer.eos_token_id
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(KeyError, match="unknown model.init_config"):
        build_named_model("gpt-5", tokenizer, seed=0)
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        build_named_model("qwen2.5-1.5b", tokenizer, seed=0, **{**small, "vocab_size": 10})


def test_every_schema_name_has_a_config():
    from typing import get_args, get_type_hints

    from pipeline.config.schema import ModelCfg

    names = [a for a in get_args(get_type_hints(ModelCfg)["init_config"]) if a is not type(None)]
    assert set(get_args(names[0]) if len(names) == 1 and get_args(names[0]) else names) == set(NAMED_CONFIGS)


def test_load_policy_puts_the_model_on_the_device_and_sets_attention(tiny_model_dir, monkeypatch):
    from pipeline.models import loading

    model, tok = loading.load_policy(str(tiny_model_dir), device="cpu", attn_implementation="eager")
    assert not model.training and tok.pad_token is not None and model.config._attn_implementation == "eager"
    moved = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or self)
    loading.load_policy(str(tiny_model_dir), device=torch.device("cuda", 1))
    assert moved == [(torch.device("cuda", 1),)]
