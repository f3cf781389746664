"""Lion with lion-pytorch's update rule and defaults."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Mask, ScalarOrSchedule
from sharpax._validation import check_beta, check_float_dtype, check_non_negative, check_tree_match
from sharpax.transforms._build import optimizer, weight_decay_block


def scale_by_lion(
    b1: float = 0.9, b2: float = 0.99, *, mu_dtype: Any | None = None
) -> optax.GradientTransformation:
    r"""The sign of an interpolation of momentum and gradient; the momentum decays with b2.

    .. math::
        u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t), \quad
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t

    `optax.scale_by_lion`'s rule and state (`optax.ScaleByLionState`); unlike it, the updates keep the
    gradient's dtype when `mu_dtype` differs (float32 momentum over bfloat16 params), and a gradient tree
    that does not match the state raises a readable error.

    Args:
        b1: interpolation factor in [0, 1).
        b2: momentum decay in [0, 1).
        mu_dtype: dtype of the momentum (default: the param's).

    Returns:
        An `optax.GradientTransformation` with state `optax.ScaleByLionState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_lion(mu_dtype=jnp.float32)
        >>> u, s = tx.update(jnp.array([2.0, -0.5], jnp.bfloat16), tx.init(jnp.zeros(2, jnp.bfloat16)))
        >>> u, s.mu.dtype
        (Array([1, -1], dtype=bfloat16), dtype('float32'))
    """
    owner = "scale_by_lion"
    check_beta(owner, b1=b1, b2=b2)

    def init_fn(params):
        return optax.ScaleByLionState(
            count=jnp.zeros([], jnp.int32), mu=zeros_like_tree(params, mu_dtype)
        )

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.mu)
        # The same expressions as optax and lion-pytorch, so that the signs agree bit for bit.
        new_updates = jax.tree.map(
            lambda g, m: jnp.sign((1 - b1) * g.astype(m.dtype) + b1 * m).astype(g.dtype),
            updates,
            state.mu,
        )
        mu = jax.tree.map(lambda g, m: (1 - b2) * g.astype(m.dtype) + b2 * m, updates, state.mu)
        return new_updates, optax.ScaleByLionState(optax.safe_increment(state.count), mu)

    return optax.GradientTransformation(init_fn, update_fn)


def lion(
    learning_rate: ScalarOrSchedule = 1e-4,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    mask: Mask = None,
    mu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Lion (Chen et al. 2023), the sign of an interpolated momentum, as `lion_pytorch.Lion`.

    .. math::
        u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t), \quad
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t, \quad
        w_t = w_{t-1} - \eta_t (u_t + \lambda w_{t-1})

    The scaling block is `sharpax.transforms.scale_by_lion` (`optax.scale_by_lion`'s rule); the
    difference from `optax.lion` is the default decay (lion-pytorch: 0, optax: 1e-3).

    Args:
        learning_rate: eta >= 0, or a schedule.
        b1: interpolation factor in [0, 1).
        b2: momentum decay in [0, 1).
        weight_decay: decoupled decay lambda >= 0, or a schedule.
        mask: pytree of bools (or a callable on params) choosing which leaves decay (optax's convention);
            everything decays when `None`, as in torch.
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
        scale_by_lion(b1, b2, mu_dtype=mu_dtype),
        weight_decay_block(weight_decay, owner, mask),
        learning_rate=learning_rate,
    )
