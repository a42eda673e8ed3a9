"""The course: every experiment at a budget, as run specifications or as one YAML document.

``simlab check --budget B`` runs :func:`budget_specs`; ``configs/course.yaml`` is
:func:`course_config` for the standard budget, so ``simlab run configs/course.yaml`` reproduces
``simlab check --budget standard`` (a test keeps the two equal).
"""

from __future__ import annotations

from typing import Any

from simlab.experiments import REGISTRY
from simlab.experiments.base import Experiment
from simlab.runner import RunSpec, build_spec

BUDGETS = ("quick", "standard", "thorough")
COURSE_SEED = 20261127


def budget_raw(exp: Experiment, budget: str) -> dict[str, Any]:
    """The experiment's parameter values and samples at ``budget`` (claims removed)."""
    raw = dict(exp.budgets.get(budget, {}))
    raw.pop("claims", None)
    return raw


def budget_specs(
    budget: str, seed: int | None = None, workers: Any = None, claims: bool = True
) -> list[RunSpec]:
    """One spec per registered experiment at ``budget`` (every built-in claim)."""
    specs = []
    for exp in REGISTRY.values():
        raw = budget_raw(exp, budget)
        texts = list(exp.budgets.get(budget, {}).get("claims", [])) if claims else []
        if seed is not None:
            raw["seed"] = seed
        if workers is not None:
            raw["workers"] = workers

        def where(key: str, name: str = exp.name) -> str:
            return f"budget {budget}: {name}.{key}"

        specs.append(build_spec(exp, raw, texts, where))
    return specs


def course_config(budget: str = "standard", seed: int = COURSE_SEED) -> dict[str, Any]:
    """The whole course as one YAML-ready run file."""
    entries = []
    for exp in REGISTRY.values():
        entry: dict[str, Any] = {"experiment": exp.name, "name": exp.name.replace(" ", "-")}
        entry.update(budget_raw(exp, budget))
        entries.append(entry)
    return {"seed": seed, "experiments": entries}
