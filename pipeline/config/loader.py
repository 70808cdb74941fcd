"""Typed, validated loading of `params.yaml` into frozen dataclasses.

Validation is structural (unknown keys, types from the dataclass annotations, ranges and choices from
field metadata) and happens before any compute.  Every error names the key path, the value and the fix.
Generic rules: a float must be finite unless its field opts out (`fld(finite=False)`), an integer must fit
in 64 bits, a field marked `required` (the top-level sections, the seed) must be written out, and a YAML
file may not repeat a key.  `Source` is the file name that knows which keys came from `--set`, so an error
names the command line rather than the file when the bad value came from there.
Cross-field rules live in `schema.validate_params`.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, Mapping, Optional, Union, get_args, get_origin, get_type_hints

import yaml

INT64 = 2**63


class ConfigError(ValueError):
    """A bad params value: the message names the file, the key, the value and the fix."""


def fld(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, fix: str = "",
        factory: Any = dataclasses.MISSING, required: bool = False, finite: bool = True) -> Any:
    """A dataclass field with range metadata and a fix hint used in error messages.  `required`: the key
    must be present when loading (the default only serves code that builds the dataclass directly);
    `finite=False` lets a float field hold inf or nan."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "fix": fix, "required": required, "finite": finite}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Source(str):
    """The params file name, plus the `--set` overrides applied on top of it (dotted key -> value)."""

    overrides: Mapping[str, Any]

    def __new__(cls, path: str, overrides: Mapping[str, Any] | None = None) -> "Source":
        obj = super().__new__(cls, path)
        obj.overrides = dict(overrides or {})
        return obj

    def of(self, key: str) -> str:
        """Where `key`'s value came from: the override that set it (or a key above or below it), else the file."""
        norm = key.replace("[", ".").replace("]", "")
        for match in (lambda d: d == norm, lambda d: norm.startswith(d + "."), lambda d: d.startswith(norm + ".")):
            for dotted in self.overrides:
                if match(dotted):
                    return f"--set {dotted} (command line)"
        return str(self)


def where(source: str, key: str) -> str:
    return source.of(key) if isinstance(source, Source) else source


def fail(source: str, key: str, value: Any, problem: str, fix: str = "") -> typing.NoReturn:
    """Raise a ConfigError; without an explicit fix, the fix restates what the key needs."""
    fix = fix or f"set '{key}' so that it {problem.replace('must be', 'is')}"
    raise ConfigError(f"{where(source, key)}: key '{key}' = {value!r}: {problem}. Fix: {fix}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key written twice (plain YAML keeps the last one silently)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(f"{loader.source}:{line}: key '{key}' is written twice (first on line {seen[key]}). "
                              "Fix: keep one of them")
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML safely; a syntax error or a repeated key raises ConfigError naming the file and line."""
    loader = _UniqueKeyLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()


def apply_overrides(raw: dict, overrides: Mapping[str, Any]) -> dict:
    """Set each dotted key (`train.lr`, `data.sources.0.path`) in `raw`; a path through a value that is
    not a mapping (or a list index out of range) raises ConfigError naming the override."""
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"--set {dotted!r} (command line): empty key part. Fix: use --set section.key=value")
        node: Any = raw
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            else:
                _not_a_section(dotted, parts[:depth], node)
    return raw


def _not_a_section(dotted: str, parent_parts: list[str], node: Any) -> typing.NoReturn:
    parent = ".".join(parent_parts) or "<root>"
    if isinstance(node, list):
        items = f"address items as {parent}.0 to {parent}.{len(node) - 1}, or " if node else ""
        fail(f"--set {dotted} (command line)", parent, node, f"is a list of {len(node)} items, so '{dotted}' "
             "does not exist", f"{items}set the whole list with --set '{parent}=[...]'")
    fail(f"--set {dotted} (command line)", parent, node, f"is not a mapping, so '{dotted}' cannot be set",
         f"set '{parent}' itself (--set {parent}=VALUE), or drop the override that made it a plain value")


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


def _convert(tp: Any, value: Any, key: str, source: str, fix: str = "",
             meta: Optional[Mapping[str, Any]] = None) -> Any:
    """`value` as type `tp`; `meta` is the field's metadata (`fld`), for the finite-float rule."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fail(source, key, value, f"must be {_type_name(tp)}", hint + fix)
        return value
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        if len(args) == 1:  # Optional[X]: X's own message (e.g. "must be a finite number") is the precise one
            return _convert(args[0], value, key, source, fix, meta)
        for arg in args:
            try:
                return _convert(arg, value, key, source, fix, meta)
            except ConfigError:
                continue
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
        return tuple(_convert(item_tp, v, f"{key}[{i}]", source, fix, meta) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return build(tp, value, source, key)
    return _convert_scalar(tp, value, key, source, fix, meta or {})


def _convert_scalar(tp: Any, value: Any, key: str, source: str, fix: str, meta: Mapping[str, Any]) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            fail(source, key, value, "must be true or false", fix)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(source, key, value, "must be an integer", fix)
        if not -INT64 <= value < INT64:  # numpy, torch and DeepSpeed overflow on anything wider
            fail(source, key, value, "does not fit in a 64-bit integer", fix or f"use a smaller value for '{key}'")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(source, key, value, "must be a number", fix)
        try:
            value = float(value)
        except OverflowError:
            fail(source, key, value, "is too large for a float", fix or f"use a smaller value for '{key}'")
        if meta.get("finite", True) and not math.isfinite(value):
            fail(source, key, value, "must be a finite number (inf and nan are not allowed)",
                 fix or f"set '{key}' to a finite number")
        return value
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
            value = _convert(hints[name], data[name], key, source, fix, f.metadata)
        elif f.metadata.get("required"):
            fail(source, key, None, "is required but missing",
                 f"add '{key}' to {where(source, key)} (the built-in defaults are not those of params.yaml)")
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
