"""The generated digit-chain task: deterministic, exact answers, length-graded, noisy worked steps."""
from __future__ import annotations

import random
import re

import pytest

from pipeline.data import synthetic

STEP = re.compile(r"([a-l]):(\d)([+-][a-z]+)=(\d)")


def _evaluate(problem: str) -> int:
    value = int(re.match(r"Start with (\d), apply ", problem).group(1))
    for op in re.findall(r"[a-l]([+-][a-z]+)", problem.split("apply ", 1)[1]):
        value = synthetic.apply_op(value, op)
    return value


def _steps(solution: str) -> list[tuple[str, int, str, int]]:
    return [(m, int(v), op, int(r)) for m, v, op, r in STEP.findall(solution)]


def test_deterministic_from_seed():
    a = synthetic.generate(7, "train", [1, 4], 5)
    b = synthetic.generate(7, "train", [1, 4], 5)
    c = synthetic.generate(8, "train", [1, 4], 5)
    assert a == b and a != c
    assert [p.id for p in a[:2]] == ["syn-train-g1-00000", "syn-train-g1-00001"]


def test_golden_problem():
    p = synthetic.make_problem(random.Random(0), 3, "x")
    assert p.problem == "Start with 6, apply a-one b+one c+three, keep the last digit."
    assert p.answer == "9" and p.solution == "6 a:6-one=5 b:5+one=6 c:6+three=9 \\boxed{9}"


def test_answers_and_clean_solutions_are_exact():
    for p in synthetic.generate(3, "eval", sorted(synthetic.GRADES), 20):
        assert int(p.answer) == _evaluate(p.problem)
        steps = _steps(p.solution)
        assert len(steps) == synthetic.GRADES[p.level].n_ops
        assert [m for m, *_ in steps] == list(synthetic.MARKERS[:len(steps)])
        prev = int(p.solution.split(" ", 1)[0])
        for _, v, op, r in steps:
            assert v == prev and r == synthetic.apply_op(v, op)
            prev = r
        assert p.solution.endswith(f"\\boxed{{{p.answer}}}")


def test_every_operation_is_a_bijection_mod_10():
    """A wrong intermediate digit stays wrong: this keeps hard grades from drifting to a 1/10 floor."""
    for op in synthetic.OPS:
        assert sorted(synthetic.apply_op(v, op) for v in range(10)) == list(range(10))
    assert synthetic.apply_op(9, "+three") == 2 and synthetic.apply_op(1, "-two") == 9


def test_grade_is_chain_length():
    lengths = [synthetic.GRADES[g].n_ops for g in sorted(synthetic.GRADES)]
    assert lengths == sorted(set(lengths)) and lengths[0] == 1
    assert len(synthetic.MARKERS) >= lengths[-1]
    for g in synthetic.GRADES:
        assert {len(_steps(p.solution)) for p in synthetic.generate(0, "t", [g], 10)} == {synthetic.GRADES[g].n_ops}


def test_noisy_solutions_keep_problems_and_stay_self_consistent():
    clean = synthetic.generate(5, "sft", [4, 7], 300)
    noisy = synthetic.generate(5, "sft", [4, 7], 300, step_noise=0.2)
    assert [p.problem for p in clean] == [p.problem for p in noisy]
    assert [p.answer for p in clean] == [p.answer for p in noisy]
    wrong = total = 0
    for p in noisy:
        prev = int(p.solution.split(" ", 1)[0])
        for _, v, op, r in _steps(p.solution):
            assert v == prev  # the chain continues from the written digit
            wrong += r != synthetic.apply_op(v, op)
            total += 1
            prev = r
        assert p.solution.endswith(f"\\boxed{{{prev}}}")
    assert total == 300 * (synthetic.GRADES[4].n_ops + synthetic.GRADES[7].n_ops)
    assert 0.17 < wrong / total < 0.23  # 0.2 +- 4 standard errors


def test_no_noise_without_a_noise_stream():
    p = synthetic.make_problem(random.Random(1), 5, "x", step_noise=0.5, noise_rng=None)
    assert all(r == synthetic.apply_op(v, op) for _, v, op, r in _steps(p.solution))


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_bad_step_noise_is_refused(bad):
    with pytest.raises(ValueError, match="step_noise"):
        synthetic.make_problem(random.Random(0), 1, "x", step_noise=bad, noise_rng=random.Random(0))


def test_unknown_grade_is_refused():
    with pytest.raises(ValueError, match="grade 9 is not defined"):
        synthetic.make_problem(random.Random(0), 9, "x")


def test_generate_train_spreads_over_grades():
    probs = synthetic.generate_train(1, (1, 2, 3), 10)
    assert [sum(p.level == g for p in probs) for g in (1, 2, 3)] == [4, 3, 3]


def test_gold_answers_verify_with_math_verify():
    from pipeline.rewards import check_golds, score_batch

    probs = synthetic.generate(2, "v", [1, 5], 3)
    assert check_golds([p.answer for p in probs]) == ["ok"] * len(probs)
    scores = score_batch([p.solution for p in probs] + ["\\boxed{10}"], [p.answer for p in probs] + [probs[0].answer])
    assert [r.score for r in scores] == [1.0] * len(probs) + [0.0]
