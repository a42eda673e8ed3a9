"""The resume state file: atomic, checksummed, paced by a clock, and never a way to run code."""

import pickle

import numpy as np
import pytest

from simlab.engine.checkpoint import (
    MAGIC,
    MAX_SHARE,
    Checkpointer,
    CheckpointError,
    PointState,
    read_checkpoint,
)
from simlab.engine.executor import ChunkRun
from simlab.stats import Moments


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _state(n_chunks: int, finished: bool = False) -> PointState:
    stats = Moments.from_batch(np.arange(12.0).reshape(4, 3))
    return PointState(ChunkRun(stats, 4 * n_chunks, n_chunks, False), finished, observer=[1.5])


def test_states_read_back_exactly(tmp_path):
    path = tmp_path / "checkpoint.simlab"
    saver = Checkpointer(path, {"config": "x: 1\n"})
    saver.record((0, 0), _state(3, finished=True))
    saver.record((1, 2), _state(1))
    saver.save()
    manifest, blobs, summary = read_checkpoint(path)
    assert manifest["config"] == "x: 1\n"
    assert summary == {(0, 0): (True, 3, 12), (1, 2): (False, 1, 4)}
    assert [p["status"] for p in manifest["points"]] == ["finished", "in progress"]
    back = Checkpointer(path, manifest, blobs=blobs, summary=summary).state((0, 0))
    assert back.finished and back.observer == [1.5] and back.run.n_chunks == 3
    assert np.array_equal(back.run.stats.m4, _state(3).run.stats.m4)
    assert Checkpointer(path, manifest, blobs=blobs).state((0, 1)) is None
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.simlab"]  # no temporary left


def test_saves_are_paced_by_the_clock_and_by_their_own_cost(tmp_path, monkeypatch):
    clock = Clock()
    saver = Checkpointer(tmp_path / "c", {}, interval=2.0, clock=clock)
    assert not saver.due()
    clock.now += 2.0
    assert saver.due()
    saver.maybe_save()
    assert saver.saves == 1 and not saver.due()
    clock.now += 1.9
    saver.maybe_save()
    assert saver.saves == 1
    clock.now += 0.1
    saver.maybe_save()
    assert saver.saves == 2

    # a save that takes 1 s is followed by 1 / MAX_SHARE s without one, not by 2 s
    import simlab.output

    real_write = simlab.output.write_bytes

    def slow_write(path, data):
        clock.now += 1.0
        real_write(path, data)

    monkeypatch.setattr(simlab.output, "write_bytes", slow_write)
    clock.now += 10
    saver.maybe_save()
    assert saver.saves == 3
    done = clock.now
    clock.now = done + 1 / MAX_SHARE - 0.01
    assert not saver.due()
    clock.now = done + 1 / MAX_SHARE
    assert saver.due()


def test_a_failed_periodic_save_is_remembered_and_the_run_goes_on(tmp_path):
    clock = Clock()
    saver = Checkpointer(tmp_path / "missing" / "c", {}, interval=1.0, clock=clock)
    clock.now += 1
    saver.maybe_save()
    assert isinstance(saver.error, OSError) and saver.saves == 0
    with pytest.raises(OSError):
        saver.save()


def _write(path, payload: bytes, **manifest) -> None:
    import hashlib
    import json

    head = {"payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    head.update(manifest)
    path.write_bytes(MAGIC + json.dumps(head).encode() + b"\n" + payload)


def test_damaged_files_are_refused(tmp_path):
    path = tmp_path / "c"
    with pytest.raises(CheckpointError, match="missing"):
        read_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a simlab checkpoint"):
        read_checkpoint(path)
    path.write_bytes(MAGIC + b"{not json\n")
    with pytest.raises(CheckpointError, match="manifest"):
        read_checkpoint(path)
    _write(path, pickle.dumps([((0, 0), b"x")]), points=[])
    with pytest.raises(CheckpointError, match="different points"):
        read_checkpoint(path)
    good = pickle.dumps([((0, 0), pickle.dumps(_state(1)))])
    _write(path, good, points=[{"run": 0, "point": 0, "status": "x", "chunks": 1, "samples": 4}])
    read_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(path)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "hostile", [_Evil(), [np.ndarray, eval], {"a": pickle.loads}, PointState.__init__]
)
def test_only_simlab_classes_and_arrays_are_unpickled(tmp_path, hostile):
    blob = pickle.dumps(hostile)
    saver = Checkpointer(tmp_path / "c", {}, blobs={(0, 0): blob})
    with pytest.raises(CheckpointError, match="refused to load"):
        saver.state((0, 0))
