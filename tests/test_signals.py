"""Ctrl-C and SIGTERM on a real ``python -m simlab`` process: the run stops, keeps what it did
in a ``<name>_partial`` folder that says so, exits 130 or 143, and prints no traceback.

Each test waits for a sign that the run reached the stage it interrupts (the temporary folder,
or results.json in it), then signals; no test depends on how long anything takes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TIMEOUT = 120  # a safety net only: every test is signalled long before


def start(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "simlab", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(proc: subprocess.Popen, found) -> None:
    """Poll until ``found()`` is true (the run got there), failing if the process ended first."""
    deadline = time.monotonic() + TIMEOUT
    while not found():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never reached the stage to interrupt"
        time.sleep(0.02)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out, err


def tmp_folder(tmp_path: Path, name: str) -> list[Path]:
    return list(tmp_path.glob(f".{name}.*.tmp"))


def assert_partial(tmp_path: Path, name: str, err: str) -> dict:
    assert "Traceback" not in err, err
    assert not (tmp_path / name).exists()
    partial = tmp_path / f"{name}_partial"
    assert partial.is_dir(), list(tmp_path.iterdir())
    assert (partial / "PARTIAL").exists()
    doc = json.loads((partial / "results.json").read_text())
    assert doc["status"] == "partial"
    # nothing hidden is left behind: no temporary folder, file or lock
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    return doc


# dropout with its default sizes simulates about 10^5 samples a second on 2 cores: 10^6 samples
# are still running when the signal comes, and a chunk of 2000 is folded within a few ms.
LONG_RUN = ("dropout", "--samples", "1e6", "--chunk-size", "2000", "--seed", "4", "--workers", "2")


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_simulating_keeps_a_partial_run(tmp_path, sig, status):
    proc = start(tmp_path, *LONG_RUN, "--out", "run", "--no-plots")
    wait_for(proc, lambda: tmp_folder(tmp_path, "run"))
    time.sleep(0.5)  # let a few chunks fold (the test holds without them too)
    proc.send_signal(sig)
    code, _, err = finish(proc)
    assert code == status, err
    doc = assert_partial(tmp_path, "run", err)
    note = (tmp_path / "run_partial" / "PARTIAL").read_text()
    assert "SIGTERM" in note if sig == signal.SIGTERM else "Ctrl-C" in note
    assert "dropout: " in note and "of 1 points simulated" in note
    assert f"of {1_000_000:,} samples folded" in note
    assert "simlab run run_partial/config.yaml" in note
    assert doc["samples"] < 1_000_000
    # the config replays the whole run, not what was done
    assert "samples: 1000000" in (tmp_path / "run_partial" / "config.yaml").read_text()


def test_ctrl_c_while_figures_are_drawn_keeps_the_results(tmp_path):
    # two experiments: their figures are drawn in two worker processes
    config = tmp_path / "two.yaml"
    config.write_text(
        "experiments:\n"
        "  - experiment: dropout\n    p: [0.1, 0.3, 0.5, 0.7]\n    samples: 20000\n"
        "    N: 64\n    M: 32\n    seed: 1\n"
        "  - experiment: kept-units binomial\n    samples: 20000\n    seed: 2\n"
    )
    proc = start(tmp_path, "run", "two.yaml", "--workers", "2", "--out", "run")
    # results.json is written before any figure is drawn
    wait_for(proc, lambda: [p for p in tmp_folder(tmp_path, "run") if (p / "checks.csv").exists()])
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130, err
    doc = assert_partial(tmp_path, "run", err)
    assert len(doc["checks"]) > 10 and all(c["verdict"] for c in doc["checks"])
    assert (tmp_path / "run_partial" / "checks.csv").exists()
    assert (tmp_path / "run_partial" / "config.yaml").exists()
    assert "interrupted (Ctrl-C) while" in (tmp_path / "run_partial" / "PARTIAL").read_text()


def test_a_second_ctrl_c_keeps_the_folder(tmp_path):
    proc = start(tmp_path, *LONG_RUN, "--out", "run")
    wait_for(proc, lambda: tmp_folder(tmp_path, "run"))
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    # the first Ctrl-C ends the simulation; the second lands while the folder is written
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and not [
        p for p in tmp_folder(tmp_path, "run") if (p / "config.yaml").exists()
    ]:
        assert time.monotonic() < deadline, "the run never reached its write phase"
        time.sleep(0.005)
    # The write phase lasts milliseconds on an idle machine: when the run already ended, the
    # second Ctrl-C has nothing to hit, and the folder must be the same partial one either way.
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130, err
    assert_partial(tmp_path, "run", err)


def test_calibrate_stops_on_ctrl_c_and_marks_its_output_partial(tmp_path):
    proc = start(tmp_path, "calibrate", "--seeds", "50", "--only", "wrong", "--out", "cal")
    wait_for(proc, lambda: tmp_folder(tmp_path, "cal"))
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130, err
    assert "Traceback" not in err
    partial = tmp_path / "cal_partial"
    assert partial.is_dir() and not (tmp_path / "cal").exists()
    doc = json.loads((partial / "calibration.json").read_text())
    assert doc["status"] == "partial"
    assert len(doc["seeds"]) < 50 and len(doc["seeds_requested"]) == 50
    # a seed counts whole or not at all
    assert all(w["runs"] == len(doc["seeds"]) for w in doc["wrong_formulas"])
    assert "of 50 seeds" in (partial / "PARTIAL").read_text()


def test_ctrl_c_during_start_up_imports_prints_no_traceback(tmp_path):
    # -X importtime reports each module as its import ends: NumPy done means SciPy, matplotlib
    # and the experiments are still to come
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "simlab", "list"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.split("|")[-1].strip() == "numpy":
            proc.send_signal(signal.SIGINT)
            break
    err = "".join(lines) + proc.stderr.read()
    proc.wait(timeout=TIMEOUT)
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    assert "simlab: interrupted" in err


SLOW_FORK_SERVER = """
import sys, time

if "multiprocessing.forkserver" in " ".join(getattr(sys, "orig_argv", [])):
    time.sleep(4)  # a fork server slow to warm up: a loaded machine, a first font cache
"""


def test_a_second_ctrl_c_while_the_figure_workers_start_keeps_the_folder(tmp_path):
    """The figure workers start while the run simulates, and starting one waits for the fork
    server's warm-up: Ctrl-C meanwhile stops the run, a second one while it stops the workers
    must neither lose the partial folder nor let a half-started worker print a traceback."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_FORK_SERVER)
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p)
    proc = start(tmp_path, *LONG_RUN, "--out", "run", env={"PYTHONPATH": path})
    wait_for(proc, lambda: tmp_folder(tmp_path, "run"))
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # the run stops: it waits for the worker being started
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130, err
    assert_partial(tmp_path, "run", err)
