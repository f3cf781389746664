"""Adam, AdamW and AMSGrad with torch.optim's update rule."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Array, Params, ScalarOrSchedule, Schedule, State, Updates
from sharpax._validation import check_beta, check_float_dtype, check_non_negative, check_tree_match
from sharpax.transforms._build import optimizer, weight_decay_block
from sharpax.transforms._moments import update_first_moment, update_second_moment
from sharpax.transforms._numerics import increment, one_minus_power, safe_sqrt
from sharpax.transforms._scheduled import scheduled, value_at


class ScaleByAdamState(NamedTuple):
    """State of `scale_by_adam`: step count, first and second moments, and AMSGrad's running max."""

    count: Array
    mu: Updates
    nu: Updates
    nu_max: Updates | None


def scale_by_adam(
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    amsgrad: bool = False,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Rescale updates by Adam's bias-corrected moments, as torch.optim.Adam does.

    .. math::
        m_t = m_{t-1} + (1 - \beta_1)(g_t - m_{t-1}), \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
        \hat v_t = \max(\hat v_{t-1}, v_t) \text{ (AMSGrad) else } v_t \\
        u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{\hat v_t / (1 - \beta_2^t)} + \epsilon}

    AMSGrad keeps the max of the *raw* second moment and bias-corrects it afterwards (torch);
    `optax.scale_by_amsgrad` keeps the max of the corrected moment, which differs in early steps.

    Args:
        b1: decay of the first moment, in [0, 1), or a schedule `count -> b1` (torch's cycled beta_1,
            e.g. `sharpax.lr_scheduler.one_cycle_lr(...).momentum`; the bias correction uses the
            current value, as torch's).
        b2: decay of the second moment, in [0, 1).
        eps: added to the denominator outside the square root, >= 0.
        amsgrad: keep the running maximum of the second moment.
        mu_dtype: dtype of the first moment (default: the param's), e.g. `jnp.float32` over bfloat16 params.
        nu_dtype: dtype of the second moment (and its max), likewise.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByAdamState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_adam()
        >>> u, _ = tx.update({"w": jnp.array([2.0])}, tx.init({"w": jnp.zeros(1)}))
        >>> u["w"]  # the first Adam step is sign(g) (up to eps)
        Array([1.], dtype=float32)
    """
    owner = "scale_by_adam"
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_beta(owner, b1=b1, b2=b2)
    check_non_negative(owner, eps=eps)
    b1 = scheduled(owner, "b1", b1)

    def init_fn(params: Params) -> State:
        return ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_tree(params, mu_dtype),
            nu=zeros_like_tree(params, nu_dtype),
            nu_max=zeros_like_tree(params, nu_dtype) if amsgrad else None,
        )

    def update_fn(updates, state, params=None) -> tuple[Updates, State]:
        del params
        check_tree_match(owner, updates, state.mu)
        b1_t = value_at(b1, state.count)
        count = increment(state.count)
        t = count.astype(jnp.float32)
        bc1 = one_minus_power(b1_t, t)
        bc2 = one_minus_power(b2, t)
        mu = update_first_moment(updates, state.mu, b1_t)
        nu = update_second_moment(updates, state.nu, b2)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu) if amsgrad else None
        denominator_source = nu_max if amsgrad else nu

        def step(g, m, v):
            # torch divides sqrt(v) by sqrt(1 - b2^t); sqrt(v / (1 - b2^t)) is the same to an ulp (the
            # torch goldens' worst error is unchanged) and lets XLA:CPU compile one kernel per leaf
            # shape: with the former, the first leaf of each shape got its own (the kernel counts are in
            # benchmarks/README.md).
            denom = safe_sqrt(v / jnp.asarray(bc2, v.dtype)) + eps
            return ((m / jnp.asarray(bc1, m.dtype)) / denom.astype(m.dtype)).astype(g.dtype)

        new_updates = jax.tree.map(step, updates, mu, denominator_source)
        return new_updates, ScaleByAdamState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return optax.GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    amsgrad: bool = False,
    *,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam (Kingma & Ba 2015) with torch.optim.Adam's update rule; `amsgrad=True` gives AMSGrad.

    .. math::
        g_t \leftarrow g_t + \lambda w_{t-1} \quad \text{(L2 penalty, coupled into the gradient)} \\
        w_t = w_{t-1} - \eta_t \, \frac{m_t / (1 - \beta_1^t)}{\sqrt{\hat v_t / (1 - \beta_2^t)} + \epsilon}

    with the moments of `sharpax.transforms.scale_by_adam`. Without weight decay and AMSGrad this is
    `optax.adam`; with them it is torch's (optax's `amsgrad` maxes the bias-corrected moment, and optax.adam
    has no L2 term).

    Args:
        learning_rate: step size eta >= 0, or a schedule `count -> eta` (count 0 at the first update).
        b1: decay of the first moment, in [0, 1), or a schedule (torch's cycled beta_1).
        b2: decay of the second moment, in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 coefficient lambda >= 0 added to the gradient (torch's `weight_decay`), or a schedule.
        amsgrad: use the running max of the second moment (Reddi et al. 2018).
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the second moment (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
        Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.

    Example:
        >>> import jax, jax.numpy as jnp, optax, sharpax
        >>> params = {"w": jnp.array([1.0, -2.0])}
        >>> tx = sharpax.adam(learning_rate=0.1)
        >>> state = tx.init(params)
        >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2))(params)
        >>> updates, state = tx.update(grads, state, params)
        >>> optax.apply_updates(params, updates)["w"]
        Array([ 0.9, -1.9], dtype=float32)
    """
    owner = "adam"
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_non_negative(owner, weight_decay=weight_decay, eps=eps)
    check_beta(owner, b1=b1, b2=b2)
    return optimizer(
        owner,
        weight_decay_block(weight_decay),
        scale_by_adam(b1, b2, eps, amsgrad=amsgrad, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        learning_rate=learning_rate,
    )


def adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 1e-2,
    amsgrad: bool = False,
    *,
    mask: Any | None = None,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, as torch.optim.AdamW.

    .. math::
        w_t = w_{t-1} - \eta_t \left( \frac{m_t / (1 - \beta_1^t)}{\sqrt{\hat v_t / (1 - \beta_2^t)}
              + \epsilon} + \lambda w_{t-1} \right)

    The decay is multiplied by the learning rate, as in torch and optax. torch's default
    `weight_decay=1e-2` is kept (optax's is 1e-4); `amsgrad` maxes the raw second moment as torch does.

    Args:
        learning_rate: step size eta >= 0, or a schedule.
        b1: decay of the first moment, in [0, 1), or a schedule (torch's cycled beta_1).
        b2: decay of the second moment, in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: decoupled decay lambda >= 0, or a schedule.
        amsgrad: use the running max of the second moment.
        mask: pytree of bools (or a callable on params) choosing which leaves decay (optax's convention);
            everything decays when `None`, as in torch.
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the second moment (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> params = {"w": jnp.ones(3), "b": jnp.zeros(3)}
        >>> tx = sharpax.adamw(1e-3, weight_decay=0.1, mask={"w": True, "b": False})
        >>> updates, state = tx.update(params, tx.init(params), params)
        >>> updates["w"]  # -lr * (1 + 0.1 * 1)
        Array([-0.0011, -0.0011, -0.0011], dtype=float32)
    """
    owner = "adamw"
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_non_negative(owner, weight_decay=weight_decay, eps=eps)
    check_beta(owner, b1=b1, b2=b2)
    decay = weight_decay_block(weight_decay, owner, mask)
    return optimizer(
        owner,
        scale_by_adam(b1, b2, eps, amsgrad=amsgrad, mu_dtype=mu_dtype, nu_dtype=nu_dtype),
        decay,
        learning_rate=learning_rate,
    )
