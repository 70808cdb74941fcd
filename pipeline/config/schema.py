"""The params.yaml schema: one frozen dataclass per section, plus cross-field rules.

Sections mirror params.yaml: seed, data, model, difficulty, entropy, train, rollout, eval, tracking.
Defaults here equal the embedded CPU default; `profiles/gpu.yaml` overrides them for the real setup.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from pipeline.config.loader import ConfigError, fld

METHODS = ("none", "fixed", "aer", "aent", "siren", "skywork", "clip_cov", "kl_cov")
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


@dataclass(frozen=True)
class DifficultyCfg:
    n_samples: int = fld(8, ge=1, fix="use at least 1 sample per prompt (8-16 typical)")
    temperature: float = fld(1.0, gt=0.0, le=2.0)
    top_p: float = fld(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = fld(80, ge=1)
    bucket_edges: tuple[float, ...] = fld(factory=lambda: (0.25, 0.5, 0.75), gt=0.0, lt=1.0,
                                          fix="use increasing pass-rate edges strictly inside (0, 1)")
    drop_always_solved: bool = False
    drop_never_solved: bool = True
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


@dataclass(frozen=True)
class AerCfg:
    tau: float = fld(0.4, gt=0.0, fix="target entropy is tau * H0; use a ratio such as 0.4")
    alpha_init: float = fld(0.0, ge=0.0)
    lr: float = fld(30.0, gt=0.0)
    alpha_min: float = fld(0.0, ge=0.0)
    alpha_max: float = fld(0.3, gt=0.0)
    weight_mode: Literal["linear", "threshold"] = "linear"
    threshold: float = fld(0.5, ge=0.0, le=1.0)
    ema_blend: float = fld(0.0, ge=0.0, le=1.0, fix="0 uses base pass rates only; 1 uses only online accuracy")
    ema_decay: float = fld(0.9, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class FixedCfg:
    beta: float = fld(1e-3, ge=0.0)


@dataclass(frozen=True)
class AentCfg:
    lambda_init: float = fld(2e-3, ge=0.0)
    clamp_p: float = fld(0.33, ge=0.0, lt=1.0)
    h_low: float = fld(0.15, ge=0.0)
    h_high: float = fld(0.24, ge=0.0)
    beta: float = fld(2e-3, gt=0.0)
    warmup_steps: int = fld(30, ge=0)
    lambda_low: float = fld(6e-4, ge=0.0)
    lambda_high: float = fld(9e-3, gt=0.0)


@dataclass(frozen=True)
class SirenCfg:
    beta: float = fld(5e-3, ge=0.0)
    top_p: float = fld(0.8, gt=0.0, le=1.0)
    top_k: int = fld(10000, ge=1)
    rho: float = fld(0.8, ge=0.0, lt=1.0)


@dataclass(frozen=True)
class SkyworkCfg:
    target: float = fld(0.2, gt=0.0)
    coef_init: float = fld(5e-3, ge=0.0)
    delta: float = fld(5e-4, gt=0.0)
    coef_min: float = fld(0.0, ge=0.0)
    coef_max: float = fld(5e-2, gt=0.0)


@dataclass(frozen=True)
class CovCfg:
    """Clip-Cov / KL-Cov (Cui et al. 2025)."""
    clip_ratio: float = fld(2e-4, gt=0.0, lt=1.0)
    clip_lb: float = 1.0
    clip_ub: float = 5.0
    kl_ratio: float = fld(2e-3, gt=0.0, lt=1.0)
    kl_coef: float = fld(1.0, ge=0.0)


@dataclass(frozen=True)
class EntropyCfg:
    measure: MeasureCfg = fld(factory=MeasureCfg)
    aer: AerCfg = fld(factory=AerCfg)
    fixed: FixedCfg = fld(factory=FixedCfg)
    aent: AentCfg = fld(factory=AentCfg)
    siren: SirenCfg = fld(factory=SirenCfg)
    skywork: SkyworkCfg = fld(factory=SkyworkCfg)
    cov: CovCfg = fld(factory=CovCfg)


@dataclass(frozen=True)
class DeepSpeedCfg:
    zero_stage: int = fld(0, ge=0, le=3, fix="use 0 (CPU default), 1, 2 or 3 (3 partitions the weights too)")
    bf16: bool = False
    gradient_clipping: float = fld(1.0, ge=0.0)


@dataclass(frozen=True)
class TrainCfg:
    method: Literal["none", "grpo", "fixed", "aer", "aent", "siren", "skywork", "clip_cov", "kl_cov"] = "aer"
    steps: int = fld(60, ge=1)
    prompts_per_step: int = fld(32, ge=1)
    group_size: int = fld(8, ge=2, fix="GRPO needs at least 2 samples per prompt")
    micro_batch_size: int = fld(32, ge=1)
    updates_per_batch: int = fld(2, ge=1)
    lr: float = fld(1e-4, gt=0.0, le=1.0)
    weight_decay: float = fld(0.0, ge=0.0)
    clip_low: float = fld(0.2, gt=0.0, lt=1.0)
    clip_high: float = fld(0.2, gt=0.0, fix="Clip-Higher uses clip_high > clip_low, e.g. 0.28")
    agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = "token-mean"
    scale_by_std: bool = True
    temperature: float = fld(1.0, gt=0.0, le=2.0)
    top_p: float = fld(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = fld(80, ge=1)
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


@dataclass(frozen=True)
class SweepMethodCfg:
    """One column of the method comparison: a name, the entropy method and optional Clip-Higher bound."""
    name: str
    method: Literal["none", "grpo", "fixed", "aer", "aent", "siren", "skywork", "clip_cov", "kl_cov"]
    clip_high: Optional[float] = fld(None, gt=0.0)


@dataclass(frozen=True)
class CompareCfg:
    methods: tuple[SweepMethodCfg, ...] = fld(factory=lambda: tuple(
        SweepMethodCfg(n, m, c) for n, m, c in (("grpo", "none", None), ("fixed", "fixed", None), ("aer", "aer", None),
                                                ("aent", "aent", None), ("siren", "siren", None),
                                                ("clip_higher", "none", 0.28))))
    seeds: tuple[int, ...] = (1, 2, 3)
    steps: Optional[int] = fld(None, ge=1, fix="null trains as long as train.steps")
    runs_dir: str = "runs"
    out_dir: str = "reports"


@dataclass(frozen=True)
class TrackingCfg:
    experiment: str = "aer-pipeline"
    uri: Optional[str] = None
    enabled: bool = True


@dataclass(frozen=True)
class Params:
    seed: int = fld(1234, ge=0)
    profile: Literal["embedded", "gpu"] = "embedded"
    data: DataCfg = fld(factory=DataCfg)
    model: ModelCfg = fld(factory=ModelCfg)
    difficulty: DifficultyCfg = fld(factory=DifficultyCfg)
    entropy: EntropyCfg = fld(factory=EntropyCfg)
    train: TrainCfg = fld(factory=TrainCfg)
    rollout: RolloutCfg = fld(factory=RolloutCfg)
    eval: EvalCfg = fld(factory=EvalCfg)
    compare: CompareCfg = fld(factory=CompareCfg)
    tracking: TrackingCfg = fld(factory=TrackingCfg)


def _bad(source: str, key: str, value, problem: str, fix: str) -> None:
    raise ConfigError(f"{source}: key '{key}' = {value!r}: {problem}. Fix: {fix}")


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
    aer = p.entropy.aer
    if not aer.alpha_min <= aer.alpha_init <= aer.alpha_max:
        _bad(source, "entropy.aer.alpha_init", aer.alpha_init,
             f"is outside [alpha_min, alpha_max] = [{aer.alpha_min}, {aer.alpha_max}]",
             "pick alpha_init within the box")
    aent = p.entropy.aent
    if aent.h_low > aent.h_high:
        _bad(source, "entropy.aent.h_low", aent.h_low, f"exceeds h_high {aent.h_high}", "use h_low <= h_high")
    if not aent.lambda_low <= aent.lambda_high:
        _bad(source, "entropy.aent.lambda_low", aent.lambda_low, "exceeds lambda_high", "use lambda_low <= lambda_high")
    sky = p.entropy.skywork
    if not sky.coef_min <= sky.coef_init <= sky.coef_max:
        _bad(source, "entropy.skywork.coef_init", sky.coef_init, "is outside [coef_min, coef_max]",
             "pick coef_init within the box")
    if p.entropy.cov.clip_lb > p.entropy.cov.clip_ub:
        _bad(source, "entropy.cov.clip_lb", p.entropy.cov.clip_lb, "exceeds clip_ub", "use clip_lb <= clip_ub")
    if "{problem}" not in p.model.prompt_template:
        _bad(source, "model.prompt_template", p.model.prompt_template, "has no {problem} placeholder",
             "include {problem} where the problem text goes")
    if p.train.deepspeed.bf16 and p.model.dtype == "float16":
        _bad(source, "model.dtype", p.model.dtype, "conflicts with train.deepspeed.bf16: true",
             "use model.dtype: bfloat16 with bf16 training")
    if not p.data.synthetic.enabled and not p.data.sources:
        _bad(source, "data.sources", [], "is empty while data.synthetic.enabled is false",
             "enable the synthetic task family or list at least one source")
    sweep = [m.name for m in p.compare.methods]
    if len(set(sweep)) != len(sweep):
        _bad(source, "compare.methods", sweep, "repeats a name", "give every compared method its own name")
    names = [b.name for b in p.eval.benchmarks]
    if len(set(names)) != len(names):
        _bad(source, "eval.benchmarks", names, "lists a benchmark twice", "list each benchmark once")
