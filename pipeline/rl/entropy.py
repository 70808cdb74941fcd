"""Token entropies: exact, memory-bounded (fused with the sampled-token log-prob), clamped and nucleus.

* `token_entropy`: H = -sum p log p of softmax(logits / T), with -inf logits contributing exactly 0
  (and no NaN gradient), so masked vocabularies are safe.
* `fused_logprob_entropy`: log-prob of the target token and the entropy computed from hidden states and
  the LM-head weight in row chunks by a custom autograd function that recomputes each chunk's logits in
  backward.  Peak memory is O(chunk * V) instead of O(N * V); gradients use
  dlogp_t/dz = onehot(t) - p and dH/dz = -p (log p + H).  (Chunking materialised logits under plain
  autograd saves nothing: every chunk's softmax is kept for backward.)
* `clamped_entropy` (AEnt, arXiv 2509.03493): drop the lowest floor(p V) logits per position, renormalise.
* `nucleus_entropy` (SIREN, arXiv 2509.25133): within the top-K, keep the ranked prefix whose cumulative
  probability stays below p (the crossing token excluded), renormalise; an empty nucleus has entropy 0.
Masks in the last two are computed without gradient, as in both papers.
* `fused_clamped_entropy` / `fused_nucleus_entropy`: the last two from hidden states and the LM-head weight
  in row chunks, like `fused_logprob_entropy` (logits recomputed in backward, masks recomputed there
  without gradient), so AEnt and SIREN never build [N, V] logits.  Same values and gradients as the
  reference functions on materialised logits (tests/rl/test_entropy.py); bench/entropy_memory.py
  measures their peak memory.  Gradient on kept logits: dH/dz = -q (log q + H), q the renormalised
  distribution; zero on dropped logits.
"""
from __future__ import annotations

import torch


def _entropy_from_logits(z: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(z, dim=-1)
    p = logp.exp()
    finite = torch.isfinite(logp)
    return -(p * torch.where(finite, logp, torch.zeros((), dtype=logp.dtype, device=logp.device))).sum(-1)


def token_entropy(logits: torch.Tensor, *, temperature: float = 1.0, chunk_size: int | None = None) -> torch.Tensor:
    """logits [B,T,V] -> entropy [B,T] of softmax(logits / temperature), computed in >= float32.

    `chunk_size` bounds the temporaries of a no-grad pass (rows of B*T at a time); under autograd it
    saves nothing, see `fused_logprob_entropy` for the memory-bounded training path.
    """
    z = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    if temperature != 1.0:
        z = z / temperature
    if chunk_size is None:
        return _entropy_from_logits(z)
    flat = z.reshape(-1, z.shape[-1])
    out = torch.cat([_entropy_from_logits(flat[i:i + chunk_size]) for i in range(0, flat.shape[0], chunk_size)])
    return out.view(z.shape[:-1])


class _FusedLogprobEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, chunk_size):
        n = hidden.shape[0]
        acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        logp_t = torch.empty(n, dtype=acc, device=hidden.device)
        ent = torch.empty(n, dtype=acc, device=hidden.device)
        for s in range(0, n, chunk_size):
            # In place: the chunk's logits become its log-probs, so a chunk costs two [chunk, V] buffers.
            logp = (hidden[s:s + chunk_size] @ weight.t()).to(acc).div_(temperature)
            logp.sub_(torch.logsumexp(logp, dim=-1, keepdim=True))
            logp_t[s:s + chunk_size] = logp.gather(1, targets[s:s + chunk_size, None]).squeeze(1)
            ent[s:s + chunk_size] = -logp.exp().mul_(logp).sum(-1)
        ctx.save_for_backward(hidden, weight, targets, ent)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return logp_t, ent

    @staticmethod
    def backward(ctx, grad_logp, grad_ent):
        hidden, weight, targets, ent = ctx.saved_tensors
        acc = ent.dtype
        grad_h = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if ctx.needs_input_grad[1] else None
        for s in range(0, hidden.shape[0], ctx.chunk_size):
            h = hidden[s:s + ctx.chunk_size]
            logp = (h @ weight.t()).to(acc).div_(ctx.temperature)
            logp.sub_(torch.logsumexp(logp, dim=-1, keepdim=True))
            gl = grad_logp[s:s + ctx.chunk_size].to(acc)[:, None]
            ge = grad_ent[s:s + ctx.chunk_size].to(acc)[:, None]
            gz = logp.exp()
            # gz = -p * (gl + ge * (log p + H)), then + gl at the target; built in the two chunk buffers
            gz.mul_(logp.add_(ent[s:s + ctx.chunk_size, None]).mul_(ge).add_(gl)).neg_()
            gz.scatter_add_(1, targets[s:s + ctx.chunk_size, None], gl)
            gz.div_(ctx.temperature)
            if grad_h is not None:
                grad_h[s:s + ctx.chunk_size] = (gz.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_w is not None:
                grad_w += gz.t() @ h.to(acc)
        return grad_h, (grad_w.to(weight.dtype) if grad_w is not None else None), None, None, None


def fused_logprob_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *,
                          temperature: float = 1.0, chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden [..., D], weight [V, D] (LM head, no bias), targets [...] -> (logprobs [...], entropy [...]).

    Both outputs are differentiable w.r.t. hidden and weight; float32 accumulation (float64 for float64
    inputs).  Peak extra memory is about chunk_size * V * 4 bytes * 3.
    """
    lead = targets.shape
    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1).long()
    if h.shape[0] != t.shape[0]:
        raise ValueError(f"fused_logprob_entropy: {h.shape[0]} hidden rows but {t.shape[0]} targets")
    logp, ent = _FusedLogprobEntropy.apply(h, weight, t, float(temperature), int(chunk_size))
    return logp.view(lead), ent.view(lead)


def clamped_entropy(logits: torch.Tensor, *, clamp_p: float) -> torch.Tensor:
    """logits [B,T,V] -> [B,T]: entropy after dropping the floor(clamp_p * V) lowest logits per position."""
    vocab = logits.shape[-1]
    keep = vocab - int(clamp_p * vocab)
    if keep >= vocab:
        return token_entropy(logits)
    with torch.no_grad():
        idx = logits.topk(keep, dim=-1).indices
        kept = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, idx, True)
    return token_entropy(logits.masked_fill(~kept, float("-inf")))


def nucleus_entropy(logits: torch.Tensor, *, top_p: float, top_k: int) -> torch.Tensor:
    """logits [B,T,V] -> [B,T]: entropy of the renormalised top-p nucleus inside the top-K (SIREN)."""
    k = min(top_k, logits.shape[-1])
    top = logits.topk(k, dim=-1)  # values carry gradient; the selection below does not
    with torch.no_grad():
        probs = torch.softmax(logits.float(), dim=-1).gather(-1, top.indices)
        keep = probs.cumsum(dim=-1) < top_p
    z = top.values.masked_fill(~keep, float("-inf"))
    empty = ~keep.any(dim=-1)
    z = torch.where(empty.unsqueeze(-1), torch.zeros_like(z), z)  # avoids all -inf rows (NaN softmax)
    h = token_entropy(z)
    return torch.where(empty, torch.zeros_like(h), h)


def _clamp_select(z: torch.Tensor, clamp_p: float) -> tuple[torch.Tensor, None]:
    """AEnt: -inf (in place) on the floor(clamp_p V) lowest logits of each row.  A tie at the cut drops
    one of equal logits, which leaves the entropy's value unchanged."""
    drop = int(clamp_p * z.shape[-1])
    if drop:
        z.scatter_(1, z.topk(drop, dim=-1, largest=False, sorted=False).indices, float("-inf"))
    return z, None


def _nucleus_select(z: torch.Tensor, top_p: float, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SIREN: the top-K logits [c, K] with -inf outside the ranked prefix whose cumulative probability
    (under the full softmax) stays below top_p, and their vocabulary indices."""
    top = z.topk(min(top_k, z.shape[-1]), dim=-1)
    # the selection is made in float32 whatever the input dtype, as `nucleus_entropy` makes it
    probs = torch.softmax(z.float(), dim=-1).gather(1, top.indices)
    keep = probs.cumsum_(dim=-1) < top_p
    return top.values.masked_fill_(~keep, float("-inf")), top.indices


def _log_renormalise_(v: torch.Tensor) -> torch.Tensor:
    """In place: kept logits (finite) -> log q over the kept set; rows with nothing kept stay -inf."""
    lse = torch.logsumexp(v, dim=-1, keepdim=True)
    return v.sub_(lse.masked_fill_(torch.isneginf(lse), 0.0))


class _FusedMaskedEntropy(torch.autograd.Function):
    """Entropy of softmax over a per-row kept subset of h @ W^T / T, chunk by chunk (see module doc)."""

    @staticmethod
    def _chunk(hidden, weight, s, ctx_like):
        z = (hidden[s:s + ctx_like.chunk_size] @ weight.t()).to(ctx_like.acc).div_(ctx_like.temperature)
        with torch.no_grad():
            v, idx = ctx_like.select(z)
        return z, _log_renormalise_(v), idx

    @staticmethod
    def forward(ctx, hidden, weight, select, temperature, chunk_size):
        ctx.select, ctx.temperature, ctx.chunk_size = select, temperature, chunk_size
        ctx.acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
        ent = torch.empty(hidden.shape[0], dtype=ctx.acc, device=hidden.device)
        for s in range(0, hidden.shape[0], chunk_size):
            _, logq, _ = _FusedMaskedEntropy._chunk(hidden, weight, s, ctx)
            q = logq.exp()
            ent[s:s + chunk_size] = -q.mul_(logq.masked_fill_(torch.isneginf(logq), 0.0)).sum(-1)
            del q, logq
        ctx.save_for_backward(hidden, weight, ent)
        return ent

    @staticmethod
    def backward(ctx, grad_ent):
        hidden, weight, ent = ctx.saved_tensors
        grad_h = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=ctx.acc, device=weight.device) if ctx.needs_input_grad[1] else None
        for s in range(0, hidden.shape[0], ctx.chunk_size):
            z, logq, idx = _FusedMaskedEntropy._chunk(hidden, weight, s, ctx)
            g = logq.exp()
            # -q (log q + H) * dL/dH on kept logits; log q := 0 where q = 0 avoids 0 * inf
            logq.masked_fill_(torch.isneginf(logq), 0.0).add_(ent[s:s + ctx.chunk_size, None])
            g.mul_(logq.mul_(grad_ent[s:s + ctx.chunk_size, None].to(ctx.acc))).neg_().div_(ctx.temperature)
            del logq
            if idx is not None:  # the selection's gradient back to vocabulary positions (z's buffer reused)
                g = z.zero_().scatter_(1, idx, g)
            h = hidden[s:s + ctx.chunk_size]
            if grad_h is not None:
                grad_h[s:s + ctx.chunk_size] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_w is not None:
                grad_w += g.t() @ h.to(ctx.acc)
        return grad_h, (grad_w.to(weight.dtype) if grad_w is not None else None), None, None, None


def _fused_masked(hidden, weight, select, temperature, chunk_size) -> torch.Tensor:
    lead = hidden.shape[:-1]
    h = hidden.reshape(-1, hidden.shape[-1])
    return _FusedMaskedEntropy.apply(h, weight, select, float(temperature), int(chunk_size)).view(lead)


def fused_clamped_entropy(hidden: torch.Tensor, weight: torch.Tensor, *, clamp_p: float, temperature: float = 1.0,
                          chunk_size: int = 1024) -> torch.Tensor:
    """hidden [..., D], weight [V, D] -> [...]: `clamped_entropy` of h @ W^T / T without [N, V] logits."""
    if not 0.0 <= clamp_p < 1.0:
        raise ValueError(f"fused_clamped_entropy: clamp_p = {clamp_p} must lie in [0, 1)")
    return _fused_masked(hidden, weight, lambda z: _clamp_select(z, clamp_p), temperature, chunk_size)


def fused_nucleus_entropy(hidden: torch.Tensor, weight: torch.Tensor, *, top_p: float, top_k: int,
                          temperature: float = 1.0, chunk_size: int = 1024) -> torch.Tensor:
    """hidden [..., D], weight [V, D] -> [...]: `nucleus_entropy` of h @ W^T / T without [N, V] logits.

    Extra memory per chunk: the chunk's logits and their log-probs ([chunk, V] each) plus the top-K
    values and indices ([chunk, K])."""
    if top_k < 1 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"fused_nucleus_entropy: need top_k >= 1 and 0 < top_p <= 1, got {top_k}, {top_p}")
    return _fused_masked(hidden, weight, lambda z: _nucleus_select(z, top_p, top_k), temperature, chunk_size)
