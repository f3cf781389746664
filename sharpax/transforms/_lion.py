"""Lion with lion-pytorch's update rule and defaults."""

from __future__ import annotations

from typing import Any

import jax
import optax

from sharpax._types import ScalarOrSchedule
from sharpax._validation import check_beta, check_float_dtype, check_non_negative
from sharpax.transforms._build import optimizer, weight_decay_block


def _computed_in(
    dtype: Any | None, inner: optax.GradientTransformation
) -> optax.GradientTransformation:
    """`inner` fed gradients cast to `dtype`, its updates cast back to the gradients' dtype.

    `optax.scale_by_lion` mixes the gradient and a `mu_dtype` momentum in one expression, which strict
    dtype promotion refuses (bfloat16 + float32) and default promotion answers in the wider dtype.
    """
    if dtype is None:
        return inner

    def update_fn(updates, state, params=None):
        cast = jax.tree.map(lambda g: g.astype(dtype), updates)
        new_updates, state = inner.update(cast, state, params)
        return jax.tree.map(lambda u, g: u.astype(g.dtype), new_updates, updates), state

    return optax.GradientTransformation(inner.init, update_fn)


def lion(
    learning_rate: ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Lion (Chen et al. 2023), the sign of an interpolated momentum, as `lion_pytorch.Lion`.

    .. math::
        u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t), \quad
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t, \quad
        w_t = w_{t-1} - \eta_t (u_t + \lambda w_{t-1})

    The scaling block is `optax.scale_by_lion` (the same rule); the difference from `optax.lion` is the
    default decay (lion-pytorch: 0, optax: 1e-3).

    Args:
        learning_rate: eta >= 0, or a schedule.
        b1: interpolation factor in [0, 1).
        b2: momentum decay in [0, 1).
        weight_decay: decoupled decay lambda >= 0, or a schedule.
        mu_dtype: dtype of the momentum and of the interpolation computed from it (default: the
            gradient's); the update comes back in the gradient's dtype.

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Chen et al., "Symbolic Discovery of Optimization Algorithms", NeurIPS 2023.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.lion(0.1)
        >>> p = jnp.zeros(2)
        >>> u, _ = tx.update(jnp.array([3.0, -0.5]), tx.init(p), p)
        >>> u
        Array([-0.1,  0.1], dtype=float32)
    """
    owner = "lion"
    check_float_dtype(owner, mu_dtype=mu_dtype)
    check_non_negative(owner, weight_decay=weight_decay)
    check_beta(owner, b1=b1, b2=b2)
    return optimizer(
        owner,
        _computed_in(mu_dtype, optax.scale_by_lion(b1, b2, mu_dtype=mu_dtype)),
        weight_decay_block(weight_decay),
        learning_rate=learning_rate,
    )
