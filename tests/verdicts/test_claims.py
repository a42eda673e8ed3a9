"""Tests for the claim parser and evaluator (simlab.verdicts.claims)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats

from simlab.errors import SimlabInputError
from simlab.verdicts.claims import (
    BASE_CONSTANTS,
    BASE_FUNCTIONS,
    Claim,
    ClaimError,
    parse_claim,
    parse_claims,
)

QUANTITIES = ["mean_before", "var_after", "pmf", "cross_cov", "d_Y", "q"]
NAMES = ["p", "N", "M", "k", "D", "xhat", "gamma", "s", "B", "Sigma", "I"]
MATRIX_FUNCTIONS = {"sqrtm": scipy.linalg.sqrtm, "inv": np.linalg.inv, "sum": np.sum}


def claim(text: str, **kwargs: object) -> Claim:
    kwargs.setdefault("quantities", QUANTITIES)
    kwargs.setdefault("names", NAMES)
    kwargs.setdefault("functions", MATRIX_FUNCTIONS)
    return parse_claim(text, **kwargs)  # type: ignore[arg-type]


def refusal(text: str, **kwargs: object) -> str:
    with pytest.raises(ClaimError) as info:
        claim(text, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{kwargs.get('source', '--claim')} '")
    return message


# --- parsing and the names set ---------------------------------------------------------------


def test_fields_and_names() -> None:
    c = claim("  var_after = 1/(2*(1-p)) - 1/(2*pi)  ")
    assert c.quantity == "var_after"
    assert c.expression == "1/(2*(1-p)) - 1/(2*pi)"
    assert c.names == frozenset({"p"})
    assert isinstance(c.names, frozenset)


def test_names_exclude_constants_and_functions() -> None:
    c = claim("pmf=comb(M,k)*(1-p)**k*p**(M-k) + 0*sqrt(e)")
    assert c.names == frozenset({"M", "k", "p"})
    assert claim("q=pi*e").names == frozenset()


def test_name_that_is_also_a_function() -> None:
    # 'gamma' is a BN parameter and the gamma function: bare it is the variable, called the function
    c = claim("q=gamma*gamma(s)")
    assert c.names == frozenset({"gamma", "s"})
    assert c.evaluate({"gamma": 2.0, "s": 4.0}) == pytest.approx(2.0 * 6.0)


def test_is_a_simlab_input_error() -> None:
    assert issubclass(ClaimError, SimlabInputError)


def test_tables() -> None:
    expected = {
        "sqrt", "exp", "log", "log1p", "sin", "cos", "tan", "arccos", "arcsin", "arctan", "tanh",
        "abs", "minimum", "maximum", "erf", "erfc", "gamma", "lgamma", "factorial", "comb",
        "Phi", "phi",
    }  # fmt: skip
    assert set(BASE_FUNCTIONS) == expected
    assert dict(BASE_CONSTANTS) == {"pi": math.pi, "e": math.e}


# --- numeric values --------------------------------------------------------------------------


def test_var_after_value() -> None:
    c = claim("var_after=1/(2*(1-p)) - 1/(2*pi)")
    assert c.evaluate({"p": 0.3}) == pytest.approx(1 / (2 * 0.7) - 1 / (2 * np.pi), rel=1e-15)
    assert isinstance(c.evaluate({"p": 0.3}), float)


def test_pmf_value_vectorised_over_k() -> None:
    c = claim("pmf=comb(M,k)*(1-p)**k*p**(M-k)")
    k = np.arange(11)
    got = c.evaluate({"M": 10, "k": k, "p": 0.25})
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (11,)
    np.testing.assert_allclose(got, scipy.stats.binom.pmf(k, 10, 0.75), rtol=1e-12)
    assert got.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("expr", "direct"),
    [
        (
            "sqrt(x)+exp(x)+log(x)+log1p(x)",
            lambda x: np.sqrt(x) + np.exp(x) + np.log(x) + np.log1p(x),
        ),
        ("sin(x)*cos(x)-tan(x)", lambda x: np.sin(x) * np.cos(x) - np.tan(x)),
        ("arccos(x)+arcsin(x)+arctan(x)+tanh(x)", lambda x: np.pi / 2 + np.arctan(x) + np.tanh(x)),
        ("abs(-x) + minimum(x, 0.5) + maximum(x, 0.5)", lambda x: x + 0.5 + x),
        ("erf(x) + erfc(x)", lambda x: np.ones_like(x)),
        ("gamma(x+1) - exp(lgamma(x+1))", lambda x: np.zeros_like(x)),
        ("factorial(3*x/x) + comb(5, 2)", lambda x: 6.0 + 10.0 + 0 * x),
        ("Phi(x) + phi(x)", lambda x: scipy.stats.norm.cdf(x) + scipy.stats.norm.pdf(x)),
        ("x % 0.25 + +x - -x", lambda x: np.remainder(x, 0.25) + 2 * x),
        ("2**-x / 3", lambda x: 2.0**-x / 3),
    ],
)
def test_every_base_function_and_operator(expr: str, direct: object) -> None:
    x = np.array([0.1, 0.5, 0.9])
    got = claim(f"q={expr}", names=["x"]).evaluate({"x": x})
    np.testing.assert_allclose(got, direct(x), rtol=1e-12, atol=1e-15)  # type: ignore[operator]


def test_vectorised_over_array_parameter_matches_pointwise() -> None:
    c = claim("var_after=1/(2*(1-p)) - 1/(2*pi)")
    p = np.linspace(0.0, 0.9, 7)
    got = c.evaluate({"p": p})
    np.testing.assert_allclose(got, 1 / (2 * (1 - p)) - 1 / (2 * np.pi), rtol=1e-15)
    np.testing.assert_allclose(got, [c.evaluate({"p": float(v)}) for v in p], rtol=0)


def test_broadcasting_over_two_parameters() -> None:
    c = claim("q=p*N")
    got = c.evaluate({"p": np.array([[0.1], [0.2]]), "N": np.array([1, 2, 3])})
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, np.array([[0.1], [0.2]]) * np.array([1, 2, 3]))


def test_integer_values_become_float() -> None:
    # integer arrays would refuse negative integer powers; the claim sees floats
    got = claim("q=N**-k").evaluate({"N": np.array([2, 4]), "k": np.array([1, 2])})
    np.testing.assert_allclose(got, [0.5, 1 / 16])


def test_literals_are_float() -> None:
    assert claim("q=7/2").evaluate({}) == 3.5
    assert claim("q=2**-1").evaluate({}) == 0.5
    assert claim("q=1_000 + 0x10").evaluate({}) == 1016.0


def test_d_y_batch_norm_expression() -> None:
    c = claim("d_Y=(gamma*s/B)*(B*D - sum(D) - xhat*sum(D*xhat))")
    assert c.names == frozenset({"gamma", "s", "B", "D", "xhat"})
    rng = np.random.default_rng(0)
    D, xhat = rng.normal(size=8), rng.normal(size=8)
    got = c.evaluate({"gamma": 1.5, "s": 0.7, "B": 8, "D": D, "xhat": xhat})
    want = (1.5 * 0.7 / 8) * (8 * D - D.sum() - xhat * (D * xhat).sum())
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_matrix_expressions() -> None:
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4))
    Sigma = A @ A.T + 4 * np.eye(4)
    values = {"Sigma": Sigma, "I": np.eye(4)}

    got = claim("cross_cov=sqrtm(Sigma)").evaluate(values)
    np.testing.assert_allclose(got @ got, Sigma, rtol=1e-10)
    np.testing.assert_allclose(got, np.real(scipy.linalg.sqrtm(Sigma)), rtol=1e-12)

    got = claim("q=inv(Sigma) @ Sigma - I").evaluate(values)
    np.testing.assert_allclose(got, np.zeros((4, 4)), atol=1e-12)

    got = claim("q=(I + 0.5*Sigma) @ inv(sqrtm(Sigma)) @ sqrtm(Sigma)").evaluate(values)
    np.testing.assert_allclose(got, np.eye(4) + 0.5 * Sigma, rtol=1e-10, atol=1e-12)


def test_tiny_imaginary_round_off_is_dropped_but_real_complex_is_refused() -> None:
    values = {"Sigma": np.array([[1.0, 1.0], [1.0, 1.0 - 1e-15]])}  # one eigenvalue ~ -1e-16
    got = claim("cross_cov=sqrtm(Sigma)").evaluate(values)
    assert got.dtype == np.float64
    with pytest.raises(ClaimError, match="complex"):
        claim("q=sqrtm(Sigma)").evaluate({"Sigma": np.array([[-1.0, 0.0], [0.0, 1.0]])})


def test_extra_callable_in_values_replaces_function() -> None:
    c = claim("q=sqrtm(Sigma)")
    assert c.evaluate({"Sigma": 4.0, "sqrtm": np.sqrt}) == 2.0


def test_result_is_a_copy_not_the_input_array() -> None:
    D = np.array([1.0, 2.0])
    got = claim("q=D").evaluate({"D": D})
    got[0] = 99.0
    assert D[0] == 1.0


# --- float overflow, warnings, evaluation errors ---------------------------------------------


def test_power_tower_overflows_to_inf_quickly() -> None:
    # Quick because numbers are float64 from the literal on (Python ints would compute 10**10**10
    # digit by digit): checked exactly, not timed. 2**64 + 1 is not a float64; its sum rounds to
    # 2**64 (an int would keep the 1).
    assert claim("q=2**64 + 1").evaluate({}) == 2.0**64 != 2**64 + 1
    c = claim("q=10**10**10")
    assert c.evaluate({}) == math.inf
    assert claim("q=9**9**9**9").evaluate({}) == math.inf
    assert claim("q=p**1e10").evaluate({"p": 2.0}) == math.inf  # python floats would raise
    assert claim("q=1" + "0" * 400).evaluate({}) == math.inf


def test_numpy_warnings_are_suppressed(recwarn: pytest.WarningsRecorder) -> None:
    with np.errstate(all="raise"):  # even if the caller made them errors
        got = claim("q=log(p) / p + sqrt(-1) + 1 % p").evaluate({"p": np.array([0.0, 1.0])})
    assert np.isnan(got).all()
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize(
    ("expr", "values", "reason"),
    [
        ("p + N", {"p": np.ones(3), "N": np.ones(4)}, "could not be broadcast"),
        ("inv(Sigma)", {"Sigma": np.zeros((3, 3))}, "LinAlgError"),
        ("Sigma @ p", {"Sigma": np.eye(3), "p": 2.0}, "matmul"),
        ("p * 2", {"p": "abc"}, "not numeric"),
        ("sum(D, 0)", {"D": np.ones(3)}, "TypeError"),  # literals are floats: no int axis
    ],
)
def test_evaluation_errors_become_claim_error(
    expr: str, values: dict[str, object], reason: str
) -> None:
    c = claim(f"q={expr}", source="configs/x.yaml: claims")
    with pytest.raises(ClaimError) as info:
        c.evaluate(values)
    message = str(info.value)
    assert message.startswith(f"configs/x.yaml: claims 'q={expr}': evaluation failed")
    assert reason in message
    assert "\n" not in message


def test_missing_value_names_what_is_needed() -> None:
    c = claim("pmf=comb(M,k)*(1-p)**k*p**(M-k)")
    with pytest.raises(ClaimError) as info:
        c.evaluate({"M": 3})
    message = str(info.value)
    assert "no value given for 'k', 'p'" in message
    assert "needs: M, k, p" in message


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["var_after", "var_after=", "=1/p", "  =  ", ""])
def test_missing_equals_or_empty_side(text: str) -> None:
    message = refusal(text)
    assert "NAME=EXPR" in message


def test_unknown_quantity_lists_quantities() -> None:
    message = refusal("foo=1/p")
    assert "unknown quantity 'foo'" in message
    assert "allowed: mean_before, var_after, pmf, cross_cov, d_Y, q" in message


def test_unknown_name_lists_names_constants_functions() -> None:
    message = refusal("var_after=1/(2*(1-x))")
    assert message.startswith("--claim 'var_after=1/(2*(1-x))': unknown name 'x'; ")
    assert "allowed names: p, N, M, k, D, xhat, gamma, s, B, Sigma, I" in message
    assert "constants: pi, e" in message
    assert "functions: sqrt, exp, log, " in message
    assert "sqrtm, inv, sum" in message


def test_unknown_name_with_custom_source() -> None:
    message = refusal("q=x", source="configs/x.yaml: claims")
    assert message.startswith("configs/x.yaml: claims 'q=x': unknown name 'x'")


def test_function_used_without_call() -> None:
    message = refusal("q=sqrt + 1")
    assert "'sqrt' is a function" in message and "allowed names: p" in message


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("var_after=1/(2*(1-p)", "'(' was never closed at column 3"),
        ("q=1 +", "invalid syntax at the end"),
        ("q=(1-p))", "unmatched ')' at column 6"),
        ("q=p p", "column 3"),
    ],
)
def test_syntax_error(text: str, column: str) -> None:
    message = refusal(text)
    assert "is not a valid expression (" in message
    assert column in message


@pytest.mark.parametrize(
    ("expr", "construct"),
    [
        ("(1).__class__", "attribute access ('.__class__')"),
        ("().__class__.__bases__", "attribute access ('.__bases__')"),
        ("p.real", "attribute access ('.real')"),
        ("D[0]", "subscripts"),
        ("p < 1", "comparisons"),
        ("p and N", "boolean operators"),
        ("not p", "'not'"),
        ("~p", "'~'"),
        ("p if N else M", "conditional expressions"),
        ("lambda: 1", "lambda"),
        ("[x for x in D]", "comprehensions"),
        ("sum(x for x in D)", "generator expressions"),
        ('f"{p}"', "f-strings"),
        ("(x := 1)", "assignment expressions"),
        ("(p, N)", "tuples"),
        ("[p]", "lists"),
        ("{p: 1}", "dicts"),
        ("'abc'", "strings"),
        ("b'abc'", "bytes"),
        ("1j", "complex numbers"),
        ("True", "the literal True"),
        ("None", "the literal None"),
        ("...", "the literal Ellipsis"),
    ],
)
def test_refused_constructs(expr: str, construct: str) -> None:
    message = refusal(f"q={expr}")
    assert construct in message
    assert "is not allowed" in message or "are not allowed" in message
    assert "allowed: numbers, names, + - * / ** % @" in message


@pytest.mark.parametrize("op", ["//", "<<", ">>", "|", "^", "&"])
def test_refused_operators(op: str) -> None:
    message = refusal(f"q=p {op} N")
    assert f"operator '{op}' is not allowed" in message
    assert "allowed operators: + - * / ** % @" in message


@pytest.mark.parametrize(
    ("expr", "offender"),
    [
        ("__import__('os')", "'__import__'"),
        ("__import__('os').system('true')", "a call of a computed expression"),
        ("(1).__class__(2)", "a call of a computed expression"),
        ("open('x')", "'open'"),
        ("eval('1')", "'eval'"),
        ("p(2)", "'p' is not a function"),
        ("sqrt(p)(2)", "a call of a computed expression"),
        ("(lambda: 1)()", "a call of a computed expression"),
    ],
)
def test_refused_calls(expr: str, offender: str) -> None:
    message = refusal(f"q={expr}")
    assert offender in message
    assert "only calls of the allowed functions are allowed" in message
    assert "allowed functions: sqrt, exp, log" in message


def test_underscore_names_refused() -> None:
    message = refusal("q=_p + 1", names=[*NAMES, "_p"])
    assert "'_p'" in message and "names starting with '_'" in message
    message = refusal("q=__builtins__")
    assert "'__builtins__'" in message and "names starting with '_'" in message


@pytest.mark.parametrize(
    ("expr", "what"),
    [
        ("sqrt(x=p)", "keyword arguments ('x=...' in sqrt(...))"),
        ("sqrt(**D)", "keyword arguments ('**...' in sqrt(...))"),
        ("sqrt(*D)", "starred arguments"),
    ],
)
def test_call_argument_forms_refused(expr: str, what: str) -> None:
    assert what in refusal(f"q={expr}")


def test_argument_count_checked_so_ufunc_out_cannot_be_used() -> None:
    # sqrt(p, D) would otherwise write the result into the caller's array D
    assert "sqrt() takes 1 argument, got 2" in refusal("q=sqrt(p, D)")
    assert "comb() takes 2 arguments, got 1" in refusal("q=comb(M)")
    assert "minimum() takes 2 arguments, got 3" in refusal("q=minimum(p, N, D)")


def test_too_long() -> None:
    text = "q=" + "+".join(["p"] * 300)
    message = refusal(text)
    assert f"{len(text)} characters" in message and "limit is 500 characters" in message
    assert len(message) < 200
    claim("q=" + "1" * 498)  # exactly at the cap is fine


def test_deep_nesting_does_not_traceback() -> None:
    assert claim("q=" + "-" * 497 + "1").evaluate({}) == -1.0
    with pytest.raises(ClaimError):
        claim("q=" + "(" * 240 + "1" + ")" * 240)


def test_control_characters_keep_message_on_one_line() -> None:
    message = refusal("q=x\n+ 1")
    assert "'q=x\\n+ 1'" in message
    assert claim("q=p\n+ 1").evaluate({"p": 1.0}) == 2.0  # a folded line is just a space
    assert "not a valid expression" in refusal("q=1\x00")


def test_not_text() -> None:
    with pytest.raises(ClaimError, match="NAME=EXPR"):
        claim(3.5)  # type: ignore[arg-type]


# --- parse_claims and direct construction ----------------------------------------------------


def test_parse_claims() -> None:
    names = iter(["p", "k", "M"])  # a one-shot iterator serves every claim
    claims = parse_claims(
        ["var_after=1/(2*(1-p))", "pmf=comb(M,k)"],
        quantities=QUANTITIES,
        names=names,
        source="--claim",
    )
    assert [c.quantity for c in claims] == ["var_after", "pmf"]
    assert claims[1].names == frozenset({"M", "k"})
    with pytest.raises(ClaimError, match="unknown name 'x'"):
        parse_claims(["q=p", "q=x"], quantities=QUANTITIES, names=["p"])
    with pytest.raises(TypeError):
        parse_claims("q=p", quantities=QUANTITIES, names=["p"])


def test_claim_built_directly_is_validated() -> None:
    assert Claim("q", "2*p", frozenset({"p"})).evaluate({"p": 3}) == 6.0
    with pytest.raises(ClaimError, match="attribute access"):
        Claim("q", "p.real", frozenset({"p"}))


def test_claims_are_hashable_and_compare_by_content() -> None:
    a, b = claim("q=2*p"), claim("q = 2*p")
    assert a == b and hash(a) == hash(b)
