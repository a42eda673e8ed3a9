"""The resume state of a run: every point's folded statistics, saved now and then, atomically.

The engine folds chunks in chunk order, so a point's progress is its folded statistics and the
number of chunks folded (a :class:`~simlab.engine.executor.ChunkRun`): from that state the rest of
the point gives the same bytes as a run never stopped. A :class:`Checkpointer` keeps the latest
state of every point of a run and writes them all to one file:

    simlab-checkpoint 1\\n          the format
    {"payload_sha256": ...}\\n      a one-line JSON manifest (what was run, which points are done)
    <pickle>                        the states, by (run, point)

written under a temporary name and renamed over the previous one, so a SIGKILL at any moment
leaves the previous checkpoint or the new one, never a mix. Saving is paced by a monotonic clock
(the clock decides *when* to save, never a number): at most every :data:`DEFAULT_INTERVAL`
seconds, and never more than :data:`MAX_SHARE` of the run's time, however large the state.

Reading one back unpickles only simlab's own classes, NumPy arrays and plain Python values: a
checkpoint file given by someone else cannot run code (see :class:`_StatsUnpickler`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simlab.engine.executor import ChunkRun

FILE_NAME = "checkpoint.simlab"
MAGIC = b"simlab-checkpoint 1\n"
#: seconds between two saves at most (a SIGKILL loses at most this much simulation)
DEFAULT_INTERVAL = 2.0
#: the largest share of the run's time spent saving: a state that takes 0.1 s to save is saved
#: at most every 2 s, one that takes 1 s at most every 20 s
MAX_SHARE = 0.05
#: the environment variable that sets the interval (seconds; 0 saves after every chunk)
INTERVAL_VARIABLE = "SIMLAB_CHECKPOINT_SECONDS"
#: largest checkpoint read back (a state is the folded statistics of each point: megabytes)
MAX_BYTES = 1 << 31

Key = tuple[int, int]  # (experiment of the run, sweep point)


@dataclass
class PointState:
    """Where one sweep point is: its folded chunks, whether it is finished, what its
    ``on_fold`` observer (a convergence trace) had recorded by then."""

    run: ChunkRun
    finished: bool
    observer: Any = None


class CheckpointError(Exception):
    """A checkpoint file that cannot be read: missing, damaged or not simlab's."""


class _StatsUnpickler(pickle.Unpickler):
    """Unpickles simlab's classes, NumPy arrays and dtypes, and plain Python values only.

    Pickle can call any function it names; this one refuses every name but classes defined in
    simlab and the few NumPy functions that rebuild arrays, so a hostile file is an error, not
    code run.
    """

    NUMPY = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
        ("builtins", "complex"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.NUMPY or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        if module == "simlab" or module.startswith("simlab."):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


def _loads(data: bytes) -> Any:
    return _StatsUnpickler(io.BytesIO(data)).load()


def interval_from_environment() -> float:
    """The save interval: :data:`INTERVAL_VARIABLE` if set (a number of seconds >= 0)."""
    text = os.environ.get(INTERVAL_VARIABLE)
    if text is None or not text.strip():
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        from simlab.errors import SimlabInputError

        raise SimlabInputError(
            f"{INTERVAL_VARIABLE}: {text[:40]!r} is not allowed; expected seconds, a number >= 0"
        )
    return value


class Checkpointer:
    """The latest state of every point of one run, saved to ``path`` now and then.

    ``manifest`` describes the run (versions, configuration); states already reached (a run
    being resumed) come in ``blobs`` with their ``summary`` and are saved with the new ones.
    """

    def __init__(
        self,
        path: Path,
        manifest: Mapping[str, Any],
        *,
        blobs: Mapping[Key, bytes] | None = None,
        summary: Mapping[Key, tuple[bool, int, int]] | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.manifest = dict(manifest)
        self.interval = interval
        self.clock = clock
        self._blobs: dict[Key, bytes] = dict(blobs or {})
        self._summary: dict[Key, tuple[bool, int, int]] = dict(summary or {})
        self._next = clock() + interval
        self.saves = 0
        self.save_seconds = 0.0
        #: the last error a periodic save met (a full disk, say); the run goes on without it
        self.error: OSError | None = None

    # -- while the run simulates -----------------------------------------------------------

    def due(self) -> bool:
        """Whether the next save is due (cheap: one clock reading)."""
        return self.clock() >= self._next

    def record(self, key: Key, state: PointState) -> None:
        """Keep ``state`` as point ``key``'s latest (pickled now: later folds cannot touch it)."""
        self._blobs[key] = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        self._summary[key] = (state.finished, state.run.n_chunks, state.run.n_samples)

    def state(self, key: Key) -> PointState | None:
        """Point ``key``'s recorded state (None: not started)."""
        blob = self._blobs.get(key)
        if blob is None:
            return None
        try:
            state = _loads(blob)
        except Exception as exc:
            raise CheckpointError(
                f"the state of point {key[1] + 1} cannot be read: {exc}"
            ) from None
        if not isinstance(state, PointState) or not isinstance(state.run, ChunkRun):
            raise CheckpointError(f"the state of point {key[1] + 1} is not a point's state")
        return state

    def save(self) -> None:
        """Write every recorded state to :attr:`path` (atomically); raises OSError."""
        from simlab.output import write_bytes

        start = self.clock()
        keys = sorted(self._blobs)
        payload = pickle.dumps(
            [(k, self._blobs[k]) for k in keys], protocol=pickle.HIGHEST_PROTOCOL
        )
        manifest = {
            **self.manifest,
            "points": [
                {
                    "run": k[0],
                    "point": k[1],
                    "status": "finished" if self._summary[k][0] else "in progress",
                    "chunks": self._summary[k][1],
                    "samples": self._summary[k][2],
                }
                for k in keys
            ],
            "payload_bytes": len(payload),
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
        }
        header = json.dumps(manifest, separators=(",", ":"), allow_nan=False).encode()
        write_bytes(self.path, MAGIC + header + b"\n" + payload)
        now = self.clock()
        self.saves += 1
        self.save_seconds += now - start
        self._next = now + max(self.interval, (now - start) / MAX_SHARE)

    def maybe_save(self) -> None:
        """Save if due; a failure (a full disk) is remembered and the run goes on."""
        if not self.due():
            return
        try:
            self.save()
        except OSError as exc:
            self.error = exc
            self._next = self.clock() + self.interval

    def remove(self) -> None:
        """Delete the file (a complete run needs no resume state)."""
        self.path.unlink(missing_ok=True)

    def slot(self, key: Key) -> PointSlot:
        return PointSlot(self, key)


@dataclass
class PointSlot:
    """One point's view of the run's :class:`Checkpointer` (what a PointContext holds)."""

    checkpointer: Checkpointer
    key: Key

    def due(self) -> bool:
        return self.checkpointer.due()

    def record(self, state: PointState) -> None:
        self.checkpointer.record(self.key, state)

    def maybe_save(self) -> None:
        self.checkpointer.maybe_save()


def read_checkpoint(
    path: Path,
) -> tuple[dict[str, Any], dict[Key, bytes], dict[Key, tuple[bool, int, int]]]:
    """The manifest, the states (pickled, by key) and their summary of a checkpoint file.

    Raises CheckpointError when the file is missing, damaged or not a simlab checkpoint.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise CheckpointError("missing") from None
    except OSError as exc:
        raise CheckpointError(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise CheckpointError(f"larger than {MAX_BYTES:,} bytes")
    if not data.startswith(MAGIC):
        raise CheckpointError("not a simlab checkpoint (its first line is not the format's)")
    header, newline, payload = data[len(MAGIC) :].partition(b"\n")
    try:
        manifest = json.loads(header) if newline else None
    except (ValueError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict):
        raise CheckpointError("damaged: its manifest line is not a JSON object")
    if (
        manifest.get("payload_bytes") != len(payload)
        or manifest.get("payload_sha256") != hashlib.sha256(payload).hexdigest()
    ):
        raise CheckpointError("damaged: its states do not match the manifest's checksum")
    try:
        items = _loads(payload)
        blobs = {(int(r), int(p)): bytes(b) for (r, p), b in items}
        summary = {
            (int(e["run"]), int(e["point"])): (
                e["status"] == "finished",
                int(e["chunks"]),
                int(e["samples"]),
            )
            for e in manifest.get("points", [])
        }
    except Exception as exc:
        raise CheckpointError(f"damaged: {exc}") from None
    if set(summary) != set(blobs):
        raise CheckpointError("damaged: its manifest and its states list different points")
    return manifest, blobs, summary
