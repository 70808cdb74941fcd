"""The reference rollout backend: batched sampling with transformers models and a KV cache.

A hand-written decode loop instead of `generate` so that each sample draws from its own seeded
generator (reproducible per request, like vLLM's `SamplingParams(seed=...)`) and so that the raw
log-prob of each sampled token comes out of the same forward pass.  Prompts are left-padded with
explicit position ids.  A row stops at EOS or any other stop id (e.g. <|im_end|> of a chat template),
which stays in its token ids like vLLM's `stop_token_ids`.  On CPU with tiny models this is as fast as vLLM.
"""
from __future__ import annotations

from typing import Sequence

import torch

from pipeline.rollout.types import Completion, SamplingConfig, sample_seed
from pipeline.utils.progress import progress


def _filter_top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest prefix whose mass reaches top_p (the crossing token kept)."""
    if top_p >= 1.0:
        return probs
    sorted_p, idx = probs.sort(dim=-1, descending=True)
    drop = sorted_p.cumsum(-1) - sorted_p >= top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter_(-1, idx, sorted_p)


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[i, width - len(p):] = 1
    return ids, attn


@torch.no_grad()
def sample_batch(model, prompts: Sequence[Sequence[int]], seeds: Sequence[int], *, temperature: float,
                 top_p: float, max_new_tokens: int, stop_ids: Sequence[int], pad_id: int
                 ) -> list[tuple[list[int], list[float], str]]:
    """prompts: token id lists -> per row (token ids, raw log-probs, finish reason); a row ends at any stop id."""
    stops = set(stop_ids)
    ids, attn = _left_pad(prompts, pad_id)
    dev = next(model.parameters()).device
    ids, attn = ids.to(dev), attn.to(dev)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
    tokens: list[list[int]] = [[] for _ in prompts]
    logps: list[list[float]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1].float()
        raw = torch.log_softmax(logits, -1).cpu()
        probs = None if temperature == 0 else _filter_top_p(torch.softmax(logits / temperature, -1), top_p).cpu()
        nxt = torch.full((len(prompts),), pad_id, dtype=torch.long)
        for i in range(len(prompts)):
            if done[i]:
                continue
            tok = int(raw[i].argmax()) if probs is None else int(torch.multinomial(probs[i], 1, generator=gens[i]))
            tokens[i].append(tok)
            logps[i].append(float(raw[i, tok]))
            nxt[i] = tok
            done[i] = tok in stops
        if all(done):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        pos = pos[:, -1:] + 1
        out = model(input_ids=nxt[:, None].to(dev), attention_mask=attn, position_ids=pos,
                    past_key_values=out.past_key_values, use_cache=True)
    return [(t, lp, "stop" if t and t[-1] in stops else "length") for t, lp in zip(tokens, logps)]


class HFEngine:
    """Rollouts from an in-memory transformers model; `sync_weights` is a no-op when it is the trained model."""

    backend = "hf"

    def __init__(self, model, tokenizer, *, batch_size: int = 64, stop_ids: Sequence[int] = ()) -> None:
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.stop_ids = [tokenizer.eos_token_id, *(i for i in stop_ids if i != tokenizer.eos_token_id)]

    def generate(self, prompts: Sequence[str], cfg: SamplingConfig) -> list[list[Completion]]:
        enc = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        jobs = [(i, j, sample_seed(cfg.seed, i, j)) for i in range(len(prompts)) for j in range(cfg.n)]
        results: list[list[Completion | None]] = [[None] * cfg.n for _ in prompts]
        was_training = self.model.training
        self.model.eval()
        bar = progress(total=len(jobs), desc="rollout", unit="sample", leave=False)
        for s in range(0, len(jobs), self.batch_size):
            chunk = jobs[s:s + self.batch_size]
            rows = sample_batch(self.model, [enc[i] for i, _, _ in chunk], [seed for _, _, seed in chunk],
                                temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                stop_ids=self.stop_ids, pad_id=self.tokenizer.pad_token_id)
            for (i, j, seed), (toks, lps, finish) in zip(chunk, rows):
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                results[i][j] = Completion(tuple(toks), text, tuple(lps), finish, seed)
            bar.update(len(chunk))
        bar.close()
        self.model.train(was_training)
        return results  # type: ignore[return-value]

    def sync_weights(self, state_dict) -> None:
        if state_dict is not None:
            self.model.load_state_dict(dict(state_dict), strict=False)

    def close(self) -> None:
        pass
