"""Evaluation metrics (pass@k and friends) and the benchmark evaluation library."""
from pipeline.eval.metrics import pass_at_k

__all__ = ["pass_at_k"]
