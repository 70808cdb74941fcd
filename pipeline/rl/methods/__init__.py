"""Every entropy method, one module each; importing this package imports the modules that
`pipeline.config.methods.METHODS` lists, and each registers its `Regularizer` subclass under its name.

Adding a method: a module here with one `@register`ed `Regularizer` subclass, its config dataclass and
entry in `pipeline/config/methods.py`, its `entropy.<name>` defaults in params.yaml and its entry in
docs/methods.md.
"""
import importlib

from pipeline.config.methods import METHODS
from pipeline.rl.methods.base import REGISTRY, Regularizer

for _name, _entry in METHODS.items():
    importlib.import_module(_entry.module)
    if _name not in REGISTRY:
        raise ImportError(f"{_entry.module} registers no method named {_name!r} (pipeline/config/methods.py)")
    if REGISTRY[_name].Config is not _entry.config:
        raise ImportError(f"method {_name!r}: its class's Config is not the config listed in pipeline/config/methods.py")

__all__ = ["REGISTRY", "Regularizer"]
