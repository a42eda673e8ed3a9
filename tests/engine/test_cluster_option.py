"""Choosing the engine: without a cluster option nothing imports Dask (the extra is optional)."""

import subprocess
import sys
import textwrap

from simlab.engine.cluster import requested


def test_a_run_on_threads_never_imports_dask(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        from simlab.cli import cli
        result = CliRunner().invoke(
            cli, ["dropout", "--samples", "2000", "--no-plots", "--quiet", "--out", "o"]
        )
        assert result.exit_code == 0, result.output
        loaded = [m for m in ("dask", "distributed") if m in sys.modules]
        assert not loaded, loaded
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_environment_variable_asks_for_a_cluster(monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    assert not requested(None, None)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    assert requested(None, None)


def test_both_options_at_once_is_one_line(simlab):
    result = simlab("dropout", "--scheduler", "tcp://127.0.0.1:9", "--cluster", "local")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "give one of them" in result.stderr
