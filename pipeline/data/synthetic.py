"""Procedurally generated integer-arithmetic word problems with graded difficulty.

The embedded default trains on these: no download is needed, answers are exact, and difficulty grows
with the grade through the number of operations and the operand size (grade 1: one addition of
numbers up to 30; grade 8: four operations on up to three-digit numbers).  Problems are chains evaluated left to right
("Start with 12. Add 7. Multiply by 3."), which avoids precedence ambiguity; each comes with a worked
solution used to warm-start the tiny base model.  Generation is a pure function of (seed, split, grade).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.data.schema import Problem
from pipeline.utils.seeding import derive_seed


@dataclass(frozen=True)
class Grade:
    n_ops: int
    lo: int
    hi: int
    ops: str  # subset of "+-*"


GRADES: dict[int, Grade] = {
    1: Grade(1, 1, 30, "+"),
    2: Grade(1, 1, 50, "+-"),
    3: Grade(2, 1, 20, "+-"),
    4: Grade(1, 10, 99, "+-"),
    5: Grade(2, 1, 50, "+-"),
    6: Grade(2, 10, 99, "+-"),
    7: Grade(3, 10, 99, "+-*"),
    8: Grade(4, 10, 999, "+-*"),
}
# Every grade has hundreds to millions of distinct problems, so the training split, the held-out eval
# split and the base model's SFT set (which excludes both) can all draw from it.
_WORDS = {"+": "Add", "-": "Subtract", "*": "Multiply by"}


def make_problem(rng: random.Random, grade: int, pid: str, source: str = "synthetic") -> Problem:
    """One problem of the given grade; multipliers stay in 2..9 so values stay bounded."""
    if grade not in GRADES:
        raise ValueError(f"synthetic grade {grade} is not defined; grades are {sorted(GRADES)}")
    g = GRADES[grade]
    value = rng.randint(g.lo, g.hi)
    sentences = [f"Start with {value}."]
    steps = []
    for _ in range(g.n_ops):
        op = rng.choice(g.ops)
        operand = rng.randint(2, 9) if op == "*" else rng.randint(g.lo, g.hi)
        new = {"+": value + operand, "-": value - operand, "*": value * operand}[op]
        sentences.append(f"{_WORDS[op]} {operand}.")
        steps.append(f"{value} {op} {operand} = {new}.")
        value = new
    problem = " ".join(sentences) + " What is the result?"
    solution = " ".join(steps) + f" The answer is \\boxed{{{value}}}."
    return Problem(id=pid, problem=problem, answer=str(value), source=source, level=grade, solution=solution)


def generate(seed: int, split: str, grades: tuple[int, ...] | list[int], n_per_grade: int) -> list[Problem]:
    """`n_per_grade` problems for each grade; ids are `syn-<split>-g<grade>-<index>`."""
    out = []
    for grade in grades:
        rng = random.Random(derive_seed(seed, "synthetic", split, grade))
        out.extend(make_problem(rng, grade, f"syn-{split}-g{grade}-{i:05d}") for i in range(n_per_grade))
    return out


def generate_train(seed: int, grades: tuple[int, ...], n_total: int) -> list[Problem]:
    """`n_total` training problems spread evenly over `grades` (the remainder goes to the first grades)."""
    if not grades or n_total <= 0:
        return []
    base, extra = divmod(n_total, len(grades))
    out = []
    for i, grade in enumerate(grades):
        out.extend(generate(seed, "train", [grade], base + (1 if i < extra else 0)))
    return out
