"""Peak-memory benchmark: fused chunked log-prob + entropy vs the naive materialised-logits path.

Each variant runs in its own subprocess so that peaks do not mix: on CPU the peak is the resident
high-water mark (VmHWM, reset through /proc/self/clear_refs once the inputs exist) minus the resident
size at that moment; on CUDA it is torch.cuda.max_memory_allocated over the inputs.  Prints the
naive / fused ratios for forward and forward + backward, measured in this one run, at Qwen's
vocabulary (V = 151,936).

Usage: python bench/entropy_memory.py [--tokens 2048] [--hidden 256] [--vocab 151936] [--chunk 128] [--device cuda]
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


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_cpu_peak() -> int:
    """Reset VmHWM to the current RSS (Linux >= 4.0) and return the current RSS in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS") * 1024


def child(mode: str, args) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from pipeline.rl.entropy import fused_logprob_entropy

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
    if mode.startswith("naive"):
        logp = torch.log_softmax((hidden @ weight.t()).float(), dim=-1)
        lp = logp.gather(1, targets[:, None]).squeeze(1)
        ent = -(logp.exp() * logp).sum(-1)
    else:
        lp, ent = fused_logprob_entropy(hidden, weight, targets, chunk_size=args.chunk)
    if mode.endswith("bwd"):
        (lp.sum() + ent.sum()).backward()
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    res = {m: run(m, args) for m in ("naive-fwd", "fused-fwd", "naive-fwdbwd", "fused-fwdbwd")}
    print(f"tokens={args.tokens} hidden={args.hidden} vocab={args.vocab} chunk={args.chunk} device={args.device}")
    for m, r in res.items():
        print(f"  {m:13s} peak {r['peak_bytes'] / 2**20:9.1f} MiB  {r['seconds']:7.2f} s")
    fwd = res["naive-fwd"]["peak_bytes"] / max(res["fused-fwd"]["peak_bytes"], 1)
    bwd = res["naive-fwdbwd"]["peak_bytes"] / max(res["fused-fwdbwd"]["peak_bytes"], 1)
    print(f"peak-memory ratio naive/fused: forward {fwd:.1f}x, forward+backward {bwd:.1f}x")


if __name__ == "__main__":
    main()
