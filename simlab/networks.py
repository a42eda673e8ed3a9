"""Random deep MLPs: weight draws, batched forward and backward passes, back-propagation checks.

The samplers behind ``simlab propagation``. Conventions (SPEC section 1.4): ``h_0 = x``,
``z_l = W_l h_{l-1} + b_l``, ``h_l = act(z_l)`` for ``l = 1..L`` (the last layer too), ``W_l``
of shape ``(n_l, n_{l-1})``. Python lists are 0-based, so ``weights[l - 1]`` is ``W_l`` and
per-layer outputs indexed by ``l = 1..L`` sit at index ``l - 1``; outputs indexed by
``l = 0..L`` (``h_l``, ``A_l``, ``r_l``, ``dl/dh_l``) sit at index ``l``.

Inputs are rows: a batch ``x`` has shape ``(..., B, n_0)`` and a layer computes
``z = h @ W.T + b``, so a whole batch through a layer is one matrix product. Weights may carry
leading "network" axes, ``(S, n_l, n_{l-1})``, to push inputs through S independent networks at
once (``numpy.matmul`` broadcasting); the leading axes of ``x``, the weights and the biases
broadcast together.

The analytic predictions these are compared with live in :mod:`simlab.theory.meanfield`, which
states every init's variance from its own table: the draws here never read it (a prediction that
shared the sampler's code would pass whatever mistake they share).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simlab.theory.meanfield import INITS, PropagationInputError, resolve_gain

DISTS: tuple[str, ...] = ("normal", "uniform")
"""Entry distributions of equal variance for the i.i.d. inits."""

KEEP: tuple[str, ...] = ("stats", "masks", "z")
"""What :func:`forward` keeps besides the per-input statistics."""

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")
"""Activations of :func:`mlp_loss_and_grads`."""


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------


def _shape(size: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if size is None:
        return ()
    if isinstance(size, int | np.integer):
        return (int(size),)
    return tuple(int(s) for s in size)


def _haar_semi_orthogonal(
    rng: np.random.Generator, fan_in: int, fan_out: int, lead: tuple[int, ...], dtype: type
) -> np.ndarray:
    """Haar-random ``(fan_out, fan_in)`` matrices with orthonormal rows or columns.

    QR of a Gaussian ``(max, min)`` matrix gives Q with orthonormal columns; multiplying each
    column by the sign of ``R``'s diagonal makes Q Haar-distributed (without it, the law of Q
    depends on the QR routine's sign convention). Transposed when ``fan_out < fan_in``.
    """
    big, small = max(fan_in, fan_out), min(fan_in, fan_out)
    g = rng.standard_normal((*lead, big, small))
    q, r = np.linalg.qr(g)
    d = np.diagonal(r, axis1=-2, axis2=-1)
    q = q * np.where(d < 0, -1.0, 1.0)[..., None, :]
    w = q if fan_out >= fan_in else np.swapaxes(q, -1, -2)
    return np.ascontiguousarray(w, dtype=dtype)


def entry_variance(init: str, fan_in: int, fan_out: int, gain: float | None) -> float:
    """The variance each entry of a ``(fan_out, fan_in)`` matrix is drawn with, under ``init``.

    The sampler's own statement of the inits (PyTorch's ``kaiming_normal_`` with mode fan_in or
    fan_out and ReLU gain sqrt 2, ``xavier_normal_`` with gain 1, LeCun, ``nn.Linear``'s
    ``U(+-1/sqrt(fan_in))``, a plain gain over fan_in; a semi-orthogonal matrix times g has
    entries of variance g^2 / max(fan_in, fan_out)). Deliberately not
    :func:`simlab.theory.meanfield.weight_variance`: the predictions are checked against draws
    made from this table.
    """
    if init not in INITS:
        raise PropagationInputError(
            f"init: {init!r} is not allowed; choose one of {', '.join(INITS)}"
        )
    for name, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        if isinstance(fan, bool) or int(fan) != fan or fan < 1:
            raise PropagationInputError(
                f"{name}: {fan!r} is not allowed; it must be a positive integer"
            )
    g = resolve_gain(init, gain)
    variances = {
        "kaiming": lambda: 2.0 / fan_in,
        "kaiming_fan_out": lambda: 2.0 / fan_out,
        "xavier": lambda: 2.0 / (fan_in + fan_out),
        "lecun": lambda: 1.0 / fan_in,
        "torch_default": lambda: 1.0 / (3.0 * fan_in),
        "orthogonal": lambda: g * g / max(fan_in, fan_out),
        "gain": lambda: g * g / fan_in,
    }
    return variances[init]()


def draw_weights(
    rng: np.random.Generator,
    init: str,
    fan_in: int,
    fan_out: int,
    dist: str = "normal",
    gain: float | None = None,
    *,
    size: int | tuple[int, ...] | None = None,
    dtype: type = np.float64,
) -> np.ndarray:
    """Draw a weight matrix ``W`` of shape ``(fan_out, fan_in)`` (or a stack of them).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    init : str
        One of :data:`simlab.theory.meanfield.INITS`; the per-entry variance is
        :func:`entry_variance`.
    fan_in, fan_out : int
        ``n_{l-1}`` and ``n_l``.
    dist : {"normal", "uniform"}
        Entry law of the i.i.d. inits: ``N(0, v)`` or ``U(-sqrt(3 v), sqrt(3 v))``.
        ``torch_default`` is always ``U(+-1/sqrt(fan_in))`` (PyTorch's ``nn.Linear``), and
        ``orthogonal`` is always a Haar semi-orthogonal matrix; both ignore ``dist``.
    gain : float, optional
        Required by ``init="gain"``; the gain of ``orthogonal`` (default ``sqrt(2)``).
    size : int or tuple of int, optional
        Leading shape: that many independent matrices, ``(*size, fan_out, fan_in)``.
    dtype : numpy dtype
        float64 (default) or float32.

    Returns
    -------
    numpy.ndarray
        Shape ``(*size, fan_out, fan_in)``.
    """
    if dist not in DISTS:
        raise PropagationInputError(
            f"dist: {dist!r} is not allowed; choose one of {', '.join(DISTS)}"
        )
    var = entry_variance(init, fan_in, fan_out, gain)  # validates init, widths and gain
    shape = (*_shape(size), fan_out, fan_in)
    if init == "orthogonal":
        g = resolve_gain(init, gain)
        return g * _haar_semi_orthogonal(rng, fan_in, fan_out, _shape(size), dtype)
    if init == "torch_default" or dist == "uniform":
        a = math.sqrt(3.0 * var)  # = 1/sqrt(fan_in) for torch_default
        return rng.uniform(-a, a, size=shape).astype(dtype, copy=False)
    return (math.sqrt(var) * rng.standard_normal(shape, dtype=dtype)).astype(dtype, copy=False)


def draw_network(
    rng: np.random.Generator,
    widths: Sequence[int],
    init: str,
    dist: str = "normal",
    gain: float | None = None,
    sigma_b: float = 0.0,
    *,
    size: int | tuple[int, ...] | None = None,
    dtype: type = np.float64,
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Draw all weights (and biases) of a network of widths ``n_0..n_L``.

    Parameters
    ----------
    rng, init, dist, gain, size, dtype
        As in :func:`draw_weights`.
    widths : sequence of int
        ``n_0, ..., n_L`` (see :func:`simlab.theory.meanfield.widths_from`).
    sigma_b : float
        Bias entries are ``N(0, sigma_b^2)``, drawn with the weights; 0 means no bias.

    Returns
    -------
    weights : list of numpy.ndarray
        ``weights[l - 1] = W_l``, shape ``(*size, n_l, n_{l-1})``.
    biases : list of numpy.ndarray or None
        ``biases[l - 1] = b_l``, shape ``(*size, n_l)``; None when ``sigma_b == 0``.
    """
    if sigma_b < 0:
        raise PropagationInputError(f"sigma_b: {sigma_b!r} is not allowed; it must be >= 0")
    ws = list(widths)
    weights = [
        draw_weights(rng, init, ws[k - 1], ws[k], dist, gain, size=size, dtype=dtype)
        for k in range(1, len(ws))
    ]
    if sigma_b == 0:
        return weights, None
    biases = [
        (sigma_b * rng.standard_normal((*_shape(size), ws[k]))).astype(dtype, copy=False)
        for k in range(1, len(ws))
    ]
    return weights, biases


# --------------------------------------------------------------------------------------------
# batched forward and backward signal propagation (ReLU)
# --------------------------------------------------------------------------------------------


def _mean_square(v: np.ndarray) -> np.ndarray:
    """``mean_i v[..., i]^2`` as float64: one dot product per row, no temporary of v's size."""
    return np.einsum("...i,...i->...", v, v).astype(np.float64, copy=False) / v.shape[-1]


def _lead_shape(x: np.ndarray, weights: Sequence[np.ndarray], biases) -> tuple[int, ...]:
    shapes = [x.shape[:-2]] + [w.shape[:-2] for w in weights]
    if biases is not None:
        shapes += [b.shape[:-1] for b in biases if b is not None]
    return np.broadcast_shapes(*shapes)


def _check_chain(n0: int, weights: Sequence[np.ndarray], biases) -> None:
    if len(weights) == 0:
        raise ValueError("weights: give at least one layer")
    fan_in = n0
    for k, w in enumerate(weights, start=1):
        if w.ndim < 2 or w.shape[-1] != fan_in:
            raise ValueError(
                f"weights[{k - 1}] (W_{k}) has shape {w.shape}; expected (..., n_{k}, {fan_in})"
            )
        fan_in = w.shape[-2]
    if biases is not None:
        if len(biases) != len(weights):
            raise ValueError(f"biases: {len(biases)} given for {len(weights)} layers")
        for k, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            if b is not None and b.shape[-1] != w.shape[-2]:
                raise ValueError(f"biases[{k - 1}] (b_{k}) has shape {b.shape}; expected n_{k}")


@dataclass(frozen=True)
class ForwardResult:
    """What :func:`forward` returns. ``lead`` is the broadcast leading shape, B the batch size.

    Attributes
    ----------
    q : numpy.ndarray
        float64, ``(*lead, B, L)``: ``q[..., b, l - 1] = mean_i z_l[i]^2`` for input b.
    a : numpy.ndarray
        float64, ``(*lead, B, L + 1)``: ``a[..., b, l] = A_l = ||h_l||^2 / n_l``; ``a[..., 0]``
        is ``||x||^2 / n_0`` of the realised input.
    h_last : numpy.ndarray
        ``h_L`` (the logits), ``(*lead, B, n_L)``.
    z : list of numpy.ndarray or None
        ``z[l - 1] = z_l`` when ``keep="z"``.
    masks : list of numpy.ndarray or None
        ``masks[l - 1] = (z_l > 0)`` (bool, i.e. ``relu'(z_l)``) when ``keep="masks"`` or
        ``"z"``: all that :func:`backward_signal` needs, at 1/8 of the memory of ``z``.
    """

    q: np.ndarray
    a: np.ndarray
    h_last: np.ndarray
    z: list[np.ndarray] | None
    masks: list[np.ndarray] | None


def forward(
    x_batch: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None] | None = None,
    *,
    keep: str = "stats",
) -> ForwardResult:
    """Push a batch of inputs through a ReLU MLP, ``h_l = relu(W_l h_{l-1} + b_l)``.

    Parameters
    ----------
    x_batch : numpy.ndarray
        ``(..., B, n_0)``: one input per row.
    weights : sequence of numpy.ndarray
        ``weights[l - 1] = W_l`` of shape ``(..., n_l, n_{l-1})``; leading axes are independent
        networks and broadcast against those of ``x_batch``.
    biases : sequence of (numpy.ndarray or None), optional
        ``biases[l - 1] = b_l`` of shape ``(..., n_l)``; None for no bias.
    keep : {"stats", "masks", "z"}
        ``"stats"`` keeps only the per-input statistics and ``h_L`` (two reused buffers, so the
        memory is that of two layers, whatever L); ``"masks"`` also keeps ``z_l > 0`` per layer
        (for :func:`backward_signal`); ``"z"`` keeps every ``z_l`` (for histograms).

    Returns
    -------
    ForwardResult

    Notes
    -----
    Each layer is one ``numpy.matmul`` of the whole batch, computed in the dtype of the inputs
    (pass float32 arrays for about twice the speed); the per-input statistics are returned in
    float64 so that callers can accumulate them over many batches without loss. The sums over
    units inside a statistic run in the working dtype (relative error ~1e-7 n^{1/2} in float32).
    """
    if keep not in KEEP:
        raise ValueError(f"keep: {keep!r} is not allowed; choose one of {', '.join(KEEP)}")
    x = np.asarray(x_batch)
    if x.ndim < 2:
        raise ValueError(f"x_batch has shape {x.shape}; expected (..., B, n_0)")
    _check_chain(x.shape[-1], weights, biases)
    dtype = np.result_type(x, *weights)
    lead = _lead_shape(x, weights, biases)
    B, L = x.shape[-2], len(weights)
    widths = [x.shape[-1]] + [w.shape[-2] for w in weights]
    rows = math.prod(lead) * B
    q = np.empty((*lead, B, L))
    a = np.empty((*lead, B, L + 1))
    a[..., 0] = np.broadcast_to(_mean_square(x), (*lead, B))
    # Reused buffers (stats mode): z_l lands in zbuf, relu(z_l) in hbuf; matmul reads h_{l-1}
    # from hbuf into zbuf, then relu overwrites hbuf, so the two never alias within a step.
    nmax = max(widths[1:])
    zbuf = np.empty(rows * nmax, dtype=dtype) if keep != "z" else None
    hbuf = np.empty(rows * nmax, dtype=dtype)
    zs: list[np.ndarray] | None = [] if keep == "z" else None
    masks: list[np.ndarray] | None = [] if keep != "stats" else None
    h = x
    for k in range(1, L + 1):
        n = widths[k]
        shape = (*lead, B, n)
        z = np.empty(shape, dtype=dtype) if zbuf is None else zbuf[: rows * n].reshape(shape)
        np.matmul(h, np.swapaxes(weights[k - 1], -1, -2), out=z)
        if biases is not None and biases[k - 1] is not None:
            z += biases[k - 1][..., None, :]
        q[..., k - 1] = _mean_square(z)
        h = hbuf[: rows * n].reshape(shape)
        np.maximum(z, 0, out=h)
        a[..., k] = _mean_square(h)
        if masks is not None:
            masks.append(z > 0)
        if zs is not None:
            zs.append(z)
    return ForwardResult(q=q, a=a, h_last=h, z=zs, masks=masks)


@dataclass(frozen=True)
class BackwardResult:
    """What :func:`backward_signal` returns.

    Attributes
    ----------
    r : numpy.ndarray
        float64, ``(*lead, B, L + 1)``: ``r[..., b, l] = mean_i (dl/dh_l[i])^2`` for input b.
    grads : list of numpy.ndarray or None
        ``grads[l] = dl/dh_l`` for ``l = 0..L`` when ``keep="grads"``.
    """

    r: np.ndarray
    grads: list[np.ndarray] | None


def backward_signal(
    patterns: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    g: np.ndarray,
    *,
    keep: str = "stats",
) -> BackwardResult:
    """Back-propagate ``l = g^T h_L`` through a ReLU MLP: ``dl/dh_l`` for ``l = L..0``.

    Parameters
    ----------
    patterns : sequence of numpy.ndarray
        Per layer ``l = 1..L`` either ``z_l`` or the boolean ``z_l > 0``
        (:attr:`ForwardResult.z` or :attr:`ForwardResult.masks`), ``(*lead, B, n_l)``.
    weights : sequence of numpy.ndarray
        The same weights as the forward pass.
    g : numpy.ndarray
        ``dl/dh_L``, broadcastable to ``(*lead, B, n_L)``; the signal experiment draws it
        ``N(0, I)`` per input, independent of the network.
    keep : {"stats", "grads"}
        ``"grads"`` also returns every ``dl/dh_l``.

    Returns
    -------
    BackwardResult

    Notes
    -----
    ``delta_l = relu'(z_l) * dl/dh_l`` with ``relu'(0) = 0``, and
    ``dl/dh_{l-1} = W_l^T delta_l``, which for row-vector inputs is ``delta_l @ W_l``.
    """
    if keep not in ("stats", "grads"):
        raise ValueError(f"keep: {keep!r} is not allowed; choose stats or grads")
    L = len(weights)
    if len(patterns) != L:
        raise ValueError(f"patterns: {len(patterns)} given for {L} layers")
    lead_b = np.broadcast_shapes(patterns[-1].shape, np.shape(g))[:-1]  # (*lead, B)
    dtype = np.result_type(g, *weights)
    u = np.broadcast_to(np.asarray(g, dtype=dtype), (*lead_b, weights[-1].shape[-2]))
    r = np.empty((*lead_b, L + 1))
    r[..., L] = _mean_square(u)
    grads: list[np.ndarray] | None = [u] if keep == "grads" else None
    for k in range(L, 0, -1):
        m = patterns[k - 1]
        delta = u * m if m.dtype == np.bool_ else u * (m > 0)
        u = np.matmul(delta, weights[k - 1])
        r[..., k - 1] = _mean_square(u)
        if grads is not None:
            grads.append(u)
    if grads is not None:
        grads.reverse()
    return BackwardResult(r=r, grads=grads)


# --------------------------------------------------------------------------------------------
# an MLP with softmax cross-entropy: analytic back-propagation and finite differences
# --------------------------------------------------------------------------------------------


def _act(name: str):
    """``(sigma, sigma')`` for the activation name; ``relu'(0) = 0``."""
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(z.dtype))
    if name == "tanh":
        return np.tanh, (lambda z: 1.0 - np.tanh(z) ** 2)
    raise ValueError(f"activation: {name!r} is not allowed; choose one of {', '.join(ACTIVATIONS)}")


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example ``-sum_k y_k log softmax(logits)_k`` and the softmax, stably."""
    s = logits - logits.max(axis=-1, keepdims=True)
    logsum = np.log(np.exp(s).sum(axis=-1, keepdims=True))
    logp = s - logsum
    return -(y * logp).sum(axis=-1), np.exp(logp)


@dataclass(frozen=True)
class MLPGradients:
    """Loss and gradients of the MLP (analytic or by finite differences).

    Attributes
    ----------
    loss : float
        Total loss, the sum of ``losses`` over the batch.
    losses : numpy.ndarray
        ``(B,)`` per-example cross-entropy.
    dh : list of numpy.ndarray
        ``dh[l] = dl/dh_l``, ``(B, n_l)``, for ``l = 0..L`` (row b is the gradient of example
        b's own loss, since examples do not interact).
    delta : list of numpy.ndarray
        ``delta[l - 1] = dl/dz_l``, ``(B, n_l)``.
    dW : list of numpy.ndarray
        ``dW[l - 1] = dl/dW_l = sum_b delta_l[b] h_{l-1}[b]^T``, ``(n_l, n_{l-1})``.
    db : list of numpy.ndarray
        ``db[l - 1] = dl/db_l = sum_b delta_l[b]``, ``(n_l,)``.
    valid : dict of str to list of numpy.ndarray, or None
        Finite differences only: per quantity (keys ``"dh", "delta", "dW", "db"``), True where
        the entry was computed and no ReLU changed side under the ``+-eps`` perturbations.
    rounding : float or None
        Finite differences only: a bound on their rounding error,
        ``16 * float64 eps * max(1, loss) / step``, whatever the size of the entry (measured
        errors are 10 to 100 times smaller). Below it a relative error means nothing, so an
        exact check reads ``|a - f| <= rtol * max(|a|, |f|) + rounding``.
    h : list of numpy.ndarray or None
        Analytic only: the forward values ``h[l] = h_l``, ``(B, n_l)``, for ``l = 0..L``.
    dsigma : list of numpy.ndarray or None
        Analytic only: ``dsigma[l - 1] = sigma'(z_l)``, ``(B, n_l)``.
    ybar : numpy.ndarray or None
        Analytic only: ``softmax(h_L)``, ``(B, n_L)``, the one the gradient ``dl/dh_L`` uses.
    """

    loss: float
    losses: np.ndarray
    dh: list[np.ndarray]
    delta: list[np.ndarray]
    dW: list[np.ndarray]
    db: list[np.ndarray]
    valid: dict[str, list[np.ndarray]] | None = None
    rounding: float | None = None
    h: list[np.ndarray] | None = None
    dsigma: list[np.ndarray] | None = None
    ybar: np.ndarray | None = None

    QUANTITIES = ("dh", "delta", "dW", "db")


def _mlp_inputs(x, y_onehot, weights, biases):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y_onehot, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x has shape {x.shape}; expected (B, n_0)")
    ws = [np.asarray(w, dtype=np.float64) for w in weights]
    for w in ws:
        if w.ndim != 2:
            raise ValueError(f"a weight matrix has shape {w.shape}; expected (n_l, n_(l-1))")
    bs = [
        np.zeros(w.shape[0])
        if biases is None or biases[i] is None
        else np.asarray(biases[i], dtype=np.float64)
        for i, w in enumerate(ws)
    ]
    _check_chain(x.shape[1], ws, bs)
    if y.shape != (x.shape[0], ws[-1].shape[0]):
        raise ValueError(f"y_onehot has shape {y.shape}; expected {(x.shape[0], ws[-1].shape[0])}")
    return x, y, ws, bs


def mlp_loss_and_grads(
    x: np.ndarray,
    y_onehot: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None] | None = None,
    activation: str = "relu",
) -> MLPGradients:
    """Softmax cross-entropy of an MLP and its gradients by back-propagation (float64).

    Parameters
    ----------
    x : numpy.ndarray
        ``(B, n_0)`` inputs.
    y_onehot : numpy.ndarray
        ``(B, n_L)`` labels, one-hot (any rows summing to 1 work).
    weights : sequence of numpy.ndarray
        ``weights[l - 1] = W_l``, ``(n_l, n_{l-1})``.
    biases : sequence of (numpy.ndarray or None), optional
        ``biases[l - 1] = b_l``, ``(n_l,)``; None for zero.
    activation : {"relu", "tanh"}
        Applied at every layer, the last included: the logits are ``h_L = sigma(z_L)``.

    Returns
    -------
    MLPGradients

    Notes
    -----
    The loss of example b is ``l_b = -sum_k y_k log ybar_k`` with ``ybar = softmax(h_L)``, and
    the returned ``loss`` is ``sum_b l_b`` (for ``B = 1`` the formulas below are the textbook
    per-example ones). Then

    - ``dl/dh_L = ybar - y`` (for one-hot y; ``ybar * sum(y) - y`` in general). **Sign:** the
      SPEC and the course (eq. 9) write ``y - ybar``; that is ``-dl/dh_L``, the gradient of the
      log-likelihood, i.e. the descent direction. For the loss as defined (a quantity to
      minimise) the gradient is ``ybar - y``, and the finite-difference check confirms it. The
      other formulas are linear in ``dl/dh_L``, so they hold in either convention as long as it
      is used throughout.
    - ``delta_l = sigma'(z_l) * dl/dh_l`` (``relu'(0) = 0``),
    - ``dl/dW_l = delta_l h_{l-1}^T`` summed over the batch (``delta.T @ h_prev``),
    - ``dl/db_l = delta_l`` summed over the batch,
    - ``dl/dh_{l-1} = W_l^T delta_l`` (``delta @ W`` for row vectors).
    """
    x, y, ws, bs = _mlp_inputs(x, y_onehot, weights, biases)
    sigma, dsigma = _act(activation)
    hs, zs = [x], []
    for w, b in zip(ws, bs, strict=True):
        zs.append(hs[-1] @ w.T + b)
        hs.append(sigma(zs[-1]))
    losses, ybar = _cross_entropy(hs[-1], y)
    L = len(ws)
    dh: list[np.ndarray] = [np.empty(0)] * (L + 1)
    delta: list[np.ndarray] = [np.empty(0)] * L
    dW: list[np.ndarray] = [np.empty(0)] * L
    db: list[np.ndarray] = [np.empty(0)] * L
    slopes = [dsigma(z) for z in zs]
    dh[L] = ybar * y.sum(axis=-1, keepdims=True) - y
    for k in range(L, 0, -1):
        delta[k - 1] = slopes[k - 1] * dh[k]
        dW[k - 1] = delta[k - 1].T @ hs[k - 1]
        db[k - 1] = delta[k - 1].sum(axis=0)
        dh[k - 1] = delta[k - 1] @ ws[k - 1]
    return MLPGradients(
        float(losses.sum()), losses, dh, delta, dW, db, h=hs, dsigma=slopes, ybar=ybar
    )


class _Tail:
    """Losses of the network from some layer upward, for stacks of perturbed copies."""

    def __init__(self, x, y, ws, bs, activation):
        self.y, self.ws, self.bs, self.relu = y, ws, bs, activation == "relu"
        self.sigma, _ = _act(activation)
        self.hs, self.zs = [x], []
        for w, b in zip(ws, bs, strict=True):
            self.zs.append(self.hs[-1] @ w.T + b)
            self.hs.append(self.sigma(self.zs[-1]))

    def from_z(self, k: int, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-example losses ``(K, B)`` and kink flags ``(K, B)`` given a stack of ``z_k``.

        A flag is True when some ReLU at layer k or above sits on the other side of 0 than in
        the unperturbed network: the central difference then straddles a kink.
        """
        flag = np.zeros(z.shape[:-1], dtype=bool)
        top = len(self.ws)
        for m in range(k, top + 1):
            if self.relu:
                flag |= ((z > 0) != (self.zs[m - 1] > 0)).any(axis=-1)
            h = self.sigma(z)
            if m < top:
                z = h @ self.ws[m].T + self.bs[m]
        return _cross_entropy(h, self.y)[0], flag

    def from_h(self, k: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`from_z`, given a stack of ``h_k`` (layers above k only)."""
        if k == len(self.ws):
            return _cross_entropy(h, self.y)[0], np.zeros(h.shape[:-1], dtype=bool)
        return self.from_z(k + 1, h @ self.ws[k].T + self.bs[k])


def _chunks(total: int, per: int):
    for s in range(0, total, per):
        yield s, min(total, s + per)


def mlp_finite_differences(
    x: np.ndarray,
    y_onehot: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None] | None = None,
    activation: str = "relu",
    *,
    eps: float = 1e-5,
    max_entries: int | None = None,
    rng: np.random.Generator | None = None,
) -> MLPGradients:
    """The quantities of :func:`mlp_loss_and_grads` by central finite differences (float64).

    Parameters
    ----------
    x, y_onehot, weights, biases, activation
        As in :func:`mlp_loss_and_grads`.
    eps : float
        Step. Central differences at ``eps`` and ``2 eps`` are combined by Richardson
        extrapolation, ``(4 D(eps) - D(2 eps)) / 3``, which cancels the ``O(eps^2)`` truncation
        error (the third derivative: large for saturating tanh networks, where plain central
        differences erred by 1.5e-6 relative at eps = 1e-5); what is left is ``O(eps^4)`` and
        the rounding error, about ``1e-16 |l| / eps``, which ``rounding`` bounds.
    max_entries : int, optional
        Check at most this many entries of each ``W_l`` (a random subset drawn from ``rng``);
        the others are NaN with ``valid`` False. For wide layers, where every entry costs two
        forward passes of the batch.
    rng : numpy.random.Generator, optional
        Needed with ``max_entries``.

    Returns
    -------
    MLPGradients
        With ``valid`` masks: for ReLU, entries whose ``+-eps`` perturbation moves any
        pre-activation of the affected examples (for ``dW``, ``db``: of any example) across 0
        are marked False, because a central difference across a kink averages the two slopes.

    Notes
    -----
    ``dl/dh_l[b, i]`` and ``dl/dz_l[b, i]`` are computed for all b at once by perturbing unit i
    of every example together: examples do not interact, so each example's own loss difference
    is its own derivative. ``dW`` and ``db`` perturb the parameter (every example moves) and
    difference the total loss; since ``z_l = W_l h_{l-1} + b_l`` is linear in them, the
    perturbed network is evaluated from ``z_l +- eps h_{l-1}[:, j] e_i`` (resp. ``+- eps e_i``),
    the same function without copying W. Perturbed copies are evaluated as stacks (one matrix
    product per layer for many perturbations), in chunks of about 2^21 numbers.
    """
    ws = list(weights)
    if max_entries is not None and rng is None:
        raise ValueError("max_entries needs rng to choose the entries")
    entries = []
    for w in ws:  # the same entries at both steps
        chosen = np.arange(w.size)
        if max_entries is not None and max_entries < chosen.size:
            chosen = np.sort(rng.choice(chosen.size, size=max_entries, replace=False))
        entries.append(chosen)
    one = _central_differences(x, y_onehot, ws, biases, activation, eps, entries)
    two = _central_differences(x, y_onehot, ws, biases, activation, 2 * eps, entries)

    def extrapolate(a: list[np.ndarray], b: list[np.ndarray]) -> list[np.ndarray]:
        return [(4 * u - v) / 3 for u, v in zip(a, b, strict=True)]

    valid = {
        key: [u & v for u, v in zip(one.valid[key], two.valid[key], strict=True)]
        for key in one.valid
    }
    return MLPGradients(
        one.loss,
        one.losses,
        extrapolate(one.dh, two.dh),
        extrapolate(one.delta, two.delta),
        extrapolate(one.dW, two.dW),
        extrapolate(one.db, two.db),
        valid,
        # (4/3) r(eps) + (1/3) r(2 eps) = 1.5 r(eps) for r proportional to 1/step
        1.5 * one.rounding,
    )


def _central_differences(
    x: np.ndarray,
    y_onehot: np.ndarray,
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None] | None,
    activation: str,
    eps: float,
    entries: list[np.ndarray],
) -> MLPGradients:
    """Plain central differences at step ``eps``; ``entries[l-1]``: the ``W_l`` entries to do."""
    x, y, ws, bs = _mlp_inputs(x, y_onehot, weights, biases)
    tail = _Tail(x, y, ws, bs, activation)
    L = len(ws)
    B = x.shape[0]
    base_losses = _cross_entropy(tail.hs[-1], y)[0]
    per_chunk = max(1, 2**21 // (B * max(w.shape[0] for w in ws) + 1))

    def unit_fd(n: int, evaluate) -> tuple[np.ndarray, np.ndarray]:
        """Derivative of each example's loss w.r.t. unit i (perturbed in every example)."""
        fd = np.empty((B, n))
        ok = np.empty((B, n), dtype=bool)
        for s, e in _chunks(n, per_chunk):
            bump = eps * np.eye(n)[s:e, None, :]  # (K, 1, n)
            lp, fp = evaluate(bump)
            lm, fm = evaluate(-bump)
            fd[:, s:e] = ((lp - lm) / (2 * eps)).T
            ok[:, s:e] = ~(fp | fm).T
        return fd, ok

    dh, dh_ok = [], []
    for k in range(L + 1):
        d, ok = unit_fd(tail.hs[k].shape[1], lambda bump, k=k: tail.from_h(k, tail.hs[k] + bump))
        dh.append(d)
        dh_ok.append(ok)
    delta, delta_ok, dW, dW_ok, db, db_ok = [], [], [], [], [], []
    for k in range(1, L + 1):
        d, ok = unit_fd(ws[k - 1].shape[0], lambda bump, k=k: tail.from_z(k, tail.zs[k - 1] + bump))
        delta.append(d)
        delta_ok.append(ok)

        h_prev = tail.hs[k - 1]
        n_out, n_in = ws[k - 1].shape
        chosen = entries[k - 1]
        g = np.full(n_out * n_in, np.nan)
        ok = np.zeros(n_out * n_in, dtype=bool)
        z = tail.zs[k - 1]
        for s, e in _chunks(chosen.size, per_chunk):
            rows, cols = np.divmod(chosen[s:e], n_in)
            # W_l[i, j] + eps moves z_l[:, i] by eps h_{l-1}[:, j] and nothing else: build the
            # perturbed z directly rather than (K, n_out, n_in) copies of W
            step = np.zeros((e - s, B, n_out))
            step[np.arange(e - s), :, rows] = eps * h_prev[:, cols].T
            lp, fp = tail.from_z(k, z + step)
            lm, fm = tail.from_z(k, z - step)
            g[chosen[s:e]] = (lp.sum(axis=-1) - lm.sum(axis=-1)) / (2 * eps)
            ok[chosen[s:e]] = ~(fp | fm).any(axis=-1)
        dW.append(g.reshape(n_out, n_in))
        dW_ok.append(ok.reshape(n_out, n_in))

        gb = np.empty(n_out)
        okb = np.empty(n_out, dtype=bool)
        for s, e in _chunks(n_out, per_chunk):
            bump = eps * np.eye(n_out)[s:e, None, :]  # b_l[i] + eps moves z_l[:, i] by eps
            lp, fp = tail.from_z(k, z + bump)
            lm, fm = tail.from_z(k, z - bump)
            gb[s:e] = (lp.sum(axis=-1) - lm.sum(axis=-1)) / (2 * eps)
            okb[s:e] = ~(fp | fm).any(axis=-1)
        db.append(gb)
        db_ok.append(okb)

    valid = {"dh": dh_ok, "delta": delta_ok, "dW": dW_ok, "db": db_ok}
    loss = float(base_losses.sum())
    rounding = 16 * np.finfo(np.float64).eps * max(1.0, loss) / eps
    return MLPGradients(loss, base_losses, dh, delta, dW, db, valid, rounding)
