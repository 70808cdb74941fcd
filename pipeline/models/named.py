"""Randomly initialised models of named public architectures, built without any download.

`model.init_config: qwen2.5-1.5b` makes the base_model stage build a Qwen2ForCausalLM with the
architecture of Qwen2.5-1.5B (values written out from its public config.json: 28 layers, hidden 1536,
MLP 8960, 12 query / 2 key-value heads, tied embeddings, V = 151,936; 1.544 B parameters) with random
weights and the locally trained tokenizer.  It is for GPU smoke runs and benchmarks: the compute and
memory of the real model, none of its ability.  Token ids beyond the small tokenizer decode to nothing.
"""
from __future__ import annotations

import torch

NAMED_CONFIGS: dict[str, dict] = {
    "qwen2.5-1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                         rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True),
}


def build_named_model(name: str, tokenizer, *, seed: int, dtype: torch.dtype = torch.float32, **overrides):
    """A randomly initialised Qwen2ForCausalLM of architecture `name` (`overrides` shrink it in tests)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if name not in NAMED_CONFIGS:
        raise KeyError(f"unknown model.init_config {name!r}; known: {', '.join(NAMED_CONFIGS)}")
    values = {**NAMED_CONFIGS[name], **overrides}
    if values["vocab_size"] < len(tokenizer):
        raise ValueError(f"{name}: vocab_size {values['vocab_size']} is smaller than the tokenizer ({len(tokenizer)})")
    torch.manual_seed(seed)
    config = Qwen2Config(**values, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return Qwen2ForCausalLM(config).to(dtype)
