"""Data: the problem schema, sources, benchmarks, synthetic tasks, dedup/decontamination, prompts."""
from pipeline.data.schema import BadRow, Problem

__all__ = ["Problem", "BadRow"]
