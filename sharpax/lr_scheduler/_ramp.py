"""Twins of torch's factor ramps over `total_iters`: ConstantLR, LinearLR, PolynomialLR."""

from __future__ import annotations

import jax.numpy as jnp

from sharpax._types import Array
from sharpax._validation import check_int, check_non_negative, check_range
from sharpax.lr_scheduler._schedule import (
    F32,
    LRSchedule,
    check_base_rate,
    check_static,
    lr_schedule,
    rate_of,
    to_f32,
)


def _check_common(owner: str, lr: float, total_iters: int) -> None:
    check_base_rate(owner, lr)
    check_int(owner, "total_iters", total_iters, 1)


def constant_lr(lr: float, factor: float = 1.0 / 3, total_iters: int = 5) -> LRSchedule:
    r"""torch's `ConstantLR`: the base rate times `factor` for the first `total_iters` updates.

    .. math::
        \eta(c) = \eta_0 \, f \;\; (c < T), \qquad \eta(c) = \eta_0 \;\; (c \ge T)

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        factor: f in (0, 1] (torch divides by it at `total_iters`).
        total_iters: T, an integer >= 1 (torch's `total_iters=0` leaves `factor` applied forever when
            run alone and not when sequenced: refused).

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.ConstantLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.constant_lr(1.0, factor=0.5, total_iters=2)(jnp.arange(4))
        Array([0.5, 0.5, 1. , 1. ], dtype=float32)
    """
    owner = "constant_lr"
    _check_common(owner, lr, total_iters)
    check_static(owner, factor=factor)
    check_range(owner, "factor", factor, 0.0, 1.0, low_inclusive=False)
    # torch multiplies by factor, then by 1 / factor, in float64.
    after = float(factor) * (1.0 / float(factor))

    def scale(count: Array) -> Array:
        return jnp.where(count < total_iters, F32(factor), F32(after))

    return lr_schedule(owner, lr, lambda c: rate_of(lr) * scale(c), factor=scale)


def linear_lr(
    lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> LRSchedule:
    r"""torch's `LinearLR`: the base rate times a factor going linearly from `start_factor` to
    `end_factor` over `total_iters` updates, then kept.

    .. math::
        \eta(c) = \eta_0 \, \frac{s \, (T - \min(c, T)) + e \, \min(c, T)}{T}

    torch steps the rate by the ratio of consecutive factors; the product telescopes to this form.
    `optax.linear_schedule(s * lr, e * lr, T)` gives the same values.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        start_factor: s in (0, 1], as torch requires.
        end_factor: e in [0, 1], as torch requires.
        total_iters: T, an integer >= 1.

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.LinearLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.linear_lr(1.0, start_factor=0.25, total_iters=3)(jnp.arange(5))
        Array([0.25, 0.5 , 0.75, 1.  , 1.  ], dtype=float32)
    """
    owner = "linear_lr"
    _check_common(owner, lr, total_iters)
    check_static(owner, start_factor=start_factor, end_factor=end_factor)
    check_range(owner, "start_factor", start_factor, 0.0, 1.0, low_inclusive=False)
    check_range(owner, "end_factor", end_factor, 0.0, 1.0)

    def scale(count: Array) -> Array:
        done = jnp.minimum(count, total_iters)
        # Integer weights: exact in float32, no cancellation near a zero end factor.
        mixed = F32(start_factor) * to_f32(total_iters - done) + F32(end_factor) * to_f32(done)
        return mixed / F32(total_iters)

    return lr_schedule(owner, lr, lambda c: rate_of(lr) * scale(c), factor=scale)


def polynomial_lr(lr: float, total_iters: int = 5, power: float = 1.0) -> LRSchedule:
    r"""torch's `PolynomialLR`: the base rate decayed polynomially to 0 at `total_iters`, then 0.

    .. math::
        \eta(c) = \eta_0 \left(1 - \frac{\min(c, T)}{T}\right)^{p}

    torch steps the rate by the ratio of consecutive factors; the product telescopes to this form.
    As `optax.polynomial_schedule(lr, 0, p, T)`.

    Args:
        lr: the optimizer's base rate eta_0, finite and >= 0.
        total_iters: T, an integer >= 1.
        power: p, finite and >= 0 (torch divides by 0 at T for p < 0).

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.PolynomialLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> lr_scheduler.polynomial_lr(1.0, total_iters=4, power=2.0)(jnp.arange(6))
        Array([1.    , 0.5625, 0.25  , 0.0625, 0.    , 0.    ], dtype=float32)
    """
    owner = "polynomial_lr"
    _check_common(owner, lr, total_iters)
    check_static(owner, power=power)
    check_non_negative(owner, power=power)

    def scale(count: Array) -> Array:
        left = to_f32(total_iters - jnp.minimum(count, total_iters)) / F32(total_iters)
        return jnp.power(left, F32(power))

    return lr_schedule(owner, lr, lambda c: rate_of(lr) * scale(c), factor=scale)
