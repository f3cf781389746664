"""SGD with torch.optim.SGD's momentum, dampening and Nesterov rule."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Array, Params, ScalarOrSchedule, Schedule, State, Updates
from sharpax._validation import (
    check_float_dtype,
    check_non_negative,
    check_range,
    check_tree_match,
    is_static_number,
)
from sharpax.transforms._build import is_static_zero, optimizer, weight_decay_block
from sharpax.transforms._numerics import increment
from sharpax.transforms._scheduled import scheduled, value_at


class ScaleByMomentumState(NamedTuple):
    """State of `scale_by_momentum`.

    Attributes:
        count: step count, to seed the buffer with the undampened first gradient and to evaluate a
            momentum schedule; `None` when dampening is a known 0 and the momentum a number (the zero
            buffer then gives the first gradient by itself, and a counter would only add a kernel to
            every step).
        buf: the momentum buffer.
    """

    count: Array | None
    buf: Updates


def scale_by_momentum(
    momentum: float | Schedule,
    dampening: float = 0.0,
    nesterov: bool = False,
    *,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Heavy-ball momentum as torch.optim.SGD applies it, dampening and Nesterov included.

    .. math::
        b_1 = g_1, \qquad b_t = \mu b_{t-1} + (1 - \tau) g_t, \qquad
        u_t = g_t + \mu b_t \text{ (Nesterov) else } b_t

    The buffer is seeded with the undampened gradient on the first step (torch); `optax.trace` starts from
    zero and has no dampening, so the two agree only when `dampening == 0`.

    Args:
        momentum: mu >= 0, or a schedule `count -> mu` (torch's cycled momentum, e.g.
            `sharpax.lr_scheduler.one_cycle_lr(...).momentum`).
        dampening: tau in [0, 1].
        nesterov: use the Nesterov form.
        accumulator_dtype: dtype of the buffer (default: the param's), e.g. `jnp.float32` over bfloat16
            params (optax's `trace` has the same option); the update comes back in the gradient's dtype.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByMomentumState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_momentum(0.9, dampening=0.5)
        >>> s = tx.init(jnp.zeros(1))
        >>> u, s = tx.update(jnp.ones(1), s)  # first step: the gradient itself
        >>> u, s = tx.update(jnp.ones(1), s)  # 0.9 * 1 + 0.5 * 1
        >>> u
        Array([1.4], dtype=float32)
    """
    owner = "scale_by_momentum"
    check_non_negative(owner, momentum=momentum)
    check_range(owner, "dampening", dampening, 0.0, 1.0)
    check_float_dtype(owner, accumulator_dtype=accumulator_dtype)

    undampened = is_static_zero(dampening)
    momentum = scheduled(owner, "momentum", momentum)
    counted = not undampened or callable(momentum)

    def init_fn(params: Params) -> State:
        count = jnp.zeros([], jnp.int32) if counted else None
        return ScaleByMomentumState(count=count, buf=zeros_like_tree(params, accumulator_dtype))

    def update_fn(updates, state, params=None) -> tuple[Updates, State]:
        del params
        check_tree_match(owner, updates, state.buf)
        momentum_t = value_at(momentum, state.count)

        def weight(x):  # a scheduled value in the buffer's dtype, as a Python float is
            return momentum_t.astype(x.dtype) if callable(momentum) else momentum_t

        if undampened:
            # The buffer starts at zero, so the first step already gives momentum * 0 + g = g: no select,
            # which saves an op per leaf (compile time) and matches optax.trace's graph.
            buf = jax.tree.map(lambda g, b: weight(b) * b + g.astype(b.dtype), updates, state.buf)
        else:
            first = state.count == 0
            buf = jax.tree.map(
                lambda g, b: jnp.where(
                    first, g.astype(b.dtype), weight(b) * b + (1 - dampening) * g.astype(b.dtype)
                ),
                updates,
                state.buf,
            )
        if nesterov:
            nesterov_step = lambda g, b: (g.astype(b.dtype) + weight(b) * b).astype(g.dtype)
            out = jax.tree.map(nesterov_step, updates, buf)
        else:
            out = jax.tree.map(lambda g, b: b.astype(g.dtype), updates, buf)
        count = increment(state.count) if counted else None
        return out, ScaleByMomentumState(count=count, buf=buf)

    return optax.GradientTransformation(init_fn, update_fn)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | Schedule = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    accumulator_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Stochastic gradient descent with torch.optim.SGD's momentum, dampening, Nesterov and L2 rule.

    .. math::
        d_t = g_t + \lambda w_{t-1}, \quad b_1 = d_1, \quad b_t = \mu b_{t-1} + (1 - \tau) d_t, \\
        w_t = w_{t-1} - \eta_t \, (d_t + \mu b_t \text{ if Nesterov else } b_t)

    Differs from `optax.sgd`: dampening, L2 weight decay, and the buffer seeded with the first gradient
    (optax's `trace` starts at zero, which only matters with dampening).

    Args:
        learning_rate: step size eta >= 0, or a schedule.
        momentum: mu >= 0 (0 disables the buffer), or a schedule `count -> mu` (torch's cycled momentum:
            `sgd(sched, momentum=sched.momentum)` with `sched = lr_scheduler.one_cycle_lr(...)`).
        dampening: tau in [0, 1].
        nesterov: Nesterov momentum; needs `momentum > 0` and `dampening == 0` (torch's rule).
        weight_decay: L2 coefficient lambda >= 0 added to the gradient, or a schedule.
        accumulator_dtype: dtype of the momentum buffer (default: the param's), as in `optax.sgd`.

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum in deep
        learning", ICML 2013.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.sgd(0.1, momentum=0.9, nesterov=True)
        >>> params = jnp.array([1.0])
        >>> updates, state = tx.update(jnp.array([1.0]), tx.init(params), params)
        >>> updates  # -0.1 * (1 + 0.9 * 1)
        Array([-0.19], dtype=float32)
    """
    owner = "sgd"
    check_non_negative(owner, momentum=momentum, weight_decay=weight_decay)
    check_range(owner, "dampening", dampening, 0.0, 1.0)
    check_float_dtype(owner, accumulator_dtype=accumulator_dtype)
    if (
        nesterov
        and not callable(momentum)
        and is_static_number(momentum)
        and (momentum <= 0 or dampening != 0)
    ):
        raise ValueError(
            f"{owner}: nesterov=True needs momentum > 0 and dampening == 0, "
            f"got momentum={momentum!r}, dampening={dampening!r}"
        )
    use_momentum = not is_static_zero(momentum)
    return optimizer(
        owner,
        weight_decay_block(weight_decay),
        scale_by_momentum(momentum, dampening, nesterov, accumulator_dtype=accumulator_dtype)
        if use_momentum
        else None,
        learning_rate=learning_rate,
    )
