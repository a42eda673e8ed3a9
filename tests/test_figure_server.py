"""The figure workers' fork server (simlab/figure_server.py): the figures of ``simlab check`` draw
in a process that never imports scipy.stats (a third of the server's warm-up)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import replace

from simlab.course import budget_specs
from simlab.simulate import decide_runs, points_with_claims, simulate

#: a figure worker as the fork server makes it, with scipy.stats out of reach: drawing a figure
#: that needs it fails with the import's error
_WORKER = """
import pathlib, pickle, sys

class NoScipyStats:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy.stats" or name.startswith("scipy.stats."):
            raise ImportError("scipy.stats is out of a figure worker's reach")

sys.meta_path.insert(0, NoScipyStats())
import simlab.figure_server
from simlab.figures import draw

jobs = pickle.loads(pathlib.Path(sys.argv[1]).read_bytes())
out = pathlib.Path(sys.argv[2])
for experiment, index, points in jobs:
    spec = experiment.figures[index]
    draw([spec], points, out, ("png",))
    print(spec.stem)
"""


def test_every_figure_of_the_check_draws_without_scipy_stats(tmp_path):
    specs = budget_specs("quick", 3)
    runs = [simulate(replace(s, samples=max(s.chunk_size, s.samples // 50))) for s in specs]
    decide_runs(runs, specs[0].alpha)
    jobs = [
        (run.spec.experiment, index, points_with_claims(run))
        for run in runs
        for index in range(len(run.spec.experiment.figures))
    ]
    (tmp_path / "jobs.pkl").write_bytes(pickle.dumps(jobs))
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tmp_path / "jobs.pkl"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    drawn = done.stdout.split()
    assert len(drawn) == len(jobs) == 22
    assert all((tmp_path / f"{stem}.png").stat().st_size > 10_000 for stem in drawn)
