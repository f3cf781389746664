"""Twins of torch's multiplicative decays: LambdaLR, MultiplicativeLR, StepLR, MultiStepLR, ExponentialLR."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import jax.numpy as jnp
import numpy as np

from sharpax._types import Array, ArrayLike
from sharpax._validation import check_int, check_non_negative, is_static_number
from sharpax.lr_scheduler._schedule import (
    LRSchedule,
    check_base_rate,
    check_milestones,
    check_static,
    lr_schedule,
    power,
    rate_of,
    table_lookup,
    to_f32,
)


def _table_rates(lr: Any, factors: np.ndarray) -> Callable[[Array], Array]:
    """`count -> lr * factors[count]`: one float64 product, rounded once, for a static `lr`."""
    if is_static_number(lr):
        rates = float(lr) * factors
        return lambda c: table_lookup(rates, c)
    return lambda c: rate_of(lr) * table_lookup(factors, c)


def _host_table(owner: str, fn: Callable[[int], SupportsFloat], total_steps: int) -> np.ndarray:
    """`[fn(0), ..., fn(total_steps)]` in float64, each called with a Python int as torch does."""
    values = []
    for k in range(total_steps + 1):
        value = float(fn(k))
        if not np.isfinite(value):
            raise ValueError(f"{owner}: lr_lambda({k}) is {value}, not a finite number")
        values.append(value)
    return np.asarray(values, np.float64)


def lambda_lr(
    lr: float, lr_lambda: Callable[[ArrayLike], Array | float], *, total_steps: int | None = None
) -> LRSchedule:
    r"""torch's `LambdaLR`: the base rate times a function of the count.

    .. math::
        \eta(c) = \eta_0 \, \lambda(c)

    With `total_steps=None`, `lr_lambda` is traced with the int32 count (write it with `jnp`, e.g.
    `jnp.where` instead of `if`). With `total_steps`, it is called on the host with Python ints
    `0..total_steps` when the schedule is built, as torch calls it (any Python function works), and the
    rate past `total_steps` stays at its value there. Not chainable in torch (it overwrites the rate),
    so `chained_scheduler` refuses it.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        lr_lambda: `count -> factor`.
        total_steps: tabulate `lr_lambda` on the host for counts `0..total_steps` (an integer >= 0),
            or `None` to trace it.

    Returns:
        An `LRSchedule` `count -> rate` (float32).

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.LambdaLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> warmup = lr_scheduler.lambda_lr(0.1, lambda c: jnp.minimum(c + 1, 4) / 4)
        >>> warmup(jnp.arange(6))
        Array([0.025, 0.05 , 0.075, 0.1  , 0.1  , 0.1  ], dtype=float32)
    """
    owner = "lambda_lr"
    check_base_rate(owner, lr)
    if not callable(lr_lambda):
        raise TypeError(f"{owner}: lr_lambda must be a function count -> factor, got {lr_lambda!r}")
    if total_steps is not None:
        check_int(owner, "total_steps", total_steps, 0)
        return lr_schedule(owner, lr, _table_rates(lr, _host_table(owner, lr_lambda, total_steps)))

    def rate(count: Array) -> Array:
        return rate_of(lr) * to_f32(lr_lambda(count))

    return lr_schedule(owner, lr, rate)


def multiplicative_lr(
    lr: float, lr_lambda: Callable[[int], float], *, total_steps: int
) -> LRSchedule:
    r"""torch's `MultiplicativeLR`: the rate multiplied by `lr_lambda(t)` at each step t >= 1.

    .. math::
        \eta(c) = \eta_0 \prod_{k=1}^{c} \lambda(k)

    (torch's first multiplication is by `lr_lambda(1)`: `lr_lambda(0)` is never applied alone). A
    product of an arbitrary function has no closed form, so `lr_lambda` is called on the host with Python
    ints `1..total_steps` when the schedule is built, as torch calls it, and the products accumulated
    in float64 as torch does; past `total_steps` the rate stays at its value there. torch has no
    `total_steps`: set it to the length of training.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        lr_lambda: `int -> factor`, any Python function.
        total_steps: the last count tabulated, an integer >= 0 (the table holds `total_steps + 1`
            float32 values).

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.MultiplicativeLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> sched = lr_scheduler.multiplicative_lr(1.0, lambda k: 0.5, total_steps=100)
        >>> sched(jnp.arange(4))
        Array([1.   , 0.5  , 0.25 , 0.125], dtype=float32)
    """
    owner = "multiplicative_lr"
    check_base_rate(owner, lr)
    if not callable(lr_lambda):
        raise TypeError(f"{owner}: lr_lambda must be a function epoch -> factor, got {lr_lambda!r}")
    check_int(owner, "total_steps", total_steps, 0)
    factors = _host_table(owner, lr_lambda, total_steps)
    products = np.empty(total_steps + 1, np.float64)
    product = 1.0
    for k in range(total_steps + 1):
        if k > 0:  # torch multiplies the rate itself by lr_lambda(k), step by step
            product *= factors[k]
        products[k] = product
    # torch's SequentialLR restarts it with lr_lambda(0) applied to the rate the previous one left.
    resumed = factors[0] * products

    return lr_schedule(
        owner,
        lr,
        _table_rates(lr, products),
        factor=lambda c: table_lookup(products, c),
        resume=lambda previous, c: previous * table_lookup(resumed, c),
    )


def step_lr(lr: float, step_size: int, gamma: float = 0.1) -> LRSchedule:
    r"""torch's `StepLR`: the rate multiplied by `gamma` every `step_size` updates.

    .. math::
        \eta(c) = \eta_0 \, \gamma^{\lfloor c / s \rfloor}

    As `optax.exponential_decay(lr, s, gamma, staircase=True)`.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        step_size: the period s, an integer >= 1.
        gamma: the decay factor, finite and >= 0.

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.StepLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.step_lr(1.0, step_size=2, gamma=0.5)(jnp.arange(5))
        Array([1.  , 1.  , 0.5 , 0.5 , 0.25], dtype=float32)
    """
    owner = "step_lr"
    check_base_rate(owner, lr)
    check_int(owner, "step_size", step_size, 1)
    check_static(owner, gamma=gamma)
    check_non_negative(owner, gamma=gamma)

    def factor(count: Array) -> Array:
        return power(float(gamma), count // step_size)

    return lr_schedule(owner, lr, lambda c: rate_of(lr) * factor(c), factor=factor)


def multi_step_lr(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> LRSchedule:
    r"""torch's `MultiStepLR`: the rate multiplied by `gamma` at each milestone.

    .. math::
        \eta(c) = \eta_0 \, \gamma^{|\{m \in M : m \le c\}|}

    A milestone listed twice decays twice (torch counts them); a milestone 0 decays from the first
    update. As `optax.piecewise_constant_schedule` with every scale `gamma`.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        milestones: counts where the rate decays, integers >= 0, in any order.
        gamma: the decay factor, finite and >= 0.

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.MultiStepLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.multi_step_lr(1.0, milestones=[2, 4], gamma=0.1)(jnp.arange(6))
        Array([1.  , 1.  , 0.1 , 0.1 , 0.01, 0.01], dtype=float32)
    """
    owner = "multi_step_lr"
    check_base_rate(owner, lr)
    marks = np.sort(np.asarray(check_milestones(owner, milestones, strictly_increasing=False)))
    check_static(owner, gamma=gamma)
    check_non_negative(owner, gamma=gamma)

    # At most len(milestones) decays: a float64 table, so each rate is torch's, rounded once.
    factors = float(gamma) ** np.arange(len(marks) + 1, dtype=np.float64)
    rates = _table_rates(lr, factors)
    marks_j = jnp.asarray(marks, jnp.int32)

    def passed(count: Array) -> Array:
        return jnp.searchsorted(marks_j, count, side="right")

    return lr_schedule(
        owner,
        lr,
        lambda c: rates(passed(c)),
        factor=lambda c: table_lookup(factors, passed(c)),
    )


def exponential_lr(lr: float, gamma: float) -> LRSchedule:
    r"""torch's `ExponentialLR`: the rate multiplied by `gamma` at every update.

    .. math::
        \eta(c) = \eta_0 \, \gamma^{c}

    As `optax.exponential_decay(lr, 1, gamma)`. `gamma ** c` is evaluated as `exp(c log gamma)` with
    `log gamma` in float64, so the error stays at float32 rounding of the exponent (a float32 `gamma`
    raised to the power `c` would be off by `c` roundings of `gamma`).

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        gamma: the decay factor, finite and >= 0.

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.ExponentialLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.exponential_lr(1.0, gamma=0.5)(jnp.arange(4))
        Array([1.   , 0.5  , 0.25 , 0.125], dtype=float32)
    """
    owner = "exponential_lr"
    check_base_rate(owner, lr)
    check_static(owner, gamma=gamma)
    check_non_negative(owner, gamma=gamma)

    def factor(count: Array) -> Array:
        return power(float(gamma), count)

    return lr_schedule(owner, lr, lambda c: rate_of(lr) * factor(c), factor=factor)
