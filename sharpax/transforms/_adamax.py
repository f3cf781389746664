"""Adamax with torch.optim.Adamax's update rule (eps inside the infinity norm)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Array, ScalarOrSchedule, Schedule, Updates
from sharpax._validation import check_beta, check_float_dtype, check_non_negative, check_tree_match
from sharpax.transforms._build import optimizer, weight_decay_block
from sharpax.transforms._moments import update_first_moment
from sharpax.transforms._numerics import increment, one_minus_power
from sharpax.transforms._scheduled import scheduled, value_at


class ScaleByAdamaxState(NamedTuple):
    """State of `scale_by_adamax`: step count, first moment and the exponentially weighted inf-norm."""

    count: Array
    mu: Updates
    nu: Updates


def scale_by_adamax(
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Adam's infinity-norm variant, as torch.optim.Adamax computes it.

    .. math::
        m_t = m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}), \quad
        u_t^\infty = \max(\beta_2 u_{t-1}^\infty, |g_t| + \epsilon), \quad
        u_t = \frac{m_t}{(1 - \beta_1^t) \, u_t^\infty}

    eps enters the max, as in torch and `optax.scale_by_adamax` (the same rule).

    Args:
        b1: beta_1 in [0, 1), or a schedule (torch's cycled beta_1).
        b2: beta_2 in [0, 1).
        eps: >= 0.
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the infinity norm (default: the param's), e.g. `jnp.float32` over bfloat16
            params; the update comes back in the gradient's dtype.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByAdamaxState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_adamax(eps=0.0)
        >>> u, _ = tx.update(jnp.array([-3.0]), tx.init(jnp.zeros(1)))
        >>> u
        Array([-1.], dtype=float32)
    """
    owner = "scale_by_adamax"
    check_beta(owner, b1=b1, b2=b2)
    check_non_negative(owner, eps=eps)
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    b1 = scheduled(owner, "b1", b1)

    def init_fn(params):
        return ScaleByAdamaxState(
            jnp.zeros([], jnp.int32),
            zeros_like_tree(params, mu_dtype),
            zeros_like_tree(params, nu_dtype),
        )

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.mu)
        b1_t = value_at(b1, state.count)
        count = increment(state.count)
        bc1 = one_minus_power(b1_t, count.astype(jnp.float32))
        mu = update_first_moment(updates, state.mu, b1_t)
        nu = jax.tree.map(
            lambda g, u: jnp.maximum(b2 * u, jnp.abs(g.astype(u.dtype)) + eps), updates, state.nu
        )

        def step(g, m, u):
            # In the wider of the two buffers' dtypes (casts are no-ops when both are the gradient's).
            with jax.numpy_dtype_promotion("standard"):  # an explicit choice, not an implicit mix
                dtype = jnp.promote_types(m.dtype, u.dtype)
            m, u = m.astype(dtype), u.astype(dtype)
            return (m / (jnp.asarray(bc1, dtype) * u)).astype(g.dtype)

        out = jax.tree.map(step, updates, mu, nu)
        return out, ScaleByAdamaxState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def adamax(
    learning_rate: ScalarOrSchedule = 2e-3,
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adamax (Kingma & Ba 2015, section 7) with torch.optim.Adamax's update rule.

    .. math::
        g_t \leftarrow g_t + \lambda w_{t-1}, \quad w_t = w_{t-1} - \eta_t u_t

    with u_t from `sharpax.transforms.scale_by_adamax`. Without weight decay this is `optax.adamax`
    (same rule, eps inside the max); torch's L2 term and default lr 2e-3 are the additions.

    Args:
        learning_rate: eta >= 0, or a schedule.
        b1: beta_1 in [0, 1), or a schedule (torch's cycled beta_1).
        b2: beta_2 in [0, 1).
        eps: >= 0.
        weight_decay: L2 coefficient lambda >= 0 added to the gradient, or a schedule.
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the infinity norm (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.adamax(0.1, eps=0.0)
        >>> p = jnp.zeros(1)
        >>> u, _ = tx.update(jnp.array([4.0]), tx.init(p), p)
        >>> u
        Array([-0.1], dtype=float32)
    """
    owner = "adamax"
    check_non_negative(owner, weight_decay=weight_decay, eps=eps)
    check_beta(owner, b1=b1, b2=b2)
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    return optimizer(
        owner,
        weight_decay_block(weight_decay),
        scale_by_adamax(b1, b2, eps, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        learning_rate=learning_rate,
    )
