"""The method registry's classes: construction from params, read by the stages and tests.

The list of methods is `pipeline.config.methods.METHODS` (names, modules, config dataclasses); importing
`pipeline.rl.methods` registers each listed class.  `method_names()` lists every `train.method` value
(aliases included); `method_configs()` maps each method with a config to its dataclass (the
`entropy.<name>` sections); `build(name, cfg, anchors, seed)` constructs the method from its section, the
entropy stage's anchors and the seed.
"""
from __future__ import annotations

from typing import Any

from pipeline.config.methods import METHODS, method_configs  # noqa: F401  (re-exported)
from pipeline.rl.methods import REGISTRY, Regularizer


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def method_class(name: str) -> type[Regularizer]:
    if name not in REGISTRY:
        raise KeyError(f"unknown entropy method {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build(name: str, entropy_cfg: Any = None, anchors: dict | None = None, seed: int = 0) -> Regularizer:
    """The method `name`, configured from `entropy_cfg.<name>` (the validated `entropy` section)."""
    cls = method_class(name)
    cfg = getattr(entropy_cfg, cls.name) if cls.Config is not None and entropy_cfg is not None else None
    if cls.Config is not None and cfg is None:
        cfg = cls.Config()
    return cls.from_config(cfg, anchors or {}, seed)


def build_regularizer(name: str, **kwargs) -> Regularizer:
    """The method `name` from explicit constructor keyword arguments (tests, benchmarks)."""
    return method_class(name)(**kwargs)
