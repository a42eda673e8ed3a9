"""Calibration: false alarms on correct claims, power on known-wrong ones."""

from types import SimpleNamespace

import pytest

from simlab.calibrate import WrongResult, calibrate, clopper_pearson, z_margin
from simlab.experiments import REGISTRY
from simlab.runspec import build_spec
from simlab.simulate import decide_runs, simulate


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
    assert all(w.min_margin > 5 for w in cal.wrong)
    doc = cal.as_dict()
    assert doc["false_alarm_rate"] == 0 and doc["wrong_formulas"][0]["runs"] == 3
    by_check = {row["check"]: row["n"] for row in doc["p_value_ks_by_check"]}
    assert by_check["dropout/var_after"] == 3 * 2  # one p-value per seed and p
    assert len(doc["p_values_by_check"]["dropout/var_after"]) == 6


def test_only_wrong_skips_the_correct_runs(tiny_dropout_only):
    cal = calibrate("quick", seeds=[1], parts=("wrong",))
    assert cal.p_values == [] and cal.false_alarms == 0 and cal.correct_checks_per_run == 0
    assert [w.runs for w in cal.wrong] == [1, 1]


def test_z_margin_is_z_minus_the_critical_z():
    assert z_margin(0.05, 0.05) == pytest.approx(0.0, abs=1e-12)
    assert z_margin(2 * 0.0013499, 2 * 0.0227501) == pytest.approx(3.0 - 2.0, abs=1e-4)
    assert z_margin(0.0, 1e-3) == pytest.approx(38 - 3.2905, abs=1e-3)


def _check(**fields):
    base = dict(
        kind="statistical", estimate=None, tolerance=None, threshold=1e-3, z=None, p_value=None
    )
    return SimpleNamespace(**{**base, **fields})


def test_a_claim_counts_its_strongest_point_per_seed_and_its_weakest_seed():
    record = WrongResult("e", "q=1", "why")
    # seed 1: rejected at one point (z = 10), true at the other (z = 0.3)
    record.record(
        [
            _check(verdict="fail", z=10.0, p_value=1.5e-23),
            _check(verdict="pass", z=0.3, p_value=0.76),
        ]
    )
    # seed 2: rejected more weakly (z = 6)
    record.record([_check(verdict="fail", z=6.0, p_value=1.97e-9)])
    assert (record.rejected, record.runs) == (2, 2)
    assert record.min_abs_z == 6.0
    assert record.min_margin == pytest.approx(6.0 - 3.2905, abs=1e-3)
    exact = WrongResult("e", "d=0", "why")
    exact.record([_check(kind="exact", verdict="fail", estimate=0.5, tolerance=1e-8)])
    assert exact.min_error_ratio == pytest.approx(5e7)


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


def test_false_alarm_curve_redecides_each_seed_with_holm():
    import numpy as np

    from simlab.calibrate import Calibration

    cal = Calibration("quick", [1, 2, 3], 0.001, 0.05)
    correct = np.array([True, True, False])
    cal.families = [
        (np.array([0.01, 0.5, 1e-9]), correct, False),  # 0.01 falls at 0.05 (Holm: 0.05/2)
        (np.array([0.3, 0.6, 1e-9]), correct, False),  # never
        (np.array([0.3, 0.6, 1e-9]), correct, True),  # a correct exact check failed: always
    ]
    # the negative control (p = 1e-9) is rejected everywhere and never counts
    assert list(cal.false_alarm_curve(np.array([0.01, 0.05, 0.2]))) == [1 / 3, 2 / 3, 2 / 3]


def test_a_conservative_quantity_misses_the_uniformity_target_and_is_named():
    """p-values piled towards 1 (sqrt of uniforms: a too-wide SE) miss KS p > 0.01 at 100 seeds;
    uniform ones meet it; with fewer seeds nothing is judged."""
    import numpy as np

    from simlab.calibrate import UNIFORMITY_MIN_SEEDS, Calibration
    from simlab.console import calibration_table

    rng = np.random.default_rng(5)
    cal = Calibration("quick", list(range(UNIFORMITY_MIN_SEEDS)), 0.001, 0.05)
    cal.p_values_by_check = {
        "e/right": rng.uniform(size=400).tolist(),
        "e/wide": np.sqrt(rng.uniform(size=400)).tolist(),
    }
    cal.excluded = {"e/limit": {"n=10": "tolerance", "n=20": "tolerance", "n=5": "bound"}}
    doc = cal.as_dict()
    assert doc["quantities_missing_uniformity"] == ["e/wide"]
    assert doc["excluded_from_uniformity"] == ["e/limit"]
    why = doc["excluded_from_uniformity_why"]["e/limit"]
    assert "tolerance that is not negligible" in why and "at n=10; n=20" in why
    assert "cautious bound" in why and "at n=5" in why
    rows = {r["check"]: r for r in doc["p_value_ks_by_check"]}
    assert rows["e/right"]["meets_target"] and sum(rows["e/wide"]["histogram_10"]) == 400
    table = calibration_table(doc, "quick", True, UNIFORMITY_MIN_SEEDS)
    assert "MISSES the target" in str(table.columns[0]._cells)
    cal.seeds = cal.seeds[:30]
    assert cal.as_dict()["quantities_missing_uniformity"] == []


def test_forty_uniform_quantities_do_not_trip_the_target_by_chance():
    """The target is family-wise (Holm over quantities): KS p > 0.01 for each of 40 uniform
    quantities alone would name one of them in about a third of calibrations."""
    import numpy as np

    from simlab.calibrate import UNIFORMITY_MIN_SEEDS, Calibration

    rng = np.random.default_rng(11)
    trips = 0
    for _ in range(20):
        cal = Calibration("quick", list(range(UNIFORMITY_MIN_SEEDS)), 0.001, 0.05)
        cal.p_values_by_check = {f"e/q{i}": rng.uniform(size=200).tolist() for i in range(40)}
        trips += bool(cal.quantities_missing_uniformity())
    # family-wise 0.01: P(>= 2 of 20 trip) < 2%; per-quantity 0.01: ~33% each, ~7 of 20 expected
    assert trips <= 1, trips


# -- the figure ---------------------------------------------------------------------------------
def _hand_made(parts=("correct", "wrong")):
    """A calibration of three seeds, none with a false alarm, two wrong formulas (one exact)."""
    import numpy as np

    from simlab.calibrate import Calibration

    cal = Calibration("quick", [1, 2, 3], 0.001, 0.05, parts=parts)
    if "correct" in parts:
        cal.p_values = [0.2, 0.5, 0.9]
        cal.families = [(np.array([0.2, 0.5, 0.9]), np.array([True, True, True]), False)] * 3
    tested = WrongResult("dropout", "var_after=1/(1-p)", "why", rejected=3, runs=3)
    tested.min_margin = 7.5
    exact = WrongResult("batchnorm grads", "d_Y=D", "why", rejected=3, runs=3)
    exact.min_error_ratio = 4e5
    cal.wrong = [tested, exact] if "wrong" in parts else []
    return cal


def test_the_figure_draws_each_wrong_formulas_margin_not_a_bar_at_one():
    import matplotlib.pyplot as plt

    from simlab.calibrate import calibration_figure

    fig = calibration_figure(_hand_made())
    margins, errors = fig.axes[2:]
    xs = [x for line in margins.get_lines() for x in line.get_xdata() if line.get_marker() == "o"]
    assert xs == [7.5]
    assert "standard errors" in margins.get_xlabel()
    ys = [x for line in errors.get_lines() for x in line.get_xdata() if line.get_marker() == "o"]
    assert ys == [4e5] and errors.get_xscale() == "log"
    assert not margins.containers  # no bars
    assert [ax.get_title()[:4] for ax in fig.axes] == ["(a) ", "(b) ", "(c) ", "(d) "]
    plt.close(fig)


def test_a_rate_of_zero_sits_on_the_bottom_edge_and_says_so():
    import matplotlib.pyplot as plt

    from simlab.calibrate import calibration_figure

    fig = calibration_figure(_hand_made())
    false_alarms = fig.axes[0]
    (none,) = [ln for ln in false_alarms.get_lines() if ln.get_marker() == "v"]
    # in axes fractions: on the bottom edge whatever the axis limits
    assert none.get_transform() == false_alarms.get_xaxis_transform()
    texts = [t.get_text() for t in false_alarms.texts]
    assert any("no false alarm in any of the 3 runs" in t for t in texts)
    plt.close(fig)


def test_a_figure_of_one_panel_has_no_panel_letter():
    import matplotlib.pyplot as plt

    from simlab.calibrate import calibration_figure

    cal = _hand_made(parts=("wrong",))
    cal.wrong = cal.wrong[:1]
    fig = calibration_figure(cal)
    (ax,) = fig.axes
    assert not ax.get_title().startswith("(")
    plt.close(fig)


@pytest.mark.parametrize("parts", [("correct", "wrong"), ("wrong",), ("correct",)])
def test_the_calibration_figure_passes_the_lint(parts):
    import matplotlib.pyplot as plt

    from simlab.calibrate import calibration_figure
    from simlab.figure_layout import layout_figure
    from simlab.figure_lint import lint_figure

    cal = _hand_made(parts=parts)
    cal.budget, cal.seeds = "thorough", list(range(1000))  # the longest words its titles take
    fig = calibration_figure(cal)
    layout_figure(fig)
    assert lint_figure(fig) == []
    plt.close(fig)
