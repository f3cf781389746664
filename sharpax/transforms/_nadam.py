"""NAdam with torch.optim.NAdam's momentum schedule (Dozat 2016)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Array, Mask, ScalarOrSchedule, Schedule, Updates
from sharpax._validation import check_beta, check_float_dtype, check_non_negative, check_tree_match
from sharpax.transforms._build import optimizer, weight_decay_block
from sharpax.transforms._moments import update_first_moment, update_second_moment
from sharpax.transforms._numerics import increment, one_minus_power, safe_sqrt
from sharpax.transforms._scheduled import scheduled, value_at


class ScaleByNadamState(NamedTuple):
    """State of `scale_by_nadam`: step count, product of the momentum schedule, and the moments."""

    count: Array
    mu_product: Array
    mu: Updates
    nu: Updates


def scale_by_nadam(
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    *,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Nesterov-accelerated Adam with the momentum schedule of Dozat (2016), as torch computes it.

    .. math::
        \mu_t = \beta_1 (1 - \tfrac12 \, 0.96^{t \psi}), \quad \Pi_t = \prod_{i \le t} \mu_i, \quad
        d_t = \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        u_t = \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{d_t} + \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}}
              \frac{m_t}{d_t}

    `optax.nadam` has no momentum schedule (it is the psi -> infinity limit of this rule).

    Args:
        b1: beta_1 in [0, 1), or a schedule (torch's cycled beta_1).
        b2: beta_2 in [0, 1).
        eps: >= 0.
        momentum_decay: psi >= 0.
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the second moment (default: the param's).

    Returns:
        An `optax.GradientTransformation` with state `ScaleByNadamState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_nadam()
        >>> u, s = tx.update(jnp.array([1.0]), tx.init(jnp.zeros(1)))
        >>> s.mu_product  # 0.9 * (1 - 0.5 * 0.96 ** 0.004)
        Array(0.45007348, dtype=float32)
    """
    owner = "scale_by_nadam"
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_beta(owner, b1=b1, b2=b2)
    check_non_negative(owner, eps=eps, momentum_decay=momentum_decay)
    b1 = scheduled(owner, "b1", b1)

    def init_fn(params):
        return ScaleByNadamState(
            count=jnp.zeros([], jnp.int32),
            mu_product=jnp.ones([], jnp.float32),
            mu=zeros_like_tree(params, mu_dtype),
            nu=zeros_like_tree(params, nu_dtype),
        )

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.mu)
        b1_t = value_at(b1, state.count)
        count = increment(state.count)
        t = count.astype(jnp.float32)
        bc2 = one_minus_power(b2, t)
        momentum_t = b1_t * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        momentum_next = b1_t * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = state.mu_product * momentum_t
        grad_coef = (1 - momentum_t) / (1 - mu_product)
        mu_coef = momentum_next / (1 - mu_product * momentum_next)
        mu = update_first_moment(updates, state.mu, b1_t)
        nu = update_second_moment(updates, state.nu, b2)

        def step(g, m, v):
            # Divide in the moments' precision: with float32 moments over float16 params, eps (1e-8)
            # would round to 0 in float16 and a zero gradient would give 0 / 0.
            with jax.numpy_dtype_promotion("standard"):  # an explicit choice, not an implicit mix
                dtype = jnp.promote_types(m.dtype, v.dtype)
            denom = (safe_sqrt(v / jnp.asarray(bc2, v.dtype)) + eps).astype(dtype)
            out = jnp.asarray(grad_coef, denom.dtype) * (g.astype(dtype) / denom) + jnp.asarray(
                mu_coef, denom.dtype
            ) * (m.astype(dtype) / denom)
            return out.astype(g.dtype)

        new_updates = jax.tree.map(step, updates, mu, nu)
        return new_updates, ScaleByNadamState(count, mu_product, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def nadam(
    learning_rate: ScalarOrSchedule = 2e-3,
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    mask: Mask = None,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""NAdam (Dozat 2016) with torch.optim.NAdam's update rule, momentum schedule included.

    .. math::
        w_t = w_{t-1} - \eta_t \left(u_t + \lambda w_{t-1} \right) \text{ (decoupled) or }
        w_{t-1} - \eta_t u_t \text{ with } g_t \leftarrow g_t + \lambda w_{t-1} \text{ (L2)}

    with u_t from `sharpax.transforms.scale_by_nadam`. `optax.nadam` has no momentum schedule.

    Args:
        learning_rate: eta >= 0, or a schedule.
        b1: beta_1 in [0, 1), or a schedule (torch's cycled beta_1).
        b2: beta_2 in [0, 1).
        eps: >= 0.
        weight_decay: lambda >= 0, or a schedule.
        momentum_decay: psi >= 0 (torch's default 4e-3).
        decoupled_weight_decay: AdamW-style decay (NAdamW) instead of the L2 term.
        mask: pytree of bools (or a callable on params) choosing which leaves decay, L2 or decoupled (optax's convention);
            everything decays when `None`, as in torch.
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the second moment (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.nadam(1e-2)
        >>> p = jnp.zeros(2)
        >>> u, s = tx.update(jnp.array([1.0, -1.0]), tx.init(p), p)
        >>> u
        Array([-0.01,  0.01], dtype=float32)
    """
    owner = "nadam"
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_non_negative(owner, weight_decay=weight_decay, eps=eps, momentum_decay=momentum_decay)
    check_beta(owner, b1=b1, b2=b2)
    decay = weight_decay_block(weight_decay, owner, mask)
    scale = scale_by_nadam(b1, b2, eps, momentum_decay, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    blocks = (scale, decay) if decoupled_weight_decay else (decay, scale)
    return optimizer(owner, *blocks, learning_rate=learning_rate)
