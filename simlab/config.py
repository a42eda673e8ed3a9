"""YAML run files and trailing ``key=value`` overrides, validated into run specifications.

A file holds one experiment (a mapping with ``experiment:``) or several (``experiments:`` a list of
such mappings). Keys are the experiment's parameter names and the run options; ``claims:`` maps a
quantity to an expression (or a list of expressions). A list value is a sweep. Overrides use
dotted keys: ``p=0.3``, ``claims.var_after='...'``, and in a file of several experiments
``NAME.key=value`` for the entry whose ``name`` (default: the experiment) is NAME; a bare key then
applies to every entry that has it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from simlab.errors import SimlabInputError
from simlab.experiments import REGISTRY, get_experiment
from simlab.runner import RunSpec, build_spec


def _read(path: Path) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SimlabInputError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SimlabInputError(f"{path}: malformed YAML{where}: {problem}") from None


def _entry_name(entry: dict[str, Any]) -> str:
    return str(entry.get("name") or entry.get("experiment", "")).replace(" ", "-")


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SimlabInputError(f"override {text!r}: expected KEY=VALUE, e.g. p=0.3 or samples=1e6")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.split("."), parsed


def _set(entry: dict[str, Any], keys: list[str], value: Any) -> None:
    if keys[0] == "claims" and len(keys) == 2:
        claims = entry.setdefault("claims", {})
        if not isinstance(claims, dict):
            raise SimlabInputError("override claims.*: the file's claims is not a mapping")
        claims[keys[1]] = value
    elif len(keys) == 1:
        entry[keys[0]] = value
    else:
        raise SimlabInputError(f"override {'.'.join(keys)}: unknown key")


def apply_overrides(entries: list[dict[str, Any]], overrides: list[str], multi: bool) -> None:
    """Apply ``key=value`` overrides to the entries in place."""
    for text in overrides:
        keys, value = _parse_override(text)
        if multi and keys[0] not in ("claims",) and len(keys) > 1:
            targets = [e for e in entries if _entry_name(e) == keys[0]]
            if not targets:
                names = ", ".join(_entry_name(e) for e in entries)
                raise SimlabInputError(
                    f"override {text!r}: no experiment named {keys[0]!r}; names: {names}"
                )
            for entry in targets:
                _set(entry, keys[1:], value)
        else:
            for entry in entries:
                _set(entry, keys, value)


def _claims_of(entry: dict[str, Any], where: Callable[[str], str]) -> list[str]:
    claims = entry.get("claims") or {}
    if not isinstance(claims, dict):
        raise SimlabInputError(f"{where('claims')}: expected a mapping QUANTITY: EXPRESSION")
    texts = []
    for quantity, expressions in claims.items():
        items = expressions if isinstance(expressions, list) else [expressions]
        for expression in items:
            if not isinstance(expression, str | int | float) or isinstance(expression, bool):
                raise SimlabInputError(
                    f"{where('claims')}: {quantity}: expected an expression string, "
                    f"got {expression!r}"
                )
            texts.append(f"{quantity}={expression}")
    return texts


def load_run_file(path: Path, overrides: list[str], **run_options: Any) -> list[RunSpec]:
    """Read, override and validate a YAML run file into run specifications."""
    data = _read(path)
    if not isinstance(data, dict):
        raise SimlabInputError(
            f"{path}: expected a mapping with 'experiment:' (or 'experiments:' a list)"
        )
    multi = "experiments" in data
    if multi:
        entries = data["experiments"]
        shared = {k: v for k, v in data.items() if k != "experiments"}
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SimlabInputError(f"{path}: experiments: expected a list of mappings")
        entries = [{**shared, **e} for e in entries]
    else:
        entries = [dict(data)]
    apply_overrides(entries, overrides, multi)
    specs = []
    for i, entry in enumerate(entries):
        prefix = f"{path}: experiments[{i}]." if multi else f"{path}: "

        def where(key: str, prefix: str = prefix) -> str:
            return f"{prefix}{key}"

        name = entry.pop("experiment", None)
        entry.pop("name", None)
        if name is None:
            raise SimlabInputError(
                f"{where('experiment')}: missing; allowed: {', '.join(REGISTRY)}"
            )
        experiment = get_experiment(str(name), where("experiment"))
        claims = _claims_of(entry, where)
        entry.pop("claims", None)
        for key, value in run_options.items():
            if value is not None:
                entry[key] = value
        specs.append(build_spec(experiment, entry, claims, where, claim_source=where("claims")))
    return specs
