"""Rollout throughput: tokens/s of the HF and vLLM backends, batched and one request at a time.

Prints, from one run on one machine, each backend's generated tokens per second for a batch of
requests and for the same requests sent one by one, and the ratios between them.  Set
OMP_NUM_THREADS=1 (the Makefile does): two threads on a busy 2-core machine make both engines erratic.

Usage: python bench/rollout.py [--model models/base] [--prompts 16] [--n 4] [--max-new-tokens 64]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data import synthetic  # noqa: E402
from pipeline.data.prompts import format_prompt  # noqa: E402
from pipeline.models.loading import load_policy  # noqa: E402
from pipeline.rollout import SamplingConfig, make_engine  # noqa: E402


def throughput(engine, prompts: list[str], cfg: SamplingConfig, batched: bool) -> float:
    start = time.perf_counter()
    if batched:
        rows = engine.generate(prompts, cfg)
    else:
        rows = [engine.generate([p], cfg)[0] for p in prompts]
    tokens = sum(len(c.token_ids) for row in rows for c in row)
    return tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/base")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    if not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"error: no model at {args.model}; run `make repro` (stage base_model) first or pass --model")
    problems = synthetic.generate(0, "bench", [1, 3, 5], args.prompts // 3 + 1)[:args.prompts]
    prompts = [format_prompt(p.problem, "Q: {problem}\nA:") for p in problems]
    cfg = SamplingConfig(args.n, 1.0, 1.0, args.max_new_tokens, seed=0)
    model, tok = load_policy(args.model)
    engines = {"hf": make_engine("hf", model=model, tokenizer=tok, batch_size=64),
               "vllm": make_engine("vllm", model_path=args.model, seed=0)}
    results = {}
    for name, engine in engines.items():
        engine.generate(prompts[:2], cfg)  # warm-up
        results[name] = (throughput(engine, prompts, cfg, True), throughput(engine, prompts, cfg, False))
    print(f"{args.prompts} prompts x {args.n} samples, <= {args.max_new_tokens} new tokens, model {args.model}")
    for name, (batched, single) in results.items():
        print(f"  {name:5s} batched {batched:8.1f} tok/s   one-by-one {single:8.1f} tok/s   "
              f"batched/one-by-one {batched / single:5.2f}x")
    print(f"  vllm/hf batched {results['vllm'][0] / results['hf'][0]:.2f}x, "
          f"one-by-one {results['vllm'][1] / results['hf'][1]:.2f}x")


if __name__ == "__main__":
    main()
