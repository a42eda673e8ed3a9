"""Mean-field predictions for deep ReLU MLPs: forward q_l, backward r_l, finite width, correlations.

No random numbers here: every function is a closed form or a deterministic recursion, so it can
be tested exactly and the samplers in :mod:`simlab.networks` can be tested against it. Nothing
here is shared with those samplers: each init's variance is stated in :data:`INIT_VARIANCE`, and
the weights are drawn from :func:`simlab.networks.entry_variance`, a table of their own (a
mistake made once in a shared helper would pass every check).

Network and notation (SPEC section 1.4)
---------------------------------------
``h_0 = x``, ``z_l = W_l h_{l-1} + b_l``, ``h_l = relu(z_l)`` for ``l = 1..L`` (the last layer
too), widths ``n_0 .. n_L``, ``W_l`` of shape ``(n_l, n_{l-1})`` (fan_in ``n_{l-1}``, fan_out
``n_l``) with i.i.d. zero-mean symmetric entries of variance ``Var(W_l)`` (or a Haar
semi-orthogonal matrix), bias entries ``b_l ~ N(0, sigma_b^2)`` drawn with the weights (or 0),
input ``x ~ N(0, sigma_x^2 I)``. ``c_l = n_{l-1} Var(W_l)``.

Where each prediction holds
---------------------------
- :func:`forward_q`: ``q_l = E[mean_i z_l[i]^2]`` is **exact in expectation at any width** for
  symmetric weights (normal, uniform, orthogonal) and a zero or symmetric random bias. Given
  ``h_{l-1}``, each ``z_l[i]`` is symmetric about 0 (flip the sign of row i and of ``b_l[i]``),
  so ``E[relu(z)^2] = E[z^2] / 2`` exactly, and ``E[z_l[i]^2 | h_{l-1}] = Var(W_l) ||h_{l-1}||^2
  + sigma_b^2`` (for Haar semi-orthogonal ``W`` use ``E[W^T W] = gain^2 min(1, n_l/n_{l-1}) I``,
  which gives the same ``c_l``). Nothing here needs Gaussian weights or large width.
- :func:`backward_r`: for ReLU and the loss ``l = g^T h_L`` with ``g`` independent of the network,
  ``E[g] = 0``, ``E[g g^T] = I``, ``r_l = E[mean_i (dl/dh_l[i])^2]`` obeys the recursion **exactly
  in expectation at any width** (the sign-flip argument of Hanin 2018, Thm. 1): expand
  ``||dl/dh_{l-1}||^2`` as a sum over pairs of paths; going down from the top, flipping the sign
  of row i of ``W_m`` (and ``b_m[i]``) turns ``relu'(z_m[i])`` into ``1 - relu'(z_m[i])`` while
  leaving the rest of the term unchanged, so each indicator contributes exactly 1/2 and the
  weights pair up as ``E[W_m[i, a] W_m[i, a']] = Var(W_m) delta_{a a'}``. So no
  gradient-independence assumption is needed for ReLU with symmetric weights (Gaussian, uniform,
  orthogonal). The one exception is a dead network: with zero bias, if some ``h_k = 0`` then every
  ``z_m`` above it is exactly 0, ``relu'(0) = 0`` kills the gradient, and the flip argument
  breaks. For continuous weights ``P(h_k = 0 | h_{k-1} != 0) = 2^-n_k``; e.g. exactly
  ``r_{L-1} = (prediction) * P(h_{L-1} != 0)``. Measured (Kaiming, zero bias, L = 5): r_l low by
  up to 23% at width 4, 6% at width 6, nothing visible (< 0.3%) at width 12; with a random bias
  (sigma_b > 0, so no z is exactly 0) it is exact even at width 5 to 6.
  The SPEC and He et al. present eq. 14 as a mean-field (infinite-width, gradient-independence)
  result with O(1/width) corrections; that is the right statement for smooth activations such as
  tanh, and for *higher* moments of the gradient, but not for this mean: at width 256 the
  backward recursion can be z-tested like the forward one.
- :func:`hanin_rolnick_second_moment`: exact at any width for **Gaussian** Kaiming weights,
  zero bias (the fourth moment of the weights enters, so uniform weights differ), with the
  convention stated there.
- :func:`iterate_arccos`: the infinite-width limit (O(1/width) corrections); :func:`arccos_tail`
  is its large-depth asymptote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np

from simlab.errors import SimlabInputError

INITS: tuple[str, ...] = (
    "kaiming",
    "kaiming_fan_out",
    "xavier",
    "lecun",
    "torch_default",
    "orthogonal",
    "gain",
)
"""Initialisation schemes, by their CLI names."""

ORTHOGONAL_DEFAULT_GAIN = math.sqrt(2.0)
"""The gain applied to a semi-orthogonal matrix when ``gain`` is not given (He's ReLU gain)."""


class PropagationInputError(SimlabInputError, ValueError):
    """Bad widths, depth, init or gain.

    A :class:`~simlab.errors.SimlabInputError` (the CLI turns it into exit status 2) that is also
    a :class:`ValueError`, so plain library callers can catch the usual type.
    """


def _check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int if it is a positive integer (``256`` or ``256.0``), else raise."""
    if isinstance(value, bool):
        raise PropagationInputError(
            f"{name}: {value!r} is not allowed; it must be a positive integer"
        )
    if isinstance(value, Integral):
        out = int(value)
    elif isinstance(value, Real) and float(value).is_integer():
        # counts may arrive as floats from "1e3"-style CLI parsing; accept exact integers only
        out = int(value)
    else:
        raise PropagationInputError(
            f"{name}: {value!r} is not allowed; it must be a positive integer"
        )
    if out < 1:
        raise PropagationInputError(f"{name}: {value!r} is not allowed; it must be >= 1")
    return out


def _check_init(init: str) -> None:
    if init not in INITS:
        raise PropagationInputError(
            f"init: {init!r} is not allowed; choose one of {', '.join(INITS)}"
        )


def resolve_gain(init: str, gain: float | None) -> float | None:
    """The gain actually used by ``init``: required for "gain", sqrt(2) by default for orthogonal.

    The other inits ignore ``gain`` so that a sweep such as ``--init kaiming,gain --gain 1.5``
    applies the gain only where it means something.
    """
    if init == "gain":
        if gain is None:
            raise PropagationInputError("gain: init 'gain' needs a value, e.g. --gain 1.414")
    elif init == "orthogonal":
        if gain is None:
            return ORTHOGONAL_DEFAULT_GAIN
    else:
        return None
    if not math.isfinite(gain) or gain < 0:
        raise PropagationInputError(f"gain: {gain!r} is not allowed; it must be finite and >= 0")
    return float(gain)


#: Var(W_l) of each init as (numerator, fan): numerator / fan, where a numerator of None is the
#: square of the gain (He et al. 2015; Glorot & Bengio 2010; LeCun et al. 1998; PyTorch's
#: nn.Linear draws U(+-1/sqrt(fan_in)), of variance 1/(3 fan_in); Saxe et al. 2014 for orthogonal)
INIT_VARIANCE: dict[str, tuple[float | None, str]] = {
    "kaiming": (2.0, "fan_in"),
    "kaiming_fan_out": (2.0, "fan_out"),
    "xavier": (2.0, "fan_in + fan_out"),
    "lecun": (1.0, "fan_in"),
    "torch_default": (1.0, "3 fan_in"),
    "orthogonal": (None, "max(fan_in, fan_out)"),
    "gain": (None, "fan_in"),
}
_FANS = {
    "fan_in": lambda fan_in, fan_out: fan_in,
    "fan_out": lambda fan_in, fan_out: fan_out,
    "fan_in + fan_out": lambda fan_in, fan_out: fan_in + fan_out,
    "3 fan_in": lambda fan_in, fan_out: 3.0 * fan_in,
    "max(fan_in, fan_out)": lambda fan_in, fan_out: max(fan_in, fan_out),
}


def weight_variance(init: str, fan_in: int, fan_out: int, gain: float | None = None) -> float:
    """Per-entry variance of a weight matrix of shape ``(fan_out, fan_in)`` under ``init``.

    Parameters
    ----------
    init : str
        One of :data:`INITS`.
    fan_in, fan_out : int
        Input and output widths of the layer (``n_{l-1}`` and ``n_l``).
    gain : float, optional
        ``g`` for ``init="gain"`` (required there); the gain of ``"orthogonal"`` (default
        ``sqrt(2)``). Ignored by the other inits.

    Returns
    -------
    float
        ``kaiming`` 2/fan_in, ``kaiming_fan_out`` 2/fan_out, ``xavier`` 2/(fan_in + fan_out),
        ``lecun`` 1/fan_in, ``torch_default`` 1/(3 fan_in) (the variance of U(+-1/sqrt(fan_in))),
        ``gain`` g^2/fan_in, and ``orthogonal`` **g^2 / max(fan_in, fan_out)**.

    Notes
    -----
    A Haar semi-orthogonal ``W`` has orthonormal rows when ``fan_out <= fan_in`` (each row a
    uniform unit vector in R^fan_in, so each entry has variance 1/fan_in) and orthonormal columns
    when ``fan_out >= fan_in`` (variance 1/fan_out); times ``g^2``. At equal widths with the default
    gain this is 2/fan_in, like Kaiming. The q and r recursions hold exactly in expectation with
    this variance, because ``E[W^T W] = n_l Var I`` and ``E[W W^T] = n_{l-1} Var I`` (see the
    module notes); when ``fan_out >= fan_in`` the forward map is even an exact isometry up to the
    gain, ``||W h||^2 = g^2 ||h||^2``.
    """
    _check_init(init)
    fan_in = _check_positive_int("fan_in", fan_in)
    fan_out = _check_positive_int("fan_out", fan_out)
    g = resolve_gain(init, gain)
    numerator, fan = INIT_VARIANCE[init]
    if numerator is None:  # the gain's square
        numerator = g * g
    return numerator / _FANS[fan](fan_in, fan_out)


def widths_from(L: int, width: int | Sequence[int]) -> tuple[int, ...]:
    """The widths ``(n_0, n_1, ..., n_L)`` of an L-layer network.

    Parameters
    ----------
    L : int
        Number of layers (weight matrices), ``>= 1``.
    width : int or sequence of int
        - one integer ``w``: every width is ``w``, input included: ``(w,) * (L + 1)``;
        - ``L + 1`` integers: ``n_0, n_1, ..., n_L`` (input width first);
        - ``L`` integers: the layer widths ``n_1, ..., n_L``; the input width is then taken equal
          to the first layer's, ``n_0 = n_1``.

    Returns
    -------
    tuple of int
        ``L + 1`` positive integers.

    Raises
    ------
    PropagationInputError
        (a ``ValueError``) if ``L < 1``, a width is not a positive integer, or the list has
        another length.
    """
    L = _check_positive_int("L", L)
    if isinstance(width, str):
        raise PropagationInputError(f"width: {width!r} is not allowed; give an integer or a list")
    if isinstance(width, Sequence | np.ndarray):
        ws = [_check_positive_int("width", w) for w in width]
        if len(ws) == L + 1:
            return tuple(ws)
        if len(ws) == L:
            return (ws[0], *ws)
        raise PropagationInputError(
            f"width: a list of {len(ws)} widths does not fit L = {L}; give L = {L} widths "
            f"(n_1..n_L, input width = n_1) or L + 1 = {L + 1} (n_0..n_L)"
        )
    w = _check_positive_int("width", width)
    return (w,) * (L + 1)


def _as_widths(widths: Sequence[int]) -> tuple[int, ...]:
    ws = tuple(_check_positive_int("width", w) for w in widths)
    if len(ws) < 2:
        raise PropagationInputError(
            f"widths: {list(widths)!r} is not allowed; give n_0..n_L (at least two widths)"
        )
    return ws


def gains_c(widths: Sequence[int], init: str, gain: float | None = None) -> np.ndarray:
    """``c_l = n_{l-1} Var(W_l)`` for ``l = 1..L`` (index ``l - 1``).

    ``c_l`` is the factor by which layer l multiplies the mean square of its input:
    ``E[mean_i z_l[i]^2 | h_{l-1}] = c_l mean_j h_{l-1}[j]^2 + sigma_b^2``.
    """
    ws = _as_widths(widths)
    return np.array(
        [ws[k - 1] * weight_variance(init, ws[k - 1], ws[k], gain) for k in range(1, len(ws))]
    )


def forward_q(
    widths: Sequence[int],
    init: str,
    sigma_x: float = 1.0,
    sigma_b: float = 0.0,
    gain: float | None = None,
) -> np.ndarray:
    """Forward second moments ``q_l = E[mean_i z_l[i]^2]`` for ``l = 1..L``.

    Parameters
    ----------
    widths : sequence of int
        ``n_0, ..., n_L`` (see :func:`widths_from`).
    init : str
        One of :data:`INITS`.
    sigma_x : float
        Standard deviation of the input entries.
    sigma_b : float
        Standard deviation of the bias entries (drawn with the weights; 0 for no bias).
    gain : float, optional
        See :func:`weight_variance`.

    Returns
    -------
    numpy.ndarray
        Shape ``(L,)``; entry ``l - 1`` is ``q_l``:
        ``q_1 = c_1 sigma_x^2 + sigma_b^2``, ``q_l = (c_l / 2) q_{l-1} + sigma_b^2``.

    Notes
    -----
    Exact in expectation at every width for symmetric weights and zero or symmetric random bias
    (module notes). The input enters ``q_1`` without a ReLU, hence no 1/2 there.
    """
    if sigma_x < 0 or sigma_b < 0:
        raise PropagationInputError(
            f"sigma_x, sigma_b: ({sigma_x!r}, {sigma_b!r}) not allowed; they must be >= 0"
        )
    c = gains_c(widths, init, gain)
    q = np.empty(len(c))
    q[0] = c[0] * sigma_x**2 + sigma_b**2
    for k in range(1, len(c)):
        q[k] = 0.5 * c[k] * q[k - 1] + sigma_b**2
    return q


def backward_r(widths: Sequence[int], init: str, gain: float | None = None) -> np.ndarray:
    """Backward second moments ``r_l = E[mean_i (dl/dh_l[i])^2]`` for ``l = 0..L``.

    The loss is ``l = g^T h_L`` with ``g`` independent of the network, ``E[g g^T] = I``, so
    ``dl/dh_L = g`` and ``dl/dh_{l-1} = W_l^T (relu'(z_l) * dl/dh_l)``.

    Parameters
    ----------
    widths : sequence of int
        ``n_0, ..., n_L``.
    init : str
        One of :data:`INITS`.
    gain : float, optional
        See :func:`weight_variance`.

    Returns
    -------
    numpy.ndarray
        Shape ``(L + 1,)``; entry ``l`` is ``r_l``: ``r_L = 1`` and
        ``r_{l-1} = (n_l Var(W_l) / 2) r_l`` (He et al. 2015, eq. 14, in SPEC indexing, which is
        right for this definition of r: the factor of layer l uses its fan_out ``n_l``).

    Notes
    -----
    Why the indexing: ``(dl/dh_{l-1})[j] = sum_i W_l[i, j] delta_l[i]`` sums ``n_l`` terms, so
    ``E[(dl/dh_{l-1}[j])^2] = Var(W_l) E||delta_l||^2 = Var(W_l) n_l r_l / 2``, and that is
    ``r_{l-1}``, a mean over the ``n_{l-1}`` units of layer l-1. Exact in expectation at any width
    for ReLU and symmetric weights (module notes: Hanin's sign-flip argument), up to the
    dead-layer event of probability about ``sum_k 2^-n_k`` when the bias is zero. Not exact for
    tanh or other smooth activations, where it is the infinite-width mean-field result.
    ``kaiming_fan_out`` gives ``r_l = 1`` for all l.
    """
    ws = _as_widths(widths)
    L = len(ws) - 1
    r = np.empty(L + 1)
    r[L] = 1.0
    for k in range(L, 0, -1):
        r[k - 1] = 0.5 * ws[k] * weight_variance(init, ws[k - 1], ws[k], gain) * r[k]
    return r


def hanin_rolnick_second_moment(widths: Sequence[int]) -> float:
    """``E[(A_L / A_0)^2] = prod_{l=1..L} (1 + 5 / n_l)``, with ``A_l = ||h_l||^2 / n_l``.

    Parameters
    ----------
    widths : sequence of int
        ``n_0, ..., n_L``; ``n_0`` does not enter.

    Returns
    -------
    float

    Notes
    -----
    Exact at every width under this convention: Gaussian Kaiming weights ``N(0, 2/n_{l-1})``,
    zero bias, ReLU at every layer including the last, ``h_0 = x`` any fixed nonzero input (or a
    random one, independent of the weights) and ``A_0 = ||x||^2 / n_0`` computed from the
    **realised** input. Proof: given ``h_{l-1}``, the ``z_l[i]`` are i.i.d.
    ``N(0, 2 A_{l-1})``, so ``A_l / A_{l-1} = (2 / n_l) sum_i relu(xi_i)^2 =: Y_l`` with
    ``xi`` i.i.d. N(0, 1), independent across layers and of x. ``E[relu(xi)^2] = 1/2`` and
    ``E[relu(xi)^4] = 3/2`` give ``E[Y_l] = 1`` and
    ``E[Y_l^2] = (4/n_l^2) (n_l 3/2 + n_l (n_l - 1)/4) = 1 + 5/n_l``.
    (A dead layer is included: then ``Y_l = 0``.) If ``A_0`` is replaced by its expectation
    ``sigma_x^2`` for Gaussian x, the moment gains a factor ``1 + 2/n_0``; without the ReLU on the
    last layer ``E[A_L / A_0] = 2``. ``exp(5 sum_l 1/n_l)`` is only the large-width approximation,
    above the product by a relative ``O(sum_l 1/n_l^2)``.

    Checked by simulating the network (estimate +- SE vs product; exponential form):
    widths 5^4: 7.91 +- 0.07 vs 8.00 (20.1); 10^6: 7.68 +- 0.13 vs 7.59 (12.2);
    20^11: 9.5 +- 0.5 vs 9.31 (12.2); (4, 10, 12, 10): 3.211 +- 0.014 vs 3.1875 (4.12).

    ``(A_L / A_0)^2`` is heavy-tailed: its variance is ``E[(A_L/A_0)^4] - (prod)^2`` with the
    fourth moment from :func:`norm_ratio_moment` (at width 10, L = 5: sd 133 for a mean of 7.6),
    so a sample mean is skewed low and its standard error is itself noisy; budget samples with
    that variance, and flag the tail.
    """
    ws = _as_widths(widths)
    return float(np.prod([1.0 + 5.0 / n for n in ws[1:]]))


def norm_ratio_moment(widths: Sequence[int], k: int) -> float:
    """``E[(A_L / A_0)^k]`` exactly, under the convention of :func:`hanin_rolnick_second_moment`.

    Parameters
    ----------
    widths : sequence of int
        ``n_0, ..., n_L``; ``n_0`` does not enter.
    k : int
        Order, ``>= 0``.

    Returns
    -------
    float
        ``prod_l E[Y_l^k]`` where ``Y_l = (2 / n_l) chi2_{K_l}``, ``K_l ~ Binomial(n_l, 1/2)``
        (the number of active units; ``chi2_0 = 0``), so
        ``E[Y^k] = (2/n)^k E[K (K + 2) ... (K + 2k - 2)]``. ``k = 1`` gives 1, ``k = 2`` gives
        ``prod (1 + 5/n_l)``; ``k = 4`` gives the variance of the second-moment estimator.

    Notes
    -----
    The law of ``A_L / A_0`` is exactly that of a product of independent ``Y_l`` (see
    :func:`hanin_rolnick_second_moment`), which also gives its histogram by sampling or by
    numerical convolution of ``log Y_l``.
    """
    from scipy import stats

    ws = _as_widths(widths)
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 0:
        raise PropagationInputError(f"k: {k!r} is not allowed; it must be an integer >= 0")
    total = 1.0
    for n in ws[1:]:
        K = np.arange(n + 1, dtype=float)
        rising = np.prod([K + 2 * j for j in range(k)], axis=0) if k else np.ones_like(K)
        total *= (2.0 / n) ** k * float(np.dot(stats.binom.pmf(np.arange(n + 1), n, 0.5), rising))
    return total


def arccos_map(rho: float | np.ndarray) -> float | np.ndarray:
    """One layer of the ReLU correlation map (the degree-1 arc-cosine kernel, normalised).

    Parameters
    ----------
    rho : float or array
        Correlation in ``[-1, 1]`` (values a rounding error outside are clipped).

    Returns
    -------
    float or array
        ``(sqrt(1 - rho^2) + (pi - arccos rho) rho) / pi``
        ``= E[relu(u) relu(v)] / E[relu(u)^2]`` for a standard Gaussian pair of correlation rho.

    Notes
    -----
    Maps [-1, 1] onto [0, 1], with ``f(1) = 1`` (the fixed point), ``f(0) = 1/pi`` and
    ``f'(1) = 1``, so correlations are driven towards 1 slowly (:func:`arccos_tail`).
    """
    r = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    out = (np.sqrt(1.0 - r * r) + (np.pi - np.arccos(r)) * r) / np.pi
    return float(out) if out.ndim == 0 else out


def _sin_minus_theta_cos(theta: np.ndarray) -> np.ndarray:
    """``sin(theta) - theta cos(theta)`` without the cancellation at small theta (~theta^3/3)."""
    t = np.asarray(theta, dtype=float)
    small = t < 0.1
    t2 = t * t
    # Taylor series sum_k (-1)^(k+1) 2k theta^(2k+1) / (2k+1)!; four terms reach 1e-14 at 0.1
    series = t * t2 * (1 / 3 - t2 * (1 / 30 - t2 * (1 / 840 - t2 / 45360)))
    return np.where(small, series, np.sin(t) - t * np.cos(t))


def _arccos_map_complement(e: np.ndarray) -> np.ndarray:
    """``1 - f(1 - e)`` for :func:`arccos_map` f, accurate when ``e = 1 - rho`` is tiny.

    With ``theta = arccos(1 - e) = 2 arcsin(sqrt(e / 2))``,
    ``1 - f = 2 sin^2(theta / 2) - (sin theta - theta cos theta) / pi``: no cancellation.
    """
    theta = 2.0 * np.arcsin(np.sqrt(np.clip(e, 0.0, 2.0) / 2.0))
    return 2.0 * np.sin(theta / 2.0) ** 2 - _sin_minus_theta_cos(theta) / np.pi


def iterate_arccos(rho0: float | np.ndarray, L: int, *, complement: bool = False) -> np.ndarray:
    """Iterates ``rho_0, rho_1 = f(rho_0), ..., rho_L`` of :func:`arccos_map`.

    Parameters
    ----------
    rho0 : float or array
        Input correlation(s) ``rho_0`` in [-1, 1].
    L : int
        Number of layers, >= 1.
    complement : bool
        Return ``1 - rho_l`` instead of ``rho_l``, computed without rounding ``rho_l`` to
        a double first (use it to study the tail, where ``1 - rho_l`` is tiny).

    Returns
    -------
    numpy.ndarray
        Shape ``(L + 1, *shape(rho0))``; row ``l`` is ``rho_l`` (row 0 is ``rho0`` itself), or
        ``1 - rho_l`` with ``complement=True``.

    Notes
    -----
    ``rho_l`` is the limit, as every width goes to infinity, of the cosine between the layer-l
    activations ``h_l^a, h_l^b`` of two inputs with cosine ``rho_0`` (Kaiming weights, zero
    bias; with Kaiming the norms are preserved, so the cosine is the correlation). At finite width
    the cosine of ``h_{l-1}`` is itself random and the map is nonlinear, so the iterates carry
    O(1/width) corrections.

    The iteration runs on ``e = 1 - rho`` with a cancellation-free form of the map: iterating
    ``rho`` itself in double precision drifts once ``1 - rho`` nears 1e-8 (depth ~1e5, where the
    naive iterate is off by 10%).
    """
    L = _check_positive_int("L", L)
    r0 = np.asarray(rho0, dtype=float)
    if np.any(~np.isfinite(r0)) or np.any(np.abs(r0) > 1.0):
        raise PropagationInputError(f"rho0: {rho0!r} is not allowed; it must lie in [-1, 1]")
    e = np.empty((L + 1, *r0.shape))
    e[0] = 1.0 - r0
    for k in range(1, L + 1):
        e[k] = _arccos_map_complement(e[k - 1])
    return e if complement else 1.0 - e


def arccos_tail(layer: int | np.ndarray) -> float | np.ndarray:
    """Large-depth asymptote ``1 - rho_l ~ 9 pi^2 / (2 l^2)``.

    Parameters
    ----------
    layer : int or array
        Layer index l (>= 1).

    Returns
    -------
    float or array
        ``9 pi^2 / (2 l^2)``.

    Notes
    -----
    Near 1, with ``e = 1 - rho`` and ``theta = arccos rho``, the map is
    ``rho' = cos(theta) + (sin(theta) - theta cos(theta)) / pi = rho + theta^3 / (3 pi) + ...``,
    so ``e' = e - (2 sqrt(2) / (3 pi)) e^{3/2} + O(e^2)``; the ODE ``de/dl = -c e^{3/2}`` gives
    ``e ~ 4 / (c^2 l^2) = 9 pi^2 / (2 l^2)`` whatever ``rho_0 < 1``. The e^2 term of the map
    vanishes, and carrying the expansion one order further (in ``u = e^{-1/2}``,
    ``u' = u + c/2 + 3c^2 / (8u) + ...``) gives ``u_l = (c/2) l + (3c/4) ln l + C(rho_0)``, i.e.
    ``1 - rho_l = 9 pi^2 / (2 l^2) * (1 - 3 ln(l) / l + O(1/l))``: the tail **overestimates**
    ``1 - rho_l``, with a relative error that decays only like ``3 ln(l) / l``.
    Measured against :func:`iterate_arccos` (``tail / (1 - rho_l) - 1``):

    ========  ========  ========  ========  ========  ========  ========
    rho_0     l = 10    l = 30    l = 100   l = 300   l = 1000  l = 1e4
    ========  ========  ========  ========  ========  ========  ========
    0         2.46      0.76      0.24      0.089     0.030     0.0036
    0.9       9.1       2.1       0.53      0.18      0.055     0.0061
    ========  ========  ========  ========  ========  ========  ========

    So at the depths of a simulation (L ~ 30) it is a shape (the slope -2 on log-log axes), off by
    a factor ~1.8 at l = 30; it is within 10% only from l ~ 300 and within about 1% from l ~ 3000
    (rho_0 = 0). Do not z-test it at small l.
    """
    la = np.asarray(layer, dtype=float)
    out = 9.0 * np.pi**2 / (2.0 * la * la)
    return float(out) if out.ndim == 0 else out
