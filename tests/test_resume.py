"""``simlab run --resume``: an interrupted run goes on from its saved states to the same bytes.

Interruptions are made deterministic: in process, the k-th chunk's generator raises Ctrl-C (the
engine has then folded k - 1 chunks, spread over the sweep's points); across processes, the test
waits until the run's checkpoint says a point is part-way, then kills the run outright. Every
resumed run is compared byte for byte with an uninterrupted run of the same seed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import simlab.engine.executor as executor
from simlab.engine.checkpoint import FILE_NAME, MAGIC
from simlab.experiments import REGISTRY

# Small sizes (from test_replay) cut into a few chunks per point, so an interruption lands
# part-way through a point, with points finished before it in the sweeps.
CHUNKED: dict[str, list[str]] = {
    "dropout": ["--N", "8", "--M", "4", "--p", "0.2,0.5", "--samples", "2000",
                "--chunk-size", "400"],
    "batchnorm stats": ["--B", "4", "--N", "2", "--M", "3", "--samples", "400",
                        "--chunk-size", "100"],
    "batchnorm grads": ["--B", "3", "--M", "2", "--samples", "4", "--chunk-size", "1"],
    "batchnorm whiten": ["--B", "8", "--M", "3", "--samples", "40", "--chunk-size", "10"],
    "kept-units binomial": ["--M", "10", "--samples", "4000", "--chunk-size", "1000"],
    "kept-units poisson-limit": ["--M", "10,30", "--samples", "4000", "--chunk-size", "1000"],
    "kept-units thinning": ["--lam", "3", "--samples", "4000", "--chunk-size", "1000"],
    "propagation signal": ["--L", "3", "--width", "8", "--inputs", "4", "--samples", "16",
                           "--chunk-size", "4"],
    "propagation correlation": ["--L", "3", "--width", "8", "--inputs", "4", "--samples", "16",
                                "--chunk-size", "4"],
    "propagation grads": ["--samples", "3", "--max_entries", "16", "--chunk-size", "1"],
}  # fmt: skip

QUIET = ["--no-plots", "--quiet"]


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def _checks_bytes(folder: Path) -> str:
    return json.dumps(_results(folder)["checks"], sort_keys=True)


class CountChunks:
    """Stands in for the engine's ``chunk_rng``: counts chunks, and raises Ctrl-C at the k-th."""

    def __init__(self, monkeypatch, interrupt_at: int | None = None):
        self.real = executor.chunk_rng
        self.calls = 0
        self.interrupt_at = interrupt_at
        monkeypatch.setattr(executor, "chunk_rng", self)

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.real(*args)


def _interrupted_and_resumed(simlab, tmp_path, monkeypatch, args, fraction=0.5, shown=QUIET):
    """An uninterrupted run, a run stopped by Ctrl-C ``fraction`` of the way, and its resume."""
    counter = CountChunks(monkeypatch)
    full = simlab(*args, "--out", "full")
    assert full.exit_code in (0, 1), full.stderr
    total = counter.calls
    assert total >= 3, "too few chunks to interrupt part-way"
    counter.calls, counter.interrupt_at = 0, max(2, int(total * fraction))
    cut = simlab(*args, "--out", "cut")
    assert cut.exit_code == 130, cut.stderr
    partial = tmp_path / "cut_partial"
    assert (partial / FILE_NAME).exists()
    note = (partial / "PARTIAL").read_text()
    assert "simlab run --resume cut_partial" in note
    counter.interrupt_at = None
    resumed = simlab("run", "--resume", "cut_partial", *shown)
    assert resumed.exit_code == full.exit_code, resumed.stderr
    assert not partial.exists()  # replaced by the complete run
    assert not (tmp_path / "cut" / FILE_NAME).exists()  # a complete run keeps no resume state
    return full, resumed


def test_every_experiment_has_a_chunked_setting():
    assert set(CHUNKED) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_resumed_run_gives_the_checks_of_an_uninterrupted_one(
    simlab, tmp_path, monkeypatch, name
):
    args = [*name.split(), *CHUNKED[name], "--seed", "11", "--workers", "1", *QUIET]
    _interrupted_and_resumed(simlab, tmp_path, monkeypatch, args)
    assert _checks_bytes(tmp_path / "cut") == _checks_bytes(tmp_path / "full")
    doc = _results(tmp_path / "cut")
    assert doc["status"] == "complete"
    assert doc["resumed"]["samples_restored"] > 0  # it went on; it did not start again
    assert doc["samples"] == _results(tmp_path / "full")["samples"]


def test_a_resumed_traced_run_draws_its_figures_and_keeps_its_trace(simlab, tmp_path, monkeypatch):
    args = ["dropout", *CHUNKED["dropout"], "--seed", "3", "--workers", "1", "--quiet"]
    # point 2 of 2 (the one the convergence figure draws) is stopped after 2 of its 5 chunks
    _interrupted_and_resumed(simlab, tmp_path, monkeypatch, args, 0.8, shown=["--quiet"])
    assert _checks_bytes(tmp_path / "cut") == _checks_bytes(tmp_path / "full")
    figures = _results(tmp_path / "cut")["figures"]
    assert figures == _results(tmp_path / "full")["figures"] and figures
    # the convergence trace was saved with the folded chunks: the same points, the same plot
    [convergence] = [f for f in figures if "convergence" in f]
    assert (tmp_path / "cut" / convergence).read_bytes() == (
        tmp_path / "full" / convergence
    ).read_bytes()


def test_target_se_resumes_to_the_same_stopping_chunk(simlab, tmp_path, monkeypatch):
    # stops at about 12 of the 100 chunks the cap allows; interrupted after 6
    args = ["dropout", "--N", "8", "--M", "4", "--samples", "50000", "--chunk-size", "500",
            "--target-se", "0.01", "--seed", "5", "--workers", "1", *QUIET]  # fmt: skip
    counter = CountChunks(monkeypatch)
    full = simlab(*args, "--out", "full")
    assert full.exit_code == 0, full.stderr
    stopped_after = counter.calls
    assert 4 < stopped_after < 100
    counter.calls, counter.interrupt_at = 0, stopped_after // 2
    assert simlab(*args, "--out", "cut").exit_code == 130
    counter.interrupt_at = None
    assert simlab("run", "--resume", "cut_partial", *QUIET).exit_code == 0
    assert _results(tmp_path / "cut")["samples"] == _results(tmp_path / "full")["samples"]
    assert _checks_bytes(tmp_path / "cut") == _checks_bytes(tmp_path / "full")


def test_a_run_interrupted_twice_resumes_twice(simlab, tmp_path, monkeypatch):
    args = ["kept-units", "poisson-limit", *CHUNKED["kept-units poisson-limit"], "--seed", "2",
            "--workers", "1", *QUIET]  # fmt: skip
    counter = CountChunks(monkeypatch)
    assert simlab(*args, "--out", "full").exit_code in (0, 1)
    counter.calls, counter.interrupt_at = 0, 3
    assert simlab(*args, "--out", "cut").exit_code == 130
    counter.calls = 0
    assert simlab("run", "--resume", "cut_partial", *QUIET).exit_code == 130
    # the second partial replaced the first under the same name
    assert (tmp_path / "cut_partial").is_dir() and not (tmp_path / "cut_2_partial").exists()
    counter.interrupt_at = None
    assert simlab("run", "--resume", "cut_partial", *QUIET).exit_code in (0, 1)
    assert _checks_bytes(tmp_path / "cut") == _checks_bytes(tmp_path / "full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "full"]  # nothing else left


def test_a_killed_run_resumes_from_its_last_checkpoint(simlab, tmp_path):
    args = ["dropout", "--N", "64", "--M", "32", "--samples", "4e5", "--chunk-size", "2000",
            "--seed", "8", "--workers", "1", *QUIET]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "simlab", *args, "--out", "run"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "SIMLAB_CHECKPOINT_SECONDS": "0.05"},
    )

    def folded() -> list[Path]:
        found = []
        for path in tmp_path.glob(f".run.*.tmp/{FILE_NAME}"):
            with open(path, "rb") as fh:
                fh.readline()
                manifest = json.loads(fh.readline())
            if any(p["chunks"] >= 5 for p in manifest["points"]):
                found.append(path.parent)
        return found

    deadline = time.monotonic() + 120
    while not folded():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    [hidden] = list(tmp_path.glob(".run.*.tmp"))
    assert not (tmp_path / "run").exists()

    assert simlab(*args, "--out", "full").exit_code == 0
    resumed = simlab("run", "--resume", hidden.name, *QUIET)
    assert resumed.exit_code == 0, resumed.stderr
    assert not hidden.exists()  # the run it went on with is now ./run
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # nor its lock
    assert _results(tmp_path / "run")["resumed"]["samples_restored"] >= 5 * 2000
    assert _checks_bytes(tmp_path / "run") == _checks_bytes(tmp_path / "full")


def test_a_run_stopped_while_drawing_resumes_without_simulating_again(
    simlab, tmp_path, monkeypatch
):
    import simlab.execute as execute

    args = ["kept-units", "binomial", *CHUNKED["kept-units binomial"], "--seed", "4", "--quiet"]
    assert simlab(*args, "--no-plots", "--out", "full").exit_code == 0

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(execute.FigureDrawer, "finish", stopped)
        assert simlab(*args, "--out", "cut").exit_code == 130
    counter = CountChunks(monkeypatch)
    resumed = simlab("run", "--resume", "cut_partial", "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    assert counter.calls == 0  # every point was finished: only the figures were left to do
    assert _results(tmp_path / "cut")["figures"]
    assert _checks_bytes(tmp_path / "cut") == _checks_bytes(tmp_path / "full")


@pytest.fixture
def partial_run(simlab, tmp_path, monkeypatch) -> Path:
    counter = CountChunks(monkeypatch, interrupt_at=3)
    args = ["dropout", *CHUNKED["dropout"], "--seed", "1", "--workers", "1", *QUIET]
    assert simlab(*args, "--out", "cut").exit_code == 130
    counter.interrupt_at = None
    return tmp_path / "cut_partial"


def _refused(simlab, *args: str) -> str:
    result = simlab("run", *args, *QUIET)
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_resume_refuses_what_is_not_a_partial_run(simlab, tmp_path, partial_run):
    assert "is not a folder" in _refused(simlab, "--resume", "nowhere")
    (tmp_path / "empty").mkdir()
    assert "not a partial run" in _refused(simlab, "--resume", "empty")
    assert simlab("dropout", *CHUNKED["dropout"], *QUIET, "--out", "done").exit_code == 0
    assert "complete run" in _refused(simlab, "--resume", "done")
    config = str(partial_run / "config.yaml")
    assert "cannot be given" in _refused(simlab, config, "--resume", str(partial_run))
    assert "cannot be given" in _refused(simlab, "--resume", str(partial_run), "--seed", "3")
    assert "--resume DIR" in _refused(simlab)


def _edit_manifest(path: Path, change) -> None:
    data = path.read_bytes()
    header, _, payload = data[len(MAGIC) :].partition(b"\n")
    manifest = json.loads(header)
    change(manifest)
    path.write_bytes(MAGIC + json.dumps(manifest).encode() + b"\n" + payload)


def test_resume_refuses_a_damaged_or_foreign_checkpoint(simlab, partial_run):
    checkpoint = partial_run / FILE_NAME
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[:-7])  # truncated
    assert "is damaged" in _refused(simlab, "--resume", str(partial_run))
    checkpoint.write_bytes(good[:-3] + bytes([good[-3] ^ 1]) + good[-2:])  # one bit flipped
    assert "is damaged" in _refused(simlab, "--resume", str(partial_run))
    checkpoint.write_bytes(b"garbage")
    assert "not a simlab checkpoint" in _refused(simlab, "--resume", str(partial_run))

    checkpoint.write_bytes(good)
    _edit_manifest(checkpoint, lambda m: m["versions"].update(numpy="0.0.1"))
    line = _refused(simlab, "--resume", str(partial_run))
    assert "numpy 0.0.1" in line and "not resumed" in line

    checkpoint.write_bytes(good)
    config = partial_run / "config.yaml"
    config.write_text(config.read_text().replace("seed: 1", "seed: 2"))
    assert "was it edited?" in _refused(simlab, "--resume", str(partial_run))
    assert partial_run.is_dir()  # a refused resume leaves everything as it was


def test_resume_never_runs_code_from_a_checkpoint(simlab, tmp_path, partial_run):
    import hashlib
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    checkpoint = partial_run / FILE_NAME
    payload = pickle.dumps([((0, 0), pickle.dumps(Evil()))])

    def swap(manifest):
        manifest["payload_bytes"] = len(payload)
        manifest["payload_sha256"] = hashlib.sha256(payload).hexdigest()
        manifest["points"] = manifest["points"][:1]

    _edit_manifest(checkpoint, swap)
    data = checkpoint.read_bytes()
    header = data[len(MAGIC) :].partition(b"\n")[0]
    checkpoint.write_bytes(MAGIC + header + b"\n" + payload)
    line = _refused(simlab, "--resume", str(partial_run))
    assert "refused to load" in line
    assert not marker.exists()
