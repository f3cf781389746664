"""Twins of torch's cosine schedules: CosineAnnealingLR (recursive form) and CosineAnnealingWarmRestarts."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from sharpax._types import Array
from sharpax._validation import check_int, check_non_negative
from sharpax.lr_scheduler._schedule import (
    F32,
    INT32_MAX,
    LRSchedule,
    check_base_rate,
    check_static,
    cosine_factor,
    lr_schedule,
    rate_of,
)


def cosine_annealing_lr(lr: float, T_max: int, eta_min: float = 0.0) -> LRSchedule:  # noqa: N803
    r"""torch's `CosineAnnealingLR`, including what its recursive form does past `T_max`.

    .. math::
        \eta(c) = \eta_{min} + (\eta_0 - \eta_{min}) \, \frac{1 + \cos(\pi c / T)}{2}

    for every count: torch updates the rate recursively (each step multiplies its distance to
    `eta_min` by the ratio of consecutive cosine factors, and restarts from the minimum with an additive
    step), and that recursion follows the cosine past `T_max`, where the rate rises back to `eta_0` at
    `2 T_max` and so on with period `2 T_max`. `optax.cosine_decay_schedule` stays at its end value
    after its decay steps instead. The cosine is evaluated from integer counts as
    :math:`\sin^2(\pi (T - c \bmod 2T) / 2T)`, accurate near the minimum where `1 + cos` cancels.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        T_max: T, half the period, an integer >= 1.
        eta_min: the minimum rate, finite and >= 0.

    Returns:
        An `LRSchedule` `count -> rate` (float32); chainable when `eta_min == 0` (a product of
        factors up to `T_max`: past it, torch's additive restart step inside a `ChainedScheduler` uses
        the base rate, which `chained_scheduler` does not reproduce).

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
        PyTorch 2.13, `torch.optim.lr_scheduler.CosineAnnealingLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.cosine_annealing_lr(1.0, T_max=2)(jnp.arange(6))
        Array([1. , 0.5, 0. , 0.5, 1. , 0.5], dtype=float32)
    """
    owner = "cosine_annealing_lr"
    check_base_rate(owner, lr)
    check_static(owner, eta_min=eta_min)
    check_non_negative(owner, eta_min=eta_min)
    check_int(owner, "T_max", T_max, 1)

    def shape(count: Array) -> Array:
        return cosine_factor(T_max - count % (2 * T_max), T_max)

    def rate(count: Array) -> Array:
        return F32(eta_min) + (rate_of(lr) - F32(eta_min)) * shape(count)

    return lr_schedule(owner, lr, rate, factor=shape if eta_min == 0 else None)


def _restarts(T_0: int, T_mult: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
    """The counts where each cycle starts, and each cycle's length, up to the int32 count limit."""
    starts, lengths = [0], [T_0]
    while starts[-1] + lengths[-1] <= INT32_MAX:
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * T_mult)
    return np.asarray(starts, np.int64), np.minimum(np.asarray(lengths, np.int64), INT32_MAX)


def cosine_annealing_warm_restarts(
    lr: float,
    T_0: int,  # noqa: N803
    T_mult: int = 1,  # noqa: N803
    eta_min: float = 0.0,
) -> LRSchedule:
    r"""torch's `CosineAnnealingWarmRestarts` (SGDR): cosine cycles restarting at the base rate, each
    `T_mult` times longer than the last.

    .. math::
        \eta(c) = \eta_{min} + (\eta_0 - \eta_{min}) \, \frac{1 + \cos(\pi T_{cur} / T_i)}{2}

    with :math:`T_i = T_0 T_{mult}^i` the length of the current cycle i and :math:`T_{cur}` the count
    since its start. `sharpax.cyclic` repeats a fixed-length cycle; optax's `sgdr_schedule` joins
    explicit copies.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        T_0: the first cycle's length, an integer >= 1.
        T_mult: the growth of the cycle length, an integer >= 1.
        eta_min: the minimum rate, finite and >= 0.

    Returns:
        An `LRSchedule` `count -> rate` (float32), not chainable (torch computes it from the base
        rate).

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
        PyTorch 2.13, `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> sgdr = lr_scheduler.cosine_annealing_warm_restarts(1.0, T_0=2, T_mult=2)
        >>> [round(float(v), 3) for v in sgdr(jnp.arange(8))]  # restarts at counts 2 and 6
        [1.0, 0.5, 1.0, 0.854, 0.5, 0.146, 1.0, 0.962]
    """
    owner = "cosine_annealing_warm_restarts"
    check_base_rate(owner, lr)
    check_static(owner, eta_min=eta_min)
    check_non_negative(owner, eta_min=eta_min)
    check_int(owner, "T_0", T_0, 1)
    check_int(owner, "T_mult", T_mult, 1)

    if T_mult == 1:

        def position(count: Array) -> tuple[Array, Array]:
            return count % T_0, jnp.asarray(T_0, jnp.int32)
    else:
        starts, lengths = _restarts(T_0, T_mult)
        starts_j = jnp.asarray(starts, jnp.int32)
        lengths_j = jnp.asarray(lengths, jnp.int32)

        def position(count: Array) -> tuple[Array, Array]:
            cycle = jnp.searchsorted(starts_j, count, side="right") - 1
            return count - starts_j[cycle], lengths_j[cycle]

    def rate(count: Array) -> Array:
        t_cur, t_i = position(count)
        # cos(pi t_cur / t_i) as a sine of the integer distance to the cycle's end (no cancellation).
        shape = cosine_factor(t_i - t_cur, t_i)
        return F32(eta_min) + (rate_of(lr) - F32(eta_min)) * shape

    return lr_schedule(owner, lr, rate)
