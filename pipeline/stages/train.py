"""DVC stage `train`: GRPO with the configured entropy method (`train.method`) -> models/trained.

Launch: `python -m pipeline.stages.train` (one process), `torchrun --nproc_per_node N -m
pipeline.stages.train` or `deepspeed --hostfile H -m pipeline.stages.train` (several ranks; each
generates for its shard of the step's prompts).  `train.resume: auto` continues from the newest complete
checkpoint in `<train.out_dir>/checkpoints`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from pipeline.config import Params, flatten, to_dict
from pipeline.models.loading import load_policy
from pipeline.rl.registry import build_regularizer
from pipeline.stages.common import engine_from_params, load_problems, main_guard, numeric_metrics, stage_run
from pipeline.tracking import start_run
from pipeline.train import checkpoint
from pipeline.train.batch import PromptSampler
from pipeline.train.distributed import barrier, init, is_main
from pipeline.train.engine import deepspeed_config, full_state_dict, initialize, policy
from pipeline.train.loop import TrainContext, train
from pipeline.train.telemetry import StepLog
from pipeline.train.update import UpdateSettings
from pipeline.utils.io import atomic_dir, read_json, read_jsonl, write_json


def regularizer_from_params(params: Params, h0: dict):
    """Map params.yaml to the regularizer's explicit keyword arguments."""
    e, method = params.entropy, params.train.method
    kwargs = {
        "fixed": lambda: {"beta": e.fixed.beta},
        "aer": lambda: {"h0": h0["h0"], "tau": e.aer.tau, "lr": e.aer.lr, "alpha_init": e.aer.alpha_init,
                        "alpha_min": e.aer.alpha_min, "alpha_max": e.aer.alpha_max, "weight_mode": e.aer.weight_mode,
                        "threshold": e.aer.threshold, "ema_blend": e.aer.ema_blend, "ema_decay": e.aer.ema_decay},
        "aent": lambda: {"clamp_p": e.aent.clamp_p, "lambda_init": e.aent.lambda_init, "h_low": e.aent.h_low,
                         "h_high": e.aent.h_high, "beta": e.aent.beta, "warmup_steps": e.aent.warmup_steps,
                         "lambda_low": e.aent.lambda_low, "lambda_high": e.aent.lambda_high},
        "siren": lambda: {"beta": e.siren.beta, "top_p": e.siren.top_p, "top_k": e.siren.top_k, "rho": e.siren.rho,
                          "anchor": h0.get("siren_anchor")},
        "skywork": lambda: {"target": e.skywork.target, "coef_init": e.skywork.coef_init, "delta": e.skywork.delta,
                            "coef_min": e.skywork.coef_min, "coef_max": e.skywork.coef_max},
        "clip_cov": lambda: {"clip_ratio": e.cov.clip_ratio, "clip_lb": e.cov.clip_lb, "clip_ub": e.cov.clip_ub,
                             "seed": params.seed},
        "kl_cov": lambda: {"kl_ratio": e.cov.kl_ratio, "kl_coef": e.cov.kl_coef},
    }.get(method, dict)()
    return build_regularizer(method, **kwargs)


def build_context(params: Params, tracker, rank: int, world: int) -> TrainContext:
    t = params.train
    if (t.prompts_per_step % world) != 0:
        raise SystemExit(f"error: train.prompts_per_step = {t.prompts_per_step} does not split over {world} ranks")
    torch.manual_seed(params.seed)
    model, tokenizer = load_policy(params.model.name_or_path, params.model.dtype)
    ds = t.deepspeed
    engine = initialize(model, deepspeed_config(micro_batch_size=t.micro_batch_size, world_size=world, lr=t.lr,
                                                weight_decay=t.weight_decay, zero_stage=ds.zero_stage, bf16=ds.bf16,
                                                gradient_clipping=ds.gradient_clipping))
    rows = read_jsonl(params.difficulty.out)
    rates = {r["id"]: (r["pass_rate"], r["bucket"]) for r in rows}
    kept = {r["id"] for r in rows if r["kept"]}
    problems = [p for p in load_problems(Path(params.data.out_dir) / "train.jsonl") if p.id in kept]
    reg = regularizer_from_params(params, read_json(params.entropy.measure.out))
    settings = UpdateSettings(t.micro_batch_size, t.updates_per_batch, t.clip_low, t.clip_high, t.agg_mode,
                              t.max_new_tokens, t.temperature, params.entropy.measure.chunk_size, world, ds.zero_stage)
    ctx = TrainContext(params, engine, None, tokenizer, PromptSampler(problems, params.seed),
                       rates, reg, settings, StepLog(Path(t.log_dir) / "train.csv"), tracker, rank, world,
                       ckpt_dir=str(Path(t.out_dir) / "checkpoints"), samples_path=str(Path(t.out_dir) / "samples.jsonl"))
    ctx.rollout = engine_from_params(params, policy(engine), tokenizer)
    ctx.fingerprint = fingerprint(params)
    return ctx


def fingerprint(params: Params) -> str:
    """Hash of every param except those that may change across a resume (length, cadence, resume mode),
    and of the library's source: a checkpoint is resumed only by the same code with the same params, so
    a code change that makes DVC re-run the stage retrains instead of reusing old results."""
    import hashlib
    import json

    flat = flatten(to_dict(params))
    for key in ("train.steps", "train.checkpoint_every", "train.resume"):
        flat.pop(key)
    h = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode())
    for src in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def resume(ctx: TrainContext) -> None:
    last = checkpoint.latest(ctx.ckpt_dir) if ctx.params.train.resume == "auto" else None
    if last is not None and checkpoint.read_state(last).get("fingerprint") != ctx.fingerprint:
        print(f"train: {last} was written with other params or code; starting fresh")
        last = None
    if last is None:
        if is_main() and Path(ctx.params.train.out_dir).exists():
            shutil.rmtree(ctx.params.train.out_dir)  # a fresh run owns its output directory
        barrier()
        return
    state = checkpoint.load(ctx.engine, last)
    ctx.start_step, ctx.sampler.cursor, ctx.skipped_steps = state["step"], state["cursor"], state["skipped_steps"]
    ctx.reg.load_state_dict(state["regularizer"])
    ctx.log = StepLog(Path(ctx.params.train.log_dir) / "train.csv", resume_step=ctx.start_step)
    ctx.last = ctx.log.rows[-1] if ctx.log.rows else {}  # a finished run resumed reports its last step
    if ctx.rollout.backend != "hf":
        ctx.rollout.sync_weights(full_state_dict(ctx.engine, ctx.settings.zero_stage))
    print(f"train: resumed from {last} at step {ctx.start_step}")


def finish(ctx: TrainContext, tracker) -> dict:
    """Export the consolidated HF model and write metrics, CSV plots and PNG curves (rank 0)."""
    state = full_state_dict(ctx.engine, ctx.settings.zero_stage)
    if not is_main():
        return {}
    final = Path(ctx.params.train.out_dir) / "final"
    with atomic_dir(final) as tmp:
        policy(ctx.engine).save_pretrained(tmp, state_dict=state, safe_serialization=True)
        ctx.tokenizer.save_pretrained(tmp)
    target = getattr(getattr(ctx.reg, "controller", None), "target", None)
    aent = ctx.params.entropy.aent
    band = (aent.h_low, aent.h_high) if ctx.params.train.method == "aent" else None
    metrics = {**{k: v for k, v in ctx.last.items() if isinstance(v, (int, float))},
               "method": ctx.params.train.method, "target_entropy": target, "skipped_steps": ctx.skipped_steps}
    t = ctx.params.train
    write_json(t.metrics_file, metrics)
    for path in ctx.log.plot(Path(t.log_dir) / "train", target, band) + [Path(t.metrics_file), ctx.log.path,
                                                                          Path(ctx.samples_path)]:
        if Path(path).exists():
            tracker.log_artifact(path)
    tracker.log_dir(final, "final_model")
    return metrics


def run(params: Params) -> dict:
    rank, world = init()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # ranks > 0 log locally: one MLflow run per training, not one per rank
    tracked = stage_run("train", params) if rank == 0 else start_run(f"train-rank{rank}", enabled=False)
    with tracked as tracker:
        ctx = build_context(params, tracker, rank, world)
        resume(ctx)
        last = train(ctx)
        metrics = finish(ctx, tracker)
        if is_main():
            tracker.log_metrics(numeric_metrics({"final": metrics}))
    if is_main():
        print(f"train[{params.train.method}]: step {params.train.steps}, reward {last.get('reward_mean', 0):.3f}, "
              f"entropy {last.get('entropy', float('nan')):.3f}, coef {last.get('reg/coef', 0)}")
    return metrics


if __name__ == "__main__":
    main_guard(run, "train")
