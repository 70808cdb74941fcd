"""Every entropy method, one module each; importing this package registers them (the method list).

Adding a method: a module here with one `Regularizer` subclass and its config dataclass (`@register`),
its import below, its entry in docs/methods.md and its `entropy.<name>` defaults in params.yaml.
"""
# registration order is the order of `train.method` choices and of the entropy.<name> sections
from pipeline.rl.methods import grpo, fixed, aer, aent, siren, skywork, clip_cov, kl_cov  # noqa: F401,I001
from pipeline.rl.methods.base import REGISTRY, Regularizer

__all__ = ["REGISTRY", "Regularizer"]
