"""``simlab run --resume DIR``: go on with an interrupted run from its saved states.

A run saves every point's folded statistics and chunk count to ``checkpoint.simlab`` in its
folder every few seconds (:mod:`simlab.engine.checkpoint`), and once more when it is interrupted.
Since chunks are folded in chunk order, a point continued from that state gives the same bytes
as a run never stopped, so the resumed run's checks are those of an uninterrupted run.

``DIR`` is the ``<name>_partial`` folder of a run stopped by Ctrl-C, SIGTERM or a full disk, or
the hidden ``.<name>.<pid>-<token>.tmp`` folder a run killed outright (SIGKILL, a power cut)
leaves beside where ``<name>`` would have been. The run goes to ``<name>`` (or ``--out``), and
once it is published there ``DIR`` is removed: everything in it is in the new folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simlab.config import load_run_data, load_yaml
from simlab.engine.checkpoint import (
    FILE_NAME,
    Checkpointer,
    CheckpointError,
    Key,
    read_checkpoint,
)
from simlab.engine.executor import ChunkPlan
from simlab.errors import SimlabInputError
from simlab.output import PARTIAL_SUFFIX, versions, yaml_text
from simlab.runspec import RunSpec

#: the versions that must be the same to resume: they make the numbers
SAME_VERSIONS = ("simlab", "python", "numpy", "scipy")
#: ``<name>_partial``, ``<name>_2_partial`` ...
_PARTIAL = re.compile(r"^(?P<name>.+?)(?:_\d+)?" + re.escape(PARTIAL_SUFFIX) + "$")
#: the temporary folder of :class:`simlab.output.RunFolder`: ``.<name>.<pid>-<token>.tmp``
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.\d+-[0-9a-f]{8}\.tmp$")


@dataclass
class Resume:
    """An interrupted run, read and checked: what ``execute`` needs to go on with it."""

    folder: Path
    #: where the resumed run goes unless ``--out`` says otherwise
    destination: Path
    specs: list[RunSpec]
    label: str
    title: str | None
    manifest: dict[str, Any]
    blobs: dict[Key, bytes]
    summary: dict[Key, tuple[bool, int, int]]

    @property
    def samples_restored(self) -> list[int]:
        """Samples already folded, per experiment of the run."""
        done = [0] * len(self.specs)
        for (run, _), (_, _, samples) in self.summary.items():
            done[run] += samples
        return done


def destination_of(folder: Path) -> Path:
    """Where the resumed run of ``folder`` goes: the name its run would have had."""
    name = folder.name
    for pattern in (_PARTIAL, _TEMPORARY):
        match = pattern.match(name)
        if match:
            return folder.parent / match["name"]
    return folder.parent / f"{name}_resumed"


def load_resume(folder: Path, workers: str | None = None) -> Resume:
    """Read and check the run in ``folder``; any problem is one SimlabInputError line."""
    shown = f"--resume: {str(folder)!r}"
    if not folder.is_dir():
        raise SimlabInputError(f"{shown} is not a folder")
    path = folder / FILE_NAME
    again = (
        f"; run it again from the start with: simlab run {folder / 'config.yaml'}"
        if (folder / "config.yaml").is_file()
        else ""
    )
    try:
        manifest, blobs, summary = read_checkpoint(path)
    except CheckpointError as exc:
        if str(exc) == "missing":
            if (folder / "results.json").is_file() and not (folder / "PARTIAL").exists():
                raise SimlabInputError(
                    f"{shown} is a complete run; there is nothing to resume"
                ) from None
            raise SimlabInputError(
                f"{shown} is not a partial run that can be resumed (it has no {FILE_NAME})" + again
            ) from None
        raise SimlabInputError(f"{shown}: {FILE_NAME} is {exc}{again}") from None
    then = manifest.get("versions")
    now = versions()
    if not isinstance(then, dict):
        raise SimlabInputError(f"{shown}: {FILE_NAME} is damaged: it records no versions{again}")
    differ = [k for k in SAME_VERSIONS if then.get(k) != now[k]]
    if differ:
        was = ", ".join(f"{k} {then.get(k)}" for k in differ)
        now_is = ", ".join(f"{k} {now[k]}" for k in differ)
        raise SimlabInputError(
            f"{shown} was run with {was}; this is {now_is}: resumed numbers could differ from "
            f"an uninterrupted run's, so it is not resumed{again}"
        )
    text = manifest.get("config")
    if not isinstance(text, str):
        raise SimlabInputError(f"{shown}: {FILE_NAME} is damaged: it records no config{again}")
    config = folder / "config.yaml"
    if config.is_file():
        try:
            same = load_yaml(config.read_text()) == load_yaml(text)
        except (OSError, UnicodeDecodeError, SimlabInputError):
            same = False
        if not same:
            raise SimlabInputError(
                f"{shown}: config.yaml is not the configuration the run was started with "
                f"(was it edited?); it is not resumed{again}"
            )
    try:
        data = load_yaml(text)
    except SimlabInputError as exc:
        raise SimlabInputError(f"{shown}: {FILE_NAME} is damaged: {exc}{again}") from None
    specs = load_run_data(data, f"{folder / FILE_NAME}", [], workers=workers)
    # what the run would record now must be what it recorded then, or the numbers would differ
    if yaml_text(config_document(specs)) != text:
        raise SimlabInputError(
            f"{shown}: its configuration no longer reads the same in this simlab; "
            f"it is not resumed{again}"
        )
    points = [len(spec.points()) for spec in specs]
    if manifest.get("points_per_run") != points or any(
        run >= len(points) or point >= points[run] for run, point in blobs
    ):
        raise SimlabInputError(
            f"{shown}: {FILE_NAME} does not match its configuration's sweep{again}"
        )
    _check_states(shown, specs, manifest, blobs, summary, again)
    label = manifest.get("label")
    title = manifest.get("title")
    return Resume(
        folder=folder,
        destination=destination_of(folder),
        specs=specs,
        label=label if isinstance(label, str) else specs[0].experiment.name,
        title=title if isinstance(title, str) else None,
        manifest=manifest,
        blobs=blobs,
        summary=summary,
    )


def _check_states(
    shown: str,
    specs: list[RunSpec],
    manifest: dict[str, Any],
    blobs: dict[Key, bytes],
    summary: dict[Key, tuple[bool, int, int]],
    again: str,
) -> None:
    """Every saved state reads back (as simlab's classes only) and fits its point's chunks."""
    reader = Checkpointer(Path(FILE_NAME), manifest, blobs=blobs, summary=summary)
    for key in sorted(blobs):
        try:
            state = reader.state(key)
        except CheckpointError as exc:
            raise SimlabInputError(f"{shown}: {FILE_NAME} is damaged: {exc}{again}") from None
        spec = specs[key[0]]
        plan = ChunkPlan(spec.samples, spec.chunk_size)
        run = state.run if state is not None else None
        if (
            run is None
            or not 0 < run.n_chunks <= plan.n_chunks
            or run.n_samples != sum(plan.size(i) for i in range(run.n_chunks))
            or summary[key] != (state.finished, run.n_chunks, run.n_samples)  # type: ignore[union-attr]
        ):
            raise SimlabInputError(
                f"{shown}: {FILE_NAME} is damaged: the state of point {key[1] + 1} does not "
                f"fit its chunks{again}"
            )


def config_document(specs: list[RunSpec]) -> dict[str, Any]:
    """The replayable configuration of every spec of a run (the ones not reached included)."""
    if len(specs) == 1:
        return specs[0].as_config()
    return {"experiments": [spec.as_config() for spec in specs]}
