"""Run folders are complete or clearly partial, never half-written and looking complete."""

import json

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
