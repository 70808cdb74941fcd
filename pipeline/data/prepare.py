"""Dataset preparation: synthetic tasks and configured sources -> deduplicated, decontaminated splits.

Order: generate/load -> unique ids -> gold check (math-verify must parse every gold) -> dedup -> drop training
problems identical to held-out eval problems -> n-gram decontamination against benchmarks.  Every
removal is counted, and every bad row is kept with its file and row number.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipeline.data import synthetic
from pipeline.data.benchmarks import load_benchmark
from pipeline.data.dedup import decontaminate, dedup
from pipeline.data.schema import BadRow, Problem, normalize_text
from pipeline.data.sources import load_source


@dataclass
class Prepared:
    train: list[Problem]
    eval: list[Problem]
    bad_rows: list[BadRow]
    metrics: dict = field(default_factory=dict)


def _check_golds(problems: list[Problem], origin: list[tuple[str, int]]
                 ) -> tuple[list[Problem], list[BadRow]]:
    """Keep the problems whose gold math-verify parses; `origin[i]` is (file, row) of `problems[i]`."""
    from pipeline.rewards import check_golds

    statuses = check_golds([p.answer for p in problems]) if problems else []
    kept, bad = [], []
    for p, status, (file, row) in zip(problems, statuses, origin):
        if status == "ok":
            kept.append(p)
        else:
            bad.append(BadRow(file, row, f"gold answer {p.answer!r} is {status} for math-verify"))
    return kept, bad


def _unique_ids(problems: list[Problem], origin: list[tuple[str, int]], taken: set[str]
                ) -> tuple[list[Problem], list[tuple[str, int]], list[BadRow], int]:
    """Training ids must be unique (pass rates and resumes are keyed by id).  A repeated id with other
    problem text is a bad row naming the first row; with the same text it is a duplicate (dropped and
    counted).  `taken` holds the ids already used by generated problems."""
    first: dict[str, tuple[str, int, str]] = {}
    kept, where, bad, n_dup = [], [], [], 0
    for p, (file, row) in zip(problems, origin):
        text = normalize_text(p.problem)
        if p.id in taken:
            bad.append(BadRow(file, row, f"duplicate id {p.id!r} (already used by a generated problem)"))
        elif p.id in first:
            other_file, other_row, other_text = first[p.id]
            if other_text == text:
                n_dup += 1
            else:
                bad.append(BadRow(file, row, f"duplicate id {p.id!r} with different problem text "
                                             f"(first at {other_file}:{other_row})"))
        else:
            first[p.id] = (file, row, text)
            kept.append(p)
            where.append((file, row))
    return kept, where, bad, n_dup


def prepare(data_cfg, seed: int) -> Prepared:
    """Build the training and held-out eval splits from a `DataCfg`."""
    syn = data_cfg.synthetic
    train: list[Problem] = []
    held_out: list[Problem] = []
    if syn.enabled:
        train += synthetic.generate_train(seed, syn.train_grades, syn.n_train)
        held_out += synthetic.generate(seed, "eval", syn.eval_grades, syn.n_eval_per_grade)
    bad: list[BadRow] = []
    sourced: list[Problem] = []
    origin: list[tuple[str, int]] = []
    for src in data_cfg.sources:
        loaded = load_source(src.path, source=src.name, split=src.split, problem_field=src.problem_field,
                             answer_field=src.answer_field, answer_format=src.answer_format, limit=src.limit)
        sourced += loaded.problems
        origin += [(src.path, row) for row in loaded.rows]
        bad += loaded.bad
    sourced, origin, id_bad, n_id_dup = _unique_ids(sourced, origin, {p.id for p in train})
    sourced, gold_bad = _check_golds(sourced, origin)
    bad += id_bad + gold_bad
    n_loaded = len(train) + len(sourced) + n_id_dup
    train, n_dup = dedup(train + sourced) if data_cfg.dedup else (train + sourced, 0)
    n_dup += n_id_dup
    held, n_held = _drop_held_out(train, held_out)
    references = []
    for bench in data_cfg.decontaminate.benchmarks:
        references += load_benchmark(bench.name, bench.path)[0]
    kept, dropped = decontaminate(held, references, data_cfg.decontaminate.ngram) if references else (held, [])
    metrics = {
        "n_loaded": n_loaded, "n_bad_rows": len(bad), "n_duplicates": n_dup, "n_heldout_overlap": n_held,
        "n_contaminated": len(dropped), "n_train": len(kept), "n_eval": len(held_out),
        "bad_rows_by_reason": dict(Counter(b.reason.split(" (")[0] for b in bad)),
        "bad_rows_by_file": dict(Counter(b.file for b in bad)),
        "train_by_source": dict(Counter(p.source for p in kept)),
        "train_by_level": {str(k): v for k, v in sorted(Counter(p.level for p in kept).items(), key=str)},
        "contaminated_by_benchmark": dict(Counter(ref.split("-")[0] for _, ref in dropped)),
    }
    return Prepared(train=kept, eval=held_out, bad_rows=bad, metrics=metrics)


def _drop_held_out(train: list[Problem], held_out: list[Problem]) -> tuple[list[Problem], int]:
    """Held-out eval problems are sacred: identical training problems are removed, not the eval ones."""
    keys = {normalize_text(p.problem) for p in held_out}
    kept = [p for p in train if normalize_text(p.problem) not in keys]
    return kept, len(train) - len(kept)
