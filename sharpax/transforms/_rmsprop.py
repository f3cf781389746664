"""RMSprop with torch.optim.RMSprop's update rule (eps outside the root, centered, momentum)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Params, ScalarOrSchedule, State, Updates
from sharpax._validation import check_float_dtype, check_non_negative, check_range, check_tree_match
from sharpax.transforms._build import is_static_zero, optimizer, weight_decay_block
from sharpax.transforms._numerics import safe_sqrt
from sharpax.transforms._sgd import scale_by_momentum


class ScaleByRmspropState(NamedTuple):
    """State of `scale_by_rmsprop`: the running mean of g^2, and of g when centered (else None)."""

    square_avg: Updates
    grad_avg: Updates | None


def scale_by_rmsprop(
    decay: float = 0.99,
    eps: float = 1e-8,
    centered: bool = False,
    *,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Divide by the running RMS of the gradient, eps outside the root (torch).

    .. math::
        v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \quad
        \bar g_t = \bar g_{t-1} + (1 - \alpha)(g_t - \bar g_{t-1}) \text{ (centered)}, \\
        u_t = \frac{g_t}{\sqrt{v_t - \bar g_t^2} + \epsilon} \text{ (centered) else }
              \frac{g_t}{\sqrt{v_t} + \epsilon}

    `optax.scale_by_rms` puts eps inside the root unless `eps_in_sqrt=False`.

    Args:
        decay: alpha (torch's `alpha`) in [0, 1].
        eps: >= 0.
        centered: subtract the squared running mean of the gradient.
        nu_dtype: dtype of the running means (default: the param's), e.g. `jnp.float32` over bfloat16
            params; the update comes back in the gradient's dtype.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByRmspropState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_rmsprop(decay=0.75, eps=0.0)
        >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
        >>> u  # 2 / sqrt(0.25 * 4)
        Array([2.], dtype=float32)
    """
    owner = "scale_by_rmsprop"
    check_range(owner, "decay", decay, 0.0, 1.0)
    check_non_negative(owner, eps=eps)
    check_float_dtype(owner, nu_dtype=nu_dtype)

    def init_fn(params: Params) -> State:
        return ScaleByRmspropState(
            zeros_like_tree(params, nu_dtype),
            zeros_like_tree(params, nu_dtype) if centered else None,
        )

    def update_fn(updates, state, params=None) -> tuple[Updates, State]:
        del params
        check_tree_match(owner, updates, state.square_avg)
        # In the buffers' dtype; the same ops as before when it is the gradient's (casts are no-ops).
        cast = lambda g, like: g.astype(like.dtype)
        square_avg = jax.tree.map(
            lambda g, v: decay * v + (1 - decay) * cast(g, v) * cast(g, v),
            updates,
            state.square_avg,
        )
        if centered:
            grad_avg = jax.tree.map(
                lambda g, m: m + (1 - decay) * (cast(g, m) - m), updates, state.grad_avg
            )
            out = jax.tree.map(
                # v - m^2 >= 0 in exact arithmetic; rounding (an FMA under jit) can make it a tiny
                # negative, whose root is NaN. The clamp changes nothing where torch is finite.
                lambda g, v, m: (cast(g, v) / (safe_sqrt(jnp.maximum(v - m * m, 0)) + eps)).astype(
                    g.dtype
                ),
                updates,
                square_avg,
                grad_avg,
            )
        else:
            grad_avg = None
            out = jax.tree.map(
                lambda g, v: (cast(g, v) / (safe_sqrt(v) + eps)).astype(g.dtype),
                updates,
                square_avg,
            )
        return out, ScaleByRmspropState(square_avg, grad_avg)

    return optax.GradientTransformation(init_fn, update_fn)


def rmsprop(
    learning_rate: ScalarOrSchedule = 1e-2,
    decay: float = 0.99,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
    *,
    nu_dtype: Any | None = None,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSprop (Hinton 2012) with torch.optim.RMSprop's update rule and defaults.

    .. math::
        g_t \leftarrow g_t + \lambda w_{t-1}, \quad
        b_t = \mu b_{t-1} + u_t \text{ (momentum, } b_0 = 0), \quad
        w_t = w_{t-1} - \eta_t \, (b_t \text{ or } u_t)

    with u_t from `sharpax.transforms.scale_by_rmsprop`. Differs from `optax.rmsprop`: eps outside the
    root (optax's default `eps_in_sqrt=True`: inside), defaults lr 1e-2, decay 0.99 (optax: 0.9), L2 term.
    `optax.rmsprop(lr, decay=0.99, eps_in_sqrt=False, ...)` follows the same rule without weight decay.

    Args:
        learning_rate: eta >= 0, or a schedule.
        decay: alpha (torch's `alpha`) in [0, 1].
        eps: >= 0.
        weight_decay: L2 coefficient lambda >= 0 added to the gradient, or a schedule.
        momentum: mu >= 0; 0 disables the buffer.
        centered: normalise by the estimated variance instead of the second moment.
        nu_dtype: dtype of the running means of g^2 and g (default: the param's).
        accumulator_dtype: dtype of the momentum buffer (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e, 2012.
        Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850 (centered).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.rmsprop(0.01, momentum=0.9, centered=True)
        >>> p = jnp.zeros(1)
        >>> u, s = tx.update(jnp.array([1.0]), tx.init(p), p)
        >>> u  # -0.01 / sqrt(0.01 - 0.0001)
        Array([-0.10050378], dtype=float32)
    """
    owner = "rmsprop"
    check_non_negative(owner, weight_decay=weight_decay, eps=eps, momentum=momentum)
    check_range(owner, "decay", decay, 0.0, 1.0)
    check_float_dtype(owner, nu_dtype=nu_dtype, accumulator_dtype=accumulator_dtype)
    return optimizer(
        owner,
        weight_decay_block(weight_decay),
        scale_by_rmsprop(decay, eps, centered, nu_dtype=nu_dtype),
        None
        if is_static_zero(momentum)
        else scale_by_momentum(momentum, accumulator_dtype=accumulator_dtype),
        learning_rate=learning_rate,
    )
