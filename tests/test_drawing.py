"""Figures drawn beside the simulation: when each experiment is handed to the drawer, and what an
interrupted run keeps."""

import html
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

import simlab.engine.executor as executor
import simlab.execute as execute
from simlab.drawing import FigureDrawer
from simlab.experiments import REGISTRY
from simlab.runspec import build_spec
from simlab.simulate import simulate

TWO = (
    "experiments:\n"
    "  - experiment: kept-units binomial\n    M: 10\n    samples: 4000\n    chunk_size: 1000\n"
    "    seed: 1\n{claims}"
    "  - experiment: kept-units thinning\n    lam: 3\n    samples: 4000\n    chunk_size: 1000\n"
    "    seed: 2\n"
)
CLAIM = "    claims:\n      var: M*p*(1-p)\n"


def _drawn(runs, folder, workers):
    folder.mkdir()
    drawer = FigureDrawer(folder, ("png",), [run.spec.experiment for run in runs], workers)
    drawer.start()
    for index, run in reversed(list(enumerate(runs))):  # handed over in any order
        drawer.submit(index, run)
    return drawer.finish(quiet=True)


def test_figures_drawn_in_processes_match_figures_drawn_in_turn(tmp_path):
    runs = []
    for name in ("kept-units binomial", "kept-units thinning"):
        raw = {"samples": 2000, "seed": 3}
        runs.append(simulate(build_spec(REGISTRY[name], raw, [], lambda k: k)))
    in_turn = _drawn(runs, tmp_path / "one", workers=1)
    parallel = _drawn(runs, tmp_path / "two", workers=2)
    assert in_turn == parallel and len(in_turn) >= 4
    assert in_turn[0].startswith("kept-units-binomial/")  # run order, not hand-over order
    assert all((tmp_path / "two" / path).stat().st_size > 10_000 for path in parallel)


def _events(monkeypatch) -> list[str]:
    """Record, in order, each experiment's simulation and its hand-over to the figure drawer."""
    events: list[str] = []
    real_simulate, real_submit = execute.simulate, execute.FigureDrawer.submit

    def simulate(spec, *args, **kwargs):
        events.append(f"simulate {spec.experiment.name}")
        return real_simulate(spec, *args, **kwargs)

    def submit(self, index, run):
        if index not in self._submitted:  # a second hand-over of the same one is a no-op
            events.append(f"draw {run.spec.experiment.name}")
        return real_submit(self, index, run)

    monkeypatch.setattr(execute, "simulate", simulate)
    monkeypatch.setattr(execute.FigureDrawer, "submit", submit)
    return events


def test_an_experiment_is_drawn_while_the_next_one_simulates(simlab, tmp_path, monkeypatch):
    (tmp_path / "two.yaml").write_text(TWO.format(claims=""))
    events = _events(monkeypatch)
    result = simlab("run", "two.yaml", "--workers", "2", "--quiet", "--out", "run")
    assert result.exit_code == 0, result.stderr
    assert events == [
        "simulate kept-units binomial",
        "draw kept-units binomial",
        "simulate kept-units thinning",
        "draw kept-units thinning",
    ]
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["figures"][0].startswith("kept-units-binomial/")  # run order, not finish order
    assert doc["figures"][-1].startswith("kept-units-thinning/")


def test_figures_that_draw_claims_wait_for_the_verdicts(simlab, tmp_path, monkeypatch):
    (tmp_path / "two.yaml").write_text(TWO.format(claims=CLAIM))
    events = _events(monkeypatch)
    result = simlab("run", "two.yaml", "--workers", "2", "--quiet", "--out", "run")
    assert result.exit_code == 0, result.stderr
    # the claim's verdict (its legend entry) is decided only once every experiment has run
    assert events == [
        "simulate kept-units binomial",
        "simulate kept-units thinning",
        "draw kept-units thinning",
        "draw kept-units binomial",
    ]


def test_an_interrupted_run_lists_exactly_the_whole_figures_it_keeps(simlab, tmp_path, monkeypatch):
    (tmp_path / "two.yaml").write_text(TWO.format(claims=""))
    real, calls = executor.chunk_rng, []

    def chunk_rng(*args):  # Ctrl-C at the thinning experiment's second chunk
        calls.append(args)
        if len(calls) == 4 + 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(executor, "chunk_rng", chunk_rng)
    result = simlab("run", "two.yaml", "--workers", "2", "--quiet", "--out", "run")
    assert result.exit_code == 130, result.stderr
    partial = tmp_path / "run_partial"
    listed = json.loads((partial / "results.json").read_text())["figures"]
    on_disk = sorted(str(p.relative_to(partial)) for p in partial.rglob("*.png"))
    # The binomial figures may or may not have been finished when the run stopped (the workers
    # are killed); whichever they are, the folder and its results agree, every listed figure is
    # whole, and no temporary file is left behind.
    assert sorted(listed) == on_disk
    assert all(p.startswith("kept-units-binomial/") for p in listed)
    for path in listed:
        assert matplotlib.image.imread(partial / path).size > 0
    assert not [p for p in partial.rglob(".*") if ".tmp." in p.name]


def test_experiments_a_spawned_worker_could_not_import_are_drawn_here():
    from simlab.drawing import drawable_in_worker

    assert drawable_in_worker(REGISTRY["dropout"])

    class InANotebook:
        pass

    InANotebook.__module__ = "__main__"
    assert not drawable_in_worker(InANotebook())
    InANotebook.__module__ = "coin_flips_loaded_from_a_file"  # in sys.modules, not on the path
    assert not drawable_in_worker(InANotebook())


def test_an_experiment_installed_as_an_import_hook_is_drawn_in_the_workers(tmp_path, monkeypatch):
    """``pip install -e .`` makes simlab importable through a finder on sys.meta_path, not a
    path entry: such a module is importable in a worker, so its figures go to the workers."""
    import importlib.util

    from simlab.drawing import drawable_in_worker

    package = tmp_path / "hooked_experiments_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("class Flips:\n    pass\n")

    class EditableFinder:  # what setuptools' editable install puts on sys.meta_path
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "hooked_experiments_pkg":
                return None
            return importlib.util.spec_from_file_location(name, package / "__init__.py")

    class Flips:
        pass

    Flips.__module__ = "hooked_experiments_pkg"
    assert not drawable_in_worker(Flips())  # not on sys.path, no importer finds it
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, EditableFinder()])
    assert drawable_in_worker(Flips())


def test_two_runs_of_one_experiment_keep_their_figures_apart(simlab, tmp_path):
    (tmp_path / "twice.yaml").write_text(
        "experiments:\n"
        "  - experiment: kept-units binomial\n    name: small\n    M: 10\n    samples: 4000\n"
        "  - experiment: kept-units binomial\n    name: small\n    M: 20\n    samples: 4000\n"
        "  - experiment: kept-units thinning\n    samples: 4000\n"
    )
    result = simlab("run", "twice.yaml", "--seed", "1", "--quiet", "--out", "run")
    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    folders = [e["figure_folder"] for e in doc["experiments"]]
    assert folders == ["small", "small-2", "kept-units-thinning"]
    assert len(set(doc["figures"])) == len(doc["figures"]) == 6
    assert all((tmp_path / "run" / figure).exists() for figure in doc["figures"])
    # the report finds each figure's caption through its folder
    report = (tmp_path / "run" / "report.html").read_text()
    caption = doc["experiments"][1]["figure_captions"]["kept_units_binomial_pmf"]
    assert report.count(html.escape(caption)) == 2


SLOW_FIGURES = """
import pathlib, time


class SlowFigure:
    stem = "slow"

    def __init__(self, folder, seconds):
        self.folder, self.seconds = folder, seconds

    def render(self, points):
        pathlib.Path(self.folder, f"drawing.{time.monotonic_ns()}").touch()  # a worker draws
        time.sleep(self.seconds)


class SlowExperiment:
    name = "slow"

    def __init__(self, folder, seconds):
        self.figures = [SlowFigure(folder, seconds) for _ in range(3)]
"""


def _slow_run(tmp_path, monkeypatch, seconds):
    """A run whose three figures each take ``seconds`` (their module importable by workers)."""
    from types import SimpleNamespace

    (tmp_path / "slow_figures_for_drawing.py").write_text(SLOW_FIGURES)
    monkeypatch.syspath_prepend(str(tmp_path))
    import slow_figures_for_drawing

    experiment = slow_figures_for_drawing.SlowExperiment(str(tmp_path), seconds)
    spec = SimpleNamespace(experiment=experiment, claims=[])
    return SimpleNamespace(spec=spec, points=[object()], checks=[])


def _wait(condition, what):
    import time

    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_stop_kills_the_workers_drawing(tmp_path, monkeypatch):
    run = _slow_run(tmp_path, monkeypatch, seconds=600)  # a figure never finishes on its own
    out = tmp_path / "out"
    out.mkdir()
    drawer = FigureDrawer(out, ("png",), [run.spec.experiment], workers=2)
    drawer.start()
    drawer.submit(0, run)
    _wait(lambda: list(tmp_path.glob("drawing.*")), "no worker started drawing")
    # the feeder starts the workers one after the other: both, before they are looked at
    _wait(lambda: len(drawer._pool._processes) == 2, "the second worker never started")
    workers = list(drawer._pool._processes.values())
    try:
        drawer.stop()  # what a Ctrl-C does: a figure nobody waits for is not finished
        assert len(workers) == 2
        # dead, not drawing on: the pool's manager thread may reap a killed worker before
        # this process sees it gone, so it is waited for (well within the figures' 600 s)
        _wait(lambda: not any(p.is_alive() for p in workers), "a worker outlived stop()")
    finally:
        for process in workers:
            process.kill()


def test_a_pool_broken_before_any_figure_is_an_error_not_a_run_without_figures(
    tmp_path, monkeypatch
):
    from concurrent.futures.process import BrokenProcessPool

    run = _slow_run(tmp_path, monkeypatch, seconds=0)
    drawer = FigureDrawer(tmp_path, ("png",), [run.spec.experiment], workers=2)
    drawer.start()
    _wait(lambda: len(drawer._pool._processes) == 2, "the workers never started")
    for process in list(drawer._pool._processes.values()):
        os.kill(process.pid, signal.SIGKILL)  # the OOM killer, a crash in a worker
    _wait(lambda: drawer._pool._broken, "the pool never saw its workers die")
    drawer.submit(0, run)
    try:
        with pytest.raises(BrokenProcessPool):
            drawer.finish(quiet=True)
    finally:
        drawer.stop()


USER_PROGRAM = """
import multiprocessing, sys, time

import simlab

if __name__ == "__main__":
    simlab.run("dropout", samples=2000, seed=3).save(sys.argv[1])  # three figures: workers
    own = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(60,))
    own.start()
    time.sleep(0.5)
    own.terminate()
    own.join(10)
    alive = own.is_alive()
    own.kill()
    sys.exit(3 if alive else 0)
"""


def test_a_program_using_the_api_keeps_its_own_forkserver_processes_as_python_makes_them(
    tmp_path,
):
    """The fork server is the process's one: after simlab drew figures in a user's program,
    that program's own forkserver processes (Python 3.14's default on Linux) still stop on
    terminate(), i.e. do not inherit the figure workers' ignored SIGTERM."""

    program = tmp_path / "program.py"
    program.write_text(USER_PROGRAM)
    done = subprocess.run(
        [sys.executable, str(program), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert len(list((tmp_path / "out").glob("*.png"))) == 3, done.stderr
    assert done.returncode == 0, done.stderr


def test_the_installed_package_draws_its_figures_in_workers(tmp_path):
    """As a user runs it: simlab imported the way it is installed (``pip install -e .`` makes it
    an import hook, not a path entry), the source tree off the path. The built-in experiments
    must still count as importable by a worker, or every figure is drawn in the main process."""

    root = str(Path(__file__).resolve().parents[1])
    code = (
        "import sys\n"
        f"sys.path = [p for p in sys.path if p not in ('', {root!r})]\n"
        "try:\n"
        "    import simlab.drawing\n"
        "except ImportError:\n"
        "    print('not installed'); raise SystemExit\n"
        "from simlab.experiments import REGISTRY\n"
        "print(simlab.drawing.drawable_in_worker(REGISTRY['dropout']))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "not installed":
        pytest.skip("simlab is not installed in this interpreter (only on the path)")
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("plots", [True, False])
def test_a_run_without_plots_makes_no_figure_data(simlab, tmp_path, monkeypatch, plots):
    (tmp_path / "two.yaml").write_text(TWO.format(claims=""))
    figure_data = []
    real_simulate = execute.simulate

    def simulate(spec, *args, **kwargs):
        run = real_simulate(spec, *args, **kwargs)
        figure_data.extend(point.figure for point in run.points)
        return run

    monkeypatch.setattr(execute, "simulate", simulate)
    options = [] if plots else ["--no-plots"]
    result = simlab("run", "two.yaml", "--quiet", "--out", "run", *options)
    assert result.exit_code == 0, result.stderr
    assert len(figure_data) == 2
    assert all((data is not None) == plots for data in figure_data)
