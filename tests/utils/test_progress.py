"""Progress bars: live on a terminal (also under DVC), sparse in logs, off with AER_PROGRESS=0, labelled."""
from __future__ import annotations

import io
import sys

import pytest

from pipeline.utils import progress as prog


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    """A fake terminal as stderr.  Installed lazily: pytest resets sys.stderr between fixture setup and the
    test body, so each test calls the returned function first."""
    def install() -> _Terminal:
        stream = _Terminal()
        monkeypatch.setattr(sys, "stderr", stream)
        return stream
    monkeypatch.delenv("AER_PROGRESS", raising=False)
    monkeypatch.setattr(prog, "TERMINAL", {"mininterval": 0.0, "delay": 0.0})  # draw every update in tests
    return install



def test_terminal_log_and_off_settings(monkeypatch):
    monkeypatch.delenv("AER_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = prog.progress(range(3), desc="x")
    assert (bar.mininterval, bar.delay) == (30.0, 30.0)  # a log: at most one line per 30 s, none for short loops
    list(bar)
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    bar = prog.progress(range(3), desc="x")
    assert (bar.mininterval, bar.delay) == (0.5, 1.0) and not bar.disable
    monkeypatch.setenv("AER_PROGRESS", "0")
    assert prog.progress(range(3), desc="x").disable


def test_label_prefixes_bars_and_the_outer_label_wins(terminal):
    terminal = terminal()
    with prog.label("evaluate trained/math500"):
        with prog.label("evaluate"):
            list(prog.progress(range(2), desc="rollout"))
    list(prog.progress(range(2), desc="plain"))
    out = terminal.getvalue()
    assert "evaluate trained/math500: rollout" in out and "evaluate: rollout" not in out and "plain" in out


def test_hf_rollouts_show_samples_done(terminal):
    terminal = terminal()
    from pipeline.models.tiny import build_tiny_model
    from pipeline.models.tokenizer import train_tokenizer
    from pipeline.rollout import SamplingConfig, make_engine

    tok = train_tokenizer(["Q: 1 + 2\nA: 3", "Q: 4 + 4\nA: 8"] * 20, 300)
    model = build_tiny_model(tok, hidden_size=64, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                             max_position_embeddings=64, seed=0)
    engine = make_engine("hf", model=model, tokenizer=tok, batch_size=4)
    engine.generate(["Q: 1 + 2\nA:", "Q: 3 + 3\nA:", "Q: 2 + 2\nA:"], SamplingConfig(2, 1.0, 1.0, 4, seed=0))
    out = terminal.getvalue()
    assert "rollout:" in out and "0/6 " in out and "4/6 " in out and "sample/s" in out  # batches of 4 samples
    assert out.endswith(" \r")  # leave=False: an inner bar erases itself (one per training step otherwise)


def test_difficulty_estimate_counts_prompts(terminal, monkeypatch):
    terminal = terminal()
    from pipeline.data import synthetic
    from pipeline.measure import difficulty
    from pipeline.rewards.verify import RewardResult
    from pipeline.rollout.types import Completion

    class Engine:
        def generate(self, prompts, cfg):
            return [[Completion((1,), "\\boxed{1}", (0.0,), "stop", 0)] * cfg.n for _ in prompts]

    monkeypatch.setattr(difficulty, "score_batch", lambda texts, golds: [RewardResult(1.0, "ok", "1") for _ in texts])
    problems = synthetic.generate(0, "t", [1], 5)
    rows, _ = difficulty.estimate(Engine(), None, problems, template="{problem}", use_chat_template=False,
                                  sampling=difficulty.SamplingConfig(2, 1.0, 1.0, 4, 0), edges=(0.5,),
                                  prompts_per_call=2)
    assert len(rows) == 5 and "difficulty" in terminal.getvalue() and "5/5" in terminal.getvalue()


def _finished_training(steps: int = 2):
    """A context whose run is already at its last step: train() opens its bar and runs no step."""
    from types import SimpleNamespace

    return SimpleNamespace(params=SimpleNamespace(train=SimpleNamespace(steps=steps, method="none")),
                           start_step=steps, last={"done": True})


def test_training_bar_obeys_aer_progress_regression(terminal, monkeypatch):
    """The training loop called tqdm directly: AER_PROGRESS=0 did not silence it and logs got a line per step."""
    from pipeline.train import loop

    stream = terminal()
    assert loop.train(_finished_training()) == {"done": True}
    assert "train[none]" in stream.getvalue() and "2/2" in stream.getvalue()
    stream = terminal()
    monkeypatch.setenv("AER_PROGRESS", "0")
    loop.train(_finished_training())
    assert stream.getvalue() == ""
