"""Peak-memory benchmark: the fused chunked entropies vs the naive materialised-logits paths.

Three quantities, each naive (full [N, V] logits, then the reference function) against fused (row chunks
from hidden states and the LM-head weight, `pipeline.rl.entropy`):
  logprob  sampled-token log-prob + entropy (`fused_logprob_entropy`, every method);
  clamped  AEnt's clamped entropy (`fused_clamped_entropy`, clamp_p 0.33);
  nucleus  SIREN's nucleus entropy (`fused_nucleus_entropy`, top_p 0.8, top_k 10,000) and its peak mask.
Each variant runs in its own subprocess so that peaks do not mix: on CPU the peak is the resident
high-water mark (VmHWM, reset through /proc/self/clear_refs once the inputs exist) minus the resident
size at that moment; on CUDA it is torch.cuda.max_memory_allocated over the inputs.  Prints the
naive / fused ratios for forward and forward + backward, measured in this one run, at Qwen's
vocabulary (V = 151,936).  `--json PATH` also writes every number.

Usage: python bench/entropy_memory.py [--tokens 2048] [--hidden 256] [--vocab 151936] [--chunk 128]
       [--device cuda] [--kinds logprob,clamped,nucleus] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("logprob", "clamped", "nucleus")
VARIANTS: dict = {}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_cpu_peak() -> int:
    """Reset VmHWM to the current RSS (Linux >= 4.0) and return the current RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def _naive_logits(hidden, weight):
    return (hidden @ weight.t()).float()  # what materialising the logits builds (the naive path)


def _naive_logprob(hidden, weight, targets, args):
    import torch

    logp = torch.log_softmax(_naive_logits(hidden, weight), dim=-1)
    return logp.gather(1, targets[:, None]).squeeze(1), -(logp.exp() * logp).sum(-1)


def _peak_mask(h, args):
    """SIREN's peak-entropy mask over [B, T] = [tokens / 256, 256]: no vocabulary dimension."""
    from pipeline.rl import peak_entropy_mask

    rows = h.view(-1, 256) if h.numel() % 256 == 0 else h.view(1, -1)
    return (h * peak_entropy_mask(rows, rows.new_ones(rows.shape, dtype=bool), 0.8).view(-1)).sum()


def _variants() -> dict:
    sys.path.insert(0, str(ROOT))
    from pipeline.rl import entropy as E

    return {
        "naive-logprob": _naive_logprob,
        "fused-logprob": lambda h, w, t, a: E.fused_logprob_entropy(h, w, t, chunk_size=a.chunk),
        "naive-clamped": lambda h, w, t, a: (E.clamped_entropy(_naive_logits(h, w), clamp_p=0.33),),
        "fused-clamped": lambda h, w, t, a: (E.fused_clamped_entropy(h, w, clamp_p=0.33, chunk_size=a.chunk),),
        "naive-nucleus": lambda h, w, t, a: (_peak_mask(E.nucleus_entropy(_naive_logits(h, w), top_p=0.8,
                                                                          top_k=10000), a),),
        "fused-nucleus": lambda h, w, t, a: (_peak_mask(E.fused_nucleus_entropy(h, w, top_p=0.8, top_k=10000,
                                                                                chunk_size=a.chunk), a),),
    }


def child(mode: str, args) -> dict:
    import torch

    global VARIANTS
    VARIANTS = _variants()
    dev = torch.device(args.device)
    g = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(args.tokens, args.hidden, generator=g).to(dev).requires_grad_()
    weight = (torch.randn(args.vocab, args.hidden, generator=g) * 0.02).to(dev).requires_grad_()
    targets = torch.randint(0, args.vocab, (args.tokens,), generator=g).to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _reset_cpu_peak()
    start = time.perf_counter()
    out = VARIANTS[mode.rsplit("-", 1)[0]](hidden, weight, targets, args)
    if mode.endswith("fwdbwd"):
        sum(o.sum() for o in out).backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_kib("VmHWM") * 1024 - base
    return {"mode": mode, "peak_bytes": peak, "seconds": time.perf_counter() - start}


def run(mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--tokens", str(args.tokens), "--hidden", str(args.hidden),
           "--vocab", str(args.vocab), "--chunk", str(args.chunk), "--device", args.device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(kind: str, res: dict, args) -> dict:
    """Print one quantity's four peaks and its naive / fused ratios against the issue's bounds."""
    r = {m.rsplit("-", 1)[-1] + "_" + m.split("-")[0]: res[m] for m in res if m.split("-")[1] == kind}
    fwd = r["fwd_naive"]["peak_bytes"] / max(r["fwd_fused"]["peak_bytes"], 1)
    bwd = r["fwdbwd_naive"]["peak_bytes"] / max(r["fwdbwd_fused"]["peak_bytes"], 1)
    print(f"[{kind}]")
    for name, v in r.items():
        print(f"  {name:14s} peak {v['peak_bytes'] / 2**20:9.1f} MiB  {v['seconds']:7.2f} s")
    ok = fwd >= 8 and bwd >= 4
    print(f"  peak-memory ratio naive/fused: forward {fwd:.1f}x, forward+backward {bwd:.1f}x "
          f"({'meets' if ok else 'MISSES'} the bound: >= 8x forward, >= 4x with backward)")
    return {"forward_ratio": fwd, "fwdbwd_ratio": bwd, "meets_bound": ok, "runs": r}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    ap.add_argument("--json", help="also write the numbers to this file")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    kinds = [k for k in args.kinds.split(",") if k]
    if not set(kinds) <= set(KINDS):
        ap.error(f"--kinds: unknown {sorted(set(kinds) - set(KINDS))}; choose from {', '.join(KINDS)}")
    print(f"tokens={args.tokens} hidden={args.hidden} vocab={args.vocab} chunk={args.chunk} device={args.device}")
    summary = {"args": {k: v for k, v in vars(args).items() if k not in ("child", "json")}}
    for kind in kinds:
        res = {f"{impl}-{kind}-{phase}": run(f"{impl}-{kind}-{phase}", args)
               for phase in ("fwd", "fwdbwd") for impl in ("naive", "fused")}
        summary[kind] = report(kind, res, args)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
