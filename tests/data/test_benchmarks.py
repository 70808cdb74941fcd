"""Benchmark loaders on the real shared copies: counts, fields, and the instruction sentence stripped."""
from __future__ import annotations

import pytest

from pipeline.data.benchmarks import BENCHMARKS, load_benchmark

COUNTS = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "minerva": 272, "olympiadbench": 674}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_loads_each_benchmark(name, shared_benchmarks):
    problems, bad = load_benchmark(name, str(shared_benchmarks))
    assert len(problems) + len(bad) == COUNTS[name]
    assert not bad, bad[:3]
    assert all(p.source == name and p.problem and p.answer for p in problems)
    assert not any("Please reason step by step" in p.problem for p in problems)
    assert len({p.id for p in problems}) == len(problems)


def test_file_path_equals_directory(shared_benchmarks):
    a, _ = load_benchmark("aime24", str(shared_benchmarks))
    b, _ = load_benchmark("aime24", str(shared_benchmarks / "aime24.jsonl"))
    assert a == b and a[0].answer == "204"


def test_unknown_benchmark():
    with pytest.raises(KeyError, match="unknown benchmark 'aime99'"):
        load_benchmark("aime99")
    assert set(COUNTS) == set(BENCHMARKS)
