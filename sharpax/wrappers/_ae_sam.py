"""AE-SAM: SAM's second pass only on the steps whose squared gradient norm is high against its running
statistics, else a plain step of the base optimizer (a loop of 0 or 1 trips, so plain steps run one pass).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import (
    find_state,
    float_leaves,
    without_nnx_variables,
)
from sharpax._types import Array, Mask, ScalarOrSchedule
from sharpax._validation import (
    check_beta,
    check_int,
    check_range,
    check_transformation,
    check_tree_match,
)
from sharpax.transforms._numerics import increment
from sharpax.wrappers._loss_scale import DynamicLossScale, all_finite
from sharpax.wrappers._sam_geometry import (
    Perturbation,
    accumulation_dtype,
    global_norm,
)
from sharpax.wrappers._sam_transforms import finish, sam_gradient


def _only_if(pred: Array, fn: Any, carry: Any) -> Any:
    """`fn(carry)` where `pred` holds, else `carry`; `fn` (the second pass) runs only when it holds.

    A loop of 0 or 1 trips rather than a `lax.cond`: a loop keeps its carry in place, where a cond writes
    its whole output into a new buffer, so the plain step would copy the gradients (on XLA:CPU that copy
    is not fused into anything). Under `vmap` it runs for the whole batch when any element needs it and
    keeps each element's own result, as a cond would. Unlike a cond, it is not reverse-differentiable.
    """
    return lax.fori_loop(0, pred.astype(jnp.int32), lambda _, c: fn(c), carry)


class AESAMState(NamedTuple):
    """State of `ae_sam`; `ae_sam_fraction(opt_state)` reads the fraction of SAM steps.

    Attributes:
        count: updates so far (t, 0 before the first).
        sam_count: how many of them were SAM steps.
        mean: mu_t, the exponential moving average of ||g||^2.
        variance: sigma_t^2, the exponential moving average of (||g||^2 - mu_t)^2.
        inner_state: the base optimizer's state.
    """

    count: Array
    sam_count: Array
    mean: Array
    variance: Array
    inner_state: optax.OptState


def ae_sam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    *,
    total_steps: int,
    delta: float = 0.9,
    lambda1: float = -1.0,
    lambda2: float = 1.0,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
    loss_scale: DynamicLossScale | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AE-SAM (Jiang, Yang, Zhang & Kwok 2023): a SAM step where ||g||^2 is large for its recent history,
    a plain step elsewhere.

    .. math::
        \mu_t = \delta \mu_{t-1} + (1 - \delta) \lVert g_t \rVert^2, \qquad
        \sigma_t^2 = \delta \sigma_{t-1}^2 + (1 - \delta) (\lVert g_t \rVert^2 - \mu_t)^2, \\
        c_t = \tfrac{t}{T} \lambda_1 + \big(1 - \tfrac{t}{T}\big) \lambda_2, \qquad
        d_t = \begin{cases} \text{grad\_fn}(w + e(w)) & \lVert g_t \rVert^2 \ge \mu_t + c_t \sigma_t \\
              g_t & \text{otherwise} \end{cases}, \qquad
        u_t = \text{base.update}(d_t, s, w)

    with :math:`\mu_{-1} = \sigma_{-1} = 0`, t the update count (0 at the first update), T =
    `total_steps` (t / T is held at 1 past it) and e(w) SAM's perturbation. A large squared gradient
    norm marks a sharp region (the paper models ||g||^2 as normal, mu_t + c_t sigma_t as a quantile);
    the default c_t falls from 1 to -1, so SAM is taken on about 16% of the steps at the start, 84% at
    the end, half overall (the paper's AE-SAM). The statistics are global over the tree and float32
    (float64 under x64). The second pass sits in a loop of 0 or 1 trips (a cond would copy the
    gradients on every step): under `jit` a plain step runs one forward-backward pass (`grad_fn` is not
    called); under `vmap` it runs when any element of the batch takes a SAM step, and each keeps its own.
    `ae_sam_fraction(opt_state)` reads the fraction of SAM steps taken. Under `jit` the loop is
    not reverse-differentiable: differentiate through `update` (e.g. for a learned learning rate) in
    forward mode (`jax.jvp`, `jax.jacfwd`). No public reference code was
    found: this follows the paper's Algorithm 1. No optax or torch.optim namesake.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`, the convention of
    every transformation form (docs/sam.md): `grads` at `params`, `grad_fn(p) -> grads` on the same
    batch, other extra args to the base optimizer, clipping inside the base optimizer.

    Args:
        base_optimizer: the optimizer applying the chosen gradient.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        total_steps: T, the length of the threshold schedule (the planned number of updates), an
            integer >= 1.
        delta: the forgetting rate of the two moving averages, in [0, 1) (0 keeps no history: every
            step is then a SAM step).
        lambda1: c_t at the end of the schedule (t = T), a finite number.
        lambda2: c_t at the start (t = 0), a finite number. Equal bounds give a constant threshold.
            Since | ||g||^2 - mu_t | <= sigma_t / sqrt(1 - delta), a c_t <= -1 / sqrt(1 - delta) takes SAM
            on every step and a c_t > 1 / sqrt(1 - delta) on none (3.16 for delta = 0.9).
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
            `sharpax.current_loss_scale(state)`; `update` unscales both gradients (the statistics and
            the perturbation come from the unscaled one), and a step where either is not finite is
            skipped (zero updates, the AE-SAM state untouched) and the scale reduced.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `AESAMState` (inside a `LossScaleState`
        with `loss_scale`).

    References:
        Jiang, Yang, Zhang & Kwok, "An Adaptive Policy to Employ Sharpness-Aware Minimization", ICLR
        2023, Section 3.1 and Algorithm 1.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: jnp.sum(w**2)
        >>> w = jnp.array([3.0, 4.0])
        >>> tx = sharpax.ae_sam(sharpax.sgd(0.1), rho=0.05, total_steps=10)
        >>> state = tx.init(w)
        >>> # ||g||^2 = 100: mu_0 = 10, sigma_0 = sqrt(0.1) * 90 = 28.5, and 100 >= 10 + 1 * 28.5
        >>> u, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
        >>> int(state.sam_count), float(sharpax.ae_sam_fraction(state))
        (1, 1.0)
    """
    owner = "ae_sam"
    check_int(owner, "total_steps", total_steps)
    check_beta(owner, delta=delta)
    check_range(owner, "lambda1", lambda1)
    check_range(owner, "lambda2", lambda2)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        dtype = accumulation_dtype(float_leaves(params)[0])
        return AESAMState(
            count=jnp.zeros([], jnp.int32),
            sam_count=jnp.zeros([], jnp.int32),
            mean=jnp.zeros([], dtype),
            variance=jnp.zeros([], dtype),
            inner_state=base.init(params),
        )

    def update_core(updates, state, params, grad_fn, extra_args, check_finite):
        check_tree_match(owner, updates, params, "params")
        dtype = state.mean.dtype
        squared_norm = jnp.square(global_norm(float_leaves(updates)[0], dtype))
        forget = jnp.asarray(delta, dtype)
        mean = forget * state.mean + (1 - forget) * squared_norm
        variance = forget * state.variance + (1 - forget) * jnp.square(squared_norm - mean)
        progress = jnp.minimum(state.count.astype(dtype) / total_steps, 1)
        c = progress * jnp.asarray(lambda1, dtype) + (1 - progress) * jnp.asarray(lambda2, dtype)
        use_sam = squared_norm >= mean + c * jnp.sqrt(variance)

        def sam_step(carry):
            sam_grads = sam_gradient(owner, perturbation, carry[0], params, grad_fn, state.count)
            return (sam_grads, all_finite(sam_grads)) if check_finite else (sam_grads,)

        start = (updates, jnp.array(True)) if check_finite else (updates,)
        grads, *finite = _only_if(use_sam, sam_step, start)
        new_updates, inner_state = base.update(grads, state.inner_state, params, **extra_args)
        new_state = AESAMState(
            count=increment(state.count),
            sam_count=jnp.where(use_sam, increment(state.sam_count), state.sam_count),
            mean=mean,
            variance=variance,
            inner_state=inner_state,
        )
        return new_updates, new_state, (finite[0] if finite else None)

    return finish(owner, init_fn, update_core, loss_scale)


def ae_sam_fraction(opt_state: optax.OptState) -> Array:
    """The fraction of the updates so far that were SAM steps, for the (single) `ae_sam` in `opt_state`.

    The state may be an `AESAMState` or contain one at any depth (a chain, `inject_hyperparams`, ...).
    The counts themselves are `AESAMState.sam_count` and `AESAMState.count`.

    Args:
        opt_state: an optimizer state holding exactly one `AESAMState`.

    Returns:
        A float32 scalar in [0, 1]; 0 before the first update.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.ae_sam(sharpax.sgd(0.1), total_steps=100)
        >>> sharpax.ae_sam_fraction(tx.init(jnp.ones(3)))
        Array(0., dtype=float32)
    """
    state = find_state("ae_sam_fraction", without_nnx_variables(opt_state), AESAMState)
    return (state.sam_count / jnp.maximum(state.count, 1)).astype(jnp.float32)
