"""params.yaml -> frozen, validated `Params`.  `load_params` is the one way stages read config.

Every problem (a missing or malformed file, a repeated key, a bad `--set`, a bad value) raises
`ConfigError` with one line naming where the value came from (the file, or `--set` on the command line),
the key and the fix, before anything heavy is loaded.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from pipeline.config.loader import ConfigError, Source, apply_overrides, build, flatten, load_yaml, to_dict
from pipeline.config.schema import METHODS, Params, validate_params

DEFAULT_PARAMS = "params.yaml"


def load_params(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Params:
    """Load, validate and freeze params.  `path` defaults to $AER_PARAMS or ./params.yaml.

    `overrides` maps dotted keys to values (`--set`, tests and sweeps) and is validated like the file;
    errors about an overridden key name the command line as their source.
    """
    path = Path(path or os.environ.get("AER_PARAMS", DEFAULT_PARAMS))
    if not path.is_file():
        what = "is a directory, not a params file" if path.is_dir() else "params file not found"
        raise ConfigError(f"{path}: {what}. Fix: run from the repository root or set AER_PARAMS")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}). Fix: re-encode the file as UTF-8") from None
    raw = load_yaml(text, str(path))
    return params_from_dict(raw, str(path), overrides)


def params_from_dict(raw, source: str = "<dict>", overrides: dict | None = None) -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level is a {type(raw).__name__}, not a mapping of sections. "
                          "Fix: write 'seed:', 'data:', 'model:', ... as top-level keys (see params.yaml)")
    src = Source(source, overrides)
    raw = apply_overrides(copy.deepcopy(raw), overrides or {})
    params = build(Params, raw, src)
    validate_params(params, src)
    return params


__all__ = ["ConfigError", "Params", "METHODS", "load_params", "params_from_dict", "to_dict", "flatten"]
