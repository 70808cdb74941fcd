"""A training session: build the context from params, resume it exactly, and export its results.

`build_context` loads the policy, wraps it in DeepSpeed, reads the kept training prompts, their
difficulty and the entropy anchors, and asks the method registry for the configured method.
`fingerprint` ties checkpoints to the params and the library's code; `resume` continues from the newest
complete checkpoint of the same fingerprint (and trims the step log and the sample file to it);
`finish` exports the consolidated model and writes metrics and curves.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from pipeline.config import ConfigError, Params, flatten, to_dict
from pipeline.config.schema import optimizer_steps_per_rollout
from pipeline.data.schema import load_problems
from pipeline.rl.registry import build
from pipeline.rollout import engine_from_params
from pipeline.train import checkpoint
from pipeline.train.batch import PromptSampler
from pipeline.train.distributed import barrier, is_main
from pipeline.train.engine import build as build_engine
from pipeline.train.engine import full_state_dict, policy
from pipeline.train.loop import TrainContext, truncate_samples
from pipeline.train.telemetry import StepLog, first_nonzero_step
from pipeline.train.update import UpdateSettings
from pipeline.utils.io import atomic_dir, read_json, read_jsonl, write_json


def settings_for(params: Params, world: int) -> UpdateSettings:
    """The update's settings; the global mini-batch is split evenly over ranks, in whole prompt groups."""
    t = params.train
    mini = t.mini_batch_size or t.prompts_per_step * t.group_size
    if t.prompts_per_step % world or mini % (world * t.group_size):
        # validation checked this for train.deepspeed.num_processes ranks; a launcher may start another count
        raise ConfigError(f"params.yaml: key 'train.deepspeed.num_processes' = {t.deepspeed.num_processes}: the "
                          f"launcher started {world} ranks, over which train.prompts_per_step = {t.prompts_per_step} "
                          f"and the mini-batch of {mini} samples do not split into whole prompt groups. Fix: start "
                          f"num_processes ranks (python -m pipeline.stages.launch), or use multiples of {world} "
                          f"prompts ({world * t.group_size} samples)")
    return UpdateSettings(t.micro_batch_size, mini // world, t.updates_per_batch, t.clip_low, t.clip_high,
                          t.agg_mode, t.max_new_tokens, t.temperature, params.entropy.measure.chunk_size, world,
                          t.deepspeed.zero_stage)


def build_context(params: Params, tracker, rank: int, world: int) -> TrainContext:
    t = params.train
    settings = settings_for(params, world)
    torch.manual_seed(params.seed)
    engine, tokenizer = build_engine(t, params.model.name_or_path, params.model.dtype, world,
                                     params.model.attn_implementation)
    rows = read_jsonl(params.difficulty.out)
    rates = {r["id"]: (r["pass_rate"], r["bucket"]) for r in rows}
    kept = {r["id"] for r in rows if r["kept"]}
    problems = [p for p in load_problems(Path(params.data.out_dir) / "train.jsonl") if p.id in kept]
    reg = build(t.method, params.entropy, read_json(params.entropy.measure.out), params.seed)
    ctx = TrainContext(params, engine, None, tokenizer, PromptSampler(problems, params.seed), rates, reg, settings,
                       StepLog(Path(t.log_dir) / "train.csv"), tracker, rank, world,
                       n_minibatches=optimizer_steps_per_rollout(t) // t.updates_per_batch,
                       ckpt_dir=str(Path(t.out_dir) / "checkpoints"), samples_path=str(Path(t.out_dir) / "samples.jsonl"))
    ctx.rollout = engine_from_params(params, policy(engine), tokenizer)
    ctx.fingerprint = fingerprint(params)
    return ctx


def fingerprint(params: Params) -> str:
    """Hash of every param except those that may change across a resume (length, cadence, resume mode),
    and of the library's source: a checkpoint is resumed only by the same code with the same params, so
    a code change that makes DVC re-run the stage retrains instead of reusing old results."""
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
    ctx.skipped_updates, ctx.consecutive_skips = state["skipped_updates"], state["consecutive_skips"]
    ctx.reg.load_state_dict(state["regularizer"])
    ctx.log = StepLog(Path(ctx.params.train.log_dir) / "train.csv", resume_step=ctx.start_step)
    ctx.last = ctx.log.rows[-1] if ctx.log.rows else {}  # a finished run resumed reports its last step
    if is_main() and ctx.samples_path:
        truncate_samples(ctx.samples_path, ctx.start_step)  # replayed steps must not appear twice
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
    guides = ctx.reg.guides()
    t = ctx.params.train
    metrics = {**{k: v for k, v in ctx.last.items() if isinstance(v, (int, float))},
               "method": t.method, "target_entropy": guides.get("target") if guides.get("metric", "entropy") ==
               "entropy" else None, "skipped_steps": ctx.skipped_steps, "skipped_updates": ctx.skipped_updates,
               "coef_first_nonzero_step": first_nonzero_step(ctx.log.rows, "reg/coef")}
    write_json(t.metrics_file, metrics)
    entropy_guides = guides if guides.get("metric", "entropy") == "entropy" else {}
    curves = ctx.log.plot(Path(t.log_dir) / "train", entropy_guides.get("target"), entropy_guides.get("band"),
                          method=t.method, seed=ctx.params.seed, h0=read_json(ctx.params.entropy.measure.out).get("h0"))
    for path in curves + [Path(t.metrics_file), ctx.log.path, Path(ctx.samples_path)]:
        if Path(path).exists():
            tracker.log_artifact(path)
    return metrics
