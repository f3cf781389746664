"""SAM and GSAM as `optax.GradientTransformationExtraArgs` wrapping a base optimizer, fed a `grad_fn`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import check_tree_match
from sharpax._types import Array, GradFn, Mask, Params, ScalarOrSchedule, Updates
from sharpax._validation import check_non_negative
from sharpax.wrappers._sam_directions import gsam_direction
from sharpax.wrappers._sam_docs import fill_doc
from sharpax.wrappers._sam_perturbation import Perturbation


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
    return jax.tree.map(
        lambda s, g: s.astype(g.dtype) if hasattr(g, "dtype") else s, sam_grads, grads
    )


def _two_pass(
    owner: str,
    base_optimizer: optax.GradientTransformation,
    perturbation: Perturbation,
    direction: Callable[[Updates, Updates], Updates],
) -> optax.GradientTransformationExtraArgs:
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


@fill_doc
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

    {transform_notes}

    Args:
        base_optimizer: the optimizer applying the SAM gradient (any `optax.GradientTransformation`).
        {perturbation_args}

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


@fill_doc
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
    (`sharpax.wrappers.lr_proportional_rho`). No optax or torch.optim namesake.

    {transform_notes}

    Args:
        base_optimizer: the optimizer applying the GSAM gradient.
        {perturbation_args}
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
