"""Batch normalization, the deterministic mathematics behind ``simlab batchnorm`` (SPEC 1.3).

One module per concept; this one gathers their public names, so ``from simlab.theory import
batchnorm as bn`` reaches all of them:

:mod:`simlab.theory.bn_forward`
    The forward pass (and the shape conventions of every module here): :func:`bn_forward`,
    :func:`batch_sum`, :func:`yhat_batch_moments`.
:mod:`simlab.theory.bn_grads`
    The analytic backward: :func:`bn_backward`, :func:`claim_namespace`, :data:`GRAD_QUANTITIES`.
:mod:`simlab.theory.bn_finite_diff`
    Its finite-difference reference: :func:`finite_difference_grads`, :func:`kink_mask`,
    :func:`relative_error`, :func:`fd_tolerance`, :func:`fd_resolution`, :func:`grad_scales`,
    :func:`grad_check`, :data:`DEFAULT_STEP`, :data:`FD_SAFETY`.
:mod:`simlab.theory.bn_stats`
    Statistics over random batches and why eps exists: :func:`expected_batch_var`,
    :func:`expected_v_ratio` (and :func:`expected_v_ratio_curve`), :func:`var_out_prediction`,
    :func:`predicted_yhat_batch_var`, :func:`samuelson_bound`,
    :func:`bn_jacobian`, :func:`jacobian_norm`, :func:`jacobian_norm_prediction`.
:mod:`simlab.theory.whitening`
    ZCA, PCA and Cholesky whitening beside BN: :func:`zca_whiten`, :func:`pca_whiten`,
    :func:`cholesky_whiten`, :func:`bn_standardize`, :func:`white_cov`, :func:`cross_cov`,
    :func:`sqrtm_psd`, :func:`inv_sqrtm_psd`, :func:`whitening_eps_deviation`,
    :func:`correlation_matrix`, :func:`random_correlation`, :func:`effective_rank`,
    :func:`condition_number`, :func:`null_tolerance`, :func:`matrix_relative_change`.
"""

from simlab.theory.bn_finite_diff import *  # noqa: F403
from simlab.theory.bn_finite_diff import __all__ as _finite_diff
from simlab.theory.bn_forward import *  # noqa: F403
from simlab.theory.bn_forward import __all__ as _forward
from simlab.theory.bn_grads import *  # noqa: F403
from simlab.theory.bn_grads import __all__ as _grads
from simlab.theory.bn_stats import *  # noqa: F403
from simlab.theory.bn_stats import __all__ as _stats
from simlab.theory.whitening import *  # noqa: F403
from simlab.theory.whitening import __all__ as _whitening

__all__ = sorted({*_forward, *_grads, *_finite_diff, *_stats, *_whitening})
