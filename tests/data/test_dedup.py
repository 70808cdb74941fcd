"""Dedup by normalised text and n-gram decontamination, on hand-made examples and real benchmarks."""
from __future__ import annotations

from pipeline.data.benchmarks import load_benchmark
from pipeline.data.dedup import decontaminate, dedup, ngrams
from pipeline.data.schema import Problem


def _p(pid, text):
    return Problem(pid, text, "1", "t")


def test_dedup_normalises_case_space_and_instruction():
    probs = [_p("a", "What is 1+1?"), _p("b", "what  is 1+1?"),
             _p("c", "What is 1+1? Please reason step by step, and put your final answer within \\boxed{}."),
             _p("d", "What is 2+2?")]
    kept, n = dedup(probs)
    assert [p.id for p in kept] == ["a", "d"] and n == 2


def test_ngrams_golden():
    assert ngrams("A b c d", 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams("a b", 3) == {("a", "b")}


def test_decontaminate_drops_shared_ngram_only():
    ref = [_p("bench-1", "one two three four five six")]
    train = [_p("t1", "zero one two three four nine"), _p("t2", "one two nine three four five")]
    kept, dropped = decontaminate(train, ref, n=4)
    assert [p.id for p in kept] == ["t2"] and [(p.id, r) for p, r in dropped] == [("t1", "bench-1")]


def test_decontaminate_real_benchmark_paraphrase(shared_benchmarks):
    bench, _ = load_benchmark("math500", str(shared_benchmarks))
    leaked = _p("leak", "Here is a problem: " + bench[3].problem + " Good luck.")
    clean = _p("clean", "Start with 12. Add 7. What is the result?")
    kept, dropped = decontaminate([leaked, clean], bench, n=13)
    assert [p.id for p in kept] == ["clean"] and dropped[0][1] == bench[3].id


def test_short_reference_inside_longer_training_text():
    ref = [_p("bench-short", "Compute 2 + 2.")]
    kept, dropped = decontaminate([_p("t", "Please compute 2 + 2. Then stop.")], ref, n=13)
    assert kept == [] and dropped[0][1] == "bench-short"
