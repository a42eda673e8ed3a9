"""User claims: ``NAME=EXPR`` parsed with :mod:`ast` and evaluated by walking an allow-list.

A claim such as ``var_after=1/(2*(1-p)) - 1/(2*pi)`` names one quantity of an experiment and gives a
formula for it in terms of the experiment's parameters, and, where the experiment estimates them
jointly, of its other measured quantities (a relation: ``second_after=second_before/(1-p)``).
The formula is parsed with :func:`ast.parse` and checked node by node against a small allow-list
(numbers, allowed names, ``+ - * / ** % @``, unary ``+``/``-``, parentheses and calls of allowed
functions). It is then evaluated by walking a
tiny private tree with numpy ufuncs: nothing is ever passed to ``eval``, ``exec`` or ``compile``.

Numeric literals become ``float64``, so ``10**10**10`` is a float overflow (``inf``), never a huge
Python integer. Evaluation broadcasts, so array-valued parameters give the prediction over a whole
sweep at once.
"""

from __future__ import annotations

import ast
import inspect
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import scipy.special

from simlab.errors import SimlabInputError

__all__ = [
    "BASE_CONSTANTS",
    "BASE_FUNCTIONS",
    "CLAIM_EXPECTATIONS",
    "MAX_CLAIM_LENGTH",
    "Claim",
    "ClaimError",
    "parse_claim",
    "parse_claims",
]

#: What a user's claim may be expected to get: passed (believed true) or failed (a negative control)
CLAIM_EXPECTATIONS = ("pass", "fail")

#: Longest claim text (``NAME=EXPR`` as a whole) that is accepted, in characters.
MAX_CLAIM_LENGTH = 500

# Imaginary parts up to this fraction of the largest magnitude are treated as round-off (e.g. the
# matrix square root of a covariance matrix with a tiny negative eigenvalue) and dropped.
_COMPLEX_TOLERANCE = 1e-6

_ALLOWED_SYNTAX = (
    "allowed: numbers, names, + - * / ** % @, unary + and -, parentheses "
    "and calls of the allowed functions"
)


class ClaimError(SimlabInputError):
    """A claim that cannot be parsed or evaluated.

    The message is one line that starts with where the claim came from and the claim text, e.g.
    ``--claim 'var_after=x': unknown name 'x'; allowed names: p; constants: pi, e; functions: ...``.
    """


def _factorial(n: Any) -> Any:
    """Vectorised float factorial (``gamma(n + 1)``; ``0`` for negative ``n``)."""
    return scipy.special.factorial(n, exact=False)


def _comb(n: Any, k: Any) -> Any:
    """Vectorised float binomial coefficient ``n choose k``."""
    return scipy.special.comb(n, k, exact=False)


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _phi(x: Any) -> Any:
    """Standard normal probability density."""
    x = np.asarray(x, dtype=float)
    return _INV_SQRT_2PI * np.exp(-0.5 * x * x)


BASE_FUNCTIONS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "sqrt": np.sqrt,
        "exp": np.exp,
        "log": np.log,
        "log1p": np.log1p,
        "sin": np.sin,
        "cos": np.cos,
        "tan": np.tan,
        "arccos": np.arccos,
        "arcsin": np.arcsin,
        "arctan": np.arctan,
        "tanh": np.tanh,
        "abs": np.abs,
        "minimum": np.minimum,
        "maximum": np.maximum,
        "erf": scipy.special.erf,
        "erfc": scipy.special.erfc,
        "gamma": scipy.special.gamma,
        "lgamma": scipy.special.gammaln,
        "factorial": _factorial,
        "comb": _comb,
        "Phi": scipy.special.ndtr,
        "phi": _phi,
    }
)
"""Functions every claim may call (numpy / scipy.special, all vectorised, float results)."""

BASE_CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": math.pi, "e": math.e})
"""Constants every claim may use."""

_BINOPS: dict[type[ast.operator], tuple[str, Callable[..., Any]]] = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.Pow: ("**", np.power),
    ast.Mod: ("%", np.remainder),
    ast.MatMult: ("@", np.matmul),
}

_REFUSED_OPERATORS: dict[type[ast.AST], str] = {
    ast.FloorDiv: "//",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
}

_REFUSED_NODES: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts (indexing)",
    ast.Slice: "slices",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators (and/or)",
    ast.IfExp: "conditional expressions (x if c else y)",
    ast.Lambda: "lambda expressions",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Tuple: "tuples",
    ast.List: "lists",
    ast.Set: "sets",
    ast.Dict: "dicts",
    ast.Starred: "starred arguments (*x)",
    ast.Await: "await expressions",
    ast.Yield: "yield expressions",
    ast.YieldFrom: "yield expressions",
}

# The private evaluation tree: plain tuples, built only by the validator below.
#   ("num", float64) | ("var", name) | ("const", name) | ("call", name, (node, ...))
#   | ("bin", ufunc, left, right) | ("neg", node) | ("pos", node)
_Node = tuple[Any, ...]


class _Refused(Exception):
    """Raised inside the validator; turned into a ClaimError with the claim prefix."""


def _show(text: str) -> str:
    """Text for a one-line message: control characters (newlines, tabs, ...) are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _listing(items: Iterable[str]) -> str:
    out = ", ".join(items)
    return out if out else "(none)"


def _arity(fn: Callable[..., Any]) -> tuple[int, float] | None:
    """(fewest, most) positional arguments ``fn`` takes, or None when that cannot be told.

    A numpy ufunc takes exactly ``nin``: its optional positional ``out`` argument would let a claim
    write into the caller's arrays, so it is never allowed; likewise a function's positional
    parameters stop before one named ``out`` (``np.sum(a, axis, dtype, out)``).
    """
    if isinstance(fn, np.ufunc):
        return fn.nin, fn.nin
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    fewest, most = 0, 0.0
    for p in sig.parameters.values():
        if p.name == "out":  # numpy functions (np.sum, np.prod): never write into an input
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            most += 1
            if p.default is p.empty:
                fewest += 1
        elif p.kind is p.VAR_POSITIONAL:
            most = math.inf
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            return None  # needs a keyword: cannot be called from a claim; let the call fail later
    return fewest, most


class _Validator:
    """Walks a parsed expression, refusing everything not on the allow-list, and builds the tree."""

    def __init__(
        self,
        names: Sequence[str],
        functions: Mapping[str, Callable[..., Any]],
        refused: Mapping[str, str] | None = None,
    ) -> None:
        self.names = names
        self.name_set = frozenset(names)
        self.functions = functions
        self.refused = refused or {}
        self.used: set[str] = set()

    def allowed(self) -> str:
        return (
            f"allowed names: {_listing(self.names)}; constants: {_listing(BASE_CONSTANTS)}; "
            f"functions: {_listing(self.functions)}"
        )

    def build(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                sym = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
                raise _Refused(
                    f"operator '{sym}' is not allowed; allowed operators: + - * / ** % @"
                )
            return ("bin", op[1], self.build(node.left), self.build(node.right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return ("neg", self.build(node.operand))
            if isinstance(node.op, ast.UAdd):
                return ("pos", self.build(node.operand))
            sym = _REFUSED_OPERATORS.get(type(node.op), type(node.op).__name__)
            raise _Refused(f"operator '{sym}' is not allowed; {_ALLOWED_SYNTAX}")
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Attribute):
            raise _Refused(f"attribute access ('.{node.attr}') is not allowed; {_ALLOWED_SYNTAX}")
        what = _REFUSED_NODES.get(type(node), f"{type(node).__name__} expressions")
        raise _Refused(f"{what} are not allowed; {_ALLOWED_SYNTAX}")

    def _constant(self, node: ast.Constant) -> _Node:
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise _Refused(f"the literal {value!r} is not allowed; {_ALLOWED_SYNTAX}")
        if isinstance(value, int | float):
            try:
                return ("num", np.float64(value))
            except OverflowError:  # an integer literal beyond the float range
                return ("num", np.float64(math.inf))
        kind = {complex: "complex numbers", str: "strings", bytes: "bytes"}.get(
            type(value), f"{type(value).__name__} literals"
        )
        raise _Refused(f"{kind} are not allowed; {_ALLOWED_SYNTAX}")

    def _name(self, node: ast.Name) -> _Node:
        name = node.id
        if name.startswith("_"):
            raise _Refused(
                f"name '{name}' is not allowed (names starting with '_' are refused); "
                f"{self.allowed()}"
            )
        if name in self.name_set:
            self.used.add(name)
            return ("var", name)
        if name in BASE_CONSTANTS:
            return ("const", name)
        if name in self.refused:  # a name known to the experiment that this claim cannot use
            raise _Refused(self.refused[name])
        if name in self.functions:
            raise _Refused(
                f"'{name}' is a function and must be called, e.g. {name}(x); {self.allowed()}"
            )
        raise _Refused(f"unknown name '{name}'; {self.allowed()}")

    def _call(self, node: ast.Call) -> _Node:
        allowed_functions = f"allowed functions: {_listing(self.functions)}"
        if not isinstance(node.func, ast.Name):
            raise _Refused(
                "only calls of the allowed functions are allowed (a call of a computed "
                f"expression is not); {allowed_functions}"
            )
        name = node.func.id
        if name.startswith("_"):
            raise _Refused(
                f"call of '{name}' is not allowed (names starting with '_' are refused); "
                f"only calls of the allowed functions are allowed; {allowed_functions}"
            )
        if name not in self.functions:
            what = "is not a function" if name in self.name_set else "is not an allowed function"
            raise _Refused(
                f"'{name}' {what}; only calls of the allowed functions are allowed; "
                f"{allowed_functions}"
            )
        if node.keywords:
            kw = node.keywords[0].arg
            shown = f"'{kw}=...'" if kw is not None else "'**...'"
            raise _Refused(
                f"keyword arguments ({shown} in {name}(...)) are not allowed; "
                "pass arguments by position"
            )
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise _Refused(
                    f"starred arguments (*x in {name}(...)) are not allowed; "
                    "pass arguments by position"
                )
        arity = _arity(self.functions[name])
        n = len(node.args)
        if arity is not None and not arity[0] <= n <= arity[1]:
            fewest, most = arity
            if fewest == most:
                wanted = f"{fewest} argument{'s' if fewest != 1 else ''}"
            elif most == math.inf:
                wanted = f"at least {fewest} arguments"
            else:
                wanted = f"{fewest} to {int(most)} arguments"
            raise _Refused(f"{name}() takes {wanted}, got {n}")
        return ("call", name, tuple(self.build(arg) for arg in node.args))


def _build_tree(
    expression: str,
    names: Sequence[str],
    functions: Mapping[str, Callable[..., Any]],
    refused: Mapping[str, str] | None = None,
) -> tuple[_Node, frozenset[str]]:
    """Parse and validate ``expression``; return the private tree and the variable names used.

    Raises
    ------
    _Refused
        With the reason (no claim prefix) when the expression is not allowed.
    """
    # Python folds look-alike letters into ASCII (NFKC: fullwidth 'ｐ' and bold '𝐩' both parse
    # as 'p', fullwidth '＿＿' as '__'): the claim shown would not be the claim evaluated.
    for column, char in enumerate(expression, start=1):
        if not char.isascii():
            raise _Refused(
                f"the character {_show(repr(char))} (U+{ord(char):04X}) at column {column} is "
                "not allowed; write claims in ASCII (e.g. 'p', '-', 'pi')"
            )
    # Newlines (e.g. from a folded YAML string) are just spaces; same length keeps the columns.
    source = expression.replace("\r", " ").replace("\n", " ")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences in string literals
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        # offset is 1-based within the expression; 0 / None / past the end mean "ran out of input".
        at = (
            f"at column {exc.offset}"
            if exc.offset and 0 < exc.offset <= len(source)
            else "at the end"
        )
        raise _Refused(
            f"'{_show(expression)}' is not a valid expression ({exc.msg} {at})"
        ) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise _Refused(
            f"'{_show(expression)}' is not a valid expression ({type(exc).__name__})"
        ) from None
    validator = _Validator(names, functions, refused)
    try:
        root = validator.build(tree.body)
    except RecursionError:
        raise _Refused("the expression is nested too deeply") from None
    return root, frozenset(validator.used)


def _coerce(name: str, value: object) -> Any:
    """A supplied variable value as a float (or complex) numpy array."""
    arr = np.asarray(value)
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    if arr.dtype.kind not in "fc":
        raise TypeError(f"the value given for '{name}' is not numeric ({type(value).__name__})")
    return arr


@dataclass(frozen=True)
class Claim:
    """One parsed claim ``quantity=expression``; build it with :func:`parse_claim`.

    Attributes
    ----------
    quantity : str
        The quantity the claim predicts (left of ``=``), one of the experiment's quantities.
    expression : str
        The formula (right of ``=``), stripped.
    names : frozenset of str
        The variable names the expression uses, i.e. what :meth:`evaluate` must be given.
        Constants and function names are not included.
    text : str
        The claim text as given (for messages).
    source : str
        Where the claim came from (for messages), e.g. ``"--claim"``.
    expect : str
        The verdict the claim is built to get: ``"pass"`` (a claim believed true) or ``"fail"``
        (``--claim-false``, ``expect: fail`` in YAML: a negative control of the user's own).
    measured : frozenset of str
        The measured quantities among :attr:`names` (a relation between estimates; empty for a
        claim in the parameters alone). Its standard error needs their joint covariance.
    """

    quantity: str
    expression: str
    names: frozenset[str]
    text: str = field(default="", compare=False)
    source: str = field(default="--claim", compare=False)
    expect: str = "pass"
    measured: frozenset[str] = field(default=frozenset(), compare=False)
    _tree: _Node | None = field(default=None, repr=False, compare=False)
    _functions: Mapping[str, Callable[..., Any]] = field(
        default_factory=lambda: BASE_FUNCTIONS, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.text:
            object.__setattr__(self, "text", f"{self.quantity}={self.expression}")
        if self._tree is None:  # built directly rather than by parse_claim: validate now
            try:
                tree, _ = _build_tree(self.expression, sorted(self.names), self._functions)
            except _Refused as exc:
                raise ClaimError(f"{self._prefix()} {exc}") from None
            object.__setattr__(self, "_tree", tree)

    def _prefix(self) -> str:
        return f"{self.source} '{_show(self.text)}':"

    def evaluate(self, values: Mapping[str, object]) -> np.ndarray | float:
        """Evaluate the expression.

        Parameters
        ----------
        values : mapping of str to object
            Values for the names in :attr:`names` (floats, ints or numpy arrays; arrays broadcast,
            so an array-valued parameter gives the prediction over a whole sweep). Extra entries
            are ignored, except that a callable under a function's name replaces that function and
            a value under ``pi`` or ``e`` replaces the constant.

        Returns
        -------
        numpy.ndarray or float
            A float for a scalar result, otherwise a new float64 array. Complex results whose
            imaginary part is round-off (at most 1e-6 of the largest magnitude) are made real.

        Raises
        ------
        ClaimError
            When evaluation fails for any reason (missing value, shape mismatch, a
            ``LinAlgError``, a complex result, ...). numpy floating-point warnings are suppressed:
            overflow gives ``inf`` and invalid operations give ``nan``.
        """
        missing = sorted(n for n in self.names if n not in values)
        if missing:
            raise ClaimError(
                f"{self._prefix()} no value given for {', '.join(map(repr, missing))}; "
                f"the claim needs: {_listing(sorted(self.names))}"
            )
        try:
            with np.errstate(all="ignore"):
                result = np.asarray(self._walk(self._tree, values))
                if result.dtype.kind == "c":
                    scale = np.max(np.abs(result), initial=0.0)
                    if not np.all(np.abs(result.imag) <= _COMPLEX_TOLERANCE * max(scale, 1e-300)):
                        raise ValueError("the expression evaluates to complex numbers")
                    result = result.real
                out = np.array(result, dtype=np.float64)
        except ClaimError:
            raise
        except Exception as exc:  # every failure becomes one clear message
            reason = " ".join(str(exc).split()) or "no details"
            raise ClaimError(
                f"{self._prefix()} evaluation failed: {type(exc).__name__}: {reason}"
            ) from None
        return float(out) if out.ndim == 0 else out

    def _walk(self, node: _Node | None, values: Mapping[str, object]) -> Any:
        assert node is not None
        tag = node[0]
        if tag == "num":
            return node[1]
        if tag == "var":
            return _coerce(node[1], values[node[1]])
        if tag == "const":
            name = node[1]
            return _coerce(name, values[name]) if name in values else BASE_CONSTANTS[name]
        if tag == "bin":
            return node[1](self._walk(node[2], values), self._walk(node[3], values))
        if tag == "neg":
            return np.negative(self._walk(node[1], values))
        if tag == "pos":
            return np.positive(self._walk(node[1], values))
        if tag == "call":
            name = node[1]
            fn = values.get(name)
            if not callable(fn):
                fn = self._functions[name]
            return fn(*(self._walk(arg, values) for arg in node[2]))
        raise AssertionError(f"unknown node {tag!r}")  # pragma: no cover


def parse_claim(
    text: str,
    *,
    quantities: Sequence[str],
    names: Iterable[str],
    functions: Mapping[str, Callable[..., Any]] | None = None,
    source: str = "--claim",
    expect: str = "pass",
    measured: Sequence[str] = (),
    refused: Mapping[str, str] | None = None,
) -> Claim:
    """Parse and validate one claim ``NAME=EXPR``.

    Parameters
    ----------
    text : str
        The claim, e.g. ``"var_after=1/(2*(1-p)) - 1/(2*pi)"``; at most 500 characters.
    quantities : sequence of str
        The experiment's quantity names allowed left of ``=``.
    names : iterable of str
        The variable names allowed in the expression (parameters, plus e.g. ``k``, ``Sigma``).
        A name that is both a variable and a function (e.g. ``gamma``) is the variable when used
        bare and the function when called.
    functions : mapping of str to callable, optional
        Extra functions for this experiment (e.g. ``sum``, ``sqrtm``, ``inv``), merged over
        :data:`BASE_FUNCTIONS`. Calls are positional only and their argument count is checked
        against the function's signature when it has one. They must not mutate their arguments.
    source : str
        Where the claim came from, used in messages, e.g. ``"--claim"`` or
        ``"configs/x.yaml: claims"``.
    expect : {"pass", "fail"}
        The verdict the claim is expected to get (``"fail"``: a negative control).
    measured : sequence of str
        Measured quantities a claim on one of them may name (their joint covariance is
        estimated): a claim on ``Q`` may use every other one as a name; a claim on a quantity
        outside them may use none, and no claim may name its own quantity.
    refused : mapping of str to str, optional
        Names the experiment knows but a claim cannot use (its other quantities, when it
        estimates no joint covariance), each with the reason given when one is named.

    Returns
    -------
    Claim
        The parsed claim, ready for :meth:`Claim.evaluate`.

    Raises
    ------
    ClaimError
        With a one-line message starting ``{source} '{text}':`` when the claim is malformed, too
        long, names an unknown quantity or name, or uses syntax outside the allow-list.
    """
    _refuse_malformed(text, source, expect)
    prefix = f"{source} '{_show(text)}':"
    quantities = list(quantities)
    names = list(dict.fromkeys(names))
    table = dict(BASE_FUNCTIONS)
    if functions:
        table.update(functions)
    for fname, fn in table.items():
        if not callable(fn):
            raise TypeError(f"function {fname!r} for claims is not callable: {fn!r}")

    lhs, eq, rhs = text.partition("=")
    quantity, expression = lhs.strip(), rhs.strip()
    if not eq or not quantity or not expression:
        example = quantities[0] if quantities else "NAME"
        raise ClaimError(
            f"{prefix} a claim has the form NAME=EXPR, e.g. {example}=1/(2*pi); "
            f"allowed quantities: {_listing(quantities)}"
        )
    if quantity not in quantities:
        raise ClaimError(
            f"{prefix} unknown quantity '{_show(quantity)}'; allowed: {_listing(quantities)}"
        )
    measured = [m for m in measured if m not in names]
    names, refused = _with_measured(quantity, names, measured, dict(refused or {}))
    try:
        tree, used = _build_tree(expression, names, table, refused)
    except _Refused as exc:
        raise ClaimError(f"{prefix} {exc}") from None
    return Claim(
        quantity=quantity,
        expression=expression,
        names=used,
        text=text,
        source=source,
        expect=expect,
        measured=frozenset(used & set(measured)),
        _tree=tree,
        _functions=MappingProxyType(table),
    )


def _refuse_malformed(text: Any, source: str, expect: str) -> None:
    """Refuse, before any parsing, what is not a claim at all: not text, an unknown
    expectation, more than :data:`MAX_CLAIM_LENGTH` characters."""
    if not isinstance(text, str):
        raise ClaimError(
            f"{source} {text!r}: a claim must be text of the form NAME=EXPR, "
            f"not {type(text).__name__}"
        )
    if expect not in CLAIM_EXPECTATIONS:
        raise ClaimError(
            f"{source} '{_show(text)}': expect {_show(str(expect))!r} is not allowed; "
            f"allowed: {', '.join(CLAIM_EXPECTATIONS)}"
        )
    if len(text) > MAX_CLAIM_LENGTH:
        raise ClaimError(
            f"{source} '{_show(text[:60])}...': the claim is {len(text)} characters long; "
            f"the limit is {MAX_CLAIM_LENGTH} characters"
        )


def _with_measured(
    quantity: str, names: list[str], measured: list[str], refused: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The names a claim on ``quantity`` may use and those it is refused, with the measured
    quantities: a claim on one of them may name the others (their joint covariance is
    estimated), never itself; a claim on any other quantity names none of them."""
    if quantity in measured:
        names = names + [m for m in measured if m != quantity]
        refused[quantity] = (
            f"a claim cannot name its own quantity '{quantity}'; it may name the other "
            f"measured quantities: {_listing(m for m in measured if m != quantity)}"
        )
    else:
        for m in measured:
            refused.setdefault(
                m,
                f"the measured quantity '{m}' may be named only in a claim on one of "
                f"{_listing(measured)} (their joint covariance is estimated), not on "
                f"'{quantity}'",
            )
    return names, refused


def parse_claims(
    texts: Iterable[str],
    *,
    quantities: Sequence[str],
    names: Iterable[str],
    functions: Mapping[str, Callable[..., Any]] | None = None,
    source: str = "--claim",
) -> list[Claim]:
    """Parse several claims with the same settings (see :func:`parse_claim`).

    Parameters
    ----------
    texts : iterable of str
        The claims, e.g. the values of a repeated ``--claim`` option. A single string is refused
        (it would be iterated character by character).
    quantities, names, functions, source
        As for :func:`parse_claim`; ``names`` may be a one-shot iterator.

    Returns
    -------
    list of Claim
        In the order given. The same quantity may be claimed more than once.

    Raises
    ------
    ClaimError
        For the first claim that does not parse.
    """
    if isinstance(texts, str):
        raise TypeError("parse_claims takes an iterable of claim texts, not one string")
    quantities = list(quantities)
    names = list(names)
    return [
        parse_claim(t, quantities=quantities, names=names, functions=functions, source=source)
        for t in texts
    ]
