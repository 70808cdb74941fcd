"""Seeding helpers: one integer seed drives python, numpy and torch; sub-seeds are derived by name."""
from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *names: object) -> int:
    """A stable 31-bit seed from a base seed and names (independent of PYTHONHASHSEED)."""
    key = ":".join([str(seed), *map(str, names)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is a dependency; guard only keeps this helper import-light
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass
