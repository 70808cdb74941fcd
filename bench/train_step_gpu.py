"""GPU train-step throughput and MFU: the DeepSpeed ZeRO-2 (or --zero 3) bf16 path on a random Qwen2.5-1.5B.

Builds a randomly initialised Qwen2ForCausalLM with Qwen2.5-1.5B's configuration (written out in
`pipeline.models.named`, so nothing is downloaded), wraps it with the trainer's DeepSpeed config, and times the trainer's own
`update()` (old log-probs forward + micro-batched loss with the AER term + backward + step) on a
synthetic rollout batch.  MFU counts model FLOPs as 2 N T for the no-grad forward plus 6 N T for the
training forward and backward (N parameters, T tokens; attention FLOPs not counted), against the bf16
dense peak given by --peak-tflops (989 for an H100 SXM).

Usage: python bench/train_step_gpu.py [--batch 64] [--prompt-len 256] [--response-len 768] [--micro 8] [--zero 3]
       [--checkpointing] [--offload]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from pipeline.models.named import NAMED_CONFIGS  # noqa: E402
from pipeline.rl.advantages import grpo_advantages  # noqa: E402
from pipeline.rl.registry import build_regularizer  # noqa: E402
from pipeline.train.batch import RolloutBatch  # noqa: E402
from pipeline.train.distributed import init  # noqa: E402
from pipeline.train.engine import deepspeed_config, full_state_dict, initialize  # noqa: E402
from pipeline.train.update import UpdateSettings, update  # noqa: E402

QWEN25_15B = NAMED_CONFIGS["qwen2.5-1.5b"]


def synthetic_batch(n: int, prompt_len: int, response_len: int, group: int, vocab: int) -> RolloutBatch:
    g = torch.Generator().manual_seed(0)
    rewards = (torch.rand(n, generator=g) < 0.4).float()
    return RolloutBatch(
        prompt_ids=[torch.randint(0, vocab, (prompt_len,), generator=g).tolist() for _ in range(n)],
        response_ids=[torch.randint(0, vocab, (response_len,), generator=g).tolist() for _ in range(n)],
        rewards=rewards, advantages=grpo_advantages(rewards, group), pass_rates=torch.rand(n, generator=g),
        problem_ids=[f"p{i // group}" for i in range(n)], buckets=["b"] * n, truncated=[False] * n, statuses=["ok"] * n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--response-len", type=int, default=768)
    ap.add_argument("--micro", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--zero", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in the decoder")
    ap.add_argument("--offload", action="store_true", help="optimizer states in host memory (ZeRO-Offload)")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    from transformers import Qwen2Config, Qwen2ForCausalLM

    init()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_15B)).to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    engine = initialize(model, deepspeed_config(micro_batch_size=args.micro, world_size=1, lr=1e-6, weight_decay=0.0,
                                                zero_stage=args.zero, bf16=True, gradient_clipping=1.0,
                                                offload_optimizer=args.offload),
                        gradient_checkpointing=args.checkpointing)
    batch = synthetic_batch(args.batch, args.prompt_len, args.response_len, 8, QWEN25_15B["vocab_size"])
    reg = build_regularizer("aer", h0=1.0, tau=0.4, lr=0.02, alpha_max=0.05)
    # one optimizer step per call: the whole batch is one mini-batch, one pass
    settings = UpdateSettings(args.micro, args.batch, 1, 0.2, 0.28, "token-mean", args.response_len, 1.0, args.chunk, 1,
                              args.zero)
    update(engine, batch, reg, settings, pad_id=0, step=0)  # warm-up (allocator, kernels)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        res = update(engine, batch, reg, settings, pad_id=0, step=step)  # the controller updates inside
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - start) / args.steps
    tokens = args.batch * (args.prompt_len + args.response_len)
    flops = 8 * n_params * tokens
    print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}  params {n_params / 1e9:.3f} B  "
          f"ZeRO-{args.zero} bf16  micro {args.micro}  checkpointing {args.checkpointing}  offload {args.offload}")
    print(f"batch {args.batch} x ({args.prompt_len} + {args.response_len}) tokens = {tokens} tokens/step")
    print(f"step {per_step:.3f} s   {tokens / per_step:,.0f} tokens/s   model TFLOP/s {flops / per_step / 1e12:.1f}   "
          f"MFU {flops / per_step / (args.peak_tflops * 1e12):.1%}   peak mem {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
          f"   skipped {res.skipped}   loss {res.metrics.get('loss')}")
    start = time.perf_counter()
    state = full_state_dict(engine, args.zero)  # the consolidated HF export (ZeRO-3 gathers module by module)
    unique = {id(v): v.numel() for v in state.values()}
    print(f"consolidated state dict: {len(state)} tensors, {sum(unique.values()) / 1e9:.3f} B unique values "
          f"({'complete' if sum(unique.values()) == n_params else 'INCOMPLETE'}) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
