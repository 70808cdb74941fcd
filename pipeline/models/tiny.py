"""The embedded base model: a small Qwen2-architecture causal LM warm-started on worked solutions.

The CPU default cannot download a model, so the pipeline builds one: a Qwen2ForCausalLM (tied
embeddings, grouped-query attention, head size >= 32 so vLLM's CPU attention accepts it) trained for a
few hundred supervised steps on generated step-by-step solutions.  The short warm start is deliberate:
it leaves easy grades mostly solved and hard grades mostly unsolved, which is what difficulty-aware
entropy regularization needs to act on.  Saved with `save_pretrained`, so transformers, vLLM and
DeepSpeed load it like any hub model.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Sequence

import torch

from pipeline.utils.io import atomic_dir


def build_tiny_model(tokenizer, *, hidden_size: int, num_layers: int, num_heads: int, num_kv_heads: int,
                     intermediate_size: int, max_position_embeddings: int, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, rope_theta=10000.0, torch_dtype="float32",
    )
    return Qwen2ForCausalLM(config)


def encode_examples(tokenizer, prompts: Sequence[str], completions: Sequence[str], max_len: int
                    ) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per example; completions end with EOS; over-long ones are dropped."""
    out = []
    for prompt, completion in zip(prompts, completions):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(p) + len(c) <= max_len:
            out.append((p + c, len(p)))
    return out


def _batch(examples: list[tuple[list[int], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ids [B,T], attention mask [B,T], labels [B,T] (-100 on prompt and padding)."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (seq, plen) in enumerate(examples):
        ids[i, :len(seq)] = torch.tensor(seq)
        attn[i, :len(seq)] = 1
        labels[i, plen:len(seq)] = torch.tensor(seq[plen:])
    return ids, attn, labels


def sft_train(model, tokenizer, examples: list[tuple[list[int], int]], *, steps: int, batch_size: int,
              lr: float, warmup_steps: int, seed: int, log_every: int = 50) -> list[dict]:
    """Completion-only cross-entropy with AdamW and linear warm-up + cosine decay; returns loss history."""
    if not examples:
        raise ValueError("sft_train: no examples fit in the model's context")
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, warmup_steps)) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / max(1, steps)))))
    model.train()
    history, running = [], 0.0
    for step in range(steps):
        ids, attn, labels = _batch(rng.sample(examples, min(batch_size, len(examples))), tokenizer.pad_token_id)
        loss = model(input_ids=ids, attention_mask=attn, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            n = (step % log_every) + 1
            history.append({"step": step + 1, "loss": running / n, "lr": sched.get_last_lr()[0]})
            running = 0.0
    model.eval()
    return history


def save_model(model, tokenizer, path: str | Path) -> None:
    """save_pretrained into a temp dir renamed into place, so a crash never leaves half a model."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
