"""The near-one-pass transformation forms of the SAM family that take the second pass on some steps only:
LookSAM (every k-th step, and the stored direction in between) and periodic SAM (every k-th step).

Each is an `optax.GradientTransformationExtraArgs` around a base optimizer, called as
`tx.update(grads, state, params, grad_fn=grad_fn)`; the other steps skip the second pass (a `lax.cond`).
Momentum-SAM (no second pass) is `_momentum_sam.py`, AE-SAM (the second pass when needed) `_ae_sam.py`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import (
    is_float_leaf,
    zeros_like_tree,
)
from sharpax._types import Array, Mask, ScalarOrSchedule, Updates
from sharpax._validation import (
    check_int,
    check_non_negative,
    check_transformation,
    check_tree_match,
)
from sharpax.transforms._numerics import increment
from sharpax.wrappers._loss_scale import DynamicLossScale, all_finite
from sharpax.wrappers._sam_geometry import (
    Perturbation,
    looksam_direction,
    looksam_vertical_direction,
)
from sharpax.wrappers._sam_transforms import finish, sam_gradient


class LookSAMState(NamedTuple):
    """State of `looksam`: step count, the unit direction g_v / ||g_v|| of the last SAM step, base state."""

    count: Array
    vertical_direction: Updates
    inner_state: optax.OptState


class PeriodicSAMState(NamedTuple):
    """State of `periodic_sam`: the step count (which steps are SAM steps) and the base state."""

    count: Array
    inner_state: optax.OptState


def looksam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    k: int = 5,
    alpha: float = 0.7,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""LookSAM (Liu et al. 2022): full SAM every k steps, one pass plus a stored direction in between.

    .. math::
        t \bmod k = 0: \quad g_s = \text{grad\_fn}(w + e(w)), \quad
            g_v = g_s - \frac{\langle g_s, g \rangle}{\lVert g \rVert^2} g, \quad d_t = g_s \\
        \text{otherwise}: \quad d_t = g + \alpha \frac{\lVert g \rVert}{\lVert g_v \rVert} g_v

    and u_t = base.update(d_t, s, w). The state keeps g_v / ||g_v|| (zero when g_v is zero, so the step
    falls back to g rather than NaN). The SAM steps are counts 0, k, 2k, ... (the paper's t mod k = 0
    with t from 1 would leave g_v undefined for the first k - 1 steps). The branch is a `lax.cond`:
    under `jit` the other steps run one forward-backward pass. Norms are global over the tree (the
    paper's LookSAM; pytorch_optimizer's `LookSAM` normalises per tensor).

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying the LookSAM gradient.
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
        k: the period of the SAM steps, an integer >= 1 (`k = 1` is `sam`).
        alpha: weight of the reused direction, >= 0 (the paper uses 0.7).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `LookSAMState` (inside a `LossScaleState`
        with `loss_scale`).

    References:
        Liu, Mai, Chen, Hsieh & You, "Towards Efficient and Scalable Sharpness-Aware Minimization",
        CVPR 2022, Algorithm 1.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> w = jnp.array([1.0, 1.0])
        >>> tx = sharpax.looksam(sharpax.sgd(1.0), rho=0.1, k=2, alpha=0.5)
        >>> state = tx.init(w)
        >>> sam_g = lambda p: jnp.array([1.0, 1.0])  # a stand-in second pass
        >>> u, state = tx.update(jnp.array([1.0, 0.0]), state, w, grad_fn=sam_g)
        >>> state.vertical_direction  # g_s minus its part along g = (1, 0)
        Array([0., 1.], dtype=float32)
        >>> u, state = tx.update(jnp.array([2.0, 0.0]), state, w, grad_fn=sam_g)
        >>> u  # -(g + 0.5 * ||g|| * (0, 1))
        Array([-2., -1.], dtype=float32)
    """
    owner = "looksam"
    check_int(owner, "k", k)
    check_non_negative(owner, alpha=alpha)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        return LookSAMState(
            count=jnp.zeros([], jnp.int32),
            vertical_direction=zeros_like_tree(params),
            inner_state=base.init(params),
        )

    def update_core(updates, state, params, grad_fn, extra_args, check_finite):
        check_tree_match(owner, updates, params, "params")
        keep_dtypes = lambda new: jax.tree.map(
            lambda n, old: n.astype(old.dtype) if is_float_leaf(old) else old,
            new,
            state.vertical_direction,
        )

        def sam_step(g):
            sam_grads = sam_gradient(owner, perturbation, g, params, grad_fn, state.count)
            out = sam_grads, keep_dtypes(looksam_vertical_direction(g, sam_grads))
            return (*out, all_finite(sam_grads)) if check_finite else out

        def reuse_step(g):
            out = looksam_direction(g, state.vertical_direction, alpha), state.vertical_direction
            return (*out, jnp.array(True)) if check_finite else out

        grads, vertical, *finite = lax.cond(state.count % k == 0, sam_step, reuse_step, updates)
        new_updates, inner_state = base.update(grads, state.inner_state, params, **extra_args)
        new_state = LookSAMState(
            count=increment(state.count),
            vertical_direction=vertical,
            inner_state=inner_state,
        )
        return new_updates, new_state, (finite[0] if finite else None)

    return finish(owner, init_fn, update_core, loss_scale)


def periodic_sam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    k: int = 5,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SAM on every k-th step (counts 0, k, 2k, ...) and the plain gradient on the others.

    .. math::
        d_t = \begin{cases} \text{grad\_fn}(w + e(w)) & t \bmod k = 0 \\ g_t & \text{otherwise}
              \end{cases}, \qquad u_t = \text{base.update}(d_t, s, w)

    The branch is a `lax.cond`, so under `jit` the plain steps run one forward-backward pass
    (`grad_fn` is not called); under `vmap` a cond becomes a select and both branches run. A rho
    schedule is evaluated at the step count of every step. `k = 1` is `sam`. No optax or
    torch.optim namesake.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying the chosen gradient.
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
        k: the period, an integer >= 1.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `PeriodicSAMState` (inside a `LossScaleState`
        with `loss_scale`).

    References:
        Foret et al., "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021;
        Liu et al., "Towards Efficient and Scalable Sharpness-Aware Minimization", CVPR 2022 (the
        "SAM every k steps" baseline of its Table 1).

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: jnp.sum(w**2)
        >>> w = jnp.array([3.0, 4.0])
        >>> tx = sharpax.periodic_sam(sharpax.sgd(0.5), rho=5.0, k=2)
        >>> state = tx.init(w)
        >>> u, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
        >>> u  # step 0: SAM, -0.5 * 2 (w + e), e = 5 w / ||w|| = (3, 4)
        Array([-6., -8.], dtype=float32)
        >>> u, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
        >>> u  # step 1: plain, -0.5 * 2 w
        Array([-3., -4.], dtype=float32)
    """
    owner = "periodic_sam"
    check_int(owner, "k", k)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        return PeriodicSAMState(count=jnp.zeros([], jnp.int32), inner_state=base.init(params))

    def update_core(updates, state, params, grad_fn, extra_args, check_finite):
        check_tree_match(owner, updates, params, "params")

        def sam_step(g):
            sam_grads = sam_gradient(owner, perturbation, g, params, grad_fn, state.count)
            return (sam_grads, all_finite(sam_grads)) if check_finite else (sam_grads,)

        plain_step = lambda g: (g, jnp.array(True)) if check_finite else (g,)
        grads, *finite = lax.cond(state.count % k == 0, sam_step, plain_step, updates)
        new_updates, inner_state = base.update(grads, state.inner_state, params, **extra_args)
        new_state = PeriodicSAMState(count=increment(state.count), inner_state=inner_state)
        return new_updates, new_state, (finite[0] if finite else None)

    return finish(owner, init_fn, update_core, loss_scale)
