"""Profiles: params.yaml = the schema defaults (the embedded CPU default) + an overlay `profiles/<name>.yaml`.

    python -m pipeline.config.profiles gpu            # = make profile PROFILE=gpu
    python -m pipeline.config.profiles gpu --force    # = make profile PROFILE=gpu FORCE=1

An overlay holds only the keys that differ from the defaults (a list replaces the default list whole).
Rendering deep-merges it over `to_dict(Params())`, sets `profile: <name>`, validates the result and writes
params.yaml, so DVC sees the changed values and the active profile.  A switch refuses while params.yaml
holds edits, i.e. differs from what its own `profile` renders, and prints the differing keys;
`--force` first keeps the file as params.<profile>.local.yaml.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import get_type_hints

import yaml

from pipeline.config.loader import ConfigError, flatten, load_yaml, to_dict
from pipeline.config.schema import Params

PROFILES_DIR = Path("profiles")
HEADER = """\
# params.yaml, the one config; validated by pipeline/config/schema.py before anything runs.
# It is the schema defaults (the embedded CPU default) plus the overlay profiles/{name}.yaml, rendered by
# `make profile PROFILE={name}`.  Edit freely: `make profile` refuses to switch while this file differs
# from its profile's rendering (FORCE=1 first keeps it as params.{name}.local.yaml).
"""


def available(profiles_dir: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))


def read_overlay(name: str, profiles_dir: Path = PROFILES_DIR) -> dict:
    path = Path(profiles_dir) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no such profile. Fix: use one of {', '.join(available(profiles_dir))}")
    overlay = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}  # like params.yaml: a repeated key fails
    if not isinstance(overlay, dict):
        raise ConfigError(f"{path}: an overlay must be a mapping of params keys. Fix: write `section: {{key: value}}`")
    return overlay


def deep_merge(base: dict, over: dict, cls: type = Params) -> dict:
    """`over` wins.  Params sections (the schema's dataclasses) merge key by key; anything else replaces whole:
    lists, and mappings of names such as `compare.arms` or an arm's `overrides` (an overlay lists its arms
    in full, so it can also drop one)."""
    hints = get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    out = dict(base)
    for key, value in over.items():
        tp = hints.get(key)
        merge = isinstance(value, dict) and isinstance(out.get(key), dict) and dataclasses.is_dataclass(tp)
        out[key] = deep_merge(out[key], value, tp) if merge else value
    return out


def section_leaves(d: dict, cls: type = Params, prefix: str = "") -> dict:
    """Like `flatten`, but only through params sections: a mapping of names (compare.arms) is one leaf."""
    hints = get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    out = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        tp = hints.get(key)
        if isinstance(value, dict) and dataclasses.is_dataclass(tp):
            out.update(section_leaves(value, tp, f"{path}."))
        else:
            out[path] = value
    return out


def normalized(raw: dict, source: str) -> dict:
    """Validate like load_params and return the full, typed content (omitted keys filled with defaults)."""
    from pipeline.config import params_from_dict

    return to_dict(params_from_dict(raw, source))


def render(name: str, profiles_dir: Path = PROFILES_DIR) -> dict:
    """The validated params of profile `name`: defaults + its overlay, with `profile: name`."""
    overlay = read_overlay(name, profiles_dir)
    merged = deep_merge(to_dict(Params()), {**overlay, "profile": name})
    return normalized(merged, str(Path(profiles_dir) / f"{name}.yaml"))


def local_edits(params_path: Path, profiles_dir: Path = PROFILES_DIR) -> tuple[str | None, list[str]]:
    """(profile named in params.yaml, ['key: value (profile renders X)', ...]); a file that does not load
    or names no known profile counts as edited."""
    from pipeline.config import load_params

    try:
        current = to_dict(load_params(params_path))
    except ConfigError as exc:
        return None, [f"{params_path} does not load: {exc}"]
    name = current["profile"]
    try:
        expected = flatten(render(name, profiles_dir))
    except ConfigError as exc:
        return name, [str(exc)]
    have = flatten(current)
    return name, [f"{k}: {have.get(k)!r} (profile {name} renders {expected.get(k)!r})"
                  for k in sorted(set(have) | set(expected)) if have.get(k) != expected.get(k)]


class _Dumper(yaml.SafeDumper):
    """params.yaml's layout: block mappings, short lists and list items in flow style, "\\n" kept visible."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # list items indented under their key


class _FlowMap(dict):
    pass


def _represent_list(dumper, data):
    # list items drop their null keys (the schema default); short ones stay on one line
    data = [{k: v for k, v in i.items() if v is not None} if isinstance(i, dict) else i for i in data]
    data = [_FlowMap(i) if isinstance(i, dict) and len(str(i)) < 90 else i for i in data]
    flow = all(not isinstance(v, (dict, list)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper, data):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if "\n" in data else None)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(_FlowMap, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data.items(),
                                                                      flow_style=True))
_Dumper.add_representer(str, _represent_str)


def dump(params: dict, name: str, title: str = "") -> str:
    """YAML text for rendered params (after `title`, the overlay's first comment line), a blank line before
    each section; it parses back to `params`."""
    blocks = [yaml.dump({k: v}, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
              for k, v in params.items()]
    text = title + HEADER.format(name=name) + "".join("\n" + b if isinstance(params[k], dict) else b
                                              for k, b in zip(params, blocks))
    if normalized(yaml.safe_load(text), "rendered params") != params:  # never write what would load differently
        raise ConfigError(f"profile {name}: the rendered YAML does not parse back to the same params")
    return text


def _backup_path(params_path: Path, profile: str | None) -> Path:
    stem = f"params.{profile or 'unknown'}.local"
    candidates = [params_path.with_name(f"{stem}.yaml")] + [params_path.with_name(f"{stem}.{i}.yaml")
                                                            for i in range(1, 1000)]
    return next(p for p in candidates if not p.exists())  # never overwrite an earlier backup


def switch(name: str, params_path: Path = Path("params.yaml"), profiles_dir: Path = PROFILES_DIR,
           force: bool = False) -> str:
    """Render profile `name` into params_path; refuse (ConfigError) when params_path holds edits, unless
    `force`, which first copies it to params.<profile>.local.yaml.  Returns what was done."""
    from pipeline.utils.io import atomic_open

    params_path = Path(params_path)
    first = (Path(profiles_dir) / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:1] if name in available(
        profiles_dir) else []
    title = first[0] + "\n" if first and first[0].startswith("#") else ""
    text = dump(render(name, profiles_dir), name, title)  # a bad target profile fails before anything is touched
    note = ""
    if params_path.exists():
        current, edits = local_edits(params_path, profiles_dir)
        if edits and not force:
            raise ConfigError(f"{params_path} holds edits that its profile {current!r} does not render:\n  "
                              + "\n  ".join(edits) + "\nFix: keep them in an overlay profiles/<name>.yaml, revert "
                              "them, or switch with FORCE=1 (make) / --force to keep a copy first")
        if edits:
            backup = _backup_path(params_path, current)
            backup.write_bytes(params_path.read_bytes())
            note = f"; your edited file is kept as {backup}"
    with atomic_open(params_path) as fh:
        fh.write(text)
    return f"{params_path} now holds profile {name!r}{note}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help=f"a profile in {PROFILES_DIR}/: {', '.join(available())}")
    ap.add_argument("--force", action="store_true", help="switch even with local edits (kept as a backup first)")
    ap.add_argument("--params", default="params.yaml", help="the file to write (default params.yaml)")
    args = ap.parse_args(argv)
    try:
        print(switch(args.name, Path(args.params), force=args.force))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
