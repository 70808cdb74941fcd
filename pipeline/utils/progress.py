"""Progress bars for the long loops (rollouts, difficulty, H0, evaluation, training): tqdm on stderr.

`dvc repro` runs a stage with the terminal's stdin/stdout/stderr, so the bars show live under DVC too.
On a terminal a bar refreshes at most twice a second and appears only after 1 s (short calls, such as
one training step's rollout, stay silent); into a log file or pipe it writes at most every 30 s and
only for loops that last longer, so logs stay small.  `AER_PROGRESS=0` turns every bar off.
`label("evaluate trained/math500")` names the bars opened inside it (e.g. the rollout engine's).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from typing import Iterator

from tqdm import tqdm

_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("progress_label", default="")
TERMINAL = {"mininterval": 0.5, "delay": 1.0}   # seconds between refreshes; before the first
LOG = {"mininterval": 30.0, "delay": 30.0}


@contextlib.contextmanager
def label(text: str) -> Iterator[None]:
    """Name the bars opened inside; an outer label wins (the caller knows more, e.g. which benchmark)."""
    token = _LABEL.set(_LABEL.get() or text)
    try:
        yield
    finally:
        _LABEL.reset(token)


def progress(iterable=None, *, total: int | None = None, desc: str, unit: str = "it", leave: bool = True,
             initial: int = 0, disable: bool = False) -> tqdm:
    """A tqdm bar with the settings above; `desc` is prefixed by the current `label`.  `initial`: the count
    already done (a resumed loop); `disable`: off for this caller (e.g. ranks other than 0), whatever the
    environment says."""
    tty = sys.stderr.isatty()
    prefix = _LABEL.get()
    return tqdm(iterable, total=total, desc=f"{prefix}: {desc}" if prefix else desc, unit=unit, leave=leave,
                initial=initial, file=sys.stderr, dynamic_ncols=tty,
                disable=disable or os.environ.get("AER_PROGRESS", "1") == "0", **(TERMINAL if tty else LOG))
