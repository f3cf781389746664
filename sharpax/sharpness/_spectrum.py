"""The eigenvalue density of the Hessian by stochastic Lanczos quadrature, and its smoothed density."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from sharpax._types import Array, Params
from sharpax._validation import check_int, check_key, check_positive, check_range
from sharpax.sharpness import _operator as op
from sharpax.sharpness._lanczos import lanczos
from sharpax.sharpness._operator import HessianOperator


def hessian_spectrum(
    loss_fn: Callable[..., Array],
    params: Params,
    *args: Any,
    num_lanczos: int = 80,
    num_runs: int = 5,
    key: Array,
) -> tuple[Array, Array]:
    r"""The eigenvalue density of the Hessian of `loss_fn` at `params`, by stochastic Lanczos quadrature.

    .. math::
        \phi(t) = \frac{1}{n} \sum_{i=1}^{n} \delta(t - \lambda_i)
        \approx \sum_{r=1}^{R} \sum_{l=1}^{m} w_{rl} \, \delta(t - t_{rl}), \qquad
        t_{rl} = \theta_l(T^{(r)}), \quad w_{rl} = \frac{1}{R} \big(s^{(r)}_{l}\big)_1^2

    Each of the R = `num_runs` runs starts Lanczos (with full reorthogonalisation) from a normalised
    Rademacher vector v and takes m = `num_lanczos` Hessian-vector products (forward-over-reverse; the
    dense Hessian is never formed); the eigenvalues theta_l of its tridiagonal T are the nodes and the
    squared first components of their eigenvectors s_l the weights of an m-point Gauss quadrature of
    v^T f(H) v, exact for polynomials f of degree < 2m. Since E[v^T f(H) v] = tr f(H) / n, the nodes and
    weights together are a discrete approximation of the spectral density: the moments
    sum(weights * nodes**j) estimate tr(H^j) / n. Runs go one after the other (`lax.map`), each storing
    its m vectors.

    PyHessian's `hessian(...).density(iter, n_v)` is the same algorithm (Ghorbani et al.'s), and returns
    lists of nodes and weights per run, each run's weights summing to 1; here the weights of all runs
    sum to 1 (each run's divided by R), so that `nodes` and `weights` are one density. Multiply by
    `num_runs` for PyHessian's per-run weights. `spectral_density` smooths it as PyHessian's
    `density_plot.density_generate` does.

    A loss over more data than fits in one batch: see `hessian_eigenvalues` and docs/sharpness.md.

    Args:
        loss_fn: `loss_fn(params, *args) -> scalar loss`, differentiable twice in the float leaves of
            `params` (integer and bool leaves are held fixed).
        params: a pytree of arrays (any structure, any float dtypes; sharded arrays stay sharded).
        *args: passed to `loss_fn` after `params`.
        num_lanczos: m, Lanczos steps per run, an integer >= 1. More than the number of parameters n is
            n (the quadrature is then exact: its nodes are H's eigenvalues).
        num_runs: R, the number of random starts, an integer >= 1.
        key: a PRNG key for the starts (and for restarts after a breakdown).

    Returns:
        `(nodes, weights)`, both of shape (num_runs, min(num_lanczos, n)), float32 (float64 when a param
        is float64): each run's nodes in ascending order, and weights >= 0 summing to 1 over both axes.

    References:
        Ghorbani, Krishnan & Xiao, "An Investigation into Neural Net Optimization via Hessian Eigenvalue
        Density", ICML 2019; Golub & Meurant, "Matrices, Moments and Quadrature with Applications", 2010;
        Yao et al., "PyHessian: Neural Networks Through the Lens of the Hessian", IEEE BigData 2020.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: 0.5 * jnp.sum(jnp.array([3.0, -5.0, 2.0]) * w**2)
        >>> nodes, weights = sharpax.sharpness.hessian_spectrum(
        ...     loss, jnp.ones(3), num_lanczos=3, num_runs=2, key=jax.random.key(0)
        ... )
        >>> nodes.round(4)  # three steps span R^3: the exact eigenvalues
        Array([[-5.,  2.,  3.],
               [-5.,  2.,  3.]], dtype=float32)
        >>> weights.sum().round(4), (weights * nodes).sum().round(4)  # 1 and tr(H) / 3 = 0
        (Array(1., dtype=float32), Array(0., dtype=float32))
    """
    owner = "hessian_spectrum"
    hessian = HessianOperator(owner, loss_fn, params, args)
    check_int(owner, "num_lanczos", num_lanczos)
    check_int(owner, "num_runs", num_runs)
    check_key(owner, key)
    dtype = hessian.dtype
    steps = min(num_lanczos, hessian.size)

    def run(run_key):
        start_key, restart_key = jax.random.split(run_key)
        z = op.random_vector(start_key, hessian.leaves, dtype, "rademacher")
        result = lanczos(hessian, op.normalize(z, dtype), steps, restart_key)
        off = result.beta[:-1]
        t = jnp.diag(result.alpha) + jnp.diag(off, 1) + jnp.diag(off, -1)
        nodes, s = jnp.linalg.eigh(t)
        return nodes, jnp.square(s[0])

    nodes, weights = lax.map(run, jax.random.split(key, num_runs))
    return nodes, weights / num_runs


def spectral_density(
    nodes: Array,
    weights: Array,
    *,
    num_bins: int = 10_000,
    sigma_squared: float = 1e-5,
    overhead: float = 0.01,
) -> tuple[Array, Array]:
    r"""A smooth eigenvalue density from `hessian_spectrum`'s nodes and weights (PyHessian's rule).

    .. math::
        \phi_\sigma(t) = \frac{1}{Z} \sum_{r, l} w_{rl} \, \mathcal{N}(t;\, t_{rl}, \sigma^2), \qquad
        \sigma^2 = \text{sigma\_squared} \cdot \max(1, \lambda_{\max} - \lambda_{\min})

    on `num_bins` points from lambda_min to lambda_max, the means over runs of each run's smallest and
    largest node widened by `overhead`, and Z such that the density sums to 1 over the grid (times its
    spacing). This is `density_plot.density_generate` of PyHessian, on weights that sum to 1 over all
    runs (the mean of PyHessian's per-run densities is the same density). Plot it on a log scale: the
    density of a network's Hessian is a bulk near 0 and a few outliers.

    Args:
        nodes: `hessian_spectrum`'s nodes, shape (num_runs, m).
        weights: its weights, the same shape, >= 0.
        num_bins: the number of grid points, an integer >= 2.
        sigma_squared: the Gaussian kernel's variance per unit of spectral width, > 0.
        overhead: how far the grid extends beyond the mean extreme nodes, >= 0.

    Returns:
        `(density, grid)`, both of shape (num_bins,), in the dtype of `nodes`.

    References:
        Ghorbani, Krishnan & Xiao, "An Investigation into Neural Net Optimization via Hessian Eigenvalue
        Density", ICML 2019; Yao et al., "PyHessian: Neural Networks Through the Lens of the Hessian",
        IEEE BigData 2020 (github.com/amirgholami/PyHessian, density_plot.py).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> nodes, weights = jnp.array([[-1.0, 2.0]]), jnp.array([[0.75, 0.25]])
        >>> density, grid = sharpax.sharpness.spectral_density(nodes, weights, num_bins=303)
        >>> grid[0].round(2), grid[-1].round(2), grid[jnp.argmax(density)].round(2)
        (Array(-1.01, dtype=float32), Array(2.01, dtype=float32), Array(-1., dtype=float32))
        >>> (density.sum() * (grid[1] - grid[0])).round(4)
        Array(1., dtype=float32)
    """
    owner = "spectral_density"
    check_int(owner, "num_bins", num_bins, minimum=2)
    check_positive(owner, sigma_squared=sigma_squared)
    check_range(owner, "overhead", overhead, 0.0)
    nodes, weights = jnp.asarray(nodes), jnp.asarray(weights)
    if nodes.ndim != 2 or weights.shape != nodes.shape:
        raise ValueError(
            f"{owner}: nodes and weights must have one shape (num_runs, m), got {nodes.shape} and "
            f"{weights.shape}"
        )
    dtype = nodes.dtype
    top = jnp.mean(jnp.max(nodes, axis=1)) + overhead
    bottom = jnp.mean(jnp.min(nodes, axis=1)) - overhead
    grid = jnp.linspace(bottom, top, num_bins, dtype=dtype)
    variance = sigma_squared * jnp.maximum(1, top - bottom)
    # One kernel row per grid point: num_bins x (runs * m) values, all of them needed for the sum.
    gap = grid[:, None] - nodes.reshape(-1)[None, :]
    kernel = jnp.exp(-jnp.square(gap) / (2 * variance)) / jnp.sqrt(2 * jnp.pi * variance)
    density = jnp.dot(kernel, weights.reshape(-1).astype(dtype), precision=lax.Precision.HIGHEST)
    return density / (jnp.sum(density) * (grid[1] - grid[0])), grid
