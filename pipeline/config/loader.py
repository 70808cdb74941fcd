"""Typed, validated loading of `params.yaml` into frozen dataclasses.

Validation is structural (unknown keys, types from the dataclass annotations, ranges and choices from
field metadata) and happens before any compute.  Every error names the key path, the value and the fix.
Cross-field rules live in `schema.validate_params`.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A bad params value: the message names the file, the key, the value and the fix."""


def fld(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, fix: str = "",
        factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with range metadata and a fix hint used in error messages."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "fix": fix}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def fail(source: str, key: str, value: Any, problem: str, fix: str = "") -> typing.NoReturn:
    """Raise a ConfigError; without an explicit fix, the fix restates what the key needs."""
    fix = fix or f"set '{key}' so that it {problem.replace('must be', 'is')}"
    raise ConfigError(f"{source}: key '{key}' = {value!r}: {problem}. Fix: {fix}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (tuple, list):
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of names to {_type_name(get_args(tp)[1])}"
    if tp is Any:
        return "any value"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str, source: str, fix: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fail(source, key, value, f"must be {_type_name(tp)}", hint + fix)
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, source, fix)
            except ConfigError as exc:
                errors.append(exc)
        fail(source, key, value, f"must be {_type_name(tp)}", fix)
    if tp is Any:  # free-form (e.g. a comparison arm's overrides), validated by the caller
        return value
    if origin is dict:
        if not isinstance(value, dict):
            fail(source, key, value, f"must be {_type_name(tp)}", fix)
        _, value_tp = get_args(tp)
        return {str(k): _convert(value_tp, v, f"{key}.{k}", source, fix) for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            fail(source, key, value, f"must be {_type_name(tp)}", fix)
        (item_tp, *_) = get_args(tp)
        return tuple(_convert(item_tp, v, f"{key}[{i}]", source, fix) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source, key)
    if tp is bool:
        if not isinstance(value, bool):
            fail(source, key, value, "must be true or false", fix)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(source, key, value, "must be an integer", fix)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(source, key, value, "must be a number", fix)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail(source, key, value, "must be a string", fix)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def _check_range(value: Any, meta: dict, key: str, source: str) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if not isinstance(v, (int, float)):
            continue
        for op, bound, text in (("ge", meta.get("ge"), ">="), ("gt", meta.get("gt"), ">"),
                                ("le", meta.get("le"), "<="), ("lt", meta.get("lt"), "<")):
            if bound is None:
                continue
            ok = {"ge": v >= bound, "gt": v > bound, "le": v <= bound, "lt": v < bound}[op]
            if not ok:
                fail(source, key, value, f"must be {text} {bound}",
                     meta.get("fix") or f"set '{key}' to a value {text} {bound}")


def build(cls: type, data: Any, source: str = "params.yaml", prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, validating keys, types and ranges recursively."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        fail(source, prefix or "<root>", data, "must be a mapping of keys to values")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(fields)}"
            full = f"{prefix}.{key}" if prefix else str(key)
            fail(source, full, data[key], "unknown key", f"remove it or rename it; {hint}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        fix = f.metadata.get("fix", "")
        if name in data:
            value = _convert(hints[name], data[name], key, source, fix)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            fail(source, key, None, "is required but missing", fix or f"add '{key}' to {source}")
        _check_range(value, f.metadata, key, source)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Inverse of `build`: plain dicts and lists, suitable for YAML, JSON and MLflow params."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists are kept as values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
