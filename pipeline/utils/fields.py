"""Dataclass fields with validation metadata, shared by the params schema and the method plug-ins.

`fld(default, ge=..., gt=..., le=..., lt=..., fix=...)` declares a config field whose range and fix hint
the loader (`pipeline.config.loader`) checks and reports.  It lives outside `pipeline.config` so that a
method module (`pipeline.rl.methods.*`) can declare its config dataclass without importing the schema,
which itself imports every method to build the `entropy.<method>` sections.
"""
from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """A bad params value: the message names the file, the key, the value and the fix."""


def fld(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None, fix: str = "",
        factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with range metadata and a fix hint used in error messages."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "fix": fix}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
