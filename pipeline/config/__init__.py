"""params.yaml -> frozen, validated `Params`.  `load_params` is the one way stages read config."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from pipeline.config.loader import ConfigError, build, flatten, to_dict
from pipeline.config.schema import METHODS, Params, validate_params

DEFAULT_PARAMS = "params.yaml"


def load_params(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Params:
    """Load, validate and freeze params.  `path` defaults to $AER_PARAMS or ./params.yaml.

    `overrides` maps dotted keys to values (for tests and sweeps) and is validated like the file.
    """
    path = Path(path or os.environ.get("AER_PARAMS", DEFAULT_PARAMS))
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found. Fix: run from the repository root or set AER_PARAMS")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    params = build(Params, raw, str(path))
    validate_params(params, str(path))
    return params


def params_from_dict(raw: dict, source: str = "<dict>") -> Params:
    params = build(Params, raw, source)
    validate_params(params, source)
    return params


__all__ = ["ConfigError", "Params", "METHODS", "load_params", "params_from_dict", "to_dict", "flatten"]
