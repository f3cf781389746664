"""The two-pass transformation forms of the SAM family (`sam`, `gsam`): `optax.GradientTransformationExtraArgs`
around a base optimizer, fed the first-pass gradients and a `grad_fn` for the second pass.

Also the second pass itself (`sam_gradient`, `require_grad_fn`), shared with the one-pass and near-one-pass
forms of `_sam_efficient.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import is_float_leaf
from sharpax._types import Array, GradFn, Mask, Params, ScalarOrSchedule, Updates
from sharpax._validation import check_non_negative, check_transformation, check_tree_match
from sharpax.wrappers._sam_geometry import Perturbation, gsam_direction


class SAMState(NamedTuple):
    """State of `sam` and `gsam`: the base optimizer's, plus a step count only when rho is a schedule."""

    inner_state: optax.OptState
    count: Array | None


def require_grad_fn(owner: str, grad_fn: GradFn | None, params: Params | None) -> GradFn:
    """`grad_fn`, or a `ValueError` saying how to call `update` when it or `params` is missing."""
    if grad_fn is None:
        raise ValueError(
            f"{owner}: update needs the second pass: call "
            "`tx.update(grads, state, params, grad_fn=grad_fn)` with `grad_fn(params) -> grads` "
            "computing the loss's gradient on the same batch (e.g. `jax.grad(lambda p: loss(p, batch))`)."
        )
    if params is None:
        raise ValueError(
            f"{owner}: update needs the params (the perturbation is taken around them)."
        )
    return grad_fn


def sam_gradient(
    owner: str,
    perturbation: Perturbation,
    grads: Updates,
    params: Params,
    grad_fn: GradFn,
    step: Any,
) -> Updates:
    """`grad_fn(params + e(params, grads))`, checked against and cast like `grads`."""
    check_tree_match(owner, grads, params, "params")
    sam_grads = grad_fn(perturbation.perturb(params, grads, step))
    check_tree_match(owner, sam_grads, grads, "first-pass gradients (what grad_fn returns)")
    # A different float dtype is cast below; an integer or bool gradient is a bug in grad_fn.
    for (path, s), g in zip(
        jax.tree_util.tree_leaves_with_path(sam_grads), jax.tree.leaves(grads), strict=True
    ):
        if is_float_leaf(g) and not is_float_leaf(s):
            raise TypeError(
                f"{owner}: grad_fn returned {getattr(s, 'dtype', type(s).__name__)} at "
                f"{jax.tree_util.keystr(path)}, where the first-pass gradient is {g.dtype}; "
                "grad_fn must return floating-point gradients"
            )
    return jax.tree.map(
        lambda s, g: s.astype(g.dtype) if hasattr(g, "dtype") else s, sam_grads, grads
    )


def _two_pass(
    owner: str,
    base_optimizer: optax.GradientTransformation,
    perturbation: Perturbation,
    direction: Callable[[Updates, Updates], Updates],
) -> optax.GradientTransformationExtraArgs:
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        count = jnp.zeros([], jnp.int32) if perturbation.scheduled else None
        return SAMState(inner_state=base.init(params), count=count)

    def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
        grad_fn = require_grad_fn(owner, grad_fn, params)
        sam_grads = sam_gradient(owner, perturbation, updates, params, grad_fn, state.count)
        new_updates, inner_state = base.update(
            direction(updates, sam_grads), state.inner_state, params, **extra_args
        )
        count = None if state.count is None else optax.safe_increment(state.count)
        return new_updates, SAMState(inner_state=inner_state, count=count)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SAM (Foret et al. 2021) around any optimizer: the base update of the gradient at w + e(w).

    .. math::
        e = \rho \, \frac{T_w^2 g}{\lVert T_w g \rVert_2 + 10^{-12}}, \qquad
        u = \text{base.update}\big(\text{grad\_fn}(w + e), \; s, \; w\big)

    with g the `grads` given to `update` and T_w = 1 (SAM) or |w| + eta (ASAM). The same step as
    davda54/sam's `first_step`/`second_step` pair, and as `sam_value_and_grad` followed by the base
    optimizer. For a rho schedule the state also counts steps; otherwise it is the base state only.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`: `grads` are the
    first-pass gradients at `params`, and `grad_fn(perturbed_params) -> grads` computes the gradient of
    the same loss on the same batch (a closure over it). Other extra args go to the base optimizer. Put
    gradient clipping inside the base optimizer (`sam(chain(clip, adam))`): a transform chained before
    this one sees the first-pass gradients only. Unlike `optax.contrib.sam`, the state holds no copy of
    the params.

    Args:
        base_optimizer: the optimizer applying the SAM gradient (any `optax.GradientTransformation`).
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
        p: the norm of the ball, 2 or `math.inf` (then e = rho T_w sign(g), the dual-norm maximiser in
            the coordinates T_w^{-1} w).
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `SAMState`.

    References:
        Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
        Generalization", ICLR 2021.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: jnp.sum(w**2)
        >>> w = jnp.array([3.0, 4.0])
        >>> tx = sharpax.sam(sharpax.sgd(0.5), rho=5.0)
        >>> updates, state = tx.update(jax.grad(loss)(w), tx.init(w), w, grad_fn=jax.grad(loss))
        >>> updates  # -0.5 * 2 (w + e), e = 5 w / ||w|| = (3, 4)
        Array([-6., -8.], dtype=float32)
    """
    owner = "sam"
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    return _two_pass(owner, base_optimizer, perturbation, lambda g, sam_g: sam_g)


def gsam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    alpha: float = 0.1,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""GSAM (Zhuang et al. 2022) around any optimizer: SAM's gradient minus alpha times g's orthogonal part.

    .. math::
        g_p = \text{grad\_fn}(w + e(w)), \quad
        g_\perp = g - \frac{\langle g, g_p \rangle}{\lVert g_p \rVert^2} g_p, \quad
        u = \text{base.update}(g_p - \alpha g_\perp, \; s, \; w)

    See `gsam_value_and_grad` for the gradient form and the rho-to-learning-rate coupling
    (`sharpax.lr_proportional_rho`). No optax or torch.optim namesake.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`: `grads` are the
    first-pass gradients at `params`, and `grad_fn(perturbed_params) -> grads` computes the gradient of
    the same loss on the same batch (a closure over it). Other extra args go to the base optimizer. Put
    gradient clipping inside the base optimizer (`sam(chain(clip, adam))`): a transform chained before
    this one sees the first-pass gradients only. Unlike `optax.contrib.sam`, the state holds no copy of
    the params.

    Args:
        base_optimizer: the optimizer applying the GSAM gradient.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
        p: the norm of the ball, 2 or `math.inf` (then e = rho T_w sign(g), the dual-norm maximiser in
            the coordinates T_w^{-1} w).
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        alpha: weight of the orthogonal correction, >= 0 (0 is SAM).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `SAMState`.

    References:
        Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization" (GSAM), ICLR 2022.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
        >>> w = jnp.array([3.0, 1.0])
        >>> tx = sharpax.gsam(sharpax.sgd(1.0), rho=0.5, alpha=0.5)
        >>> updates, _ = tx.update(jax.grad(loss)(w), tx.init(w), w, grad_fn=jax.grad(loss))
        >>> updates.round(3)  # -(g_p - 0.5 g_perp), g_p = (3.3, 5.6), g_perp = (0.477, -0.281)
        Array([-3.061, -5.741], dtype=float32)
    """
    owner = "gsam"
    check_non_negative(owner, alpha=alpha)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    return _two_pass(
        owner, base_optimizer, perturbation, lambda g, sam_g: gsam_direction(g, sam_g, alpha)
    )
