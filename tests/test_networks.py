"""Tests for the random MLPs of simlab.networks: weight laws, batched passes, back-propagation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from simlab import networks as nw
from simlab.errors import SimlabInputError
from simlab.theory import meanfield as mf

# --------------------------------------------------------------------------------------------
# weight draws
# --------------------------------------------------------------------------------------------

IID_INITS = [i for i in mf.INITS if i != "orthogonal"]


@pytest.mark.parametrize("dist", nw.DISTS)
@pytest.mark.parametrize("init", IID_INITS)
def test_draw_weights_variance_and_law(init, dist):
    """Per-entry variance within 5 SE of weight_variance; the entry law is the one asked for."""
    rng = np.random.default_rng(100 + IID_INITS.index(init) + 10 * nw.DISTS.index(dist))
    fan_in, fan_out = 12, 7
    w = nw.draw_weights(rng, init, fan_in, fan_out, dist, gain=0.8, size=3000)
    assert w.shape == (3000, fan_out, fan_in) and w.dtype == np.float64
    var = mf.weight_variance(init, fan_in, fan_out, gain=0.8)
    sq = (w * w).ravel()  # i.i.d. entries: the SE of their mean is that of the squares
    se = sq.std() / math.sqrt(sq.size)
    assert se / var < 0.005
    assert abs(sq.mean() - var) < 5 * se
    assert abs(w.mean()) < 5 * math.sqrt(var / w.size)
    uniform = dist == "uniform" or init == "torch_default"  # PyTorch's default is always uniform
    # excess kurtosis: 0 for the normal law, -1.2 for the uniform (SE ~ sqrt(24/N) = 0.01)
    assert stats.kurtosis(w.ravel()) == pytest.approx(-1.2 if uniform else 0.0, abs=0.06)
    if uniform:
        bound = 1 / math.sqrt(fan_in) if init == "torch_default" else math.sqrt(3 * var)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


@pytest.mark.parametrize(("fan_in", "fan_out"), [(9, 4), (4, 9), (6, 6)])
def test_orthogonal_is_haar_semi_orthogonal(fan_in, fan_out):
    rng = np.random.default_rng(fan_in * 10 + fan_out)
    gain = math.sqrt(2.0)
    w = nw.draw_weights(rng, "orthogonal", fan_in, fan_out, size=20_000)
    small = min(fan_in, fan_out)
    gram = w @ np.swapaxes(w, -1, -2) if fan_out <= fan_in else np.swapaxes(w, -1, -2) @ w
    np.testing.assert_allclose(gram, np.broadcast_to(2.0 * np.eye(small), gram.shape), atol=1e-12)
    # so the per-entry variance is exactly gain^2 / max(fan_in, fan_out)
    var = mf.weight_variance("orthogonal", fan_in, fan_out)
    np.testing.assert_allclose((w * w).mean(axis=(-1, -2)), var, rtol=1e-12)
    # Haar: the sign fix makes every entry symmetric. Without it, LAPACK's QR makes the
    # diagonal of R negative, and W[0, 0] = -|g_00| / ||g_0|| * gain would be negative always.
    corner = w[:, 0, 0] / gain
    se = corner.std() / math.sqrt(corner.size)
    assert abs(corner.mean()) < 5 * se
    assert abs(np.mean(corner > 0) - 0.5) < 5 * 0.5 / math.sqrt(corner.size)
    # each row (fan_out <= fan_in) or column is uniform on the sphere: E[w_00^2] = 1/big
    assert (corner**2).mean() == pytest.approx(1 / max(fan_in, fan_out), rel=0.03)


def test_draw_network_shapes_biases_and_dtype():
    rng = np.random.default_rng(0)
    widths = (3, 5, 2)
    ws, bs = nw.draw_network(rng, widths, "kaiming", size=(4, 2), sigma_b=0.5, dtype=np.float32)
    assert [w.shape for w in ws] == [(4, 2, 5, 3), (4, 2, 2, 5)]
    assert [b.shape for b in bs] == [(4, 2, 5), (4, 2, 2)]
    assert all(a.dtype == np.float32 for a in ws + bs)
    assert nw.draw_network(rng, widths, "lecun")[1] is None
    b = nw.draw_network(rng, (2, 4000), "lecun", sigma_b=0.5, size=50)[1][0]
    assert b.std() == pytest.approx(0.5, rel=0.01)


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(SimlabInputError, match="dist"):
        nw.draw_weights(rng, "kaiming", 3, 3, dist="laplace")
    with pytest.raises(ValueError, match="init"):
        nw.draw_weights(rng, "glorot", 3, 3)
    with pytest.raises(ValueError, match="gain"):
        nw.draw_weights(rng, "gain", 3, 3)
    with pytest.raises(ValueError, match="sigma_b"):
        nw.draw_network(rng, (3, 3), "kaiming", sigma_b=-1.0)
    ws, _ = nw.draw_network(rng, (3, 4, 2), "kaiming")
    with pytest.raises(ValueError, match="keep"):
        nw.forward(np.ones((2, 3)), ws, keep="everything")
    with pytest.raises(ValueError, match=r"W_2"):
        nw.forward(np.ones((2, 3)), [ws[0], ws[0]])
    with pytest.raises(ValueError, match="activation"):
        nw.mlp_loss_and_grads(np.ones((2, 3)), np.eye(2), ws, activation="gelu")
    with pytest.raises(ValueError, match="y_onehot"):
        nw.mlp_loss_and_grads(np.ones((2, 3)), np.eye(3), ws)


# --------------------------------------------------------------------------------------------
# batched forward and backward against a naive per-input, per-layer loop
# --------------------------------------------------------------------------------------------


def _naive(x, ws, bs, g):
    """One input at a time, one layer at a time, column vectors as in the SPEC."""
    zs, hs, grads = [], [x], []
    for w, b in zip(ws, bs, strict=True):
        zs.append(w @ hs[-1] + b)
        hs.append(np.maximum(zs[-1], 0.0))
    grads.append(g)
    for w, z in zip(ws[::-1], zs[::-1], strict=True):
        grads.append(w.T @ ((z > 0) * grads[-1]))
    return zs, hs, grads[::-1]


def test_forward_and_backward_match_the_naive_loop():
    rng = np.random.default_rng(1)
    widths = (5, 7, 3, 6)
    ws, bs = nw.draw_network(rng, widths, "kaiming", sigma_b=0.2)
    x = rng.standard_normal((9, 5))
    g = rng.standard_normal((9, 6))
    fwd = nw.forward(x, ws, bs, keep="z")
    bwd = nw.backward_signal(fwd.z, ws, g, keep="grads")
    bwd_masks = nw.backward_signal(nw.forward(x, ws, bs, keep="masks").masks, ws, g)
    stats_only = nw.forward(x, ws, bs)
    assert stats_only.z is None and stats_only.masks is None
    np.testing.assert_array_equal(stats_only.q, fwd.q)
    np.testing.assert_array_equal(bwd_masks.r, bwd.r)
    for i in range(9):
        zs, hs, grads = _naive(x[i], ws, bs, g[i])
        for k in range(1, 4):
            np.testing.assert_allclose(fwd.z[k - 1][i], zs[k - 1], rtol=1e-13, atol=1e-14)
            assert fwd.q[i, k - 1] == pytest.approx(np.mean(zs[k - 1] ** 2), rel=1e-13)
        for k in range(4):
            assert fwd.a[i, k] == pytest.approx(np.mean(hs[k] ** 2), rel=1e-13)
            np.testing.assert_allclose(bwd.grads[k][i], grads[k], rtol=1e-12, atol=1e-14)
            assert bwd.r[i, k] == pytest.approx(np.mean(grads[k] ** 2), rel=1e-12)
        np.testing.assert_allclose(fwd.h_last[i], hs[-1], rtol=1e-13, atol=1e-14)


def test_relu_derivative_at_zero_is_zero_for_z_and_masks():
    """A zero input with no bias makes every z_l exactly 0 (a dead network): relu'(0) = 0, so
    no gradient reaches below the top, whether backward_signal is given z or masks."""
    rng = np.random.default_rng(8)
    ws, _ = nw.draw_network(rng, (3, 4, 5), "kaiming")
    fwd = nw.forward(np.zeros((1, 3)), ws, keep="z")
    g = np.ones((1, 5))
    for patterns in (fwd.z, [z > 0 for z in fwd.z]):
        r = nw.backward_signal(patterns, ws, g).r
        np.testing.assert_array_equal(r[0], [0.0, 0.0, 1.0])
    grads = nw.mlp_loss_and_grads(np.zeros((1, 3)), np.eye(5)[:1], ws)
    assert not np.any(grads.delta[0]) and not np.any(grads.dh[0])


def test_stacked_networks_broadcast_like_separate_ones():
    rng = np.random.default_rng(2)
    widths = (4, 6, 5)
    ws, bs = nw.draw_network(rng, widths, "xavier", sigma_b=0.1, size=3)
    x = rng.standard_normal((8, 4))  # the same inputs through three networks
    out = nw.forward(x, ws, bs, keep="masks")
    assert out.q.shape == (3, 8, 2) and out.a.shape == (3, 8, 3)
    g = rng.standard_normal(5)  # broadcast to every input and network
    r = nw.backward_signal(out.masks, ws, g).r
    for s in range(3):
        one = nw.forward(x, [w[s] for w in ws], [b[s] for b in bs], keep="masks")
        np.testing.assert_allclose(out.q[s], one.q, rtol=1e-13)
        np.testing.assert_allclose(out.a[s], one.a, rtol=1e-13)
        np.testing.assert_allclose(
            r[s], nw.backward_signal(one.masks, [w[s] for w in ws], g).r, rtol=1e-13
        )


def test_float32_forward_is_close_and_stats_are_float64():
    rng = np.random.default_rng(3)
    ws, _ = nw.draw_network(rng, (64,) * 6, "kaiming", dtype=np.float32)
    x = rng.standard_normal((32, 64)).astype(np.float32)
    out32 = nw.forward(x, ws)
    out64 = nw.forward(x.astype(np.float64), [w.astype(np.float64) for w in ws])
    assert out32.h_last.dtype == np.float32 and out32.q.dtype == np.float64
    np.testing.assert_allclose(out32.q, out64.q, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# back-propagation through softmax cross-entropy against central finite differences
# --------------------------------------------------------------------------------------------


def _relative_errors(analytic: nw.MLPGradients, fd: nw.MLPGradients, floor: float = 1e-4):
    """Max |a - f| / max(|a|, |f|, floor) per quantity and layer, over the valid entries.

    The floor holds entries smaller than 1e-4 to an absolute error of 1e-10 instead: a central
    difference with eps = 1e-5 has a rounding error of about 1e-16 * loss / eps ~ 1e-11 whatever
    the size of the entry (measured up to 4e-11), so a relative error means nothing below it.
    """
    out = {}
    for name in nw.MLPGradients.QUANTITIES:
        for k, (a, f, ok) in enumerate(
            zip(getattr(analytic, name), getattr(fd, name), fd.valid[name], strict=True)
        ):
            rel = np.abs(a - f) / np.maximum(np.maximum(np.abs(a), np.abs(f)), floor)
            out[(name, k)] = (rel[ok].max() if ok.any() else 0.0, ok.mean())
    return out


def _problem(rng, widths, batch, sigma_b=0.3):
    ws, bs = nw.draw_network(rng, widths, "kaiming", sigma_b=sigma_b)
    x = rng.standard_normal((batch, widths[0]))
    y = np.eye(widths[-1])[rng.integers(0, widths[-1], batch)]
    return x, y, ws, bs


@pytest.mark.parametrize("activation", nw.ACTIVATIONS)
def test_backprop_matches_finite_differences(activation):
    rng = np.random.default_rng(4)
    for _ in range(5):  # several random nets, inputs and labels
        x, y, ws, bs = _problem(rng, (5, 4, 6, 3), batch=6)
        analytic = nw.mlp_loss_and_grads(x, y, ws, bs, activation)
        fd = nw.mlp_finite_differences(x, y, ws, bs, activation)
        assert analytic.loss == pytest.approx(fd.loss, rel=1e-15)
        errors = _relative_errors(analytic, fd)
        assert max(e for e, _ in errors.values()) < 1e-6, errors
        assert min(frac for _, frac in errors.values()) > 0.8  # few entries lost to kinks


def test_output_gradient_sign_is_ybar_minus_y():
    """The SPEC writes dl/dh_L = y - ybar; for l = -sum y log softmax(h_L) it is ybar - y."""
    rng = np.random.default_rng(5)
    x, y, ws, bs = _problem(rng, (5, 4, 6, 3), batch=6)
    analytic = nw.mlp_loss_and_grads(x, y, ws, bs)
    logits = nw.forward(x, ws, bs).h_last
    ybar = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(analytic.dh[-1], ybar - y, rtol=1e-14)
    fd = nw.mlp_finite_differences(x, y, ws, bs).dh[-1]
    np.testing.assert_allclose(fd, ybar - y, rtol=1e-7, atol=1e-9)
    assert not np.allclose(fd, y - ybar, atol=1e-3)
    # per-example and total loss
    np.testing.assert_allclose(analytic.losses, -np.log((ybar * y).sum(axis=1)), rtol=1e-13)
    assert analytic.loss == pytest.approx(analytic.losses.sum())


def test_kink_mask_catches_a_unit_on_the_kink():
    """Put one z_1[b, i] a hair above 0: the central difference straddles the kink, is masked."""
    rng = np.random.default_rng(6)
    x, y, ws, bs = _problem(rng, (5, 4, 6, 3), batch=3)
    b, i = np.unravel_index(np.argmax(np.abs(nw.mlp_loss_and_grads(x, y, ws, bs).dh[1])), (3, 4))
    bs[0][i] -= (ws[0] @ x[b] + bs[0])[i] - 3e-6  # z_1[b, i] = 3e-6 < eps = 1e-5
    analytic = nw.mlp_loss_and_grads(x, y, ws, bs)
    fd = nw.mlp_finite_differences(x, y, ws, bs, eps=1e-5)
    assert not fd.valid["delta"][0][b, i] and not fd.valid["db"][0][i]
    assert not fd.valid["dW"][0][i].any()
    # masked for a reason: there each difference quotient averages the two one-sided slopes,
    # D(h) = u (1/2 + z/(2h)), and the Richardson combination (4 D(h) - D(2h))/3 inherits it
    upstream = analytic.dh[1][b, i]
    assert abs(upstream) > 1e-3
    straddle = (4 * (3e-6 / 2e-5) - 3e-6 / 4e-5) / 3
    assert fd.delta[0][b, i] == pytest.approx(upstream * (0.5 + straddle), rel=1e-4)
    errors = _relative_errors(analytic, fd)
    assert max(e for e, _ in errors.values()) < 1e-6


def test_finite_differences_on_a_wider_net_with_a_subset_of_weights():
    rng = np.random.default_rng(7)
    x, y, ws, bs = _problem(rng, (20, 32, 24, 10), batch=4)
    analytic = nw.mlp_loss_and_grads(x, y, ws, bs, "tanh")
    fd = nw.mlp_finite_differences(x, y, ws, bs, "tanh", max_entries=50, rng=rng)
    for k in range(3):
        assert fd.valid["dW"][k].sum() == 50 and np.isnan(fd.dW[k]).sum() == ws[k].size - 50
    errors = _relative_errors(analytic, fd)
    assert max(e for e, _ in errors.values()) < 1e-6
    for name in nw.MLPGradients.QUANTITIES:  # the stated rounding bound holds
        quantities = (getattr(analytic, name), getattr(fd, name), fd.valid[name])
        for a, f, ok in zip(*quantities, strict=True):
            assert np.all(np.abs(a - f)[ok] <= 1e-7 * np.abs(a)[ok] + fd.rounding)
