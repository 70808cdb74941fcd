"""Teacher-forced per-token log-probs and entropies of responses, memory-bounded.

Sequences are prompt + response, right-padded.  The decoder's last hidden states at response positions
go through `fused_logprob_entropy` with the LM-head weight, so full [B, T, V] logits are never built; a
method that needs another per-token statistic of the distribution (AEnt's clamped entropy, SIREN's nucleus
entropy) asks for it as a "head", computed chunk-wise the same way.  Works for any causal LM
with `get_output_embeddings()` and a `base_model` decoder (Qwen2, Llama, ...).

The trainer hands DeepSpeed a `PolicyScorer` (the LM as its child `policy`), so the decoder and the fused
head run inside one module forward.  ZeRO-3 gathers a partitioned parameter only inside the forward (and
backward) of a module that owns or registered it; the fused head reads the LM-head weight directly, so
`pipeline.train.engine` registers that weight as an external parameter of the scorer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from pipeline.rl.entropy import fused_logprob_entropy

# A per-token statistic of the response positions computed from hidden states and the LM head without
# [N, V] logits: fn(hidden [N,D], weight [V,D], *, temperature, chunk_size) -> [N] (see pipeline.rl.entropy).
Head = Callable[..., torch.Tensor]


@dataclass
class PackedBatch:
    """input_ids, attention_mask [B,L]; response_mask [B,L-1] marks positions predicting response tokens."""
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor

    def to(self, device) -> "PackedBatch":
        return PackedBatch(self.input_ids.to(device), self.attention_mask.to(device), self.response_mask.to(device))


def pack(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int) -> PackedBatch:
    width = max(len(p) + len(r) for p, r in zip(prompts, responses))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    resp = torch.zeros((len(prompts), width - 1), dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        seq = list(p) + list(r)
        ids[i, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        attn[i, :len(seq)] = 1
        resp[i, len(p) - 1:len(seq) - 1] = True
    return PackedBatch(ids, attn, resp)


class PolicyScorer(torch.nn.Module):
    """A causal LM (`self.policy`) whose forward returns the response log-probs and entropies."""

    def __init__(self, policy: torch.nn.Module):
        super().__init__()
        self.policy = policy

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_mask: torch.Tensor,
                temperature: float = 1.0, chunk_size: int = 1024, heads: Optional[dict[str, Head]] = None):
        """input_ids, attention_mask [B,L]; response_mask [B,L-1] -> (logprobs, entropy, extra), each [B,L-1]
        and zero off the response mask; `extra` holds one [B,L-1] tensor per entry of `heads`."""
        weight = self.policy.get_output_embeddings().weight
        out = self.policy.base_model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state[:, :-1]
        targets, m = input_ids[:, 1:], response_mask
        h = hidden[m]
        lp_sel, ent_sel = fused_logprob_entropy(h, weight, targets[m], temperature=temperature, chunk_size=chunk_size)
        scatter = lambda v: torch.zeros(m.shape, dtype=v.dtype, device=hidden.device).masked_scatter(m, v)  # noqa: E731
        # heads run here, inside the module's forward, where ZeRO-3 has the LM-head weight gathered
        extra = {name: scatter(fn(h, weight, temperature=temperature, chunk_size=chunk_size))
                 for name, fn in (heads or {}).items()}
        return scatter(lp_sel), scatter(ent_sel), extra


def response_logprobs_entropy(model, batch: PackedBatch, *, temperature: float = 1.0, chunk_size: int = 1024,
                              heads: Optional[dict[str, Head]] = None
                              ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """-> logprobs [B,L-1], entropy [B,L-1] (zero off the response mask) and {name: [B,L-1]} per head.

    `model` is a causal LM or a `PolicyScorer` (the trainer's DeepSpeed module)."""
    scorer = model if isinstance(model, PolicyScorer) else PolicyScorer(model)
    batch = batch.to(scorer.policy.get_input_embeddings().weight.device)
    return scorer(batch.input_ids, batch.attention_mask, batch.response_mask, temperature, chunk_size, heads)
