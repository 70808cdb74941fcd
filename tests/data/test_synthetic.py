"""The generated task family: deterministic, exact answers, difficulty growing with the grade."""
from __future__ import annotations

import random
import re

from pipeline.data import synthetic


def _evaluate(problem: str) -> int:
    value = int(re.match(r"Start with (-?\d+)\.", problem).group(1))
    for word, operand in re.findall(r"(Add|Subtract|Multiply by) (\d+)\.", problem):
        value = {"Add": value + int(operand), "Subtract": value - int(operand),
                 "Multiply by": value * int(operand)}[word]
    return value


def test_deterministic_from_seed():
    a = synthetic.generate(7, "train", [1, 4], 5)
    b = synthetic.generate(7, "train", [1, 4], 5)
    c = synthetic.generate(8, "train", [1, 4], 5)
    assert a == b and a != c
    assert [p.id for p in a[:2]] == ["syn-train-g1-00000", "syn-train-g1-00001"]


def test_answers_and_solutions_are_exact():
    for p in synthetic.generate(3, "eval", range(1, 9), 20):
        assert int(p.answer) == _evaluate(p.problem)
        assert p.solution.endswith(f"\\boxed{{{p.answer}}}.")
        steps = re.findall(r"(-?\d+) ([+\-*]) (\d+) = (-?\d+)\.", p.solution)
        assert len(steps) == synthetic.GRADES[p.level].n_ops
        for a, op, b, res in steps:
            assert eval(f"{a}{op}{b}") == int(res)


def test_golden_problem():
    p = synthetic.make_problem(random.Random(0), 3, "x")
    assert p.problem == "Start with 13. Subtract 2. Subtract 17. What is the result?"
    assert p.answer == "-6" and p.solution == "13 - 2 = 11. 11 - 17 = -6. The answer is \\boxed{-6}."


def test_grades_grow_in_steps_and_size():
    mean_len = {g: sum(len(p.solution) for p in synthetic.generate(0, "t", [g], 50)) / 50 for g in range(1, 9)}
    assert mean_len[1] < mean_len[3] < mean_len[5] < mean_len[7] < mean_len[8]
    assert mean_len[1] < mean_len[2] and mean_len[4] < mean_len[6]


def test_generate_train_spreads_over_grades():
    probs = synthetic.generate_train(1, (1, 2, 3), 10)
    assert [sum(p.level == g for p in probs) for g in (1, 2, 3)] == [4, 3, 3]
