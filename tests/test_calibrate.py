"""Calibration: false alarms on correct claims, power on known-wrong ones."""

import pytest

from simlab.calibrate import calibrate, clopper_pearson
from simlab.experiments import REGISTRY
from simlab.runner import build_spec, decide_runs, simulate


@pytest.fixture
def tiny_dropout_only(monkeypatch):
    exp = REGISTRY["dropout"]
    monkeypatch.setattr("simlab.calibrate.REGISTRY", {"dropout": exp})
    monkeypatch.setattr("simlab.course.REGISTRY", {"dropout": exp})
    monkeypatch.setitem(
        type(exp).budgets, "quick", {"p": [0.2, 0.6], "samples": 20_000, "N": 32, "M": 16}
    )


def test_wrong_formulas_are_rejected_and_correct_ones_are_not(tiny_dropout_only):
    cal = calibrate("quick", seeds=[1, 2, 3])
    assert cal.false_alarms == 0
    assert cal.correct_checks_per_run == 14
    assert len(cal.p_values) == 3 * 14
    assert [w.power for w in cal.wrong] == [1.0, 1.0]
    assert all(w.min_abs_z > 10 for w in cal.wrong)
    doc = cal.as_dict()
    assert doc["false_alarm_rate"] == 0 and doc["wrong_formulas"][0]["runs"] == 3


def test_clopper_pearson_matches_known_values():
    lo, hi = clopper_pearson(0, 20)
    assert lo == 0 and hi == pytest.approx(0.16843, abs=1e-4)
    lo, hi = clopper_pearson(20, 20)
    assert hi == 1 and lo == pytest.approx(0.83157, abs=1e-4)


@pytest.mark.parametrize(
    "name,wrong",
    [(name, w) for name, exp in REGISTRY.items() for w in exp.known_wrong],
    ids=lambda x: getattr(x, "claim", x),
)
def test_every_known_wrong_claim_is_rejected_at_the_quick_budget(name, wrong):
    """The power library is live: each formula parses, runs where it is meant, and fails."""
    exp = REGISTRY[name]
    raw = {**exp.budgets["quick"], **wrong.params, "seed": 31}
    raw.pop("claims", None)
    run = simulate(build_spec(exp, raw, [wrong.claim], lambda k: k))
    decide_runs([run], 1e-3)
    user = [c for c in run.checks if c.source == "user"]
    assert user and all(c.verdict == "fail" for c in user), [(c.id, c.p_value) for c in user]
