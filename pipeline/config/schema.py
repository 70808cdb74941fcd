"""The params.yaml schema: one frozen dataclass per section, plus cross-field rules.

Sections mirror params.yaml: seed, data, model, difficulty, entropy, train, rollout, eval, compare,
tracking, hub (what `make download` fetches, pinned to hub revisions).  Defaults here ARE the embedded CPU
default: params.yaml is rendered from them plus an overlay `profiles/<name>.yaml`
(pipeline/config/profiles.py; tests/config/test_profiles.py keeps them equal).  The method list and the
`entropy.<method>` sections come from the method registry (`pipeline.config.methods`): each method brings
its own config dataclass.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Optional

from pipeline.config.loader import build, fail, fld, to_dict
from pipeline.config.methods import METHODS as METHOD_ENTRIES
from pipeline.config.methods import method_configs

METHODS = tuple(METHOD_ENTRIES)
Method = Literal[METHODS]  # type: ignore[valid-type]
MAX_SEED = 2**32 - 1  # numpy's RandomState accepts seeds below 2**32
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


@dataclass(frozen=True)
class SourceCfg:
    """One training-data source: a hub dataset id or a local jsonl/parquet path."""
    name: str
    path: str
    split: str = "train"
    problem_field: str = "problem"
    answer_field: str = "answer"
    answer_format: Literal["plain", "gsm8k", "boxed"] = "plain"
    limit: Optional[int] = fld(None, ge=1, fix="use a positive row count or null for all rows")


@dataclass(frozen=True)
class SyntheticCfg:
    enabled: bool = True
    n_train: int = fld(2000, ge=0, fix="use 0 to disable or a positive count")
    n_eval_per_grade: int = fld(12, ge=0)
    train_grades: tuple[int, ...] = fld(factory=lambda: (1, 2, 3, 4, 5, 6, 7), ge=1, le=8,
                                        fix="grades run from 1 (easiest) to 8")
    eval_grades: tuple[int, ...] = fld(factory=lambda: (1, 2, 3, 4, 5, 6, 7), ge=1, le=8,
                                       fix="grades run from 1 (easiest) to 8")


@dataclass(frozen=True)
class BenchmarkCfg:
    """A benchmark: a known name (see pipeline.data.benchmarks) with an optional hub id or local path."""
    name: str
    path: Optional[str] = None
    n_samples: Optional[int] = fld(None, ge=1)


@dataclass(frozen=True)
class DecontamCfg:
    benchmarks: tuple[BenchmarkCfg, ...] = ()
    ngram: int = fld(13, ge=4, fix="use an n-gram length of at least 4 words (13 is common)")


@dataclass(frozen=True)
class DataCfg:
    synthetic: SyntheticCfg = fld(factory=SyntheticCfg)
    sources: tuple[SourceCfg, ...] = ()
    dedup: bool = True
    decontaminate: DecontamCfg = fld(factory=DecontamCfg)
    out_dir: str = "data/prepared"


@dataclass(frozen=True)
class TinyModelCfg:
    """Architecture of the embedded Qwen2-type base model (head size >= 32 for vLLM's CPU attention)."""
    vocab_size: int = fld(384, ge=300, fix="the byte-level alphabet alone needs 256 tokens")
    hidden_size: int = fld(128, ge=32)
    num_layers: int = fld(2, ge=1)
    num_heads: int = fld(4, ge=1)
    num_kv_heads: int = fld(2, ge=1)
    intermediate_size: int = fld(384, ge=8)
    max_position_embeddings: int = fld(256, ge=64)


@dataclass(frozen=True)
class SftCfg:
    """Warm start of the embedded model on generated worked solutions, with noisy steps (`step_noise`)."""
    n_examples: int = fld(8000, ge=1)
    steps: int = fld(1500, ge=0)
    batch_size: int = fld(32, ge=1)
    lr: float = fld(3e-3, gt=0.0, le=1.0, fix="use a learning rate such as 3e-3")
    warmup_steps: int = fld(25, ge=0)
    max_grade: int = fld(7, ge=1, le=8)
    step_noise: float = fld(0.2, ge=0.0, lt=1.0,
                            fix="use a probability in [0, 1), e.g. 0.2: each worked step's result is then a wrong "
                                "digit with that probability, so the base model stays unsure (docs/testbed.md)")


@dataclass(frozen=True)
class ModelCfg:
    name_or_path: str = "models/base"
    build_tiny: bool = True
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    prompt_template: str = "Q: {problem}\nA:"
    use_chat_template: bool = False
    tiny: TinyModelCfg = fld(factory=TinyModelCfg)
    sft: SftCfg = fld(factory=SftCfg)
    # With build_tiny: a randomly initialised model of this named architecture instead of the tiny one
    # (no SFT, tokenizer still trained locally); for GPU smoke runs without network.
    init_config: Optional[Literal["qwen2.5-1.5b"]] = None
    # Where difficulty, entropy and evaluation put the model: auto = cuda when available, else cpu.
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # Tokens that end a response besides EOS, e.g. the chat template's "<|im_end|>" (each one token).
    stop_tokens: tuple[str, ...] = ()
    # transformers attention kernel for the HF model (null: transformers' default, sdpa where available).
    attn_implementation: Optional[Literal["sdpa", "eager", "flash_attention_2"]] = None


@dataclass(frozen=True)
class DifficultyCfg:
    n_samples: int = fld(8, ge=1, fix="use at least 1 sample per prompt (8-16 typical)")
    temperature: float = fld(1.0, gt=0.0, le=2.0)
    top_p: float = fld(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = fld(80, ge=1)
    bucket_edges: tuple[float, ...] = fld(factory=lambda: (0.25, 0.5, 0.75), gt=0.0, lt=1.0,
                                          fix="use increasing pass-rate edges strictly inside (0, 1)")
    drop_always_solved: bool = False
    drop_never_solved: bool = True  # no learning signal from prompts the base model never solves
    max_prompts: Optional[int] = fld(None, ge=1)
    out: str = "data/difficulty/pass_rates.jsonl"


@dataclass(frozen=True)
class MeasureCfg:
    """How the initial entropy H0 is measured (stage `entropy`)."""
    n_prompts: int = fld(64, ge=1)
    n_samples: int = fld(4, ge=1)
    temperature: float = fld(1.0, gt=0.0, le=2.0)
    max_new_tokens: int = fld(80, ge=1)
    bootstrap: int = fld(1000, ge=0)
    chunk_size: int = fld(1024, ge=1)
    out: str = "data/entropy/h0.json"


# entropy: how H0 is measured, then one section per registered method with a config dataclass
EntropyCfg = dataclasses.make_dataclass(
    "EntropyCfg", [("measure", MeasureCfg, fld(factory=MeasureCfg))]
    + [(name, cfg, fld(factory=cfg)) for name, cfg in method_configs().items()], frozen=True)


@dataclass(frozen=True)
class DeepSpeedCfg:
    zero_stage: int = fld(0, ge=0, le=3, fix="use 0 (CPU default), 1, 2 or 3 (3 partitions the weights too)")
    bf16: bool = False
    gradient_clipping: float = fld(1.0, ge=0.0)
    # A DeepSpeed JSON config merged over the generated one: its keys win, "auto" values take ours.
    config_file: Optional[str] = None
    gradient_checkpointing: bool = False          # recompute decoder activations in backward
    offload_optimizer: bool = False               # optimizer states in host memory (ZeRO >= 1)
    num_processes: int = fld(1, ge=1, fix="use 1, or the number of GPUs on this machine for torchrun")


@dataclass(frozen=True)
class TrainCfg:
    method: Method = "aer"
    steps: int = fld(60, ge=1)
    prompts_per_step: int = fld(32, ge=1)
    group_size: int = fld(8, ge=2, fix="GRPO needs at least 2 samples per prompt")
    micro_batch_size: int = fld(32, ge=1, fix="samples per forward/backward on one rank, e.g. 32")
    mini_batch_size: Optional[int] = fld(None, ge=1, fix="samples per optimizer step over all ranks (a multiple "
                                         "of group_size dividing prompts_per_step * group_size), or null for one "
                                         "step per pass over the rollout batch")
    updates_per_batch: int = fld(2, ge=1, fix="passes (epochs) over each rollout batch, e.g. 1 or 2")
    lr: float = fld(1e-4, gt=0.0, le=1.0)
    weight_decay: float = fld(0.0, ge=0.0)
    clip_low: float = fld(0.2, gt=0.0, le=1.0, fix="the PPO clip's lower bound is 1 - clip_low; use a value in (0, 1]")
    clip_high: float = fld(0.2, gt=0.0, le=1.0,
                           fix="Clip-Higher uses clip_high > clip_low, e.g. 0.28; values above 1 disable the clip")
    agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    scale_by_std: bool = True
    temperature: float = fld(1.0, gt=0.0, le=2.0)
    top_p: float = fld(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = fld(80, ge=1)
    max_consecutive_skips: int = fld(3, ge=1, fix="stop after this many consecutive steps with a non-finite "
                                     "loss or gradient, e.g. 3")
    checkpoint_every: int = fld(10, ge=1)
    resume: Literal["auto", "never"] = "auto"
    out_dir: str = "models/trained"
    log_dir: str = "plots"                       # train.csv and train/*.png go here
    metrics_file: str = "metrics/train.json"
    deepspeed: DeepSpeedCfg = fld(factory=DeepSpeedCfg)


@dataclass(frozen=True)
class RolloutCfg:
    backend: Literal["auto", "hf", "vllm"] = "auto"
    kv_cache_gb: float = fld(1.0, gt=0.0)
    gpu_memory_utilization: float = fld(0.5, gt=0.0, le=1.0)
    tensor_parallel_size: int = fld(1, ge=1)
    enforce_eager: bool = True
    batch_size: int = fld(64, ge=1)
    # vLLM sleep mode when it shares the GPU with a model being trained or measured: sleep after each
    # generate (weights to host memory, KV cache freed), wake before the next call or weight sync.
    sleep_mode: bool = False


@dataclass(frozen=True)
class EvalVariantCfg:
    """An extra evaluation of every benchmark at another temperature (reported as `<benchmark>@T<t>`)."""
    temperature: float = fld(0.6, ge=0.0, le=2.0)
    top_p: Optional[float] = fld(None, gt=0.0, le=1.0, fix="null keeps eval.top_p")
    n_samples: Optional[int] = fld(None, ge=1, fix="null keeps eval.n_samples")


@dataclass(frozen=True)
class EvalCfg:
    benchmarks: tuple[BenchmarkCfg, ...] = fld(factory=lambda: (BenchmarkCfg(name="synthetic"),))
    n_samples: int = fld(64, ge=1)
    temperature: float = fld(1.0, ge=0.0, le=2.0)
    top_p: float = fld(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = fld(80, ge=1)
    bootstrap: int = fld(1000, ge=0)
    out_dir: str = "data/eval"
    metrics_file: str = "metrics/eval.json"
    models: tuple[Literal["base", "trained"], ...] = ("base", "trained")
    variants: tuple[EvalVariantCfg, ...] = fld(factory=lambda: (EvalVariantCfg(temperature=0.6, n_samples=16),))


@dataclass(frozen=True)
class ArmCfg:
    """One arm of the method comparison: the entropy method and any train.* / entropy.* overrides."""
    method: Method
    overrides: dict[str, Any] = fld(factory=dict)


def _default_arms() -> dict[str, ArmCfg]:
    """Every method as its authors run it (Clip-Cov with its recipe's clip bounds 1 / 1, SIREN on Dr.GRPO),
    plus a large fixed bonus (`fixed_high`) that shows what an uncontrolled entropy bonus does."""
    return {"grpo": ArmCfg("none"), "fixed": ArmCfg("fixed"),
            "fixed_high": ArmCfg("fixed", {"entropy.fixed.beta": 0.15}), "aer": ArmCfg("aer"),
            "aent": ArmCfg("aent"),
            "siren": ArmCfg("siren", {"train.agg_mode": "seq-mean-token-sum-norm", "train.scale_by_std": False}),
            "skywork": ArmCfg("skywork"), "clip_higher": ArmCfg("none", {"train.clip_high": 0.28}),
            "clip_cov": ArmCfg("clip_cov", {"train.clip_low": 1.0, "train.clip_high": 1.0}),
            "kl_cov": ArmCfg("kl_cov")}


@dataclass(frozen=True)
class PhenomenonCfg:
    """A phenomenon the testbed must show (pipeline/eval/phenomena.py): which arm, and its threshold.
    `reference` names a second arm the phenomenon is judged against; `ma_threshold`/`window` bound a
    moving average."""
    arm: str
    threshold: float = fld(gt=0.0)
    reference: Optional[str] = None
    ma_threshold: Optional[float] = fld(None, gt=0.0)
    window: int = fld(5, ge=1)


@dataclass(frozen=True)
class CompareCfg:
    arms: dict[str, ArmCfg] = fld(factory=_default_arms)
    seeds: tuple[int, ...] = fld(factory=lambda: (1, 2, 3), ge=0, le=MAX_SEED,
                                 fix=f"use seeds between 0 and {MAX_SEED} (numpy's limit)")
    steps: Optional[int] = fld(None, ge=1, fix="null trains as long as train.steps")
    short_steps: int = fld(20, ge=1, fix="training steps of `make compare-short` (one seed, untracked)")
    baseline: str = "grpo"
    phenomena: dict[str, PhenomenonCfg] = fld(factory=lambda: {
        "grpo_gain": PhenomenonCfg("grpo", 0.10), "grpo_collapse": PhenomenonCfg("grpo", 0.35),
        "fixed_explosion": PhenomenonCfg("fixed_high", 1.5),
        "aer_tracking": PhenomenonCfg("aer", 0.10, reference="grpo", ma_threshold=0.20, window=5)})
    runs_dir: str = "runs"
    out_dir: str = "reports"


@dataclass(frozen=True)
class TrackingCfg:
    experiment: str = "aer-pipeline"
    uri: Optional[str] = None
    enabled: bool = True


@dataclass(frozen=True)
class HubItemCfg:
    """One hub download: a model snapshot (a directory) or one split of a dataset (written as jsonl)."""
    repo: str
    local: str
    revision: str = fld("main", fix="pin a commit sha (40 hex digits) from the repository's history on the hub")
    config: Optional[str] = None  # dataset configuration name, e.g. "main" for openai/gsm8k
    split: Optional[str] = None   # datasets only: the split written to `local`


@dataclass(frozen=True)
class HubCfg:
    """What `make download` fetches into `dir` (a DVC-tracked output); every other target runs offline."""
    dir: str = "hub"
    model: Optional[HubItemCfg] = None
    datasets: tuple[HubItemCfg, ...] = ()


@dataclass(frozen=True)
class Params:
    # Sections and the seed must be written out (params.yaml is rendered in full): a forgotten section must
    # not silently change the experiment.  Keys inside a section may default.
    seed: int = fld(1234, ge=0, le=MAX_SEED, required=True, fix=f"use a seed between 0 and {MAX_SEED} (numpy's limit)")
    profile: str = fld("embedded", fix="name a file of profiles/ (see `make profile`)")  # set by the renderer
    data: DataCfg = fld(factory=DataCfg, required=True)
    model: ModelCfg = fld(factory=ModelCfg, required=True)
    difficulty: DifficultyCfg = fld(factory=DifficultyCfg, required=True)
    entropy: EntropyCfg = fld(factory=EntropyCfg, required=True)
    train: TrainCfg = fld(factory=TrainCfg, required=True)
    rollout: RolloutCfg = fld(factory=RolloutCfg, required=True)
    eval: EvalCfg = fld(factory=EvalCfg, required=True)
    compare: CompareCfg = fld(factory=CompareCfg, required=True)
    tracking: TrackingCfg = fld(factory=TrackingCfg, required=True)
    hub: HubCfg = fld(factory=HubCfg, required=True)


def _bad(source: str, key: str, value, problem: str, fix: str) -> None:
    fail(source, key, value, problem, fix)  # names --set as the source when the key came from there


def validate_params(p: Params, source: str = "params.yaml") -> None:
    """Cross-field rules that single-field checks cannot express."""
    tiny = p.model.tiny
    if tiny.hidden_size % tiny.num_heads:
        _bad(source, "model.tiny.num_heads", tiny.num_heads, f"does not divide hidden_size {tiny.hidden_size}",
             "choose num_heads so that hidden_size / num_heads is an integer")
    if tiny.hidden_size // tiny.num_heads < 32:
        _bad(source, "model.tiny.num_heads", tiny.num_heads,
             f"gives head size {tiny.hidden_size // tiny.num_heads} < 32, which vLLM's CPU attention rejects",
             "use fewer heads or a larger hidden_size")
    if tiny.num_heads % tiny.num_kv_heads:
        _bad(source, "model.tiny.num_kv_heads", tiny.num_kv_heads, "does not divide num_heads",
             "grouped-query attention needs num_heads to be a multiple of num_kv_heads")
    edges = p.difficulty.bucket_edges
    if list(edges) != sorted(set(edges)):
        _bad(source, "difficulty.bucket_edges", list(edges), "must be strictly increasing",
             "list pass-rate edges in increasing order, e.g. [0.25, 0.5, 0.75]")
    if p.difficulty.drop_always_solved and p.difficulty.drop_never_solved and p.difficulty.n_samples < 2:
        _bad(source, "difficulty.n_samples", p.difficulty.n_samples, "leaves nothing after both filters",
             "use n_samples >= 2 or disable one filter")
    for name in method_configs():
        for key, value, problem, fix in getattr(getattr(p.entropy, name), "problems", lambda: [])():
            _bad(source, f"entropy.{name}.{key}", value, problem, fix)
    validate_train(p.train, source)
    if "{problem}" not in p.model.prompt_template:
        _bad(source, "model.prompt_template", p.model.prompt_template, "has no {problem} placeholder",
             "include {problem} where the problem text goes")
    if p.model.dtype == "float16" and not _cuda_available():
        _bad(source, "model.dtype", p.model.dtype, "is not supported on this machine (no CUDA GPU): float16 "
             "matmuls and sampling fail or are emulated on CPU", "use model.dtype: float32 (or bfloat16) on CPU")
    if p.train.deepspeed.bf16 and p.model.dtype == "float16":
        _bad(source, "model.dtype", p.model.dtype, "conflicts with train.deepspeed.bf16: true",
             "use model.dtype: bfloat16 with bf16 training")
    if not p.data.synthetic.enabled and not p.data.sources:
        _bad(source, "data.sources", [], "is empty while data.synthetic.enabled is false",
             "enable the synthetic task family or list at least one source")
    for name, arm in p.compare.arms.items():
        check_arm_keys(name, arm, source)
    if p.compare.baseline not in p.compare.arms:
        _bad(source, "compare.baseline", p.compare.baseline, "is not an arm of compare.arms",
             f"use one of {sorted(p.compare.arms)}")
    for name, ph in p.compare.phenomena.items():
        for key, arm in (("arm", ph.arm), ("reference", ph.reference)):
            if arm is not None and arm not in p.compare.arms:
                _bad(source, f"compare.phenomena.{name}.{key}", arm, "is not an arm of compare.arms",
                     f"use one of {sorted(p.compare.arms)}")
    names = [b.name for b in p.eval.benchmarks]
    if len(set(names)) != len(names):
        _bad(source, "eval.benchmarks", names, "lists a benchmark twice", "list each benchmark once")
    labels = [f"{t:g}" for t in [p.eval.temperature] + [v.temperature for v in p.eval.variants]]
    if len(set(labels)) != len(labels):  # results are stored as <benchmark>@T<t>: a repeat overwrites one
        _bad(source, "eval.variants", [v.temperature for v in p.eval.variants], f"repeats a temperature (or "
             f"eval.temperature = {p.eval.temperature:g}); each variant is stored as <benchmark>@T<t>, so one "
             "result would overwrite the other", "give every variant its own temperature, not eval.temperature")
    _validate_gpu_path(p, source)


def optimizer_steps_per_rollout(t: TrainCfg) -> int:
    batch = t.prompts_per_step * t.group_size
    return t.updates_per_batch * (batch // (t.mini_batch_size or batch))


def validate_train(t: TrainCfg, source: str) -> None:
    """Mini-batch shape, and mechanisms that can never act with one optimizer step per rollout batch."""
    batch = t.prompts_per_step * t.group_size
    mini = t.mini_batch_size or batch
    if batch % mini or mini % t.group_size:
        _bad(source, "train.mini_batch_size", t.mini_batch_size,
             f"must divide the rollout batch (prompts_per_step x group_size = {batch}) into whole groups of "
             f"{t.group_size}", f"use a multiple of {t.group_size} that divides {batch}, e.g. {batch // 2}")
    method = METHOD_ENTRIES[t.method]
    if t.clip_high != t.clip_low and not method.uses_ppo_clip:
        _bad(source, "train.clip_high", t.clip_high, f"has no effect: train.method {t.method} does not use the PPO "
             "clip", "set train.clip_high equal to train.clip_low")
    if optimizer_steps_per_rollout(t) > 1:
        return
    fix = (f"take several optimizer steps per rollout batch: train.mini_batch_size < {batch} (e.g. {batch // 2}) "
           "or train.updates_per_batch >= 2")
    if t.clip_high != t.clip_low:
        _bad(source, "train.clip_high", t.clip_high, "differs from train.clip_low, but with one optimizer step per "
             "rollout batch the importance ratio is exactly 1 and Clip-Higher's bound never acts", fix)
    if method.off_policy_only:
        _bad(source, "train.method", t.method, "acts only once the policy moves away from the rollout policy, "
             "which never happens with one optimizer step per rollout batch", fix)


def check_arm_keys(name: str, arm: ArmCfg, source: str) -> None:
    for key in arm.overrides:
        if not key.startswith(("train.", "entropy.")) or key == "train.method":
            _bad(source, f"compare.arms.{name}.overrides", key, "is not a train.* or entropy.* key (the method "
                 "is the arm's `method`)", "override train.* and entropy.* keys only, e.g. train.clip_high: 0.28")


def arm_params(p: Params, name: str, source: str = "params.yaml") -> Params:
    """The full, validated config of comparison arm `name` (its method and overrides over `p`); errors name
    the arm.  The comparison validates every arm with this before it trains anything."""
    arm = p.compare.arms[name]
    raw = to_dict(p)
    raw["compare"].update(arms={name: to_dict(arm)}, baseline=name, phenomena={})  # this arm alone
    for key, value in {"train.method": arm.method, **arm.overrides}.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                _bad(source, f"compare.arms.{name}.overrides", key, "names no section of params.yaml",
                     "use a dotted key such as train.clip_high")
            node = node[part]
        node[leaf] = value
    arm_source = f"{source}: compare.arms.{name}"
    built = build(Params, raw, arm_source)
    validate_params(built, arm_source)
    return built


def _validate_gpu_path(p: Params, source: str) -> None:
    """DeepSpeed, model-build and download rules (issue 15)."""
    import json
    from pathlib import Path, PurePosixPath

    ds = p.train.deepspeed
    if ds.offload_optimizer and ds.zero_stage == 0:
        _bad(source, "train.deepspeed.offload_optimizer", True, "needs ZeRO stage 1, 2 or 3",
             "set train.deepspeed.zero_stage to 1 or more, or offload_optimizer to false")
    if p.train.prompts_per_step % ds.num_processes:
        _bad(source, "train.deepspeed.num_processes", ds.num_processes,
             f"does not divide train.prompts_per_step = {p.train.prompts_per_step}",
             "each rank generates for an equal share of the step's prompts; pick a divisor")
    group, n = p.train.group_size, ds.num_processes
    mini = p.train.mini_batch_size or p.train.prompts_per_step * group
    if mini % (n * group):  # each rank takes whole prompt groups of every global mini-batch (train.batch.shard)
        _bad(source, "train.mini_batch_size", p.train.mini_batch_size,
             f"does not split into whole prompt groups of {group} samples over train.deepspeed.num_processes = "
             f"{n} ranks", f"use a multiple of {n * group} (num_processes x group_size), or null for the whole batch")
    if ds.config_file is not None:
        path = Path(ds.config_file)
        try:
            user = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _bad(source, "train.deepspeed.config_file", ds.config_file, f"cannot be read as JSON ({exc})",
                 "point it at a readable DeepSpeed JSON config, or set it to null")
        if not isinstance(user, dict):
            _bad(source, "train.deepspeed.config_file", ds.config_file, "does not hold a JSON object",
                 "a DeepSpeed config is a JSON object of keys to values")
    if p.model.init_config is not None and not p.model.build_tiny:
        _bad(source, "model.init_config", p.model.init_config, "needs model.build_tiny: true",
             "set build_tiny: true (the base_model stage builds the model) or init_config: null")
    if any(not t for t in p.model.stop_tokens):
        _bad(source, "model.stop_tokens", list(p.model.stop_tokens), "holds an empty string",
             "list token strings such as \"<|im_end|>\"")
    items = ([p.hub.model] if p.hub.model else []) + list(p.hub.datasets)
    locals_ = [i.local for i in items]
    if len(set(locals_)) != len(locals_):
        _bad(source, "hub", locals_, "writes two downloads to the same local path", "give each its own local path")
    root = PurePosixPath(p.hub.dir)
    for key, item in [("hub.model", p.hub.model)] + [(f"hub.datasets[{i}]", d) for i, d in enumerate(p.hub.datasets)]:
        if item is not None and root not in PurePosixPath(item.local).parents:
            _bad(source, f"{key}.local", item.local, f"is not inside hub.dir '{p.hub.dir}'",
                 f"put it under {p.hub.dir}/ so that DVC tracks it with the download stage")
        if item is not None and key != "hub.model" and item.split is None:
            _bad(source, f"{key}.split", None, "is required for a dataset", "name the split to write, e.g. train")


def _cuda_available() -> bool:
    import torch  # only for model.dtype float16; importing torch is otherwise left to the stages

    return torch.cuda.is_available()
