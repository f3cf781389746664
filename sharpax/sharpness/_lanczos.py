"""Lanczos with full reorthogonalisation on Hessian-vector products: the top eigenpairs, and the
tridiagonal matrix that stochastic Lanczos quadrature reads the spectral density from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sharpax._types import Array, Params, PyTree
from sharpax._validation import (
    check_int,
    check_key,
    check_non_negative,
    is_static_number,
)
from sharpax.sharpness import _operator as op
from sharpax.sharpness._operator import Basis, HessianOperator, Vector


class LanczosResult(NamedTuple):
    """`steps` rows of `basis` (orthonormal) and of the tridiagonal T = basis H basis^T."""

    alpha: Array  # (m,) the diagonal of T; entries from `steps` on are unused
    beta: Array  # (m,) beta[i] couples rows i and i + 1 (0 where a new random block starts)
    basis: Basis
    steps: Array  # rows filled


class _Carry(NamedTuple):
    steps: Array
    v: Vector  # the next row of the basis
    basis: Basis
    alpha: Array
    beta: Array
    hv_norm: Array  # the largest ||H v|| so far: the scale of the rounding errors of H v
    done: Array


def padded_tridiagonal(alpha: Array, beta: Array, steps: Array) -> Array:
    """T on its first `steps` rows, and below every eigenvalue of that block on the rows after it.

    The padding rows are decoupled and get one value under the Gershgorin lower bound of the block, so
    a fixed-size `eigh` (as `jit` needs) returns the block's eigenpairs as its top `steps` ones.
    """
    m = alpha.shape[0]
    rows = jnp.arange(m, dtype=jnp.asarray(steps).dtype)
    real = rows < steps
    off = jnp.where(rows < steps - 1, beta, 0)[:-1]
    radius = jnp.abs(jnp.pad(off, (1, 0))) + jnp.abs(jnp.pad(off, (0, 1)))
    low = jnp.min(jnp.where(real, alpha - radius, jnp.inf))
    high = jnp.max(jnp.where(real, alpha + radius, -jnp.inf))
    tiny = jnp.finfo(alpha.dtype).tiny
    pad = low - jnp.maximum(jnp.maximum(0.1 * (high - low), 1e-3 * jnp.abs(low)), tiny)
    diagonal = jnp.where(real, alpha, pad)
    return jnp.diag(diagonal) + jnp.diag(off, 1) + jnp.diag(off, -1)


def _top_ritz(alpha, beta, steps, k):
    """The k largest Ritz values (descending) and their eigenvectors in T's coordinates."""
    theta, s = jnp.linalg.eigh(padded_tridiagonal(alpha, beta, steps))
    return theta[::-1][:k], s[:, ::-1][:, :k], theta


def lanczos(
    hessian: HessianOperator,
    v0: Vector,
    num_steps: int,
    key: Array,
    k: int | None = None,
    tol: float | None = None,
) -> LanczosResult:
    """`num_steps` Lanczos steps from the unit vector v0 (fewer when `tol` is given and k Ritz pairs
    converge: ||H y - theta y|| = |beta s_last| <= tol * |theta|_max).

    Every new vector is orthogonalised against all the previous ones (twice). At a breakdown (the Krylov
    space is invariant: the residual is at the rounding level of H v) the next vector is a random one
    orthogonal to the basis and beta is 0, as in PyHessian's density: T stays block diagonal, and a
    repeated eigenvalue gets another copy from the new block.
    """
    dtype = hessian.dtype
    eps = jnp.finfo(dtype).eps

    def body(c: _Carry) -> _Carry:
        j = c.steps
        basis = op.set_row(c.basis, j, c.v)
        w = hessian.hvp(c.v)
        a = op.dot(w, c.v, dtype)
        hv_norm = jnp.maximum(c.hv_norm, op.norm(w, dtype))
        w = op.orthogonalize(w, basis, j + 1)
        b = op.norm(w, dtype)
        broke = b <= eps * hv_norm

        def restart():
            r = op.random_vector(jax.random.fold_in(key, j), w, dtype)
            return op.normalize(op.orthogonalize(r, basis, j + 1), dtype)

        v = lax.cond(broke, restart, lambda: op.scale(w, 1 / jnp.where(broke, 1, b)))
        b = jnp.where(broke, 0, b)
        alpha, beta = c.alpha.at[j].set(a), c.beta.at[j].set(b)
        done = j + 1 >= num_steps
        if tol is not None and k is not None:
            _, s, theta = _top_ritz(alpha, beta, j + 1, k)
            residual = jnp.abs(b * s[j])
            magnitude = jnp.maximum(jnp.abs(theta[-1]), jnp.abs(theta[num_steps - (j + 1)]))
            converged = (j + 1 >= k) & ~broke & jnp.all(residual <= tol * magnitude)
            done = done | converged
        return _Carry(j + 1, v, basis, alpha, beta, hv_norm, done)

    zeros = jnp.zeros(num_steps, dtype)
    init = _Carry(
        steps=jnp.zeros([], jnp.int32),
        v=[x.astype(dtype) for x in v0],
        basis=op.zeros_basis(v0, num_steps, dtype),
        alpha=zeros,
        beta=zeros,
        hv_norm=jnp.zeros([], dtype),
        done=jnp.zeros([], bool),
    )
    c = lax.while_loop(lambda c: ~c.done, body, init)
    return LanczosResult(c.alpha, c.beta, c.basis, c.steps)


def hessian_eigenvalues(
    loss_fn: Callable[..., Array],
    params: Params,
    *args: Any,
    k: int = 1,
    num_iterations: int = 100,
    key: Array,
    tol: float = 1e-6,
) -> tuple[Array, PyTree]:
    r"""The k largest eigenvalues of the Hessian of `loss_fn` at `params`, and their eigenvectors.

    .. math::
        H = \nabla^2_w L(w), \qquad H Q_m^\top = Q_m^\top T_m + \beta_m q_{m+1} e_m^\top, \qquad
        \lambda_i \approx \theta_i(T_m), \quad v_i = Q_m^\top s_i

    Lanczos with full reorthogonalisation: m Hessian-vector products (forward-over-reverse, `jax.jvp`
    of `jax.grad`; the dense Hessian is never formed) build an orthonormal basis Q_m of the Krylov space
    of a random start, and the top Ritz pairs (theta_i, s_i) of the m x m tridiagonal T_m = Q_m H Q_m^T
    are the estimates. It stops early once the k Ritz pairs' residuals ||H v_i - theta_i v_i|| =
    |beta_m s_{m,i}| are at most `tol` times the largest |Ritz value|, which bounds each eigenvalue's
    error by the same amount. Extreme eigenvalues converge first, at a rate set by the gaps of the
    spectrum; `num_iterations` stored vectors are the memory cost (num_iterations x the number of
    parameters, in the accumulation dtype).

    PyHessian's `hessian(model, criterion, data).eigenvalues(maxIter, tol, top_n)` runs power iteration
    with deflation instead: up to maxIter products per eigenvalue, the largest *magnitude* eigenvalues
    (a negative one when it dominates), stopped when the estimate changes by less than tol relative.
    Here the eigenvalues are the largest *algebraic* ones, all k from one Krylov space, so k
    eigenvalues cost about as much as one. A Krylov space from one vector holds one copy of a repeated
    eigenvalue: the copies appear after a breakdown restarts the iteration on a fresh random vector,
    so for an exactly repeated eigenvalue pass `tol=0` and enough iterations.

    A loss over more data than fits in one batch is a mean over batches computed inside `loss_fn`:
    `loss_fn(params, batches) = jnp.mean(lax.scan(body, None, batches)[1])`, with the per-batch loss
    wrapped in `jax.checkpoint` so that the products keep one batch's activations at a time (see
    docs/sharpness.md).

    Args:
        loss_fn: `loss_fn(params, *args) -> scalar loss`, differentiable twice in the float leaves of
            `params` (integer and bool leaves are held fixed).
        params: a pytree of arrays (any structure, any float dtypes; sharded arrays stay sharded).
        *args: passed to `loss_fn` after `params` (the batch, or all the batches).
        k: how many eigenvalues, an integer in [1, number of parameters].
        num_iterations: the most Lanczos steps (Hessian-vector products), an integer >= k. More than
            the number of parameters is the number of parameters (the Krylov space is then the whole
            space, and the result is exact up to rounding).
        key: a PRNG key for the random start (and for restarts after a breakdown).
        tol: relative tolerance of the early stop, >= 0; 0 runs all `num_iterations` steps.

    Returns:
        `(eigs, vecs)`: eigs, shape (k,), the k largest eigenvalues in descending order; vecs, a pytree
        shaped like `params` with a leading axis k, eigenvector i at index i, of unit norm over the
        whole tree (its sign is arbitrary). Both are float32 (float64 when a param is float64); leaves
        of vecs at non-float params are zeros.

    References:
        Lanczos, "An iteration method for the solution of the eigenvalue problem of linear differential
        and integral operators", J. Res. Natl. Bur. Stand. 1950; Parlett, "The Symmetric Eigenvalue
        Problem", 1998 (full reorthogonalisation, "twice is enough"); Yao, Gholami, Keutzer & Mahoney,
        "PyHessian: Neural Networks Through the Lens of the Hessian", IEEE BigData 2020.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([3.0, -5.0, 2.0, 1.0]) * w**2)
        >>> eigs, vecs = sharpax.sharpness.hessian_eigenvalues(
        ...     loss, jnp.ones(4), k=2, key=jax.random.key(0)
        ... )
        >>> eigs.round(4), jnp.abs(vecs).round(4)
        (Array([3., 2.], dtype=float32), Array([[1., 0., 0., 0.],
               [0., 0., 1., 0.]], dtype=float32))
    """
    owner = "hessian_eigenvalues"
    hessian = HessianOperator(owner, loss_fn, params, args)
    n = hessian.size
    check_int(owner, "k", k)
    if k > n:
        raise ValueError(
            f"{owner}: k must be an integer in [1, {n}] (the number of parameters), got {k}"
        )
    check_int(owner, "num_iterations", num_iterations)
    if num_iterations < k:
        raise ValueError(
            f"{owner}: num_iterations must be an integer >= k = {k}, got {num_iterations}"
        )
    check_non_negative(owner, tol=tol)
    if not is_static_number(tol):
        raise TypeError(f"{owner}: tol must be a Python number (it shapes the loop), got {tol!r}")
    check_key(owner, key)

    dtype = hessian.dtype
    start_key, restart_key = jax.random.split(key)
    v0 = op.normalize(op.random_vector(start_key, hessian.leaves, dtype), dtype)
    steps = min(num_iterations, n)
    result = lanczos(hessian, v0, steps, restart_key, k=k, tol=float(tol) if tol > 0 else None)
    eigs, s, _ = _top_ritz(result.alpha, result.beta, result.steps, k)
    vecs = op.combine(result.basis, s)
    # The Ritz vectors are unit up to rounding; normalised again so that the contract holds exactly.
    norms = jnp.sqrt(sum(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim))) for x in vecs))
    vecs = [x / norms.reshape((k,) + (1,) * (x.ndim - 1)) for x in vecs]
    return eigs, hessian.to_tree(vecs, leading=k)
