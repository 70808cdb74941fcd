"""What every stage entry point shares: params loading, the tracked run, uniform error output and `--help`."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

from pipeline import tracking
from pipeline.config import ConfigError, Params, flatten, load_params, to_dict
from pipeline.data.schema import load_problems  # noqa: F401  (re-exported for the stage entry points)
from pipeline.rollout import engine_from_params  # noqa: F401


@contextlib.contextmanager
def stage_run(stage: str, params: Params, *, run_name: str | None = None,
              tags: dict | None = None) -> Iterator[tracking.Tracker]:
    """A tracked run for `stage`, named `<stage>-<method>-s<seed>` and tagged with method, seed, profile
    and DVC experiment (`run_name` / `tags` override them), sampling system metrics, with params: the
    flattened config, the git SHA and, under `dvc repro`, the DVC stage hash (`tracking.dvc_stage_hash`);
    the datasets the stage reads are logged as its inputs (`stage_inputs`)."""
    method, seed = params.train.method, params.seed
    with tracking.start_run(stage, experiment=params.tracking.experiment, uri=params.tracking.uri,
                            enabled=params.tracking.enabled, run_name=run_name or tracking.run_name(stage, method, seed),
                            tags={**tracking.run_tags(method, seed, params.profile), **(tags or {})},
                            system_metrics=True, chart_every=params.train.checkpoint_every) as tracker:
        identity = {"git_sha": tracking.git_sha(), "dvc_stage_hash": tracking.dvc_stage_hash()}
        tracker.log_params({**flatten(to_dict(params)), **{k: v for k, v in identity.items() if v}})
        for name, source, context in stage_inputs(stage, params):
            tracker.log_input(source, name, context)
        yield tracker


def stage_inputs(stage: str, params: Params) -> list[tuple[str, str, str]]:
    """(name, local path or hub id, context) of the datasets `stage` reads: the prepared training split
    for the stages that sample prompts from it, every benchmark for `evaluate`."""
    from pathlib import Path

    from pipeline.data.benchmarks import BENCHMARKS

    prepared = Path(params.data.out_dir)
    train_split = [("train", str(prepared / "train.jsonl"), "training")]
    benchmarks = []
    for bench in params.eval.benchmarks:
        source = bench.path or (str(prepared / "eval.jsonl") if bench.name == "synthetic" else
                                BENCHMARKS[bench.name].hub_id if bench.name in BENCHMARKS else bench.name)
        if Path(source).is_dir() and bench.name in BENCHMARKS:
            source = str(Path(source) / BENCHMARKS[bench.name].local_name)
        benchmarks.append((bench.name, source, "evaluation"))
    return {"difficulty": train_split, "entropy": train_split, "train": train_split,
            "evaluate": benchmarks}.get(stage, [])


def record_metrics(tracker: tracking.Tracker, path, metrics: dict) -> None:
    """Write a stage's metrics file atomically and log its numbers and the file to the tracker."""
    from pipeline.utils.io import write_json

    write_json(path, metrics)
    tracker.log_metrics(numeric_metrics(metrics))
    tracker.log_artifact(path)


def numeric_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested metrics dict, flattened with dots (for the tracker)."""
    out = {}
    for key, value in flatten(metrics, prefix).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key.replace("/", "_")] = float(value)
    return out


def parse_overrides(argv: list[str]) -> dict:
    """`--set key=value` pairs (values parsed as YAML, so lists and numbers work)."""
    import yaml

    out, it = {}, iter(argv)
    for arg in it:
        if arg != "--set":
            raise ConfigError(f"command line: unexpected argument {arg!r}. Fix: use --set key=value")
        key, sep, value = next(it, "").partition("=")
        if not sep:
            raise ConfigError(f"command line: --set {key!r} has no '='. Fix: use --set key=value")
        out[key] = yaml.safe_load(value)
    return out


def main_guard(fn) -> None:
    """Run a stage main; config and input errors print one clear line and exit 2 (no traceback)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cli_preamble(sys.argv[1:], fn):
        return
    try:
        fn(load_params(overrides=parse_overrides(sys.argv[1:])))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cli_preamble(argv: list[str], fn) -> bool:
    """Before a stage loads params: answer `-h/--help` (True: nothing else to do), and warn when DVC runs the
    stage with $AER_PARAMS set (DVC tracks params.yaml, so the stage's real inputs would go unrecorded)."""
    if os.environ.get("AER_PARAMS") and os.environ.get("DVC_STAGE"):
        print(f"warning: AER_PARAMS={os.environ['AER_PARAMS']} replaces params.yaml for this run, but DVC tracks "
              "params.yaml: dvc.lock will record values this stage did not use. Unset AER_PARAMS under dvc repro.",
              file=sys.stderr)
    if not {"-h", "--help"} & set(argv):
        return False
    print(stage_help(sys.modules[fn.__module__]))
    return True


def stage_help(module) -> str:
    """What a stage does (its docstring), the params keys it reads (`READS`) with current values, examples."""
    import json
    import shlex

    name = getattr(getattr(module, "__spec__", None), "name", None) or module.__name__
    reads = getattr(module, "READS", ())
    lines = [f"usage: python -m {name} [--set key=value ...]", "", (module.__doc__ or "").strip(), ""]
    try:
        params = load_params()
        flat = help_leaves(to_dict(params))
        source = os.environ.get("AER_PARAMS", "params.yaml")
        lines.append(f"Params it reads, with their values in {source} (profile {params.profile}):")
        lines += [f"  {k} = {json.dumps(v)}" for k, v in flat.items()
                  if any(k == r or k.startswith(r + ".") for r in reads)]
    except ConfigError as exc:
        flat = {}
        lines += [f"Params it reads (values unavailable: {exc}):"] + [f"  {r}" for r in reads]
    leaves = [(k, v) for r in reads for k, v in flat.items() if k == r or k.startswith(r + ".")]
    # the example doubles an integer key of the first section it reads, else repeats a short value
    key, value = next(((k, v * 2) for k, v in leaves if isinstance(v, int) and not isinstance(v, bool)),
                      next(((k, v) for k, v in leaves if len(json.dumps(v)) < 30), (None, None)))
    address = getattr(module, "DVC_ADDRESS", name.rsplit(".", 1)[-1])  # a stage of the root dvc.yaml by default
    pipeline_file = address.rpartition(":")[0] or "dvc.yaml"
    examples = [(f"python -m {name}", f"with params.yaml, as `dvc repro {address}` runs it"),
                (f"dvc repro {address}", "runs it only if a dep or one of these params changed")]
    if key:
        setting = shlex.quote(f"{key}={json.dumps(value)}")
        examples += [(f"python -m {name} --set {setting}", "a one-off override, not tracked by DVC"),
                     (f"dvc exp run {pipeline_file} -S {setting}", "the same as a tracked DVC experiment")]
    width = max(len(cmd) for cmd, _ in examples)
    lines += ["", "Examples:"] + [f"  {cmd.ljust(width)}  # {why}" for cmd, why in examples]
    return "\n".join(lines)


def help_leaves(d: dict, prefix: str = "") -> dict:
    """`flatten`, keeping an empty mapping as a value (an empty section is still a key a stage reads)."""
    out = {}
    for key, value in d.items():
        full = f"{prefix}.{key}" if prefix else key
        out.update(help_leaves(value, full) if isinstance(value, dict) and value else {full: value})
    return out


def measurement_setup(params: Params, model_path: str | None = None, *, need_model: bool):
    """-> (engine, model or None, tokenizer, backend) for difficulty, entropy and evaluate.

    Device (`model.device`) and backend (`rollout.backend`) are resolved first, so a bad choice fails
    before anything loads.  The HF model is loaded onto the device when the HF backend samples with it or
    when the stage needs it itself (`need_model`, the teacher-forced H0 pass); vLLM loads its own copy."""
    from pipeline.models.loading import load_policy, load_tokenizer, resolve_device
    from pipeline.rollout import resolve_backend

    path = model_path or params.model.name_or_path
    device = resolve_device(params.model.device)
    backend = resolve_backend(params.rollout.backend, device)
    model = None
    if backend == "hf" or need_model:
        model, tokenizer = load_policy(path, params.model.dtype, device=device,
                                       attn_implementation=params.model.attn_implementation)
    else:
        tokenizer = load_tokenizer(path)
    engine = engine_from_params(params, model, tokenizer, model_path=path, device=device)
    return engine, model, tokenizer, backend
