"""Adadelta with torch.optim.Adadelta's update rule."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import ScalarOrSchedule, Updates
from sharpax._validation import check_float_dtype, check_non_negative, check_range, check_tree_match
from sharpax.transforms._build import optimizer, weight_decay_block
from sharpax.transforms._numerics import safe_sqrt


class ScaleByAdadeltaState(NamedTuple):
    """State of `scale_by_adadelta`: running averages of squared gradients and squared deltas."""

    square_avg: Updates
    acc_delta: Updates


def scale_by_adadelta(
    rho: float = 0.9, eps: float = 1e-6, *, nu_dtype: Any | None = None
) -> optax.GradientTransformation:
    r"""Adadelta's unit-corrected step, as torch.optim.Adadelta computes it.

    .. math::
        v_t = \rho v_{t-1} + (1 - \rho) g_t^2, \quad
        \Delta_t = \frac{\sqrt{a_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t, \quad
        a_t = \rho a_{t-1} + (1 - \rho) \Delta_t^2, \quad u_t = \Delta_t

    Args:
        rho: decay in [0, 1].
        eps: >= 0.
        nu_dtype: dtype of both running averages (default: the param's), e.g. `jnp.float32` over
            bfloat16 params; the update comes back in the gradient's dtype.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByAdadeltaState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_adadelta(rho=0.0, eps=0.0)
        >>> u, _ = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
        >>> u  # sqrt(0) / sqrt(4) * 2
        Array([0.], dtype=float32)
    """
    owner = "scale_by_adadelta"
    check_range(owner, "rho", rho, 0.0, 1.0)
    check_non_negative(owner, eps=eps)
    check_float_dtype(owner, nu_dtype=nu_dtype)

    def init_fn(params):
        return ScaleByAdadeltaState(
            zeros_like_tree(params, nu_dtype), zeros_like_tree(params, nu_dtype)
        )

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.square_avg)
        # In the averages' dtype; the same ops as before when it is the gradient's (casts are no-ops).
        square_avg = jax.tree.map(
            lambda g, v: rho * v + (1 - rho) * g.astype(v.dtype) * g.astype(v.dtype),
            updates,
            state.square_avg,
        )
        delta = jax.tree.map(
            lambda g, v, a: safe_sqrt(a + eps) / safe_sqrt(v + eps) * g.astype(v.dtype),
            updates,
            square_avg,
            state.acc_delta,
        )
        acc_delta = jax.tree.map(lambda d, a: rho * a + (1 - rho) * d * d, delta, state.acc_delta)
        out = jax.tree.map(lambda g, d: d.astype(g.dtype), updates, delta)
        return out, ScaleByAdadeltaState(square_avg, acc_delta)

    return optax.GradientTransformation(init_fn, update_fn)


def adadelta(
    learning_rate: ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adadelta (Zeiler 2012) with torch.optim.Adadelta's update rule and defaults.

    .. math::
        g_t \leftarrow g_t + \lambda w_{t-1}, \quad w_t = w_{t-1} - \eta_t \Delta_t

    with Delta_t from `sharpax.transforms.scale_by_adadelta`. Same math as `optax.adadelta`; the
    defaults differ (torch: lr 1.0, eps 1e-6; optax: lr required, eps 1e-6) and torch's L2 term is here.

    Args:
        learning_rate: eta >= 0, or a schedule.
        rho: decay in [0, 1].
        eps: >= 0.
        weight_decay: L2 coefficient lambda >= 0 added to the gradient, or a schedule.
        nu_dtype: dtype of both running averages (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701, 2012.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.adadelta()
        >>> p = jnp.zeros(2)
        >>> u, _ = tx.update(jnp.array([1.0, -1.0]), tx.init(p), p)
        >>> u.round(5)  # -sqrt(1e-6) / sqrt(0.1 + 1e-6) * g
        Array([-0.00316,  0.00316], dtype=float32)
    """
    owner = "adadelta"
    check_non_negative(owner, weight_decay=weight_decay, eps=eps)
    check_range(owner, "rho", rho, 0.0, 1.0)
    check_float_dtype(owner, nu_dtype=nu_dtype)
    return optimizer(
        owner,
        weight_decay_block(weight_decay),
        scale_by_adadelta(rho, eps, nu_dtype=nu_dtype),
        learning_rate=learning_rate,
    )
