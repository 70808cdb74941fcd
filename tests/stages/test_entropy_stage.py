"""The entropy stage's summary line: H0 and every anchor the methods measured, with no method named in code."""
from __future__ import annotations

from pipeline.measure.initial_entropy import anchors_of, summarise
from pipeline.stages.entropy import summary_line


def test_regression_entropy_stage_printed_only_the_siren_anchor_by_name():
    """The generic stage printed "SIREN anchor ..." (and no other method's anchor)."""
    stats = {"sum": [2.0, 1.0], "count": [4, 2],
             "anchors": {"first_anchor": (1.0, 4.0), "second_anchor": (3.0, 4.0)}}
    result = summarise(stats, ["a", "b"], {"a": "hard", "b": "easy"}, bootstrap=0, seed=0)
    assert anchors_of(result) == {"first_anchor": 0.25, "second_anchor": 0.75}
    line = summary_line(result)
    assert line.startswith("entropy: H0 = 0.5000 nats/token") and "over 6 tokens" in line
    assert line.endswith("anchors: first_anchor 0.2500, second_anchor 0.7500") and "SIREN" not in line
    assert summary_line(summarise({**stats, "anchors": {}}, ["a", "b"], {}, 0, 0)).endswith("anchors: none")
