"""Loss landscapes (Li et al. 2018): the loss along one or over two filter-normalised random directions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from sharpax._random import normal
from sharpax._tree import is_float_leaf
from sharpax._types import Array, Params, PyTree
from sharpax._validation import check_int, check_key
from sharpax.sharpness._operator import HessianOperator, refuse_complex
from sharpax.wrappers._sam_geometry import accumulation_dtype


def filter_normalized_direction(key: Array, params: Params) -> PyTree:
    r"""A random direction in parameter space, scaled filter by filter to the params (Li et al. 2018).

    .. math::
        d_f = \frac{z_f}{\lVert z_f \rVert_2 + 10^{-10}} \, \lVert w_f \rVert_2, \qquad
        z \sim \mathcal{N}(0, I)

    for every filter f of every kernel: a filter is one output unit, the slice at one index of the last
    axis of a leaf with two or more axes (a Dense kernel (in, out), an HWIO conv kernel, an embedding
    table (vocab, features)). Leaves with fewer than two axes (biases, normalisation scales) get a zero
    direction, as in the paper's plots ("ignore='biasbn'" in its code), and so do integer and bool
    leaves. A slice of the loss along d then measures the geometry of the weights, not their scale:
    rescaling a ReLU network layer by layer (a layer's kernel and bias by c > 0, the next layer's
    kernel by 1 / c), or a filter feeding a normalisation layer, rescales the matching filters of d the
    same way, so the landscape does not change (same key).

    The paper's code (tomgoldstein/loss-landscape, `net_plotter.normalize_direction`) is PyTorch, where
    the output axis of a weight comes first; Flax and Haiku kernels put it last, and so does this. The
    normal draws run in float32 (float64 for float64 params) and d comes back in each leaf's own dtype.

    Args:
        key: a PRNG key (one independent draw per leaf).
        params: a pytree of arrays.

    Returns:
        A pytree shaped like `params`, in its dtypes.

    References:
        Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> params = {"kernel": jnp.array([[3.0, 0.0], [4.0, 1.0]]), "bias": jnp.ones(2)}
        >>> d = sharpax.sharpness.filter_normalized_direction(jax.random.key(0), params)
        >>> jnp.linalg.norm(d["kernel"], axis=0).round(4), d["bias"]  # each column: the param's norm
        (Array([5., 1.], dtype=float32), Array([0., 0.], dtype=float32))
    """
    check_key("filter_normalized_direction", key)
    refuse_complex("filter_normalized_direction", params)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))

    def one(k, w):
        if not is_float_leaf(w) or jnp.ndim(w) < 2:
            return jnp.zeros_like(w)
        dtype = accumulation_dtype([w])
        d = normal(k, w.shape, dtype)
        axes = tuple(range(w.ndim - 1))
        norm = lambda a: jnp.sqrt(jnp.sum(a * a, axis=axes, keepdims=True))
        return (d * norm(w.astype(dtype)) / (norm(d) + 1e-10)).astype(w.dtype)

    return treedef.unflatten([one(k, w) for k, w in zip(keys, leaves, strict=True)])


def loss_landscape(
    loss_fn: Callable[..., Array],
    params: Params,
    *args: Any,
    directions: Sequence[PyTree],
    alphas: Array,
    batch_size: int | None = None,
) -> Array:
    r"""The loss along one direction, or over the plane of two, around `params` (Li et al. 2018).

    .. math::
        \text{one direction:} \quad \ell_i = L(w + a_i d_1), \qquad
        \text{two:} \quad \ell_{ij} = L(w + (a_i d_1 + a_j d_2))

    for every a_i, a_j in `alphas`: a len(alphas) vector, or a len(alphas) x len(alphas) grid whose first
    axis runs along the first direction (plot it with `plt.contour(alphas, alphas, losses.T)`, whose
    rows are y). Use directions from `filter_normalized_direction` (the paper's), or any others: an
    eigenvector from `hessian_eigenvalues` (a slice of `vecs`), the path between two solutions. The
    points are evaluated one after the other (`lax.map`), or `batch_size` at a time under `vmap`: more
    memory, fewer sequential steps. The moved params are computed in float32 (float64 under x64) and
    cast to each leaf's dtype; integer and bool leaves do not move.

    The paper's code (tomgoldstein/loss-landscape, `net_plotter.set_weights`) moves the weights of a
    PyTorch model in place for each point, in a Python loop over the grid (split over MPI ranks); here
    the whole grid is one compiled function of the params, so it can be jitted, vmapped over the keys
    of the directions, and sharded.

    Args:
        loss_fn: `loss_fn(params, *args) -> scalar loss`.
        params: a pytree of arrays, the centre of the slice.
        *args: passed to `loss_fn` after `params` (the batch, or all the batches: see
            `hessian_eigenvalues`).
        directions: a tuple of one or two pytrees shaped like `params`.
        alphas: the step sizes along each direction, a 1-D array (the same for both directions).
        batch_size: None (one point at a time) or the number of points evaluated together, an integer
            >= 1.

    Returns:
        The losses, float32 (float64 when a param is float64), of shape (len(alphas),) for one direction
        and (len(alphas), len(alphas)) for two.

    References:
        Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018;
        Goodfellow, Vinyals & Saxe, "Qualitatively characterizing neural network optimization problems",
        ICLR 2015 (1-D interpolation).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> loss = lambda w: jnp.sum(w**2)
        >>> sharpax.sharpness.loss_landscape(
        ...     loss, jnp.zeros(2), directions=(jnp.array([1.0, 0.0]),), alphas=jnp.array([-1.0, 0.0, 2.0])
        ... )
        Array([1., 0., 4.], dtype=float32)
        >>> sharpax.sharpness.loss_landscape(
        ...     loss, jnp.zeros(2), directions=(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])),
        ...     alphas=jnp.array([0.0, 1.0]),
        ... )
        Array([[0., 1.],
               [1., 2.]], dtype=float32)
    """
    owner = "loss_landscape"
    if not isinstance(directions, (tuple, list)) or len(directions) not in (1, 2):
        raise ValueError(
            f"{owner}: directions must be a tuple of one or two pytrees shaped like params, "
            f"got {type(directions).__name__}"
            + (f" of length {len(directions)}" if isinstance(directions, (tuple, list)) else "")
        )
    if batch_size is not None:
        check_int(owner, "batch_size", batch_size)
    problem = HessianOperator(owner, loss_fn, params, args)
    dtype = problem.dtype
    names = ("the first direction", "the second direction")
    dirs = [problem.leaves_of(d, name) for d, name in zip(directions, names, strict=False)]
    alphas = jnp.asarray(alphas)
    if alphas.ndim != 1:
        raise ValueError(f"{owner}: alphas must be a 1-D array, got shape {alphas.shape}")
    alphas = alphas.astype(dtype)
    w = problem.leaves

    def at(coeffs):
        # (a_i d_1 + a_j d_2) first, then added to w: the order of the paper's code.
        change = [coeffs[0] * d.astype(dtype) for d in dirs[0]]
        if len(dirs) == 2:
            change = [x + coeffs[1] * d.astype(dtype) for x, d in zip(change, dirs[1], strict=True)]
        moved = [(x.astype(dtype) + c).astype(x.dtype) for x, c in zip(w, change, strict=True)]
        return problem.loss(moved).astype(dtype)

    if len(dirs) == 1:
        return lax.map(at, alphas[:, None], batch_size=batch_size)
    a, b = jnp.meshgrid(alphas, alphas, indexing="ij")
    points = jnp.stack([a.ravel(), b.ravel()], axis=1)
    return lax.map(at, points, batch_size=batch_size).reshape(a.shape)
