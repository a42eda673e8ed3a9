"""YAML run files and trailing ``key=value`` overrides, validated into run specifications.

A file holds one experiment (a mapping with ``experiment:``) or several (``experiments:`` a list of
such mappings). Keys are the experiment's parameter names and the run options; ``claims:`` maps a
quantity to an expression (or a list of expressions); an expression may be written
``{expr: EXPRESSION, expect: fail}`` for a claim expected to fail (a negative control). A list
value is a sweep. Overrides use dotted keys: ``p=0.3``, ``claims.var_after='...'``, and in a
file of several experiments ``NAME.key=value`` for the entry whose ``name`` (default: the
experiment) is NAME; a bare key then applies to every entry that has it.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from simlab.errors import SimlabInputError
from simlab.experiments import REGISTRY, get_experiment
from simlab.params import shorten, show_text
from simlab.runspec import RUN_OPTIONS, ClaimText, RunSpec, build_spec
from simlab.verdicts.claims import CLAIM_EXPECTATIONS

#: Largest run file read, in bytes; a larger one (or an endless one such as /dev/zero) is refused.
MAX_FILE_BYTES = 1 << 20

#: Most values (scalars, lists and mappings, each alias counted as the whole value it stands for)
#: a document may expand to. A "billion laughs" file of a few hundred bytes expands to 10**9.
MAX_YAML_VALUES = 100_000


class _Refused(Exception):
    """A document the loader will not build (reason, line and column as one message)."""


class SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and aliases that expand beyond a bound.

    Aliases are allowed (``&a``/``*a`` to share a list) as long as the whole document, every
    alias counted as what it stands for, has at most :data:`MAX_YAML_VALUES` values; a recursive
    alias is refused.
    """

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable: the base class says so
                    continue
                if duplicate:
                    mark = key_node.start_mark
                    raise _Refused(
                        f"duplicate key {shorten(key)} at line {mark.line + 1}, "
                        f"column {mark.column + 1} (each key may appear once)"
                    )
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: Any) -> None:
    """Refuse a node graph that expands to more than MAX_YAML_VALUES values, or a cycle."""
    if root is None:
        return
    sizes: dict[int, int] = {}
    path: set[int] = set()  # the nodes being expanded: the current chain of ancestors
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            path.discard(key)
            size = 1 + sum(sizes[id(c)] for c in children)
            if size > MAX_YAML_VALUES:
                mark = node.start_mark
                raise _Refused(
                    f"the value at line {mark.line + 1} expands to more than "
                    f"{MAX_YAML_VALUES:,} values (through aliases, *name); refused"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in path:
                mark = child.start_mark
                raise _Refused(
                    f"a recursive alias (a value that contains itself) at line {mark.line + 1}"
                )
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _yaml_error(exc: Exception) -> str:
    """One line for an error raised while loading YAML (never the whole input)."""
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else shorten(char)
        return f"a character YAML does not allow ({shown}) at character {exc.position + 1}"
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        return f"malformed YAML{where}: {show_text(problem)}"
    # PyYAML's constructors raise plain errors on some values (p: 2024-13-45, !!int abc)
    return f"malformed YAML: {type(exc).__name__}: {show_text(str(exc))}"


def load_yaml(text: str) -> Any:
    """Parse YAML text with :class:`SafeLoader`.

    Raises
    ------
    SimlabInputError
        With a one-line reason (no file name: the caller adds it).
    """
    try:
        return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, _Refused, RecursionError, ValueError, TypeError, AttributeError) as exc:
        raise SimlabInputError(_yaml_error(exc)) from None


def _decode(data: bytes, shown: str) -> str:
    head = data[:64]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(head) >= 4 and (not any(head[1::2]) or not any(head[0::2])) and any(head)
    ):
        raise SimlabInputError(f"{shown}: the file looks like UTF-16 text; save it as UTF-8")
    if b"\0" in data:
        raise SimlabInputError(f"{shown}: a binary file (it holds NUL bytes), not YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SimlabInputError(
            f"{shown}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None


def _read(path: Path) -> Any:
    shown = show_text(str(path), 300)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SimlabInputError(f"{shown}: cannot read the file ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise SimlabInputError(
            f"{shown}: the file is larger than {MAX_FILE_BYTES / 2**20:g} MiB; a run file is a "
            "few lines of YAML"
        )
    text = _decode(data, shown)
    try:
        return load_yaml(text)
    except SimlabInputError as exc:
        raise SimlabInputError(f"{shown}: {exc}") from None


def _entry_name(entry: dict[str, Any]) -> str:
    return str(entry.get("name") or entry.get("experiment", "")).replace(" ", "-")


#: Longest override value read, in characters.
MAX_OVERRIDE_CHARS = 100_000


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SimlabInputError(
            f"override {shorten(text)}: expected KEY=VALUE, e.g. p=0.3 or samples=1e6"
        )
    if len(value) > MAX_OVERRIDE_CHARS:
        raise SimlabInputError(
            f"override {show_text(key)}: the value is {len(value):,} characters long; "
            f"the limit is {MAX_OVERRIDE_CHARS:,}"
        )
    try:
        parsed = load_yaml(value) if value.strip() else ""
    except SimlabInputError:  # not YAML: the text itself (then validated as the key's value)
        parsed = value
    return key.split("."), parsed


def _set(entry: dict[str, Any], keys: list[str], value: Any) -> None:
    if keys[0] == "claims" and len(keys) == 2:
        claims = entry.setdefault("claims", {})
        if not isinstance(claims, dict):
            raise SimlabInputError("override claims.*: the file's claims is not a mapping")
        claims[keys[1]] = value
    elif len(keys) == 1:  # sigma-x=2 sets sigma_x, as the option --sigma-x does
        entry[keys[0] if keys[0] == "name" else keys[0].replace("-", "_")] = value
    else:
        raise SimlabInputError(f"override {show_text('.'.join(keys))}: unknown key")


def apply_overrides(entries: list[dict[str, Any]], overrides: list[str], multi: bool) -> None:
    """Apply ``key=value`` overrides to the entries in place.

    The same key given twice is an error (which one was meant?), not a silent last-wins.
    """
    given: set[str] = set()
    for text in overrides:
        keys, value = _parse_override(text)
        dotted = ".".join(keys)
        if dotted in given:
            raise SimlabInputError(
                f"override {show_text(dotted)}: given twice; give each key once "
                "(a comma list sweeps: p=0.1,0.3)"
            )
        given.add(dotted)
        if multi and keys[0] not in ("claims",) and len(keys) > 1:
            targets = [e for e in entries if _entry_name(e) == keys[0]]
            if not targets:
                names = ", ".join(show_text(_entry_name(e)) for e in entries)
                raise SimlabInputError(
                    f"override {shorten(text)}: no experiment named {shorten(keys[0])}; "
                    f"names: {names}"
                )
            for entry in targets:
                _set(entry, keys[1:], value)
        else:
            for entry in entries:
                _set(entry, keys, value)


#: the keys of a claim written as a mapping: ``{expr: EXPRESSION, expect: fail}``
CLAIM_KEYS = ("expr", "expect")


def _claims_of(entry: dict[str, Any], where: Callable[[str], str]) -> list[ClaimText]:
    """The entry's claims: ``QUANTITY: EXPRESSION``, a list of them, and any of them written as
    ``{expr: EXPRESSION, expect: fail}`` (a claim expected to fail: a negative control)."""
    claims = entry.get("claims") or {}
    if not isinstance(claims, dict):
        raise SimlabInputError(f"{where('claims')}: expected a mapping QUANTITY: EXPRESSION")
    texts: list[ClaimText] = []
    for quantity, expressions in claims.items():
        items = expressions if isinstance(expressions, list) else [expressions]
        for item in items:
            expect = "pass"
            expression = item
            if isinstance(item, dict):
                unknown = [k for k in item if k not in CLAIM_KEYS]
                if unknown or "expr" not in item:
                    what = f"unknown key {shorten(unknown[0])}" if unknown else "no 'expr'"
                    raise SimlabInputError(
                        f"{where('claims')}: {shorten(quantity)}: {what}; a claim written as a "
                        "mapping has 'expr' (the expression) and optionally 'expect' "
                        f"({' or '.join(CLAIM_EXPECTATIONS)})"
                    )
                expression = item["expr"]
                expect = item.get("expect", "pass")
                if expect not in CLAIM_EXPECTATIONS:
                    raise SimlabInputError(
                        f"{where('claims')}: {shorten(quantity)}: expect {shorten(expect)} is "
                        f"not allowed; allowed: {', '.join(CLAIM_EXPECTATIONS)}"
                    )
            if not isinstance(expression, str | int | float) or isinstance(expression, bool):
                raise SimlabInputError(
                    f"{where('claims')}: {shorten(quantity)}: expected an expression string "
                    f"(or {{expr: EXPRESSION, expect: fail}}), got {shorten(expression)}"
                )
            text = f"{quantity}={expression}"
            texts.append(text if expect == "pass" else (text, expect))
    return texts


def _where(prefix: str) -> Callable[[Any], str]:
    """How messages name a key of one entry: ``file.yaml: NAME.key`` (or ``file.yaml: key``)."""

    def where(key: Any) -> str:
        return f"{prefix}{show_text(str(key))}"

    return where


def _python_keys(entry: dict[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
    """Keys as the parameters name them: ``sigma-x`` (the option's spelling) reads ``sigma_x``;
    the same key in both spellings is an error, not a silent last-wins."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        name = key.replace("-", "_") if isinstance(key, str) and key != "name" else key
        if name in out:
            raise SimlabInputError(
                f"{where(name)}: given twice ({show_text(name)} and {show_text(key)}); give it once"
            )
        out[name] = value
    return out


def _check_keys(entry: dict[str, Any], experiment: Any, where: Callable[[str], str]) -> None:
    """Unknown keys and null values, named in one short line before any other work."""
    params = {p.name: p for p in (*experiment.params, *RUN_OPTIONS)}
    for key, value in entry.items():
        param = params.get(key) if isinstance(key, str) else None
        if param is None:
            raise SimlabInputError(
                f"{where(key)}: unknown key; allowed: {', '.join(sorted(params))}"
            )
        if value is None and param.default is not None:
            default = param.default_text()
            raise SimlabInputError(
                f"{where(key)}: null (an empty value) is not allowed; give "
                f"{param.allowed()}, or leave the key out"
                + (f" for the default ({default})" if default else "")
            )


def load_run_file(path: Path, overrides: list[str], **run_options: Any) -> list[RunSpec]:
    """Read, override and validate a YAML run file into run specifications."""
    return load_run_data(_read(path), str(path), overrides, **run_options)


def load_run_data(
    data: Any, source: str, overrides: list[str], **run_options: Any
) -> list[RunSpec]:
    """Override and validate a run file's content (read from ``source``) into specifications."""
    shown = show_text(source, 300)
    if data is None:
        raise SimlabInputError(f"{shown}: the file is empty; expected 'experiment: NAME' and keys")
    if not isinstance(data, dict):
        raise SimlabInputError(
            f"{shown}: expected a mapping with 'experiment:' (or 'experiments:' a list)"
        )
    multi = "experiments" in data
    if multi:
        entries = data["experiments"]
        shared = {k: v for k, v in data.items() if k != "experiments"}
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SimlabInputError(f"{shown}: experiments: expected a list of mappings")
        if not entries:
            raise SimlabInputError(
                f"{shown}: experiments: the list is empty; give at least one experiment"
            )
        entries = [{**shared, **e} for e in entries]
    else:
        entries = [dict(data)]
    names = [_entry_name(e) for e in entries]
    wheres = []
    for i in range(len(entries)):
        # an entry is named as overrides name it (NAME.key=value), with its place when two
        # entries share a name
        label = show_text(names[i]) or f"experiments[{i}]"
        if names.count(names[i]) > 1:
            label += f" (entry {i + 1})"
        wheres.append(_where(f"{shown}: {label}." if multi else f"{shown}: "))
    entries = [_python_keys(e, where) for e, where in zip(entries, wheres, strict=True)]
    apply_overrides(entries, overrides, multi)
    specs = []
    for entry, where in zip(entries, wheres, strict=True):
        name = entry.pop("experiment", None)
        label = entry.pop("name", None)
        if name is None:
            raise SimlabInputError(
                f"{where('experiment')}: missing; allowed: {', '.join(REGISTRY)}"
            )
        if not isinstance(name, str) or name not in REGISTRY:
            raise SimlabInputError(
                f"{where('experiment')}: unknown experiment {shorten(name)}; "
                f"allowed: {', '.join(REGISTRY)}"
            )
        experiment = get_experiment(name, where("experiment"))
        claims = _claims_of(entry, where)
        entry.pop("claims", None)
        for key, value in run_options.items():
            if value is not None:
                entry[key] = value
        _check_keys(entry, experiment, where)
        spec = build_spec(experiment, entry, claims, where, claim_source=where("claims"))
        if label is not None:
            spec.name = str(label)
        specs.append(spec)
    return specs
