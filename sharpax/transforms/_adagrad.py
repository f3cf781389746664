"""Adagrad with torch.optim.Adagrad's update rule (eps outside the square root, lr decay)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._types import Array, ArrayLike, ScalarOrSchedule, Updates
from sharpax._validation import check_float_dtype, check_non_negative, check_tree_match
from sharpax.transforms._build import is_static_zero, optimizer, weight_decay_block
from sharpax.transforms._numerics import safe_sqrt


class ScaleByAdagradState(NamedTuple):
    """State of `scale_by_adagrad`: the running sum of squared gradients."""

    sum_of_squares: Updates


def scale_by_adagrad(
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Divide by the root of the running sum of squared gradients, eps outside the root (torch).

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad u_t = \frac{g_t}{\sqrt{s_t} + \epsilon}

    `optax.scale_by_rss` puts eps inside the root and starts the sum at 0.1.

    Args:
        initial_accumulator_value: s_0 >= 0.
        eps: >= 0.
        nu_dtype: dtype of the sum (default: the param's), e.g. `jnp.float32` over bfloat16 params;
            the update comes back in the gradient's dtype.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByAdagradState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_adagrad()
        >>> u, _ = tx.update(jnp.array([3.0]), tx.init(jnp.zeros(1)))
        >>> u
        Array([1.], dtype=float32)
    """
    owner = "scale_by_adagrad"
    check_non_negative(owner, initial_accumulator_value=initial_accumulator_value, eps=eps)
    check_float_dtype(owner, nu_dtype=nu_dtype)

    def init_fn(params):
        return ScaleByAdagradState(
            jax.tree.map(
                lambda p: jnp.full_like(p, initial_accumulator_value, dtype=nu_dtype), params
            )
        )

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.sum_of_squares)
        # In the sum's dtype; the same ops as before when it is the gradient's (casts are no-ops).
        acc = jax.tree.map(
            lambda g, s: s + g.astype(s.dtype) * g.astype(s.dtype), updates, state.sum_of_squares
        )
        out = jax.tree.map(
            lambda g, s: (g.astype(s.dtype) / (safe_sqrt(s) + eps)).astype(g.dtype), updates, acc
        )
        return out, ScaleByAdagradState(acc)

    return optax.GradientTransformation(init_fn, update_fn)


def adagrad(
    learning_rate: ScalarOrSchedule = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: ScalarOrSchedule = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
    *,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adagrad (Duchi et al. 2011) with torch.optim.Adagrad's update rule.

    .. math::
        g_t \leftarrow g_t + \lambda w_{t-1}, \quad s_t = s_{t-1} + g_t^2, \quad
        w_t = w_{t-1} - \frac{\eta_t}{1 + (t - 1)\,\delta} \frac{g_t}{\sqrt{s_t} + \epsilon}

    Differs from `optax.adagrad`: eps outside the square root (optax: inside), the accumulator starts at
    `initial_accumulator_value` (optax: 0.1), eps defaults to 1e-10 (optax: 1e-7), and lr decay delta.

    Args:
        learning_rate: eta >= 0, or a schedule.
        lr_decay: delta >= 0; the step size is divided by `1 + (t - 1) * delta`.
        weight_decay: L2 coefficient lambda >= 0 added to the gradient, or a schedule.
        initial_accumulator_value: s_0 >= 0.
        eps: >= 0.
        nu_dtype: dtype of the sum of squares (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization", JMLR 2011.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.adagrad(0.5)
        >>> p = jnp.array([1.0, 1.0])
        >>> u, _ = tx.update(jnp.array([2.0, -4.0]), tx.init(p), p)
        >>> u
        Array([-0.5,  0.5], dtype=float32)
    """
    owner = "adagrad"
    check_non_negative(owner, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps)
    check_non_negative(owner, initial_accumulator_value=initial_accumulator_value)
    check_non_negative(owner, learning_rate=learning_rate)
    check_float_dtype(owner, nu_dtype=nu_dtype)

    def decayed_lr(count: ArrayLike) -> Array:
        base = learning_rate(count) if callable(learning_rate) else learning_rate
        # count as float32 explicitly: what standard promotion does, and legal under strict promotion.
        return jnp.divide(base, 1 + jnp.asarray(count, jnp.float32) * lr_decay)

    lr = learning_rate if is_static_zero(lr_decay) else decayed_lr
    return optimizer(
        owner,
        weight_decay_block(weight_decay),
        scale_by_adagrad(initial_accumulator_value, eps, nu_dtype=nu_dtype),
        learning_rate=lr,
    )
