"""Procedurally generated digit chains with graded difficulty: the embedded default's training task.

A problem starts from a digit and applies a chain of small steps modulo 10 ("Start with 6, apply a+one
b-three c+two, keep the last digit."); the grade sets the chain length.  The worked solution restates
each step ("6 a:6+one=7 b:7-three=4 c:4+two=6 \\boxed{6}"), so every written result is a lookup of
(previous digit, operation) among 60 facts, and difficulty comes from length alone: with per-step
accuracy a the pass rate is about a^n.  Every operation is a bijection mod 10, so a wrong intermediate
digit stays wrong unless a second error cancels it (about 1 in 9).

The format is chosen for what a 2-layer model learns within a few hundred SFT steps (docs/testbed.md
has the failed alternatives): the step letters a, b, c, ... make copying the next operation a lookup
of a unique token in the prompt; each operation and its operand ("+one") is one token, so a result
depends on two tokens at fixed offsets; steps of 1 to 3 make a result close to the previous digit,
which gives gradient descent a signal before the whole table is learned (full tables of x3, x7, x9
or +1..+9 stayed at chance after 800 steps).

For the warm start, `step_noise` replaces each written result, with that probability, by a uniformly
drawn wrong digit and continues the chain from it (the solution stays self-consistent).  A model
fitted to such solutions puts about 1 - step_noise on the right digit at every step: unsure by design,
with the right answer in its support, which leaves RL room to sharpen.  This follows the testbed
hints of issue 12; it simplifies reasoning to chained lookups.  Generation is a pure function of
(seed, split, grade, step_noise).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.data.schema import Problem
from pipeline.utils.seeding import derive_seed


@dataclass(frozen=True)
class Grade:
    n_ops: int


# Chain length per grade; the spacing widens at the top, where a^n flattens, so that the pass rate
# keeps falling from grade to grade (docs/testbed.md has the measured pass rates).
GRADES: dict[int, Grade] = {g: Grade(n) for g, n in enumerate((1, 2, 3, 4, 6, 8, 11, 12), start=1)}
MARKERS = "abcdefghijkl"  # one letter per step, in the prompt and the solution alike (12 = longest chain)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
OPS: tuple[str, ...] = tuple(f"{s}{WORDS[d]}" for s in "+-" for d in range(1, 4))


def apply_op(value: int, op: str) -> int:
    """One step mod 10: `op` is '+' or '-' and an operand word, e.g. '+two'."""
    d = WORDS.index(op[1:])
    return (value + d if op[0] == "+" else value - d) % 10


def worked_solution(start: int, ops: list[str], rng: random.Random | None = None, step_noise: float = 0.0
                    ) -> tuple[str, int]:
    """The step-by-step solution and its final written digit; noisy steps write a wrong digit."""
    value, parts = start, [str(start)]
    for marker, op in zip(MARKERS, ops):
        prev, value = value, apply_op(value, op)
        if step_noise > 0.0 and rng is not None and rng.random() < step_noise:
            value = rng.choice([d for d in range(10) if d != value])
        parts.append(f"{marker}:{prev}{op}={value}")
    return " ".join(parts) + f" \\boxed{{{value}}}", value


def make_problem(rng: random.Random, grade: int, pid: str, source: str = "synthetic", *,
                 step_noise: float = 0.0, noise_rng: random.Random | None = None) -> Problem:
    """One problem of the given grade; `step_noise` > 0 (with `noise_rng`) writes a noisy worked solution."""
    if grade not in GRADES:
        raise ValueError(f"synthetic grade {grade} is not defined; grades are {sorted(GRADES)}")
    if not 0.0 <= step_noise < 1.0:
        raise ValueError(f"synthetic step_noise {step_noise} is outside [0, 1)")
    start = rng.randrange(10)
    ops = [rng.choice(OPS) for _ in range(GRADES[grade].n_ops)]
    answer = start
    for op in ops:
        answer = apply_op(answer, op)
    solution, _ = worked_solution(start, ops, noise_rng, step_noise)
    chain = " ".join(f"{m}{op}" for m, op in zip(MARKERS, ops))
    problem = f"Start with {start}, apply {chain}, keep the last digit."
    return Problem(id=pid, problem=problem, answer=str(answer), source=source, level=grade, solution=solution)


def generate(seed: int, split: str, grades: tuple[int, ...] | list[int], n_per_grade: int, *,
             step_noise: float = 0.0) -> list[Problem]:
    """`n_per_grade` problems for each grade; ids are `syn-<split>-g<grade>-<index>`.

    The problems do not depend on `step_noise` (the noise draws from its own stream), only the solutions do."""
    out = []
    for grade in grades:
        rng = random.Random(derive_seed(seed, "synthetic", split, grade))
        noise_rng = random.Random(derive_seed(seed, "synthetic-noise", split, grade))
        out.extend(make_problem(rng, grade, f"syn-{split}-g{grade}-{i:05d}", step_noise=step_noise,
                                noise_rng=noise_rng) for i in range(n_per_grade))
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
