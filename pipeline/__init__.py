"""AER pipeline: a library of plain functions and small objects for RLVR with adaptive entropy regularization.

Layers: `pipeline.*` holds the math, data, rewards, models and rollouts over tensors, lists and
dataclasses; `pipeline.stages` holds one thin entry point per DVC stage; `pipeline.tracking` is the only
other module that touches MLflow.  Prefect lives in the top-level `flows` package.
"""

__version__ = "0.1.0"
