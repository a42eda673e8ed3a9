"""Runs: figures are drawn in worker processes and listed in run order, as when drawn in turn."""

from simlab.execute import draw_figures
from simlab.experiments import REGISTRY
from simlab.runspec import build_spec
from simlab.simulate import simulate


def _runs(workers):
    runs = []
    for name in ("kept-units binomial", "kept-units thinning"):
        raw = {"samples": 2000, "seed": 3, "workers": workers}
        runs.append(simulate(build_spec(REGISTRY[name], raw, [], lambda k: k)))
    return runs


def test_figures_drawn_in_processes_match_figures_drawn_in_turn(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    in_turn = draw_figures(_runs(1), tmp_path / "one", ("png",), True)
    parallel = draw_figures(_runs(2), tmp_path / "two", ("png",), True)
    assert in_turn == parallel and len(in_turn) >= 2
    assert in_turn[0].startswith("kept-units-binomial/")
    assert all((tmp_path / "two" / path).stat().st_size > 10_000 for path in parallel)
