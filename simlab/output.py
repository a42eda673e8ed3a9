"""The run folder: config.yaml, results.json, checks.csv and figures, written atomically.

Everything is written into a hidden temporary folder beside the final one and renamed into place at
the end, so a crash or Ctrl-C never leaves a folder that looks complete: an interrupted run is kept
under ``<name>_partial`` with a ``PARTIAL`` file that says why.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import uuid
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import yaml

import simlab
from simlab.errors import SimlabInputError
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
    "n",
    "note",
)


def run_name() -> str:
    """``YYYY-MM-DD_HH-MM-SS_<short id>``."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{uuid.uuid4().hex[:6]}"


class RunFolder:
    """A run folder built in a temporary place and moved into place when complete.

    Use as a context manager: leaving it normally publishes the folder; leaving it with an
    exception (Ctrl-C included) keeps what was written as ``<final>_partial`` with a PARTIAL note.
    """

    def __init__(self, experiment: str, out: Path | None = None, root: Path = Path("outputs")):
        if out is not None:
            out = Path(out)
            if out.exists() and (not out.is_dir() or any(out.iterdir())):
                raise SimlabInputError(
                    f"--out: {str(out)!r} already exists and is not an empty folder; "
                    "give a new or empty folder"
                )
            self.final = out
        else:
            self.final = root / experiment.replace(" ", "-") / run_name()
        self.tmp = self.final.parent / f".{self.final.name}.tmp"
        self.partial = False

    def __enter__(self) -> RunFolder:
        self.tmp.mkdir(parents=True, exist_ok=False)
        return self

    @property
    def path(self) -> Path:
        """Where to write files while the run is in progress."""
        return self.tmp

    def mark_partial(self, reason: str) -> None:
        """Record that the run did not finish; the folder will be published as partial."""
        self.partial = True
        (self.tmp / "PARTIAL").write_text(reason + "\n")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and not self.partial:
            why = "interrupted (Ctrl-C)" if exc_type is KeyboardInterrupt else f"crashed: {exc!r}"
            self.mark_partial(f"this run did not finish: {why}")
        target = self.final
        if self.partial:
            target = self.final.parent / f"{self.final.name}_partial"
        if target.exists():  # only an empty --out folder can be here
            target.rmdir()
        os.replace(self.tmp, target)
        self.final = target


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

    import matplotlib
    import scipy

    return {
        "simlab": simlab.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "matplotlib": matplotlib.__version__,
        "click": version("click"),
    }


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(_plain(data), sort_keys=False))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(_plain(data), indent=2) + "\n")


def write_checks_csv(path: Path, checks: list[Check]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for c in checks:
            row = _plain(c.as_dict())
            row["params"] = ";".join(f"{k}={v}" for k, v in c.params.items())
            writer.writerow(row)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
