"""Verifiable reward: last-\\boxed{} extraction + math-verify equivalence, in hard-limited worker processes.

math-verify's own timeouts rely on SIGALRM, which fails outside the main thread (Prefect runs tasks in
threads) and does not stop every pathological input (nested power towers can hang sympy).  So each item
is verified in a warm worker process with a wall-clock deadline enforced from the parent: a worker that
overruns is killed and replaced, and the item comes back with status `timeout`.  Workers stay alive
between calls (rollouts score thousands of completions per step).
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional, Sequence

STATUSES = ("ok", "wrong", "no_answer", "unparseable_gold", "timeout", "error")


@dataclass(frozen=True)
class RewardResult:
    """score is 1.0 only for status 'ok' (verified equal); `pred` is the extracted answer text."""
    score: float
    status: str
    pred: Optional[str] = None


class _Worker:
    """One `python -m pipeline.rewards.worker` subprocess and its partial-line read buffer."""

    def __init__(self, startup_timeout_s: float) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.rewards.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0)
        self.fd = self.proc.stdout.fileno()
        self.buf = b""
        self.item: Optional[int] = None
        self.deadline = 0.0
        self.startup_deadline = time.monotonic() + startup_timeout_s
        self.ready = False

    def send(self, payload: list) -> None:
        self.proc.stdin.write((json.dumps(payload) + "\n").encode())

    def read_lines(self) -> Optional[list[str]]:
        """Complete lines available now; None when the worker has exited."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return None
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        return [ln.decode() for ln in lines]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                f.close()


class VerifierPool:
    """A pool of warm verifier processes with a hard per-item wall-clock limit.

    The deadline of an item starts when it is sent to a ready worker, so worker start-up (importing
    sympy, ~1-2 s) never counts against an item.
    """

    def __init__(self, num_workers: int = 2, timeout_s: float = 5.0, startup_timeout_s: float = 120.0) -> None:
        if num_workers < 1 or timeout_s <= 0:
            raise ValueError("VerifierPool needs num_workers >= 1 and timeout_s > 0")
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.workers = [_Worker(startup_timeout_s) for _ in range(num_workers)]
        self.restarts = 0
        self._lock = threading.Lock()  # one batch at a time: the pipes are not safe for concurrent callers

    def run(self, items: Sequence[tuple[str, str, str]]) -> list[tuple[str, Optional[str]]]:
        """items: (kind, a, b) triples for `grading.grade_one`; returns (status, pred) per item."""
        with self._lock:
            return self._run(list(items))

    def _run(self, items):
        results: list = [None] * len(items)
        pending = list(range(len(items)))[::-1]
        while pending or any(w.item is not None for w in self.workers):
            for w in self.workers:
                if w.ready and w.item is None and pending:
                    w.item = pending.pop()
                    w.deadline = time.monotonic() + self.timeout_s
                    w.send([w.item, *items[w.item]])
            deadlines = [w.deadline if w.ready else w.startup_deadline for w in self.workers
                         if w.item is not None or not w.ready]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 0.0
            readable, _, _ = select.select([w.fd for w in self.workers], [], [], timeout)
            for w in [w for w in self.workers if w.fd in readable]:
                self._drain(w, results)
            self._expire(results)
        return results

    def _drain(self, w: _Worker, results: list) -> None:
        lines = w.read_lines()
        if lines is None:  # the worker died (e.g. killed by the OOM killer): its item is an error
            if w.item is not None:
                results[w.item] = ("error", "verifier worker exited")
            self._replace(w)
            return
        for line in lines:
            if line == "ready":
                w.ready = True
                continue
            idx, status, pred = json.loads(line)
            results[idx] = (status, pred)
            w.item = None

    def _expire(self, results: list) -> None:
        now = time.monotonic()
        for w in list(self.workers):
            if w.item is not None and w.deadline <= now:
                results[w.item] = ("timeout", None)
                self._replace(w)
            elif not w.ready and w.startup_deadline <= now:
                raise RuntimeError(f"verifier worker did not start within {self.startup_timeout_s:.0f} s")

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self.workers[self.workers.index(w)] = _Worker(self.startup_timeout_s)
        self.restarts += 1

    def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.proc.stdin.close()
            try:
                w.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                w.kill()


_POOL: Optional[VerifierPool] = None
_POOL_LOCK = threading.Lock()


def default_pool() -> VerifierPool:
    """The process-wide warm pool (size from $AER_VERIFY_WORKERS, limit from $AER_VERIFY_TIMEOUT)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            n = int(os.environ.get("AER_VERIFY_WORKERS", max(1, min(4, (os.cpu_count() or 2)))))
            _POOL = VerifierPool(n, float(os.environ.get("AER_VERIFY_TIMEOUT", "5")))
            atexit.register(_POOL.close)
        return _POOL


def score_batch(completions: Sequence[str], golds: Sequence[str], *, pool: Optional[VerifierPool] = None
                ) -> list[RewardResult]:
    """Score each completion against its gold answer: 1.0 iff math-verify says they are equal."""
    if len(completions) != len(golds):
        raise ValueError(f"score_batch: {len(completions)} completions but {len(golds)} golds")
    out = (pool or default_pool()).run([("score", c, g) for c, g in zip(completions, golds)])
    return [RewardResult(1.0 if status == "ok" else 0.0, status, pred) for status, pred in out]


def check_golds(golds: Sequence[str], *, pool: Optional[VerifierPool] = None) -> list[str]:
    """Status per gold answer: 'ok' if math-verify parses it, else 'unparseable_gold'/'timeout'/'error'."""
    return [s for s, _ in (pool or default_pool()).run([("gold", g, "") for g in golds])]


def answers_equivalent(a: str, b: str, *, pool: Optional[VerifierPool] = None) -> bool:
    """True when two extracted answers are math-verify-equivalent (used by maj@k grouping)."""
    return (pool or default_pool()).run([("equiv", a, b)])[0][0] == "ok"
