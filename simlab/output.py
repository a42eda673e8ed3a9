"""The run folder: config.yaml, results.json, checks.csv and figures, written atomically.

Everything is written into a hidden temporary folder beside the final one (its name unique to the
run) and renamed into place at the end, so a crash or Ctrl-C never leaves a folder that looks
complete: an interrupted run is kept under ``<name>_partial`` with a ``PARTIAL`` file that says
why. Every file is itself written to a temporary name and renamed, so a full disk never leaves a
truncated one. The destination is checked, and locked against a second run, before any work.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import platform
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import yaml

import simlab
from simlab.errors import SimlabInputError
from simlab.verdicts import format as fmt
from simlab.verdicts.checks import Check

SCHEMA_VERSION = 1
CSV_FIELDS = (
    "id",
    "experiment",
    "quantity",
    "params",
    "kind",
    "source",
    "expression",
    "holds",
    "estimate",
    "se",
    "predicted",
    "z",
    "p_value",
    "statistic",
    "dof",
    "tolerance",
    "threshold",
    "resolution",
    "resolution_kind",
    "verdict",
    "expected",
    "target",
    "samples_needed",
    "index_name",
    "index",
    "tolerance_used",
    "n",
    "note",
)
#: the words of each check (simlab.verdicts.format, as the console and the report show them)
CSV_TEXT_FIELDS = tuple(f"text_{col.replace('-', '_')}" for col in fmt.COLUMNS)


def run_name() -> str:
    """``YYYY-MM-DD_HH-MM-SS_<short id>``."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{uuid.uuid4().hex[:6]}"


#: longest folder name accepted for a run: file systems allow 255 bytes a name, and an
#: interrupted run is published as ``<name>_partial`` (or ``<name>_2_partial``), its lock
#: file is ``.<name>.lock``
MAX_NAME_BYTES = 240
PARTIAL_SUFFIX = "_partial"


def _hidden(name: str, suffix: str) -> str:
    """``.<name><suffix>``, the name cut (in bytes) so the whole fits in 255 bytes."""
    room = 255 - 1 - len(os.fsencode(suffix))
    return os.fsdecode(b"." + os.fsencode(name)[:room]) + suffix


def _out_error(path: Path, what: str, exc: OSError | None = None) -> SimlabInputError:
    why = f": {exc.strerror or exc}" if exc is not None else ""
    return SimlabInputError(f"--out: {str(path)!r} {what}{why}")


class RunFolder:
    """A run folder built in a temporary place and moved into place when complete.

    :meth:`open` checks the destination before any work: it takes a lock named after the final
    folder (a second run to the same ``--out`` is refused), creates a temporary folder with a
    name unique to this run beside it and test-writes into it. Any problem there (a read-only
    or full file system, a parent that is a file, a name too long, a symbolic link) is a
    :class:`SimlabInputError`, so it is reported before the simulation rather than after.

    Use as a context manager (``__enter__`` opens it if :meth:`open` was not called): leaving it
    normally publishes the folder; leaving it with an exception (Ctrl-C included) keeps what was
    written as ``<final>_partial`` with a PARTIAL note. Signals are held while it publishes.
    """

    def __init__(self, experiment: str, out: Path | None = None, root: Path = Path("outputs")):
        if out is not None:
            out = Path(out)
            if out.name in ("", ".", ".."):  # "." or "a/..": name it by its absolute path
                out = Path(os.path.abspath(out))
            self.final = out
        else:
            self.final = root / experiment.replace(" ", "-") / run_name()
        size = len(os.fsencode(self.final.name))
        if size > MAX_NAME_BYTES:
            raise SimlabInputError(
                f"--out: the folder name is {size} bytes long; at most {MAX_NAME_BYTES} "
                f"(file systems allow 255, and an interrupted run adds {PARTIAL_SUFFIX!r})"
            )
        if out is not None:
            try:
                if out.is_symlink():
                    raise _out_error(
                        out, "is a symbolic link; give the folder it points to, or a new name"
                    )
                self._refuse_taken(out)
            except OSError as exc:
                raise _out_error(out, "cannot be used", exc) from None
        self.tmp: Path | None = None
        #: a folder this run replaces (the partial run it resumed): removed once this one is
        #: published, and its name is free for this run's own ``_partial``
        self.supersedes: Path | None = None
        self.partial = False
        self.published = False
        self._lock: int | None = None
        self._lock_path = self.final.parent / _hidden(self.final.name, ".lock")

    @staticmethod
    def _refuse_taken(out: Path) -> None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise SimlabInputError(
                f"--out: {str(out)!r} already exists and is not an empty folder; "
                "give a new or empty folder"
            )

    # -- before any work -------------------------------------------------------------------

    def open(self) -> RunFolder:
        """Lock the destination, create the temporary folder and test-write into it."""
        if self.tmp is not None:
            return self
        parent = self.final.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _out_error(parent, "cannot be created", exc) from None
        if not parent.is_dir():
            raise _out_error(parent, "is not a folder")
        self._take_lock()
        try:
            self._refuse_taken(self.final)  # again, now that no other simlab run can write it
            token = f".{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
            tmp = parent / _hidden(self.final.name, token)
            try:
                tmp.mkdir()
            except OSError as exc:
                raise _out_error(parent, "is not writable", exc) from None
            self.tmp = tmp
            try:
                probe = tmp / ".probe"
                with probe.open("wb") as fh:
                    fh.write(b"simlab checks that it can write here\n" * 64)
                    fh.flush()
                    os.fsync(fh.fileno())
                probe.unlink()
            except OSError as exc:
                raise _out_error(tmp, "cannot be written", exc) from None
        except BaseException:
            self.discard()
            raise
        return self

    def _take_lock(self) -> None:
        """An exclusive lock on ``.<name>.lock`` beside the destination, held until published.

        ``flock`` is released by the kernel when the process dies, so a crashed run never leaves
        a stale lock; the file is removed when the run is published.
        """
        import fcntl

        for _ in range(5):
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise _out_error(self.final.parent, "is not writable", exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise SimlabInputError(
                    f"--out: another simlab run (pid {holder}) is writing {str(self.final)!r}; "
                    "wait for it or give another --out"
                ) from None
            try:  # the holder before us may have removed the file: lock the one in place
                same = os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._lock = fd
                return
            os.close(fd)
        raise SimlabInputError(f"--out: could not lock {str(self.final)!r}; try again")

    def _release_lock(self) -> None:
        if self._lock is None:
            return
        try:
            self._lock_path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._lock)
        self._lock = None

    def discard(self) -> None:
        """Give up before anything was written: remove the temporary folder, drop the lock."""
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        self._release_lock()

    # -- while the run writes ------------------------------------------------------------

    def __enter__(self) -> RunFolder:
        return self.open()

    @property
    def path(self) -> Path:
        """Where to write files while the run is in progress."""
        assert self.tmp is not None, "RunFolder.open() first"
        return self.tmp

    def mark_partial(self, note: str) -> None:
        """Record that the run did not finish; the folder will be published as partial.

        Best effort: on a full disk the note may not fit, and the folder's name still says it.
        """
        self.partial = True
        try:
            write_text(self.path / "PARTIAL", note.rstrip("\n") + "\n")
        except OSError:
            pass

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        from simlab import interrupts

        with interrupts.deferred():
            if exc_type is not None and not self.partial:
                if issubclass(exc_type, KeyboardInterrupt):
                    why = f"interrupted ({interrupts.describe(interrupts.exit_status(exc))})"
                else:
                    why = f"crashed: {exc!r}"
                self.mark_partial(f"this run did not finish: {why}")
            self.publish()

    def _partial_names(self) -> list[Path]:
        stem, parent = self.final.name, self.final.parent
        return [parent / f"{stem}{PARTIAL_SUFFIX}"] + [
            parent / f"{stem}_{k}{PARTIAL_SUFFIX}" for k in range(2, 100)
        ]

    def partial_destination(self) -> Path:
        """Where a partial run will be published: ``<name>_partial``, or ``<name>_2_partial``
        and so on when an earlier interrupted run to the same ``--out`` is still there."""
        for target in self._partial_names():
            if (
                not target.exists()
                or (target.is_dir() and not any(target.iterdir()))
                or self._replaces(target)
            ):
                return target
        return self._partial_names()[-1]

    def _replaces(self, target: Path) -> bool:
        if self.supersedes is None:
            return False
        try:
            return target.exists() and os.path.samefile(target, self.supersedes)
        except OSError:
            return False

    def publish(self) -> Path:
        """Move the folder into place (see :meth:`partial_destination`); returns where it went.

        A folder this run :attr:`supersedes` is moved aside first (its name may be the one
        this run takes), removed once this run is in place, and put back if it cannot be.
        """
        targets = [self.final]
        if self.partial:
            names = self._partial_names()
            first = names.index(self.partial_destination())
            targets = names[first:]
        aside = None
        if self.supersedes is not None and self.supersedes.is_dir():
            aside = self.supersedes.parent / _hidden(
                self.supersedes.name, f".{os.getpid()}.superseded"
            )
            try:
                os.rename(self.supersedes, aside)
            except OSError:
                aside = None  # left in place: this run takes another name
        try:
            for target in targets:
                try:
                    os.replace(self.path, target)  # onto a new name or an empty folder
                except OSError as exc:
                    if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                        continue
                    raise
                self.final = target
                self.tmp = None
                self.published = True
                if aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)
                    aside = None
                return target
            raise OSError(errno.EEXIST, f"every name up to {targets[-1]} is taken")
        finally:
            if aside is not None:
                try:
                    os.rename(aside, self.supersedes)  # type: ignore[arg-type]
                except OSError:
                    pass
            self._release_lock()

    @property
    def where(self) -> Path:
        """Where the run's files are now: the published folder, or the temporary one."""
        return self.tmp if self.tmp is not None else self.final


def _plain(value: Any) -> Any:
    """JSON/YAML-friendly values (NumPy scalars and arrays become Python ones)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def versions() -> dict[str, str]:
    """Versions of simlab and of the libraries whose numbers it reports."""
    from importlib.metadata import version

    # from the installed packages' metadata: importing matplotlib here would cost the main
    # process a third of a second of a run that draws its figures in other processes
    return {
        "simlab": simlab.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": version("scipy"),
        "matplotlib": version("matplotlib"),
        "click": version("click"),
    }


def _write_all(fh: IO[bytes], data: bytes) -> None:
    """Write ``data`` to ``fh`` (a seam: tests make it fail part-way, as a full disk does)."""
    fh.write(data)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` atomically: into a temporary file beside it, then renamed over it.

    A failure part-way (a full disk, Ctrl-C) leaves the previous file, or none, never a
    truncated one; the temporary file is removed.
    """
    tmp = path.parent / _hidden(path.name, f".{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            _write_all(fh, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def yaml_text(data: dict[str, Any]) -> str:
    """``data`` as the YAML simlab writes (config.yaml)."""
    return yaml.safe_dump(_plain(data), sort_keys=False)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text(path, json.dumps(_plain(data), indent=2) + "\n")


def write_checks_csv(path: Path, checks: list[Check]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS + CSV_TEXT_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for c in checks:
        row = _plain(c.as_dict())
        row["params"] = ";".join(f"{k}={v}" for k, v in c.params.items())
        for col, text in fmt.row(c).items():
            row[f"text_{col.replace('-', '_')}"] = text
        writer.writerow(row)
    write_text(path, buffer.getvalue())
