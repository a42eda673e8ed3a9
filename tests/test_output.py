"""Run folders are complete or clearly partial, never half-written and looking complete."""

import errno
import json
import os
from pathlib import Path

import pytest

from simlab.experiments.dropout import DropoutSampler
from simlab.output import RunFolder


def test_a_finished_folder_appears_only_at_the_end(tmp_path):
    with RunFolder("dropout", root=tmp_path) as folder:
        (folder.path / "results.json").write_text("{}")
        assert not folder.final.exists()
        assert folder.path.name.startswith(".")
    assert (folder.final / "results.json").exists()
    assert not folder.final.name.endswith("_partial")
    assert not list(folder.final.parent.glob(".*"))


def test_a_crash_leaves_a_folder_marked_partial(tmp_path):
    with pytest.raises(RuntimeError):
        with RunFolder("dropout", root=tmp_path) as folder:
            (folder.path / "config.yaml").write_text("x: 1")
            raise RuntimeError("boom")
    assert folder.final.name.endswith("_partial")
    assert "boom" in (folder.final / "PARTIAL").read_text()


def test_ctrl_c_during_sampling_keeps_a_partial_run(simlab, tmp_path, monkeypatch):
    original = DropoutSampler.__call__
    calls = {"n": 0}

    def interrupted(self, rng, size):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, rng, size)

    monkeypatch.setattr(DropoutSampler, "__call__", interrupted)
    result = simlab(
        "dropout",
        "--samples",
        "1e5",
        "--chunk-size",
        "1000",
        "--N",
        "16",
        "--M",
        "8",
        "--workers",
        "1",
        "--quiet",
        "--out",
        "run",
    )
    assert result.exit_code == 130
    assert not (tmp_path / "run").exists()
    partial = tmp_path / "run_partial"
    doc = json.loads((partial / "results.json").read_text())
    assert doc["status"] == "partial"
    assert (partial / "PARTIAL").exists()
    # the interrupted point is kept, evaluated on the 3 chunks folded before Ctrl-C
    assert doc["samples"] == 3000
    assert {c["quantity"] for c in doc["checks"]} >= {"mean_before", "var_after"}
    assert all(c["n"] == 3000 for c in doc["checks"] if c["kind"] == "statistical")


# -- the destination is checked before any work (issue 10, item 4) ---------------------------

TINY = ("dropout", "--samples", "2000", "--N", "16", "--M", "8", "--seed", "1", "--quiet")


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if the run gets as far as simulating."""

    def refuse(*args, **kwargs):
        raise AssertionError("the simulation started before --out was checked")

    monkeypatch.setattr("simlab.execute.simulate", refuse)


def _one_line_out_error(result):
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: --out: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "make, out, message",
    [
        (lambda d: None, "/proc/simlab-run", "/proc"),
        (lambda d: (d / "afile").write_text("x"), "afile/run", "afile"),
        (lambda d: None, "x" * 300, "300 bytes long; at most 240"),
        (lambda d: (d / "real").mkdir() or (d / "link").symlink_to(d / "real"), "link", "symbolic"),
        (
            lambda d: (d / "full").mkdir() or (d / "full" / "f").write_text(""),
            "full",
            "not an empty",
        ),
    ],
    ids=["proc", "parent-is-a-file", "name-too-long", "symlink", "not-empty"],
)
def test_out_problems_are_refused_before_any_work(
    simlab, tmp_path, no_simulation, make, out, message
):
    make(tmp_path)
    line = _one_line_out_error(simlab(*TINY, "--out", out))
    assert message in line
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_any_work(simlab, tmp_path, no_simulation):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        line = _one_line_out_error(simlab(*TINY, "--out", "ro/run"))
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert "not writable" in line


def test_a_stray_tmp_folder_from_an_earlier_crash_does_not_block_the_run(simlab, tmp_path):
    (tmp_path / ".run.tmp").mkdir()
    (tmp_path / ".run.tmp" / "results.json").write_text("{")
    result = simlab(*TINY, "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.stderr
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "complete"


def test_a_second_run_to_the_same_out_is_refused_up_front(simlab, tmp_path, no_simulation):
    first = RunFolder("dropout", tmp_path / "run").open()  # a run in progress
    line = _one_line_out_error(simlab(*TINY, "--out", "run"))
    assert f"another simlab run (pid {os.getpid()}) is writing" in line
    with first:
        (first.path / "results.json").write_text("{}")
    assert (tmp_path / "run" / "results.json").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # lock removed


def test_each_run_writes_under_its_own_temporary_name(tmp_path):
    a = RunFolder("dropout", root=tmp_path).open()
    b = RunFolder("dropout", root=tmp_path).open()
    assert a.path != b.path and a.path.parent == b.path.parent
    assert str(os.getpid()) in a.path.name
    a.discard()
    b.discard()


def test_an_earlier_partial_folder_is_kept_beside_a_new_one(tmp_path):
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            with RunFolder("dropout", tmp_path / "run"):
                raise KeyboardInterrupt
    assert (tmp_path / "run_partial" / "PARTIAL").exists()
    assert (tmp_path / "run_2_partial" / "PARTIAL").exists()


def _disk_full_at(monkeypatch, name, call):
    """The atomic writer fails part-way through the ``call``-th write of ``name``."""
    from simlab import output

    seen = {"n": 0}
    original = output._write_all

    def full(fh, data):
        if f".{name}." in Path(fh.name).name:
            seen["n"] += 1
            if seen["n"] == call:
                original(fh, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        original(fh, data)

    monkeypatch.setattr(output, "_write_all", full)


def test_a_full_disk_says_where_the_saved_data_is_and_leaves_no_truncated_file(
    simlab, tmp_path, monkeypatch
):
    # the final results.json (status complete, with the figures) does not fit
    _disk_full_at(monkeypatch, "results.json", 2)
    result = simlab(*TINY, "--out", "run")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simlab: error: "), result.stderr
    assert "No space left on device" in lines[0] and "run_partial" in lines[0]
    assert "results.json" in lines[0] and "internal error" not in lines[0]
    doc = json.loads((tmp_path / "run_partial" / "results.json").read_text())  # whole
    assert doc["status"] == "partial" and len(doc["checks"]) == 7
    assert "could not be written" in (tmp_path / "run_partial" / "PARTIAL").read_text()
    leftovers = [p.name for p in (tmp_path / "run_partial").iterdir() if p.name.startswith(".")]
    assert not leftovers and not (tmp_path / "run").exists()


def test_a_full_disk_before_the_results_leaves_no_results_file(simlab, tmp_path, monkeypatch):
    _disk_full_at(monkeypatch, "results.json", 1)
    result = simlab(*TINY, "--out", "run")
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert not (tmp_path / "run_partial" / "results.json").exists()
    assert (tmp_path / "run_partial" / "config.yaml").exists()


@pytest.mark.parametrize("stderr", ["full", "closed pipe"])
def test_a_run_whose_stderr_fails_still_writes_a_complete_folder(tmp_path, stderr):
    # the verdict table is printed before the figures are finished: its failure (a full disk,
    # a reader gone) must not be taken for the run folder's
    import subprocess
    import sys

    command = [sys.executable, "-m", "simlab", "dropout", "--samples", "5000", "--N", "16"]
    command += ["--M", "8", "--seed", "5", "--no-plots", "--out", str(tmp_path / "run")]
    if stderr == "full":
        with open("/dev/full", "w") as full:
            done = subprocess.run(command, stderr=full, stdout=subprocess.DEVNULL, timeout=120)
    else:
        reader = subprocess.Popen(["head", "-c", "0"], stdin=subprocess.PIPE)
        done = subprocess.run(command, stderr=reader.stdin, stdout=subprocess.DEVNULL, timeout=120)
        reader.stdin.close()
        reader.wait()
    assert done.returncode != 0  # the last lines could not be printed
    assert not (tmp_path / "run_partial").exists()
    assert (tmp_path / "run" / "report.html").exists()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "complete"
