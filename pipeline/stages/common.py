"""What every stage entry point shares: params loading, the tracked run, uniform error output, `--help`,
and the checks that run before any model is loaded (input paths exist, generation fits the model's context).

`main_guard(run, "<stage>")` is the entry point: config errors, unusable inputs and a full
or read-only disk each print one line naming the key or path and the fix, and exit 2.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from pipeline import tracking
from pipeline.config import ConfigError, Params, flatten, load_params, to_dict
from pipeline.data.schema import load_problems  # noqa: F401  (re-exported for the stage entry points)
from pipeline.rollout import engine_from_params  # noqa: F401
from pipeline.config.loader import Source, fail
from pipeline.utils.io import InputError

EXIT_USAGE = 2


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
        if not sep or not key:
            raise ConfigError(f"command line: --set {key!r} has no key=value. Fix: use --set key=value")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = f"{getattr(exc, 'problem', None) or 'unreadable'}" + (f" at column {mark.column + 1}" if mark else "")
            raise ConfigError(f"--set {key} (command line): value {value!r} is not valid YAML ({problem}). "
                              f"Fix: quote it or close its brackets, e.g. --set '{key}=[1, 2]'") from None
    return out


@dataclass(frozen=True)
class Reads:
    """An input a stage reads: the params key holding the path, an optional file under it, the stage that
    writes it, and when the stage reads it (default: always)."""
    key: str
    under: str = ""
    producer: str = ""
    when: Optional[Callable[[Params], bool]] = None


_TRAIN_DATA = Reads("data.out_dir", "train.jsonl", "prepare")
_BASE = Reads("model.name_or_path", "config.json", "base_model")
# Which stage reads which path key (checked before any model is loaded).
STAGE_READS: dict[str, tuple[Reads, ...]] = {
    "prepare": (),
    "base_model": (Reads("data.out_dir", "train.jsonl", "prepare", when=lambda p: p.model.build_tiny),
                   Reads("data.out_dir", "eval.jsonl", "prepare", when=lambda p: p.model.build_tiny)),
    "difficulty": (_TRAIN_DATA, _BASE),
    "entropy": (_TRAIN_DATA, Reads("difficulty.out", producer="difficulty"), _BASE),
    "train": (_TRAIN_DATA, Reads("difficulty.out", producer="difficulty"),
              Reads("entropy.measure.out", producer="entropy"), _BASE),
    "evaluate": (Reads("model.name_or_path", "config.json", "base_model", when=lambda p: "base" in p.eval.models),
                 Reads("train.out_dir", "final", "train", when=lambda p: "trained" in p.eval.models),
                 Reads("data.out_dir", "eval.jsonl", "prepare",
                       when=lambda p: any(b.name == "synthetic" and not b.path for b in p.eval.benchmarks))),
    "compare": (Reads("entropy.measure.out", producer="entropy"),),
}
# The max_new_tokens key of each stage that generates.
STAGE_GENERATES = {"difficulty": "difficulty.max_new_tokens", "entropy": "entropy.measure.max_new_tokens",
                   "train": "train.max_new_tokens", "evaluate": "eval.max_new_tokens"}


def _value(params: Params, key: str):
    node = params
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_inputs(params: Params, reads: Sequence[Reads], source: str) -> None:
    """ConfigError naming the key (and where its value came from) for the first input that does not exist."""
    for r in reads:
        if r.when is not None and not r.when(params):
            continue
        if r.key == "model.name_or_path" and not params.model.build_tiny:
            _check_hub_model(params.model.name_or_path, source)
            continue
        path = Path(str(_value(params, r.key))) / r.under if r.under else Path(str(_value(params, r.key)))
        if not path.exists():
            run = f"run the '{r.producer}' stage first (dvc repro {r.producer}) or " if r.producer else ""
            fail(source, r.key, str(_value(params, r.key)), f"{path} does not exist",
                 f"{run}point '{r.key}' at an existing path")


def _check_hub_model(name: str, source: str) -> None:
    """A model that is not built here must be a local directory, or a hub id that can be fetched: with hub
    access off (HF_HUB_OFFLINE=1) it must already be in the local Hugging Face cache."""
    if Path(name).exists():
        if not (Path(name) / "config.json").is_file():
            fail(source, "model.name_or_path", name, "is a path without a config.json",
                 "point it at a saved model directory or a hub id")
        return
    if os.environ.get("HF_HUB_OFFLINE", "0") in ("0", "", "false", "False") or _hub_config(name):
        return
    fail(source, "model.name_or_path", name, "is neither a local model directory nor in the local Hugging Face "
         "cache, and hub access is off (HF_HUB_OFFLINE=1)",
         "download it once with hub access on, or point model.name_or_path at a local copy")


def _hub_config(name: str) -> Optional[Path]:
    if Path(name).is_dir():
        path = Path(name) / "config.json"
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        hit = try_to_load_from_cache(name, "config.json")
    except Exception:  # an id the hub library rejects (e.g. a malformed repo id) is simply not cached
        return None
    return Path(hit) if isinstance(hit, str) else None


def check_context(params: Params, key: str, source: str) -> None:
    """`key` (a max_new_tokens) plus the shortest possible longest prompt must fit in the model's context.

    The prompt length is a lower bound: pieces of Qwen2's pre-tokenizer split (BPE never merges across
    them) of the template around the longest generated problem, so a failure here is certain; passing does
    not prove that every sourced prompt fits."""
    if params.model.build_tiny:
        limit, of = params.model.tiny.max_position_embeddings, "model.tiny.max_position_embeddings"
    else:
        config = _hub_config(params.model.name_or_path)
        limit = json.loads(config.read_text()).get("max_position_embeddings") if config else None
        of = f"max_position_embeddings of {params.model.name_or_path}"
    if not isinstance(limit, int):
        return
    prompt, new = _prompt_pieces(params), _value(params, key)
    if new + prompt > limit:
        more = " or raise model.tiny.max_position_embeddings" if params.model.build_tiny else ""
        fail(source, key, new, f"plus the longest prompt (at least {prompt} tokens) exceeds the model context "
             f"({of} = {limit})", f"use {key} <= {limit - prompt}{more}")


def _prompt_pieces(params: Params) -> int:
    import regex

    from pipeline.data import synthetic
    from pipeline.models.tokenizer import QWEN2_SPLIT

    syn = params.data.synthetic
    problems = [""]
    if syn.enabled:
        grades = sorted(set(syn.train_grades) | set(syn.eval_grades))
        problems += [p.problem for p in synthetic.generate(params.seed, "eval", grades, 64)]
    template = params.model.prompt_template
    return max(len(regex.findall(QWEN2_SPLIT, template.replace("{problem}", text))) for text in problems) + 1


def _disk_error(exc: OSError) -> Optional[str]:
    """One line for a write that failed because the disk is full or read-only; None for other errors."""
    path = exc.filename or "an output file"
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"{path}: no space left on device. Fix: free disk space (or move outputs to a larger disk) and rerun"
    if exc.errno == errno.EROFS:
        return f"{path}: read-only file system. Fix: write outputs to a writable location and rerun"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied (read-only output?). Fix: make it writable and rerun"
    return None


def main_guard(fn, stage: Optional[str] = None) -> None:
    """Run a stage main.  Before `fn`: params are loaded and validated, the inputs `STAGE_READS[stage]`
    must exist and `STAGE_GENERATES[stage]` must fit the model's context.  Config and input errors and a
    full or read-only disk print one clear line and exit 2 (no traceback)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cli_preamble(sys.argv[1:], fn):
        return
    try:
        overrides = parse_overrides(sys.argv[1:])
        params = load_params(overrides=overrides)
        source = Source(os.environ.get("AER_PARAMS", "params.yaml"), overrides)
        check_inputs(params, STAGE_READS.get(stage, ()), source)
        if stage in STAGE_GENERATES:
            check_context(params, STAGE_GENERATES[stage], source)
        fn(params)
    except (ConfigError, InputError) as exc:
        _exit(str(exc))
    except OSError as exc:
        line = _disk_error(exc)
        if line is None:
            raise
        _exit(line)


def _exit(line: str) -> None:
    print(f"error: {line}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE) from None


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
