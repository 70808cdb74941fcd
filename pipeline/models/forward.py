"""Teacher-forced per-token log-probs and entropies of responses, memory-bounded.

Sequences are prompt + response, right-padded.  The decoder's last hidden states at response positions
go through `fused_logprob_entropy` with the LM-head weight, so full [B, T, V] logits are never built
(they are only built on request, for methods that need them: AEnt, SIREN).  Works for any causal LM
with `get_output_embeddings()` and a `base_model` decoder (Qwen2, Llama, ...).

The trainer hands DeepSpeed a `PolicyScorer` (the LM as its child `policy`), so the decoder and the fused
head run inside one module forward.  ZeRO-3 gathers a partitioned parameter only inside the forward (and
backward) of a module that owns or registered it; the fused head reads the LM-head weight directly, so
`pipeline.train.engine` registers that weight as an external parameter of the scorer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from pipeline.rl.entropy import fused_logprob_entropy


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
                temperature: float = 1.0, chunk_size: int = 1024, with_logits: bool = False):
        """input_ids, attention_mask [B,L]; response_mask [B,L-1] -> (logprobs, entropy, logits | None)."""
        weight = self.policy.get_output_embeddings().weight
        out = self.policy.base_model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state[:, :-1]
        targets, m = input_ids[:, 1:], response_mask
        lp_sel, ent_sel = fused_logprob_entropy(hidden[m], weight, targets[m], temperature=temperature,
                                                chunk_size=chunk_size)
        logprobs = torch.zeros(m.shape, dtype=lp_sel.dtype, device=hidden.device).masked_scatter(m, lp_sel)
        entropy = torch.zeros(m.shape, dtype=ent_sel.dtype, device=hidden.device).masked_scatter(m, ent_sel)
        logits = (hidden @ weight.t()).float() / temperature if with_logits else None
        return logprobs, entropy, logits


def response_logprobs_entropy(model, batch: PackedBatch, *, temperature: float = 1.0, chunk_size: int = 1024,
                              with_logits: bool = False
                              ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """-> logprobs [B,L-1], entropy [B,L-1] (zero off the response mask) and, if asked, logits [B,L-1,V].

    `model` is a causal LM or a `PolicyScorer` (the trainer's DeepSpeed module)."""
    scorer = model if isinstance(model, PolicyScorer) else PolicyScorer(model)
    batch = batch.to(scorer.policy.get_input_embeddings().weight.device)
    return scorer(batch.input_ids, batch.attention_mask, batch.response_mask, temperature, chunk_size, with_logits)
