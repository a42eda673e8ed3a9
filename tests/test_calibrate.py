"""Calibration: false alarms on correct claims, power on known-wrong ones."""

import pytest

from simlab.calibrate import calibrate, clopper_pearson
from simlab.experiments import REGISTRY


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
