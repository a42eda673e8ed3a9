"""Tests of simlab.theory.batchnorm: exact identities, the backward pass against finite
differences (and wrong formulas caught by the same comparison), the statistics of eps, the column
Jacobian, and whitening."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

from simlab.theory import batchnorm as bn
from simlab.theory import bn_stats

EPS_MACHINE = float(np.finfo(np.float64).eps)

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _instance(rng: np.random.Generator, K: int, B: int, M: int):
    """K random instances of shape (B, M) with varied scales, gamma of both signs."""
    scale = 10 ** rng.uniform(-1, 1, size=(K, 1, M))
    shift = rng.normal(size=(K, 1, M)) * 10 ** rng.uniform(-1, 1, size=(K, 1, M))
    Y = rng.normal(size=(K, B, M)) * scale + shift
    gamma = rng.normal(size=(K, M)) * 10 ** rng.uniform(-1, 0.5, size=(K, M))
    gamma[:, 0] = -np.abs(gamma[:, 0])  # both signs for sure
    gamma[:, 1] = np.abs(gamma[:, 1])
    beta = rng.normal(size=(K, M))
    G = rng.normal(size=(K, B, M))
    return Y, gamma, beta, G


# ------------------------------------------------------------------------------------------------
# forward: exact identities, shapes, NaN at eps = 0
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("B", [2, 3, 17, 256])
@pytest.mark.parametrize("eps", [1e-5, 1e-2, 0.0])
def test_forward_exact_identities(B, eps):
    rng = np.random.default_rng(100 + B)
    Y, gamma, beta, _ = _instance(rng, 20, B, 6)
    fwd = bn.bn_forward(Y, gamma, beta, eps)
    mean, var = bn.yhat_batch_moments(fwd, beta)
    scale = np.abs(gamma) + np.abs(beta)
    assert np.max(np.abs(mean[:, 0, :] - beta) / scale) < 1e-12
    pred = bn.predicted_yhat_batch_var(gamma, fwd.v, eps)
    assert np.max(np.abs(var - pred) / pred) < 1e-12
    # and the definitions themselves
    np.testing.assert_allclose(fwd.m[:, 0, :], Y.mean(axis=1), rtol=1e-13)
    np.testing.assert_allclose(fwd.v[:, 0, :], Y.var(axis=1), rtol=1e-12)  # biased, ddof = 0
    np.testing.assert_allclose(fwd.s, 1 / np.sqrt(fwd.v + eps), rtol=1e-14)
    np.testing.assert_array_equal(fwd.H, np.maximum(fwd.Yhat, 0))


def test_forward_shapes_and_parameter_broadcasting():
    rng = np.random.default_rng(1)
    Y = rng.normal(size=(4, 5, 3))
    g1 = np.array([1.5, -0.5, 2.0])
    a = bn.bn_forward(Y, g1, 0.1, 1e-5)
    b = bn.bn_forward(Y, np.tile(g1, (4, 1)), np.full((4, 3), 0.1), 1e-5)
    c = bn.bn_forward(Y, np.tile(g1, (4, 1))[:, None, :], 0.1, 1e-5)
    for f in (a, b, c):
        assert f.m.shape == f.v.shape == f.s.shape == (4, 1, 3)
        assert f.xhat.shape == f.Yhat.shape == f.H.shape == (4, 5, 3)
        assert f.B == 5
    np.testing.assert_array_equal(a.Yhat, b.Yhat)
    np.testing.assert_array_equal(a.Yhat, c.Yhat)
    # a stack equals instance-by-instance
    one = bn.bn_forward(Y[2], g1, 0.1, 1e-5)
    np.testing.assert_allclose(one.Yhat, a.Yhat[2], rtol=0, atol=1e-15)


def test_constant_feature_eps0_gives_nan_without_raising():
    rng = np.random.default_rng(2)
    Y = rng.normal(size=(3, 4))
    Y[:, 1] = 0.1  # mean of three 0.1's does not round back to 0.1: the code must cope
    G = rng.normal(size=Y.shape)
    with np.errstate(all="raise"):  # any unguarded 0/0 would raise here
        fwd = bn.bn_forward(Y, 1.3, 0.2, 0.0)
        grads = bn.bn_backward(G, fwd, 1.3)
        norm = bn.jacobian_norm(Y[:, 1], 1.3, 0.0)
    assert fwd.v[0, 1] == 0.0
    assert np.all(np.isnan(fwd.xhat[:, 1])) and np.all(np.isnan(fwd.H[:, 1]))
    assert np.all(np.isfinite(fwd.xhat[:, [0, 2, 3]]))  # other features are not poisoned
    assert np.isnan(grads.d_gamma[0, 1]) and np.all(np.isnan(grads.d_Y[:, 1]))
    assert np.all(np.isfinite(grads.d_Y[:, [0, 2, 3]]))
    assert math.isnan(norm)
    # with eps > 0 the constant feature is exactly xhat = 0, Yhat = beta
    fwd = bn.bn_forward(Y, 1.3, 0.2, 1e-5)
    assert np.all(fwd.xhat[:, 1] == 0.0) and np.all(fwd.Yhat[:, 1] == 0.2)


def test_negative_eps_rejected():
    with pytest.raises(ValueError):
        bn.bn_forward(np.ones((3, 2)), 1.0, 0.0, -1e-5)


# ------------------------------------------------------------------------------------------------
# backward against finite differences
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("B", [2, 3, 5, 32])
@pytest.mark.parametrize("eps", [1e-5, 0.1, 0.0])
def test_backward_matches_finite_differences(B, eps):
    rng = np.random.default_rng(10 * B + int(eps > 0))
    Y, gamma, beta, G = _instance(rng, 30, B, 5)
    check = bn.grad_check(Y, gamma, beta, eps, G)
    for name in bn.GRAD_QUANTITIES:
        errors = check.errors(name)
        assert errors.size > 0.9 * check.rel_error[name].size, name  # few entries skipped
        assert check.passed(name), (name, check.max_error(name), check.tolerance)
    # both signs of gamma were checked
    kept = ~check.skip.d_gamma[:, 0, :]
    assert np.any(kept & (gamma < 0)) and np.any(kept & (gamma > 0))


def test_backward_matches_finite_differences_directly():
    """The same comparison, spelled out without grad_check, on one well-conditioned instance."""
    rng = np.random.default_rng(7)
    Y = rng.normal(size=(6, 4))
    gamma = np.array([1.2, -0.7, 0.4, -2.0])
    beta = np.array([0.3, 0.1, -0.2, 0.5])
    G = rng.normal(size=Y.shape)
    skip = bn.kink_mask(Y, gamma, beta, 1e-5)
    assert not any(np.any(m) for m in skip.as_dict().values())
    analytic = bn.bn_backward(G, bn.bn_forward(Y, gamma, beta, 1e-5), gamma)
    numeric = bn.finite_difference_grads(Y, gamma, beta, 1e-5, G)
    for name in bn.GRAD_QUANTITIES:
        a, b = getattr(analytic, name), getattr(numeric, name)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-8, err_msg=name)


def test_d_m_is_the_partial_and_chain_rule_holds():
    rng = np.random.default_rng(8)
    Y, gamma, beta, G = _instance(rng, 10, 7, 4)
    fwd = bn.bn_forward(Y, gamma, beta, 1e-3)
    g = bn.bn_backward(G, fwd, gamma)
    gam = gamma[:, None, :]
    B = fwd.B
    # Ioffe & Szegedy's total dl/dmu adds dl/dv * (-2/B) sum(Y - m), which is 0 at the batch mean
    total = g.d_m + g.d_v * (-2.0 / B) * bn.batch_sum(fwd.Yc)
    np.testing.assert_allclose(total, g.d_m, rtol=1e-12, atol=1e-12 * np.max(np.abs(g.d_m)))
    # dl/dY = direct + dl/dm / B + dl/dv * 2 (Y - m) / B
    D = G * (fwd.Yhat > 0)
    chain = gam * fwd.s * D + g.d_m / B + g.d_v * 2 * fwd.Yc / B
    np.testing.assert_allclose(chain, g.d_Y, rtol=1e-10, atol=1e-12 * np.max(np.abs(g.d_Y)))


@pytest.mark.parametrize("B", [2, 3, 32, 128])
def test_wrong_formulas_are_rejected(B):
    rng = np.random.default_rng(20 + B)
    Y, gamma, beta, G = _instance(rng, 10, B, 4)
    fwd = bn.bn_forward(Y, gamma, beta, 1e-5)
    ns = bn.claim_namespace(G, fwd, gamma, beta)
    gam, s, xhat, D = ns["gamma"], ns["s"], ns["xhat"], ns["D"]
    Yv, m = ns["Y"], ns["m"]
    wrong = {
        "d_Y": gam * s * D,  # diagonal-only Jacobian
        "jac_diag": gam * s * (1 - xhat**2 / B),  # forgets -1/B
    }
    student = {"jac_diag": s - (Yv - m) ** 2 * s**3 / B}  # forgets gamma and -1/B (issue 4)
    right = {"jac_diag": gam * s * (1 - 1 / B - xhat**2 / B), "d_gamma": bn.batch_sum(D * xhat)}
    bad = bn.grad_check(Y, gamma, beta, 1e-5, G, candidate=wrong)
    assert not bad.passed("d_Y") and not bad.passed("jac_diag")
    assert bad.max_error("d_Y") > 1e3 * bad.tolerance
    assert bad.max_error("jac_diag") > 1e3 * bad.tolerance
    assert bad.passed("d_gamma")  # untouched quantities still use the analytic values
    assert not bn.grad_check(Y, gamma, beta, 1e-5, G, candidate=student).passed("jac_diag")
    good = bn.grad_check(Y, gamma, beta, 1e-5, G, candidate=right)
    assert good.passed("jac_diag") and good.passed("d_gamma")


def test_kink_mask_flags_entries_whose_stencil_crosses_zero():
    rng = np.random.default_rng(9)
    Y = rng.normal(size=(8, 3))
    gamma = np.array([1.0, -1.5, 0.8])
    fwd0 = bn.bn_forward(Y, gamma, 0.0, 1e-5)
    # put Yhat[3, 0] at 1e-9 above the kink: a step of ~1e-5 crosses it
    beta = np.array([1e-9 - fwd0.Yhat[3, 0], 0.4, -0.3])
    G = np.ones_like(Y)
    skip = bn.kink_mask(Y, gamma, beta, 1e-5)
    for name in ("d_gamma", "d_beta", "d_v", "d_m"):
        assert getattr(skip, name)[0, 0], name
    assert np.all(skip.d_Y[:, 0]) and not np.any(skip.jac_diag)
    assert not skip.d_beta[0, 1] and not skip.d_beta[0, 2]
    # and the mask is needed: the finite difference is wrong at the kink
    analytic = bn.bn_backward(G, bn.bn_forward(Y, gamma, beta, 1e-5), gamma)
    numeric = bn.finite_difference_grads(Y, gamma, beta, 1e-5, G)
    assert bn.relative_error(analytic.d_beta[0, 0], numeric.d_beta[0, 0]) > 1e-3
    assert bn.relative_error(analytic.d_beta[0, 1], numeric.d_beta[0, 1]) < 1e-9


def test_relative_error_and_tolerance():
    np.testing.assert_allclose(bn.relative_error([1.0, 0.0, -2.0], [1.1, 0.0, 2.0]), [1 / 11, 0, 2])
    assert bn.relative_error(1e-12, 0.0, floor=1.0) == pytest.approx(1e-12)
    assert math.isnan(float(bn.relative_error(np.nan, 1.0)))
    tol = bn.fd_tolerance()
    assert 1e-9 < tol < 1e-7
    # the error model is smallest near the default step
    assert bn.fd_tolerance(1e-3) > tol and bn.fd_tolerance(1e-8) > tol
    with pytest.raises(ValueError):
        bn.fd_tolerance(0.0)


# ------------------------------------------------------------------------------------------------
# statistics of eps: Samuelson, E[v / (v + eps)], the Jacobian norm
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("B", [2, 3, 10, 64])
def test_samuelson_bound(B):
    rng = np.random.default_rng(B)
    Y = rng.standard_t(1.5, size=(200, B, 3))  # heavy tails push |xhat| towards the bound
    for eps in (0.0, 1e-5):
        fwd = bn.bn_forward(Y, 1.0, 0.0, eps)
        assert np.max(np.abs(fwd.xhat)) <= bn.samuelson_bound(B) * (1 + 1e-12)
    # equality: one outlier, the rest equal
    y = np.zeros((B, 1))
    y[-1] = 5.0
    fwd = bn.bn_forward(y, 1.0, 0.0, 0.0)
    assert abs(fwd.xhat[-1, 0]) == pytest.approx(math.sqrt(B - 1), rel=1e-13)
    assert abs(bn.bn_forward(y, 1.0, 0.0, 1e-3).xhat[-1, 0]) < math.sqrt(B - 1)


def test_expected_batch_var():
    assert bn.expected_batch_var(4, 2.0) == pytest.approx(1.5)
    rng = np.random.default_rng(3)
    v = rng.uniform(-1, 1, size=(40000, 5)).var(axis=1)  # any law: uniform, sigma^2 = 1/3
    se = v.std(ddof=1) / math.sqrt(v.size)
    assert abs(v.mean() - bn.expected_batch_var(5, 1 / 3)) < 5 * se


@pytest.mark.parametrize("B", [2, 3, 5, 16])
@pytest.mark.parametrize(("eps", "sigma2"), [(0.1, 1.0), (1e-3, 0.01), (1e-5, 1.0)])
def test_expected_v_ratio_against_monte_carlo(B, eps, sigma2):
    rng = np.random.default_rng(1000 * B + int(1e5 * eps))
    X = rng.normal(scale=math.sqrt(sigma2), size=(200_000, B))
    v = X.var(axis=1)
    r = v / (v + eps)
    se = r.std(ddof=1) / math.sqrt(r.size)
    pred = bn.expected_v_ratio(B, eps, sigma2)
    assert abs(r.mean() - pred) < 5 * se + 1e-12
    assert pred < 1.0


@pytest.mark.parametrize("B", [2, 3, 4, 9, 100])
@pytest.mark.parametrize("c", [1e-3, 0.1, 1.0, 30.0])
def test_expected_v_ratio_against_other_quadratures(B, c):
    k = B - 1
    pred = bn.expected_v_ratio(B, c / B, 1.0)  # c = B eps / sigma2
    by_density = scipy.stats.chi2(k).expect(lambda x: x / (x + c))
    confluent = 1 - (c / 2) * scipy.special.hyperu(1, 2 - k / 2, c / 2)
    assert pred == pytest.approx(by_density, rel=1e-9, abs=1e-10)
    # (scipy's hyperu itself errs by ~1e-12 at k = 99, c = 30; mpmath agrees with pred to 1e-16)
    assert pred == pytest.approx(confluent, rel=1e-10, abs=1e-13)


def test_expected_v_ratio_special_cases():
    assert bn.expected_v_ratio(2, 0.0, 1.0) == 1.0
    assert bn.expected_v_ratio(32, 0.0, 3.0) == 1.0
    assert bn.expected_v_ratio(8, 1e-5, 0.0) == 0.0
    assert math.isnan(bn.expected_v_ratio(8, 0.0, 0.0))
    for law in ("uniform", "exponential", "student_t"):
        assert bn.expected_v_ratio(8, 1e-5, 1.0, law) is None
        assert bn.var_out_prediction(2.0, 8, 1e-5, 1.0, law) is None
    # tiny c: for B = 2 the deficit is sqrt(pi c / 2) to leading order (chi2_1 density ~ x^-1/2)
    c = 2e-12
    assert 1 - bn.expected_v_ratio(2, c / 2, 1.0) == pytest.approx(math.sqrt(math.pi * c / 2), 1e-4)
    # decreasing in eps
    vals = [bn.expected_v_ratio(5, e, 1.0) for e in (1e-6, 1e-3, 1e-1, 10.0)]
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False))
    with pytest.raises(ValueError):
        bn.expected_v_ratio(1, 1e-5, 1.0)
    with pytest.raises(ValueError):
        bn.expected_v_ratio(4, -1e-5, 1.0)


def test_var_out_prediction_against_monte_carlo():
    rng = np.random.default_rng(4)
    B, eps, gamma, beta = 4, 0.2, -1.7, 0.3
    X = rng.normal(size=(200_000, B, 1))
    Yhat0 = bn.bn_forward(X, gamma, beta, eps).Yhat[:, 0, 0]  # one entry, iid across batches
    sq = (Yhat0 - beta) ** 2
    pred = bn.var_out_prediction(gamma, B, eps, 1.0)
    assert pred == pytest.approx(gamma**2 * bn.expected_v_ratio(B, eps, 1.0))
    assert abs(sq.mean() - pred) < 5 * sq.std(ddof=1) / math.sqrt(sq.size)
    assert abs(sq.mean() - gamma**2) > 10 * sq.std(ddof=1) / math.sqrt(sq.size)  # eps matters


def _fd_column_jacobian(y, gamma, eps, h=1e-6):
    B = y.size
    J = np.empty((B, B))
    for i in range(B):
        yp, ym = y.copy(), y.copy()
        yp[i] += h
        ym[i] -= h
        J[:, i] = (
            bn.bn_forward(yp[:, None], gamma, 0.0, eps).Yhat[:, 0]
            - bn.bn_forward(ym[:, None], gamma, 0.0, eps).Yhat[:, 0]
        ) / (yp[i] - ym[i])
    return J


@pytest.mark.parametrize("B", [2, 3, 8])
@pytest.mark.parametrize("eps", [1e-2, 1e-5])
def test_jacobian_norm_against_finite_differences(B, eps):
    rng = np.random.default_rng(B)
    y = rng.normal(size=B) * 0.5 + 2
    gamma = -1.3
    J_fd = _fd_column_jacobian(y, gamma, eps)
    J = bn.bn_jacobian(y, gamma, eps)
    np.testing.assert_allclose(J, J_fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(J)))
    norm = bn.jacobian_norm(y, gamma, eps)
    assert norm == pytest.approx(np.linalg.norm(J_fd, 2), rel=1e-6)
    v = y.var()
    assert norm == pytest.approx(bn.jacobian_norm_prediction(B, v, gamma, eps), rel=1e-12)
    if B >= 3:
        assert norm == pytest.approx(abs(gamma) / math.sqrt(v + eps), rel=1e-12)
    # its diagonal is jac_diag
    grads = bn.bn_backward(np.ones((B, 1)), bn.bn_forward(y[:, None], gamma, 0.0, eps), gamma)
    np.testing.assert_allclose(np.diag(J), grads.jac_diag[:, 0], rtol=1e-13)


def test_jacobian_norm_small_and_zero_variance():
    # v = 0: gamma eps^-1/2 times the centring projection
    y = np.full(5, 0.7)
    assert bn.jacobian_norm(y, 2.0, 1e-4) == pytest.approx(2.0 / math.sqrt(1e-4), rel=1e-12)
    # B = 2 at eps = 0: two points always normalise to +-1, the Jacobian vanishes
    assert bn.jacobian_norm(np.array([0.0, 1.0]), 1.0, 0.0) < 1e-12
    # the norm grows like (v + eps)^-1/2 as the spread falls (vectorised over instances)
    rng = np.random.default_rng(5)
    base = rng.normal(size=16)
    scales = np.array([1.0, 1e-2, 1e-4])
    norms = bn.jacobian_norm(base[None, :] * scales[:, None], 1.0, 1e-5)
    v = (base[None, :] * scales[:, None]).var(axis=1)
    np.testing.assert_allclose(norms, 1 / np.sqrt(v + 1e-5), rtol=1e-10)
    assert norms[2] > 100 * norms[0]


# ------------------------------------------------------------------------------------------------
# whitening
# ------------------------------------------------------------------------------------------------


def _correlated(rng, B, M, rho=0.6, scale=2.0, shift=3.0):
    L = np.linalg.cholesky(bn.correlation_matrix(rho, M))
    return rng.normal(size=(B, M)) @ L.T * scale + shift


@pytest.mark.parametrize("method", [bn.zca_whiten, bn.pca_whiten, bn.cholesky_whiten])
def test_white_cov_is_identity_when_B_exceeds_M(method):
    rng = np.random.default_rng(11)
    Y = _correlated(rng, 200, 6)
    eps = 1e-5
    w = method(Y, eps)
    assert (w.rank, w.singular) == (6, False)
    dev = bn.whitening_eps_deviation(w.Sigma, eps)["white_cov"]
    err = np.linalg.norm(bn.white_cov(w.Ytilde) - np.eye(6), 2)
    assert err == pytest.approx(dev, rel=1e-6)  # the deviation is exactly the eps effect
    assert 0 < dev < 1e-4
    np.testing.assert_allclose(w.Ytilde, w.Yc @ w.W, rtol=1e-12, atol=1e-12)
    # with eps = 0 it is I to rounding
    w0 = method(Y, 0.0)
    np.testing.assert_allclose(bn.white_cov(w0.Ytilde), np.eye(6), atol=1e-12)


def test_zca_cross_cov_is_sqrtm_sigma_not_identity():
    rng = np.random.default_rng(12)
    Y = _correlated(rng, 300, 5)
    eps = 1e-5
    w = bn.zca_whiten(Y, eps)
    cc = bn.cross_cov(w.Ytilde, w.Yc)
    root = bn.sqrtm_psd(w.Sigma)
    dev = bn.whitening_eps_deviation(w.Sigma, eps)["cross_cov"]
    assert np.linalg.norm(cc - root, 2) == pytest.approx(dev, rel=1e-6)
    assert dev < 0.3 * math.sqrt(eps)
    assert np.linalg.norm(cc - np.eye(5), 2) > 1.0
    np.testing.assert_allclose(root @ root, w.Sigma, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.W, w.W.T, atol=1e-15)  # ZCA's matrix is symmetric
    # PCA and Cholesky also whiten, but their cross covariance is not Sigma^(1/2)
    for method in (bn.pca_whiten, bn.cholesky_whiten):
        v = method(Y, eps)
        assert np.linalg.norm(bn.cross_cov(v.Ytilde, v.Yc) - root, 2) > 0.1


def test_pca_convention_and_relation_to_zca():
    rng = np.random.default_rng(13)
    Y = _correlated(rng, 100, 4, rho=0.3)
    p = bn.pca_whiten(Y, 1e-5)
    z = bn.zca_whiten(Y, 1e-5)
    assert np.all(np.diff(p.eigvals) <= 0)  # descending
    U = p.eigvecs
    idx = np.argmax(np.abs(U), axis=0)
    assert np.all(U[idx, np.arange(4)] > 0)  # largest entry of each axis positive
    # ZCA = PCA rotated back: Ytilde_zca = Ytilde_pca U^T
    np.testing.assert_allclose(p.Ytilde @ U.T, z.Ytilde, rtol=1e-10, atol=1e-10)


def test_pca_axes_swap_between_batches_zca_is_stable():
    rng = np.random.default_rng(14)
    M, B = 4, 2000
    zca_change, pca_change = [], []
    prev_z = prev_p = None
    for _ in range(6):  # nearly isotropic features: the principal axes are ill-determined
        Y = _correlated(rng, B, M, rho=0.02)
        z, p = bn.zca_whiten(Y, 1e-5), bn.pca_whiten(Y, 1e-5)
        if prev_z is not None:
            zca_change.append(bn.matrix_relative_change(prev_z.W, z.W))
            pca_change.append(bn.matrix_relative_change(prev_p.W, p.W))
        prev_z, prev_p = z, p
    assert max(zca_change) < 0.2
    assert np.median(pca_change) > 0.5


def test_bn_keeps_correlations():
    rng = np.random.default_rng(15)
    Y = _correlated(rng, 5000, 3, rho=0.6)
    w = bn.bn_standardize(Y, 0.0)
    wc = bn.white_cov(w.Ytilde)
    np.testing.assert_allclose(np.diag(wc), 1.0, rtol=1e-12)
    assert np.all(np.abs(wc[~np.eye(3, dtype=bool)] - 0.6) < 0.05)
    # and it is the forward pass with gamma = 1, beta = 0
    np.testing.assert_allclose(w.Ytilde, bn.bn_forward(Y, 1.0, 0.0, 0.0).Yhat, rtol=1e-12)


def _emulate_blas(monkeypatch, shift):
    """Make ``eigh`` / ``eigvalsh`` return every rounding-level eigenvalue (|lambda| below
    1e-10 lambda_max; the true ones here are ~1e-17) as ``shift * eps_machine * lambda_max``:
    what another BLAS kernel may give for the null eigenvalues of a singular Sigma (issue 10:
    +1.2e-17 on one CPU, a negative number on another)."""
    real_eigh, real_eigvalsh = np.linalg.eigh, np.linalg.eigvalsh

    def nudge(lam):
        top = lam[..., -1:]
        return np.where(np.abs(lam) < 1e-10 * top, shift * EPS_MACHINE * top, lam)

    def eigh(a, *args, **kwargs):
        lam, U = real_eigh(a, *args, **kwargs)
        return nudge(lam), U

    monkeypatch.setattr(np.linalg, "eigh", eigh)
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda a, *r, **k: nudge(real_eigvalsh(a, *r, **k)))


# shifts within the measured rounding of null eigenvalues (< 2.3 eps_machine lambda_max; the
# threshold is max(B, M) = 6 times that), of both signs, and exactly 0
@pytest.mark.parametrize("shift", [None, -2.0, 0.0, 1e-3, 0.5, 2.0])
def test_whitening_when_B_is_at_most_M(monkeypatch, shift):
    """A singular Sigma is decided by a relative threshold (null_tolerance), never by the sign
    of a rounding-level eigenvalue: flagged (rank, singular), null eigenvalues exactly 0, and at
    eps = 0 the output is NaN for every method, whatever the BLAS kernel returns."""
    if shift is not None:
        _emulate_blas(monkeypatch, shift)
    rng = np.random.default_rng(16)
    M = 6
    for B in (6, 4):
        Y = _correlated(rng, B, M)
        w = bn.zca_whiten(Y, 1e-5)
        assert (w.rank, w.singular) == (B - 1, True)
        assert w.tol == pytest.approx(M * EPS_MACHINE * w.eigvals[-1])
        np.testing.assert_array_equal(w.eigvals[: M - B + 1], 0.0)  # exactly, on every BLAS
        assert np.all(w.eigvals[M - B + 1 :] > 1e-3)
        assert bn.effective_rank(w.Sigma) == B - 1
        assert bn.condition_number(w.Sigma) == math.inf
        # white_cov is no longer I: B - 1 unit eigenvalues, the rest ~0
        ev = np.linalg.eigvalsh(bn.white_cov(w.Ytilde))
        assert np.sum(ev > 0.5) == B - 1
        assert bn.whitening_eps_deviation(w.Sigma, 1e-5)["white_cov"] == 1.0
        for method in (bn.zca_whiten, bn.pca_whiten, bn.cholesky_whiten):
            with np.errstate(all="raise"):  # eps = 0 and singular Sigma: NaN, never raises
                w0 = method(Y, 0.0)
                w5 = method(Y, 1e-5)
            assert (w0.rank, w0.singular) == (B - 1, True), method.__name__
            assert np.all(np.isnan(w0.Ytilde)) and np.all(np.isnan(w0.W)), method.__name__
            assert (w5.rank, w5.singular) == (B - 1, True), method.__name__
            assert np.all(np.isfinite(w5.Ytilde)), method.__name__  # eps regularises
        assert np.all(np.isnan(bn.inv_sqrtm_psd(w.Sigma, 0.0)))
        assert np.isnan(bn.whitening_eps_deviation(w.Sigma, 0.0)["white_cov"])


def test_singular_flags_per_batch_in_a_stack():
    """In a stack, only the singular batch (a constant feature, B > M) is flagged and NaN at
    eps = 0; the others are untouched."""
    rng = np.random.default_rng(18)
    Y = np.stack([_correlated(rng, 50, 4) for _ in range(3)])
    Y[1, :, 2] = 7.0
    for method in (bn.zca_whiten, bn.pca_whiten, bn.cholesky_whiten):
        w = method(Y, 0.0)
        np.testing.assert_array_equal(w.rank, [4, 3, 4])
        np.testing.assert_array_equal(w.singular, [False, True, False])
        assert np.all(np.isnan(w.Ytilde[1]))
        np.testing.assert_allclose(bn.white_cov(w.Ytilde[[0, 2]]), [np.eye(4)] * 2, atol=1e-12)
    assert bn.bn_standardize(Y, 0.0).singular is None  # BN does not use the spectrum


def test_matrix_helpers():
    rng = np.random.default_rng(17)
    C = bn.random_correlation(rng, 5)
    np.testing.assert_allclose(np.diag(C), 1.0, atol=1e-12)
    np.testing.assert_allclose(C, C.T, atol=0)
    assert np.min(np.linalg.eigvalsh(C)) > 0
    np.testing.assert_array_equal(
        bn.random_correlation(np.random.default_rng(3), 4),
        bn.random_correlation(np.random.default_rng(3), 4),
    )
    E = bn.correlation_matrix(-0.2, 4)
    np.testing.assert_allclose(np.linalg.eigvalsh(E), [0.4, 1.2, 1.2, 1.2], rtol=1e-12)
    for rho, M in [(1.0, 3), (-0.5, 3), (-1.2, 2), (0.5, 0)]:
        with pytest.raises(ValueError):
            bn.correlation_matrix(rho, M)
    S = C * 2.0
    R = bn.inv_sqrtm_psd(S, 0.1)
    np.testing.assert_allclose(R @ (S + 0.1 * np.eye(5)) @ R, np.eye(5), atol=1e-12)
    assert bn.condition_number(np.diag([4.0, 2.0, 0.5])) == pytest.approx(8.0)
    assert bn.condition_number(np.diag([1.0, 0.0])) == math.inf
    # numerically singular (below M eps_machine lambda_max), whatever the sign: inf, not 1e18
    assert bn.condition_number(np.diag([1.0, 1e-18])) == math.inf
    assert bn.condition_number(np.diag([1.0, -1e-18])) == math.inf
    assert bn.condition_number(np.diag([1.0, 1e-12])) == pytest.approx(1e12)
    assert bn.null_tolerance(3.0, 4) == 12 * EPS_MACHINE
    assert bn.effective_rank(np.diag([1.0, 1e-3, 0.0])) == 2
    assert bn.effective_rank(np.diag([1.0, 1e-3, 0.0]), tol=1e-2) == 1
    stack = np.stack([np.eye(3), np.diag([1.0, 1.0, 0.0])])
    np.testing.assert_array_equal(bn.effective_rank(stack), [3, 2])
    assert bn.matrix_relative_change(np.eye(2), np.eye(2)) == 0.0


@pytest.mark.parametrize("B", [2, 3, 8, 32, 128, 2048])
@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-5, 1.0])
def test_the_curve_of_expected_v_ratio_is_the_adaptive_quadrature(B, eps):
    """The figures' vectorised curve (fixed Gauss-Legendre rules) against the checks' adaptive
    quadrature, point by point, including a variance exactly 0."""
    sigma2 = np.concatenate([[0.0], np.logspace(-16, 4, 41)])
    curve = bn.expected_v_ratio_curve(B, eps, sigma2)
    one_by_one = np.array([bn.expected_v_ratio(B, eps, float(v)) for v in sigma2])
    np.testing.assert_allclose(curve, one_by_one, rtol=0, atol=1e-12, equal_nan=True)


def test_the_curve_of_expected_v_ratio_refuses_what_the_pointwise_one_refuses():
    with pytest.raises(ValueError, match="B must be"):
        bn.expected_v_ratio_curve(1, 1e-5, [1.0])
    with pytest.raises(ValueError, match="sigma2"):
        bn.expected_v_ratio_curve(4, 1e-5, [-1.0])
    with pytest.raises(ValueError, match="sigma2"):
        bn.expected_v_ratio_curve(4, 1e-5, [float("nan")])


def test_the_curve_of_expected_v_ratio_is_1_at_an_infinite_variance():
    assert bn.expected_v_ratio_curve(4, 1e-5, [math.inf])[0] == 1.0


@pytest.mark.parametrize("B", [2, 3, 8, 32, 513])
def test_the_scaled_variance_law_is_chi_squared(B):
    from scipy import stats

    x = np.concatenate([[0.0, -1.0], np.geomspace(1e-6, 20.0 * B, 400)])
    np.testing.assert_allclose(
        bn_stats.scaled_variance_density(x, B), stats.chi2.pdf(x, B - 1), rtol=1e-12, atol=0
    )
    for p in (0.5, 0.9995):
        assert bn_stats.scaled_variance_quantile(p, B) == pytest.approx(
            stats.chi2.ppf(p, B - 1), rel=1e-12
        )
