"""Tests for the mean-field predictions (simlab.theory.meanfield).

Exact tests of the closed forms, and statistical tests against simulation of the real network
(simlab.networks) with fixed seeds and 5-standard-error tolerances, where the standard error comes
from independent networks (per-network averages over inputs, since inputs through one network are
correlated). Each statistical test also asserts that its standard error is small enough to see
the kind of mistake it guards against.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from simlab import networks as nw
from simlab.errors import SimlabInputError
from simlab.theory import meanfield as mf

MIXED = (40, 24, 56, 32, 48)  # n_0..n_4: unequal, so fan_in/fan_out mix-ups show


def _mean_se(per_net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the first axis (independent networks)."""
    return per_net.mean(axis=0), per_net.std(axis=0, ddof=1) / math.sqrt(per_net.shape[0])


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


def test_weight_variance_table():
    assert mf.weight_variance("kaiming", 10, 30) == pytest.approx(2 / 10)
    assert mf.weight_variance("kaiming_fan_out", 10, 30) == pytest.approx(2 / 30)
    assert mf.weight_variance("xavier", 10, 30) == pytest.approx(2 / 40)
    assert mf.weight_variance("lecun", 10, 30) == pytest.approx(1 / 10)
    assert mf.weight_variance("torch_default", 10, 30) == pytest.approx(1 / 30)
    assert mf.weight_variance("gain", 10, 30, gain=1.5) == pytest.approx(2.25 / 10)
    # a semi-orthogonal matrix: each entry has variance gain^2 / max(fan_in, fan_out)
    assert mf.weight_variance("orthogonal", 10, 30) == pytest.approx(2 / 30)
    assert mf.weight_variance("orthogonal", 30, 10) == pytest.approx(2 / 30)
    assert mf.weight_variance("orthogonal", 16, 16, gain=1.0) == pytest.approx(1 / 16)
    # the gain is ignored by inits that have none (so a sweep can pass it to all)
    assert mf.weight_variance("kaiming", 10, 30, gain=5.0) == pytest.approx(2 / 10)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mf.weight_variance("he", 4, 4), "init"),
        (lambda: mf.weight_variance("gain", 4, 4), "gain"),
        (lambda: mf.weight_variance("gain", 4, 4, gain=-1.0), "gain"),
        (lambda: mf.weight_variance("kaiming", 0, 4), "fan_in"),
        (lambda: mf.widths_from(0, 8), "L"),
        (lambda: mf.widths_from(3, 0), "width"),
        (lambda: mf.widths_from(3, 2.5), "width"),
        (lambda: mf.widths_from(3, [4, 4]), "does not fit L = 3"),
        (lambda: mf.widths_from(3, [4, 4, 4, 4, 4]), "does not fit L = 3"),
        (lambda: mf.widths_from(2, [4, -1]), "width"),
        (lambda: mf.widths_from(2, True), "width"),
        (lambda: mf.iterate_arccos(1.5, 3), "rho0"),
        (lambda: mf.forward_q((4, 4), "kaiming", sigma_x=-1.0), "sigma"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert isinstance(info.value, SimlabInputError)  # the CLI turns it into exit status 2
    assert "\n" not in str(info.value)


def test_widths_from_conventions():
    assert mf.widths_from(3, 8) == (8, 8, 8, 8)
    assert mf.widths_from(3, [2, 5, 6, 7]) == (2, 5, 6, 7)  # L + 1: n_0..n_L
    assert mf.widths_from(3, [5, 6, 7]) == (5, 5, 6, 7)  # L: n_1..n_L, n_0 = n_1
    assert mf.widths_from(1, [5, 6]) == (5, 6)
    assert mf.widths_from(2, np.array([3, 4])) == (3, 3, 4)
    assert mf.widths_from(2, 1e2) == (100, 100, 100)


def test_kaiming_flat_and_xavier_halves_at_equal_widths():
    widths = mf.widths_from(12, 64)
    # Kaiming: c_l = 2, so q_1 = 2 sigma_x^2 and every later layer keeps it
    np.testing.assert_allclose(mf.forward_q(widths, "kaiming", sigma_x=1.5), 4.5, rtol=1e-14)
    q = mf.forward_q(widths, "xavier", sigma_x=1.0)
    np.testing.assert_allclose(q, 2.0 ** -np.arange(12), rtol=1e-14)
    np.testing.assert_allclose(mf.backward_r(widths, "kaiming"), 1.0, rtol=1e-14)


def test_recursions_by_hand():
    widths = (3, 5, 2)
    # c_1 = 3 * 1/3, c_2 = 5 * 1/5 for lecun: q_1 = sigma_x^2 + sigma_b^2, q_2 = q_1/2 + sigma_b^2
    q = mf.forward_q(widths, "lecun", sigma_x=2.0, sigma_b=0.5)
    np.testing.assert_allclose(q, [4.25, 4.25 / 2 + 0.25])
    # r_1 = (n_2 Var W_2 / 2) r_2 = (2 * 2/5 / 2), r_0 = (5 * 2/3 / 2) r_1 for kaiming
    np.testing.assert_allclose(mf.backward_r(widths, "kaiming"), [5 / 3 * 2 / 5, 2 / 5, 1.0])
    np.testing.assert_allclose(mf.backward_r((7, 3, 9, 4), "kaiming_fan_out"), 1.0)
    np.testing.assert_allclose(mf.gains_c((4, 8, 2), "xavier"), [4 * 2 / 12, 8 * 2 / 10])


def test_hanin_rolnick_product_by_hand():
    assert mf.hanin_rolnick_second_moment((7, 10, 20)) == pytest.approx(1.5 * 1.25)
    assert mf.hanin_rolnick_second_moment((1, 5)) == pytest.approx(2.0)


def test_norm_ratio_moments():
    widths = (4, 10, 12, 10)
    assert mf.norm_ratio_moment(widths, 0) == 1.0
    assert mf.norm_ratio_moment(widths, 1) == pytest.approx(1.0, rel=1e-14)
    assert mf.norm_ratio_moment(widths, 2) == pytest.approx(
        mf.hanin_rolnick_second_moment(widths), rel=1e-14
    )
    # width 1: Y = 2 chi2_1 with probability 1/2, else 0: E[Y^3] = 8 * 15 / 2 = 60
    assert mf.norm_ratio_moment((3, 1), 3) == pytest.approx(60.0, rel=1e-14)
    assert mf.norm_ratio_moment((3, 1, 1), 3) == pytest.approx(3600.0, rel=1e-14)
    with pytest.raises(ValueError, match="k"):
        mf.norm_ratio_moment(widths, -1)


@pytest.mark.parametrize("rho", [-1.0, -0.9, -0.3, 0.0, 0.2, 0.6, 0.95, 0.999, 1.0])
def test_arccos_map_against_quadrature(rho):
    """E[relu(u) relu(v)] / E[relu(u)^2] for a standard Gaussian pair, integrated numerically.

    1-D: condition on u, so v ~ N(rho u, 1 - rho^2) and E[relu(v) | u] = m Phi(m/s) + s phi(m/s)
    (the Gaussian ReLU mean); integrate u phi(u) E[relu(v) | u] over u > 0 (smooth, to 1e-12).
    2-D: the raw double integral of u v phi2(u, v; rho) over the positive quadrant, where it is
    well conditioned (it loses accuracy as |rho| -> 1, the density concentrating on a line).
    """
    if abs(rho) == 1.0:
        assert mf.arccos_map(rho) == (1.0 if rho > 0 else 0.0)  # v = u or v = -u
        return
    s = math.sqrt(1.0 - rho * rho)

    def inner(u):
        m = rho * u
        return u * stats.norm.pdf(u) * (m * stats.norm.cdf(m / s) + s * stats.norm.pdf(m / s))

    cross, err = integrate.quad(inner, 0, np.inf, epsabs=1e-13, epsrel=1e-12)
    assert err < 1e-11
    assert mf.arccos_map(rho) == pytest.approx(cross / 0.5, abs=1e-10)
    if abs(rho) <= 0.6:

        def density(v, u):
            q = (u * u - 2 * rho * u * v + v * v) / (2 * s * s)
            return u * v * math.exp(-q) / (2 * math.pi * s)

        cross2, err2 = integrate.dblquad(density, 0, np.inf, 0, np.inf, epsabs=1e-10)
        assert err2 < 1e-8
        assert mf.arccos_map(rho) == pytest.approx(cross2 / 0.5, abs=1e-7)


def test_arccos_map_shape_and_fixed_points():
    r = np.linspace(-1, 1, 11)
    out = mf.arccos_map(r)
    assert out.shape == r.shape and np.all(np.diff(out) > 0)
    assert mf.arccos_map(0.0) == pytest.approx(1 / math.pi)
    assert mf.arccos_map(1.0) == 1.0 and mf.arccos_map(-1.0) == 0.0


def test_iterate_arccos_matches_naive_iteration_and_stable_complement():
    it = mf.iterate_arccos(np.array([0.0, 0.5]), 30)
    assert it.shape == (31, 2)
    naive = np.array([0.0, 0.5])
    for k in range(1, 31):
        naive = mf.arccos_map(naive)
        np.testing.assert_allclose(it[k], naive, atol=1e-14)
    # deep in the tail the complement keeps its relative precision
    e = mf.iterate_arccos(0.0, 10_000, complement=True)
    assert e[-1] > 0 and np.all(np.diff(e) < 0)
    assert mf.arccos_tail(10_000) / e[-1] - 1 == pytest.approx(3.6e-3, rel=0.05)


def test_arccos_tail_overestimates_by_three_log_l_over_l():
    layers = np.array([100, 300, 1000, 3000, 10_000])
    e = mf.iterate_arccos(0.0, int(layers[-1]), complement=True)[layers]
    rel = mf.arccos_tail(layers) / e - 1
    slope = 3 * np.log(layers) / layers
    assert np.all(rel > slope) and np.all(rel < slope + 12 / layers)  # 3 ln(l)/l + O(1/l)
    assert np.all(np.diff(rel) < 0)
    assert mf.arccos_tail(30) / mf.iterate_arccos(0.0, 30, complement=True)[30] > 1.5


# --------------------------------------------------------------------------------------------
# against simulation of the real network
# --------------------------------------------------------------------------------------------


def _simulate_q_r(rng, widths, init, dist, sigma_x, sigma_b, n_nets, batch, gain=None):
    weights, biases = nw.draw_network(
        rng, widths, init, dist, gain=gain, sigma_b=sigma_b, size=n_nets
    )
    x = sigma_x * rng.standard_normal((n_nets, batch, widths[0]))
    fwd = nw.forward(x, weights, biases, keep="masks")
    g = rng.standard_normal((n_nets, batch, widths[-1]))
    bwd = nw.backward_signal(fwd.masks, weights, g)
    return fwd.q.mean(axis=1), bwd.r.mean(axis=1)  # per-network averages over inputs


@pytest.mark.parametrize(
    ("init", "dist", "sigma_b", "gain"),
    [
        ("kaiming", "normal", 0.0, None),
        ("xavier", "normal", 0.0, None),
        ("lecun", "uniform", 0.0, None),
        ("torch_default", "normal", 0.0, None),
        ("kaiming_fan_out", "uniform", 0.0, None),
        ("orthogonal", "normal", 0.0, None),
        ("gain", "normal", 0.5, 1.2),
        ("kaiming", "uniform", 0.3, None),
    ],
)
def test_forward_and_backward_recursions_against_simulation(init, dist, sigma_b, gain):
    """Both recursions are exact in expectation at any width (module notes), so z-test them."""
    rng = np.random.default_rng(20240 + mf.INITS.index(init))
    q_net, r_net = _simulate_q_r(rng, MIXED, init, dist, 1.3, sigma_b, 1500, 8, gain)
    q, q_se = _mean_se(q_net)
    r, r_se = _mean_se(r_net)
    q_pred = mf.forward_q(MIXED, init, sigma_x=1.3, sigma_b=sigma_b, gain=gain)
    r_pred = mf.backward_r(MIXED, init, gain=gain)
    assert np.all(q_se / q_pred < 0.02) and np.all(r_se / r_pred < 0.03)  # power: see ~10% errors
    np.testing.assert_array_less(np.abs(q - q_pred), 5 * q_se)
    np.testing.assert_array_less(np.abs(r - r_pred), 5 * r_se)


def test_backward_recursion_exact_at_tiny_width_with_bias():
    """Width 5: no 1/width correction to E[r_l] (Hanin's sign-flip argument)."""
    rng = np.random.default_rng(11)
    widths = (5, 5, 5, 5, 5, 5)
    _, r_net = _simulate_q_r(rng, widths, "kaiming", "normal", 1.0, 0.4, 60_000, 2)
    r, se = _mean_se(r_net)
    pred = mf.backward_r(widths, "kaiming")
    assert np.all(se < 0.025)  # a 1/width = 20% effect would be 8 SE away
    np.testing.assert_array_less(np.abs(r - pred), 5 * se)


def test_backward_dead_layer_deficit_at_tiny_width_without_bias():
    """Zero bias: r_{L-1} = prediction * P(h_{L-1} != 0) exactly, P(dead layer k) = 2^-n_k."""
    rng = np.random.default_rng(12)
    widths = (4, 4, 4, 4, 4)
    _, r_net = _simulate_q_r(rng, widths, "kaiming", "normal", 1.0, 0.0, 60_000, 2)
    r, se = _mean_se(r_net)
    alive = np.prod([1 - 2.0**-n for n in widths[1:-1]])
    pred = mf.backward_r(widths, "kaiming")[-2]
    assert abs(r[-2] - pred * alive) < 5 * se[-2]
    assert abs(r[-2] - pred) > 10 * se[-2]  # the deficit (~18%) is real and resolved


def test_hanin_rolnick_against_simulation():
    """E[A_L/A_0] = 1 and E[(A_L/A_0)^2] = prod(1 + 5/n_l), not exp(5 sum 1/n_l).

    Widths 10, 12, 10 (input 4, which must not enter): the product is 3.19, the exponential
    4.12. (A_L/A_0)^2 is heavy-tailed (its variance is ~100 times its squared mean at these
    widths, and the tail grows fast with L), hence 10^5 networks and L = 3; at this size the
    5-SE test of the product passed in 300 of 300 replicate runs of an exact surrogate sampler.
    """
    rng = np.random.default_rng(5)
    widths = (4, 10, 12, 10)
    n_nets, batch = 100_000, 2
    weights, _ = nw.draw_network(rng, widths, "kaiming", "normal", size=n_nets)
    x = rng.standard_normal((n_nets, batch, widths[0]))
    a = nw.forward(x, weights).a
    ratio = a[..., -1] / a[..., 0]
    first, first_se = _mean_se(ratio.mean(axis=1))
    second, second_se = _mean_se((ratio**2).mean(axis=1))
    product = mf.hanin_rolnick_second_moment(widths)
    exponential = math.exp(5 * sum(1 / n for n in widths[1:]))
    assert abs(first - 1.0) < 5 * first_se
    assert abs(second - product) < 5 * second_se
    assert abs(second - exponential) > 15 * second_se
    # and the skew is real: flag-worthy excess kurtosis of the per-network values
    assert stats.kurtosis((ratio**2).mean(axis=1)) > 20


def test_correlation_map_at_moderate_width():
    """The map is the infinite-width limit: at width 128 the mean cosines of the layer-l
    activations agree with the iterates up to noise plus an O(1/width) bias (measured about
    0.3/width at widths 32 to 512), allowed here as 1/width."""
    rng = np.random.default_rng(3)
    width, L, n_nets, pairs = 128, 4, 100, 8
    rho0 = np.array([0.0, 0.5, 0.9])
    weights, _ = nw.draw_network(rng, (width,) * (L + 1), "kaiming", size=n_nets)
    # pairs of inputs with cosine exactly rho0: x_b = rho0 x_a + sqrt(1 - rho0^2) x_perp
    xa = rng.standard_normal((n_nets, 3, pairs, width))
    xp = rng.standard_normal((n_nets, 3, pairs, width))
    xp -= (np.sum(xp * xa, -1, keepdims=True) / np.sum(xa * xa, -1, keepdims=True)) * xa
    xp *= np.linalg.norm(xa, axis=-1, keepdims=True) / np.linalg.norm(xp, axis=-1, keepdims=True)
    xb = rho0[:, None, None] * xa + np.sqrt(1 - rho0[:, None, None] ** 2) * xp
    za = nw.forward(xa.reshape(n_nets, -1, width), weights, keep="z").z
    zb = nw.forward(xb.reshape(n_nets, -1, width), weights, keep="z").z
    pred = mf.iterate_arccos(rho0, L)
    for k in range(1, L + 1):
        ha, hb = np.maximum(za[k - 1], 0), np.maximum(zb[k - 1], 0)
        cos = np.sum(ha * hb, -1) / np.sqrt(np.sum(ha * ha, -1) * np.sum(hb * hb, -1))
        m, se = _mean_se(cos.reshape(n_nets, 3, pairs).mean(axis=2))
        assert np.all(se < 0.005)
        np.testing.assert_array_less(np.abs(m - pred[k]), 5 * se + 1 / width)
