"""The two-pass transformation forms of the SAM family (`sam`, `gsam`, `friendly_sam`, `wsam`):
`optax.GradientTransformationExtraArgs` around a base optimizer, fed the first-pass gradients and a
`grad_fn` for the second pass.

Also what every transformation form shares: the second pass (`sam_gradient`, `call_grad_fn`,
`require_grad_fn`) and the loss-scaled wrapper around a step (`finish`), used by the one-pass and
near-one-pass forms (`_sam_efficient.py`, `_ae_sam.py`) too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import (
    float_leaves,
    is_float_leaf,
    real_parts,
    scalars_as_arrays,
    zeros_like_tree,
)
from sharpax._types import Array, GradFn, Mask, Params, ScalarOrSchedule, State, Updates
from sharpax._validation import (
    check_beta,
    check_non_negative,
    check_transformation,
    check_tree_match,
    checked_schedule,
)
from sharpax.transforms._numerics import increment
from sharpax.wrappers._loss_scale import (
    DynamicLossScale,
    LossScaleState,
    all_finite,
    check_loss_scale,
    skip_unless,
)
from sharpax.wrappers._sam_geometry import (
    Perturbation,
    accumulation_dtype,
    friendly_direction,
    gsam_direction,
    sharpness_gradient,
    wsam_direction,
)


class SAMState(NamedTuple):
    """State of `sam`, `gsam` and `wsam`: the base optimizer's, plus a step count only when rho (or
    WSAM's learning rate) is a schedule."""

    inner_state: optax.OptState
    count: Array | None


class FriendlySAMState(NamedTuple):
    """State of `friendly_sam`: the step count, the EMA m of the first-pass gradients, the base state."""

    count: Array
    momentum: Updates
    inner_state: optax.OptState


UpdateCore = Callable[
    [Updates, optax.OptState, Params, GradFn, dict, bool],
    tuple[Updates, State, Array | None],
]
"""`update_core(grads, state, params, grad_fn, extra_args, check_finite)`: one step of a SAM form,
returning `(updates, state, finite)`, with `finite` whether the second pass's gradient (if one was
taken) was finite, computed only when `check_finite`."""


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
    return call_grad_fn(owner, grad_fn, perturbation.perturb(params, grads, step), grads)


def call_grad_fn(owner: str, grad_fn: GradFn, point: Params, like: Updates) -> Updates:
    """`grad_fn(point)`, checked against the first-pass gradients `like` and cast like them."""
    new_grads = grad_fn(point)
    check_tree_match(owner, new_grads, like, "first-pass gradients (what grad_fn returns)")
    # A different float dtype is cast below; an integer or bool gradient is a bug in grad_fn.
    for (path, s), g in zip(
        jax.tree_util.tree_leaves_with_path(new_grads), jax.tree.leaves(like), strict=True
    ):
        if is_float_leaf(g) and not is_float_leaf(s):
            raise TypeError(
                f"{owner}: grad_fn returned {getattr(s, 'dtype', type(s).__name__)} at "
                f"{jax.tree_util.keystr(path)}, where the first-pass gradient is {g.dtype}; "
                "grad_fn must return floating-point gradients"
            )
    return jax.tree.map(
        lambda s, g: s.astype(g.dtype) if hasattr(g, "dtype") else s, new_grads, like
    )


def _scalars_as_arrays(updates: Updates, params: Params, grad_fn: GradFn):
    """Python float leaves (float params, as optax takes them) as 0-d arrays, in the gradients, the
    params and what `grad_fn` returns: the SAM steps below work on arrays."""
    return (
        scalars_as_arrays(updates),
        scalars_as_arrays(params),
        lambda p: scalars_as_arrays(grad_fn(p)),
    )


def finish(
    owner: str,
    init_core: Callable[..., State],
    update_core: UpdateCore,
    loss_scale: DynamicLossScale | None,
) -> optax.GradientTransformationExtraArgs:
    """The public transformation around a SAM step; with a loss scale, the step is unscaled and skipped
    when either pass's gradient is not finite (zero updates, the SAM state untouched, the scale reduced).
    """
    check_loss_scale(owner, loss_scale)
    if loss_scale is None:

        def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
            grad_fn = require_grad_fn(owner, grad_fn, params)
            assert params is not None  # require_grad_fn raised a ValueError otherwise
            updates, params, grad_fn = _scalars_as_arrays(updates, params, grad_fn)
            new_updates, new_state, _ = update_core(
                updates, state, params, grad_fn, extra_args, False
            )
            return new_updates, new_state

        return optax.GradientTransformationExtraArgs(init_core, update_fn)

    def init_fn(params):
        return LossScaleState(loss_scale=loss_scale, inner_state=init_core(params))

    def scaled_update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
        grad_fn = require_grad_fn(owner, grad_fn, params)
        assert params is not None  # require_grad_fn raised a ValueError otherwise
        updates, params, grad_fn = _scalars_as_arrays(updates, params, grad_fn)
        scale = state.loss_scale
        grads = scale.unscale(updates)
        unscaled_grad_fn = lambda p: scale.unscale(grad_fn(p))
        new_updates, inner_state, second_finite = update_core(
            grads, state.inner_state, params, unscaled_grad_fn, extra_args, True
        )
        assert second_finite is not None  # update_core returns the flag when asked for it
        finite = all_finite(grads) & second_finite
        new_updates, inner_state = skip_unless(finite, new_updates, inner_state, state.inner_state)
        return new_updates, LossScaleState(loss_scale=scale.adjust(finite), inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, scaled_update_fn)


def _two_pass(
    owner: str,
    base_optimizer: optax.GradientTransformation,
    perturbation: Perturbation,
    direction: Callable[[Updates, Updates], Updates],
    loss_scale: DynamicLossScale | None,
) -> optax.GradientTransformationExtraArgs:
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        count = jnp.zeros([], jnp.int32) if perturbation.scheduled else None
        return SAMState(inner_state=base.init(params), count=count)

    def update_core(updates, state, params, grad_fn, extra_args, check_finite):
        sam_grads = sam_gradient(owner, perturbation, updates, params, grad_fn, state.count)
        new_updates, inner_state = base.update(
            direction(updates, sam_grads), state.inner_state, params, **extra_args
        )
        count = None if state.count is None else increment(state.count)
        finite = all_finite(sam_grads) if check_finite else None
        return new_updates, SAMState(inner_state=inner_state, count=count), finite

    return finish(owner, init_fn, update_core, loss_scale)


def sam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SAM (Foret et al. 2021) around any optimizer: the base update of the gradient at w + e(w).

    .. math::
        e = \rho \, \frac{T_w^2 g}{\lVert T_w g \rVert_2 + 10^{-12}}, \qquad
        u = \text{base.update}\big(\text{grad\_fn}(w + e), \; s, \; w\big)

    with g the `grads` given to `update` and T_w = 1 (SAM) or |w| + eta (ASAM). The same step as
    davda54/sam's `first_step`/`second_step` pair, and as `sam_value_and_grad` followed by the base
    optimizer. For a rho schedule the state also counts steps; otherwise it is the base state only
    (`optax.contrib.sam` keeps a copy of the params).

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying the SAM gradient (any `optax.GradientTransformation`).
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        loss_scale: None, or a `sharpax.DynamicLossScale` for float16 training. The state is then a
            `LossScaleState` holding the current scale: scale the loss of both passes with
            `sharpax.current_loss_scale(state)`; `update` unscales both gradients (the perturbation
            comes from the unscaled one), and a step where either is not finite is skipped (zero
            updates, the SAM state untouched) and the scale reduced.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `SAMState` (inside a `LossScaleState`
        with `loss_scale`).

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
    return _two_pass(owner, base_optimizer, perturbation, lambda g, sam_g: sam_g, loss_scale)


def gsam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    alpha: float = 0.1,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""GSAM (Zhuang et al. 2022) around any optimizer: SAM's gradient minus alpha times g's orthogonal part.

    .. math::
        g_p = \text{grad\_fn}(w + e(w)), \quad
        g_\perp = g - \frac{\langle g, g_p \rangle}{\lVert g_p \rVert^2} g_p, \quad
        u = \text{base.update}(g_p - \alpha g_\perp, \; s, \; w)

    See `gsam_value_and_grad` for the gradient form and the rho-to-learning-rate coupling
    (`sharpax.lr_proportional_rho`). No optax or torch.optim namesake.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying the GSAM gradient.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        loss_scale: None, or a `sharpax.DynamicLossScale` for float16 training. The state is then a
            `LossScaleState` holding the current scale: scale the loss of both passes with
            `sharpax.current_loss_scale(state)`; `update` unscales both gradients (the perturbation
            comes from the unscaled one), and a step where either is not finite is skipped (zero
            updates, the SAM state untouched) and the scale reduced.
        alpha: weight of the orthogonal correction, >= 0 (0 is SAM).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `SAMState` (inside a `LossScaleState`
        with `loss_scale`).

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
    direction = lambda g, sam_g: gsam_direction(g, sam_g, alpha)
    return _two_pass(owner, base_optimizer, perturbation, direction, loss_scale)


def friendly_sam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    sigma: float = 1.0,
    lmbda: float = 0.9,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Friendly-SAM (Li et al. 2024): SAM perturbed along the batch-specific part of the gradient.

    .. math::
        d_1 = g_1, \quad m_1 = g_1; \qquad
        d_t = g_t - \sigma m_{t-1}, \quad m_t = \lambda m_{t-1} + (1 - \lambda) g_t \quad (t > 1) \\
        e = \rho \, \frac{T_w^2 d_t}{\lVert T_w d_t \rVert_2 + 10^{-12}}, \qquad
        u = \text{base.update}\big(\text{grad\_fn}(w + e), \; s, \; w\big)

    m is an exponential moving average of the first-pass gradients g, an estimate of the full-batch
    gradient; removing it leaves the minibatch's own direction (the paper finds the full-gradient part
    of SAM's ascent harms generalisation, and the batch-specific part is what helps). On the first
    step m is set to g and the direction is g itself: the first step is plain SAM, as in the reference
    `FriendlySAM.first_step` (nblt/F-SAM `utils.py`), whose rule pytorch_optimizer 4.1's `FriendlySAM`
    repeats. The direction takes the m of the *previous* step; m is updated after. The base optimizer
    gets the SAM gradient, as in SAM. No optax or torch.optim namesake. There is no gradient form:
    m is state that a `*_value_and_grad` wrapper would have to return.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying the SAM gradient.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        sigma: how much of m is removed from g, >= 0 (0 is SAM; the paper and the reference use 1).
        lmbda: decay of the EMA m, in [0, 1) (the reference class's default 0.9; its `train.py`
            defaults to 0.95 and the paper's CIFAR runs use 0.6 to 0.95).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 d / ||T_w d||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces the reference's `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        loss_scale: None, or a `sharpax.DynamicLossScale` for float16 training. The state is then a
            `LossScaleState` holding the current scale: scale the loss of both passes with
            `sharpax.current_loss_scale(state)`; `update` unscales both gradients (the perturbation
            comes from the unscaled one), and a step where either is not finite is skipped (zero
            updates, the SAM state untouched) and the scale reduced.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `FriendlySAMState` (inside a `LossScaleState`
        with `loss_scale`).

    References:
        Li, Zhou, He, Chen & Huang, "Friendly Sharpness-Aware Minimization", CVPR 2024
        (https://github.com/nblt/F-SAM).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> w = jnp.array([3.0, 4.0])
        >>> tx = sharpax.friendly_sam(sharpax.sgd(1.0), rho=5.0, sigma=1.0, lmbda=0.9)
        >>> state = tx.init(w)
        >>> grad_fn = lambda p: p  # the gradient of sum(w**2) / 2
        >>> u, state = tx.update(jnp.array([3.0, 4.0]), state, w, grad_fn=grad_fn)
        >>> u  # step 1 is SAM: e = 5 g / ||g|| = (3, 4), so -grad_fn(w + e)
        Array([-6., -8.], dtype=float32)
        >>> u, state = tx.update(jnp.array([3.0, 0.0]), state, w, grad_fn=grad_fn)
        >>> u  # d = g - m_1 = (0, -4), e = (0, -5), so -grad_fn((3, -1))
        Array([-3.,  1.], dtype=float32)
        >>> state.momentum  # 0.9 (3, 4) + 0.1 (3, 0)
        Array([3. , 3.6], dtype=float32)
    """
    owner = "friendly_sam"
    check_non_negative(owner, sigma=sigma)
    check_beta(owner, lmbda=lmbda)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        return FriendlySAMState(
            count=jnp.zeros([], jnp.int32),
            momentum=zeros_like_tree(params),
            inner_state=base.init(params),
        )

    def update_core(updates, state, params, grad_fn, extra_args, check_finite):
        check_tree_match(owner, updates, params, "params")
        direction, momentum = friendly_direction(
            updates, state.momentum, state.count == 0, sigma, lmbda
        )
        # The perturbation follows d; the SAM gradient is cast like the first-pass gradients.
        point = perturbation.perturb(params, direction, state.count)
        sam_grads = call_grad_fn(owner, grad_fn, point, updates)
        new_updates, inner_state = base.update(sam_grads, state.inner_state, params, **extra_args)
        finite = all_finite(sam_grads) if check_finite else None
        new_state = FriendlySAMState(
            count=increment(state.count), momentum=momentum, inner_state=inner_state
        )
        return new_updates, new_state, finite

    return finish(owner, init_fn, update_core, loss_scale)


def wsam(
    base_optimizer: optax.GradientTransformation,
    learning_rate: ScalarOrSchedule,
    rho: ScalarOrSchedule = 0.05,
    gamma: float = 0.9,
    *,
    decouple: bool = True,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""WSAM (Yue et al. 2023): SAM's sharpness as a weighted regulariser, L + alpha (L(w + e) - L(w)).

    .. math::
        g_s = \text{grad\_fn}(w + e(w)), \qquad \alpha = \frac{\gamma}{1 - \gamma} \\
        \text{decouple=False:} \quad u = \text{base.update}\big(g + \alpha (g_s - g), \; s, \; w\big) \\
        \text{decouple=True:} \quad u = \text{base.update}(g, \; s, \; w) - \eta_t \, \alpha \, (g_s - g)

    with e(w) the SAM (or ASAM) perturbation and eta_t = `learning_rate` at the step. gamma = 0.5
    (alpha = 1) with `decouple=False` is SAM; gamma = 0 is the base optimizer. Decoupled (the
    default, and the paper's recommendation), the base optimizer (its momentum, Adam's scaling) sees
    the plain gradient only and the sharpness term takes a plain gradient step of its own, like AdamW's
    decoupled weight decay; over plain SGD with the same learning rate the two modes are the same step.
    The state counts steps only when rho or `learning_rate` is a schedule. `wsam_value_and_grad` is the
    gradient form of `decouple=False`. No optax or torch.optim namesake.

    The references: intelligent-machine-learning/dlrover's atorch `WeightedSAM` (the authors' code) and
    pytorch_optimizer 4.1's `WSAM` have the same rule and the same default gamma = 0.9, and both read
    eta_t from the param group's `lr` (here it is the argument). They differ in gradient clipping
    (`max_norm`): the reference's last version clips the first-pass gradient g and, separately, the
    second-pass gradient g_s before mixing them; pytorch_optimizer clips only g_s (as the reference
    did from October to December 2023, between a commit removing the first clip and one restoring
    it). We clip neither: put a clip inside the base optimizer (`wsam(chain(clip, sgd), ...)`) to clip
    what the base optimizer gets (the mixed gradient, or g when decoupled); the decoupled term is not
    clipped. Both torch codes restore w by subtracting e from w + e, which rounds; here w is never
    moved.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying g (decoupled) or the mixed gradient.
        learning_rate: eta_t >= 0, the step size of the decoupled sharpness term, or a schedule
            `step -> eta` (step 0 at the first update); give the base optimizer's learning rate (or
            schedule), as the torch codes do. Unused when `decouple=False`.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        gamma: weight of the sharpness term, in [0, 1); alpha = gamma / (1 - gamma) (0.9: alpha = 9).
        decouple: apply the sharpness term after the base optimizer (True) or mix it into the gradient
            the base optimizer gets (False).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces the references' `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        loss_scale: None, or a `sharpax.DynamicLossScale` for float16 training. The state is then a
            `LossScaleState` holding the current scale: scale the loss of both passes with
            `sharpax.current_loss_scale(state)`; `update` unscales both gradients (the perturbation
            comes from the unscaled one), and a step where either is not finite is skipped (zero
            updates, the SAM state untouched) and the scale reduced.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `SAMState` (inside a `LossScaleState`
        with `loss_scale`).

    References:
        Yue, Jiang, Ye, Ning, Liu & Zhang, "Sharpness-Aware Minimization Revisited: Weighted Sharpness
        as a Regularization Term", KDD 2023 (code: intelligent-machine-learning/dlrover, atorch
        `optimizers/wsam.py`).

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
        >>> w = jnp.array([3.0, 1.0])  # g = (3, 4); rho = 0.5: e = (0.3, 0.4), g_s = (3.3, 5.6)
        >>> tx = sharpax.wsam(sharpax.sgd(0.1), 0.1, rho=0.5, gamma=0.8)  # alpha = 4
        >>> u, _ = tx.update(jax.grad(loss)(w), tx.init(w), w, grad_fn=jax.grad(loss))
        >>> u  # -0.1 g - 0.1 * 4 (g_s - g)
        Array([-0.42, -1.04], dtype=float32)
    """
    owner = "wsam"
    check_non_negative(owner, learning_rate=learning_rate)
    check_beta(owner, gamma=gamma)
    if not isinstance(decouple, bool):
        raise TypeError(f"{owner}: decouple must be a bool, got {decouple!r}")
    learning_rate = checked_schedule(owner, "learning_rate", learning_rate)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)
    alpha = gamma / (1 - gamma)
    counted = perturbation.scheduled or (decouple and callable(learning_rate))

    def init_fn(params):
        count = jnp.zeros([], jnp.int32) if counted else None
        return SAMState(inner_state=base.init(params), count=count)

    def update_core(updates, state, params, grad_fn, extra_args, check_finite):
        sam_grads = sam_gradient(owner, perturbation, updates, params, grad_fn, state.count)
        if not decouple:
            mixed = wsam_direction(updates, sam_grads, alpha)
            new_updates, inner_state = base.update(mixed, state.inner_state, params, **extra_args)
        else:
            new_updates, inner_state = base.update(updates, state.inner_state, params, **extra_args)
            rate = (
                jnp.asarray(learning_rate(state.count))
                if callable(learning_rate)
                else learning_rate
            )
            new_updates = _add_scaled(
                new_updates, sharpness_gradient(updates, sam_grads), -rate * alpha
            )
        count = None if state.count is None else increment(state.count)
        finite = all_finite(sam_grads) if check_finite else None
        return new_updates, SAMState(inner_state=inner_state, count=count), finite

    return finish(owner, init_fn, update_core, loss_scale)


def _add_scaled(updates: Updates, term: Updates, factor) -> Updates:
    """`updates + factor * term` on the floating leaves, in float32 (or float64), cast like `updates`."""
    u_leaves, rebuild = float_leaves(updates)
    u, rebuild_complex = real_parts(u_leaves)  # a complex leaf as its two parts
    t, _ = real_parts(float_leaves(term)[0])
    dtype = accumulation_dtype(u + t)
    f = jnp.asarray(factor, dtype)
    sums = [x.astype(dtype) + f * y.astype(dtype) for x, y in zip(u, t, strict=True)]
    return rebuild(rebuild_complex(sums))
