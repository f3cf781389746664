"""Hutchinson's estimator of the trace of the Hessian, from Rademacher probes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from sharpax._types import Array, Params
from sharpax._validation import check_int, check_key
from sharpax.sharpness import _operator as op
from sharpax.sharpness._operator import HessianOperator


def hessian_trace(
    loss_fn: Callable[..., Array],
    params: Params,
    *args: Any,
    num_samples: int = 100,
    key: Array,
) -> Array:
    r"""Hutchinson's estimate of the trace of the Hessian of `loss_fn` at `params`.

    .. math::
        \operatorname{tr} H \approx \frac{1}{N} \sum_{s=1}^{N} z_s^\top H z_s, \qquad
        z_s \in \{-1, +1\}^n \text{ i.i.d. uniform}, \qquad
        \operatorname{Var} = \frac{2}{N} \sum_{i \ne j} H_{ij}^2

    N = `num_samples` Hessian-vector products (forward-over-reverse, `jax.jvp` of `jax.grad`; the dense
    Hessian is never formed), one Rademacher probe each, in a `lax.fori_loop` (one probe in memory at a
    time); the sum is accumulated in float32 (float64 under x64). The estimate is unbiased, and exact for
    a diagonal Hessian (Rademacher probes have the least variance of any probe distribution: Gaussian
    ones add 2 sum_i H_ii^2 / N). For error bars, `jax.vmap` it over keys and take the standard error.

    PyHessian's `hessian(...).trace(maxIter, tol)` draws the same probes but returns the list of the
    per-probe values v^T H v, stopped early when their running mean changes by less than tol relative;
    here N is fixed (so that it compiles to one loop) and the mean is returned.

    A loss over more data than fits in one batch: see `hessian_eigenvalues` and docs/sharpness.md.

    Args:
        loss_fn: `loss_fn(params, *args) -> scalar loss`, differentiable twice in the float leaves of
            `params` (integer and bool leaves are held fixed).
        params: a pytree of arrays (any structure, any float dtypes; sharded arrays stay sharded).
        *args: passed to `loss_fn` after `params`.
        num_samples: N, the number of probes (Hessian-vector products), an integer >= 1.
        key: a PRNG key for the probes.

    Returns:
        The estimate, a float32 scalar (float64 when a param is float64).

    References:
        Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian smoothing
        splines", Commun. Stat. Simul. Comput. 1990; Avron & Toledo, "Randomized algorithms for
        estimating the trace of an implicit symmetric positive semi-definite matrix", JACM 2011; Yao
        et al., "PyHessian: Neural Networks Through the Lens of the Hessian", IEEE BigData 2020.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([3.0, -5.0, 2.0]) * w**2)  # H = diag(3, -5, 2)
        >>> sharpax.sharpness.hessian_trace(loss, jnp.ones(3), num_samples=4, key=jax.random.key(0))
        Array(0., dtype=float32)
    """
    owner = "hessian_trace"
    hessian = HessianOperator(owner, loss_fn, params, args)
    check_int(owner, "num_samples", num_samples)
    check_key(owner, key)
    dtype = hessian.dtype

    def probe(i, total):
        z = op.random_vector(jax.random.fold_in(key, i), hessian.leaves, dtype, "rademacher")
        return total + op.dot(z, hessian.hvp(z), dtype)

    total = lax.fori_loop(0, num_samples, probe, jnp.zeros([], dtype))
    return total / num_samples
