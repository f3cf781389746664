"""SAM's sharpness: the largest rise of the loss within a ball around the weights, by projected ascent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from sharpax._types import Array, Params
from sharpax._validation import check_int, check_non_negative
from sharpax.sharpness import _operator as op
from sharpax.sharpness._operator import HessianOperator
from sharpax.wrappers._sam_geometry import NORM_EPS


def sam_sharpness(
    loss_fn: Callable[..., Array],
    params: Params,
    *args: Any,
    rho: float = 0.05,
    adaptive: bool = False,
    ascent_steps: int = 1,
    eta: float = 0.0,
) -> Array:
    r"""SAM's sharpness of `loss_fn` at `params`: how much the loss can rise within a rho-ball.

    .. math::
        S_\rho(w) = \max_{\lVert T_w^{-1} \epsilon \rVert_2 \le \rho} L(w + \epsilon) - L(w), \qquad
        u' = \Pi_\rho\Big(u + \eta \, \frac{T_w g}{\lVert T_w g \rVert_2 + 10^{-12}}\Big), \quad
        \epsilon = T_w u, \quad g = \nabla L(w + T_w u)

    T_w = 1 for SAM's Euclidean ball, and T_w = |w| + eta with `adaptive=True`: ASAM's ball
    ||epsilon / (|w| + eta)|| <= rho, the ascent running in the coordinates u = T_w^{-1} epsilon; Pi_rho
    projects on ||u|| <= rho. The first step, from u = 0 with eta = rho, is SAM's first-order estimate
    epsilon = rho g / ||g|| (ASAM's rho T_w^2 g / ||T_w g||), the perturbation `sharpax.sam_value_and_grad`
    takes, and with `ascent_steps=1` the result is L(w + epsilon) - L(w) there. Each further step is
    normalised gradient ascent projected on the ball, with backtracking: a step that does not raise the
    loss is not taken and eta is halved (a fixed step of rho can cycle around the maximiser on the
    sphere). The result is the largest rise found, a lower bound of S_rho that grows with the steps
    and reaches a local maximiser of the ball. Cost: one gradient per step, plus one loss. At a
    stationary point (g = 0) every step is 0 and so is the estimate, however sharp the minimum: use
    `hessian_eigenvalues` there.

    PyTorch's SAM (davda54/sam) and optax.contrib.sam compute only the one-step perturbation, inside the
    training step; this reports the loss rise, at any point, as a number. The norm and the inner
    products run over all the float leaves together (and over all devices for sharded params).

    Args:
        loss_fn: `loss_fn(params, *args) -> scalar loss`, differentiable in the float leaves of `params`
            (integer and bool leaves are held fixed).
        params: a pytree of arrays (any structure, any float dtypes; sharded arrays stay sharded).
        *args: passed to `loss_fn` after `params` (the batch, or all the batches: see
            `hessian_eigenvalues`).
        rho: the radius of the ball, >= 0.
        adaptive: ASAM's scale-invariant ball (Kwon et al. 2021) instead of the Euclidean one.
        ascent_steps: S, the number of normalised gradient-ascent steps, an integer >= 1.
        eta: ASAM's offset in T_w = |w| + eta, >= 0 (0 as in davda54/sam's `adaptive=True`; ASAM's own
            code uses 0.01). Only with `adaptive=True`.

    Returns:
        The rise L(w + epsilon) - L(w) (>= 0 except where no step raised the loss), a float32 scalar
        (float64 when a param is float64).

    References:
        Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
        Generalization", ICLR 2021 (the definition and its first-order solution); Kwon, Kim, Park & Choi,
        "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural
        Networks", ICML 2021.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> loss = lambda w: jnp.sum(w) + 0.5 * jnp.sum(w**2)  # gradient (1, 1) at 0: rise rho * sqrt(2)
        >>> sharpax.sharpness.sam_sharpness(loss, jnp.zeros(2), rho=0.1).round(5)  # + rho^2 / 2
        Array(0.14642, dtype=float32)
    """
    owner = "sam_sharpness"
    check_non_negative(owner, rho=rho, eta=eta)
    check_int(owner, "ascent_steps", ascent_steps)
    if not isinstance(adaptive, bool):
        raise TypeError(f"{owner}: adaptive must be a bool, got {adaptive!r}")
    problem = HessianOperator(owner, loss_fn, params, args)
    dtype = problem.dtype
    w = problem.leaves
    radius = jnp.asarray(rho, dtype)
    if adaptive:
        scales = [jnp.abs(x).astype(dtype) + jnp.asarray(eta, dtype) for x in w]
    else:
        scales = [None] * len(w)
    times = lambda t, x: x if t is None else t * x

    def ascend(u, g, step, project=True):
        tg = [times(t, x.astype(dtype)) for t, x in zip(scales, g, strict=True)]
        factor = step / (op.norm(tg, dtype) + jnp.asarray(NORM_EPS, dtype))
        u = [a + x * factor for a, x in zip(u, tg, strict=True)]
        if project:  # the first step, from u = 0, lies in the ball already
            length = op.norm(u, dtype)
            u = op.scale(u, jnp.where(length > radius, radius / length, 1).astype(dtype))
        return u

    def moved(u):
        return [x + times(t, a).astype(x.dtype) for x, t, a in zip(w, scales, u, strict=True)]

    value_and_grad = jax.value_and_grad(lambda leaves: problem.loss(leaves).astype(dtype))
    base, g = value_and_grad(w)
    u = ascend([jnp.zeros_like(x, dtype) for x in w], g, radius, project=False)
    if ascent_steps == 1:
        return problem.loss(moved(u)).astype(dtype) - base

    def step(_, carry):
        u, value, g, size = carry
        candidate = ascend(u, g, size)
        new_value, new_g = value_and_grad(moved(candidate))
        better = new_value > value
        pick = lambda a, b: jnp.where(better, a, b)
        u = [pick(a, b) for a, b in zip(candidate, u, strict=True)]
        g = [pick(a, b) for a, b in zip(new_g, g, strict=True)]
        return u, pick(new_value, value), g, jnp.where(better, size, size / 2)

    value, g = value_and_grad(moved(u))
    u, value, g, size = lax.fori_loop(0, ascent_steps - 2, step, (u, value, g, radius))
    last = problem.loss(moved(ascend(u, g, size))).astype(dtype)
    return jnp.maximum(value, last) - base
