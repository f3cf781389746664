"""Periodic schedules: a schedule repeated with warm restarts, and the one-cycle policy."""

from __future__ import annotations

import jax.numpy as jnp

from sharpax._types import Array, Numeric, Schedule
from sharpax._validation import check_choice, check_int, check_positive, check_range
from sharpax.schedules._common import F32, as_count, clamp, to_float


def cyclic(schedule: Schedule, period: int) -> Schedule:
    r"""Repeat `schedule` every `period` updates (warm restarts): :math:`\eta(c) = s(c \bmod P)`.

    `cyclic(warmup_cosine_decay(peak, 0, P), P)` is SGDR with a constant period (torch's
    `CosineAnnealingWarmRestarts` with `T_mult=1`, `eta_min=end_value`); a triangle (the "triangular"
    cyclical learning rate of Smith 2017, torch's `CyclicLR`) is a cycle of `warmup_linear_decay`.
    optax's `sgdr_schedule` joins explicit copies instead.

    Args:
        schedule: one cycle, called with counts in [0, period).
        period: the cycle length, an integer >= 1.

    Returns:
        A schedule `count -> value` (float32).

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> triangle = sharpax.cyclic(sharpax.warmup_linear_decay(1.0, 2, 4), period=4)
        >>> triangle(jnp.arange(9))
        Array([0. , 0.5, 1. , 0.5, 0. , 0.5, 1. , 0.5, 0. ], dtype=float32)
    """
    owner = "cyclic"
    check_int(owner, "period", period, minimum=1)
    if not callable(schedule):
        raise ValueError(f"{owner}: schedule must be a callable count -> value, got {schedule!r}")

    def cycled(count: Numeric) -> Array:
        return jnp.asarray(schedule(clamp(as_count(count), 0) % period), F32)

    return cycled


def one_cycle(
    peak_value: float,
    total_steps: int,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: str = "cosine",
    three_phase: bool = False,
) -> Schedule:
    r"""The one-cycle policy (Smith & Topin 2019) with torch's `OneCycleLR` values, count for step.

    Up from `peak / div_factor` to `peak` over the first `pct_start * total_steps - 1` counts, then
    down to `peak / (div_factor * final_div_factor)` at count `total_steps - 1` (with `three_phase`:
    down to the start value at `2 pct_start total - 2`, then to the minimum), each phase annealed by

    .. math::
        \text{cos}: \; a_{end} + \tfrac12 (a_{start} - a_{end})(1 + \cos \pi p), \qquad
        \text{linear}: \; a_{start} + (a_{end} - a_{start}) p

    with p the fraction of the phase done. Values equal torch's `OneCycleLR(..., cycle_momentum=False)`
    learning rates; past the end the minimum is kept (torch raises). optax's `cosine_onecycle_schedule`
    puts its boundaries at `int(pct_start * total)` instead, one step later.

    Args:
        peak_value: the maximum value, finite and > 0.
        total_steps: length of the cycle, an integer >= 2.
        pct_start: fraction of the cycle spent going up, in (0, 1), with
            `pct_start * total_steps > 1` so that the first phase is not empty.
        div_factor: start value is `peak_value / div_factor`, > 0.
        final_div_factor: final value is `start / final_div_factor`, > 0.
        anneal: "cosine" or "linear".
        three_phase: go back down to the start value before the final decay (fast.ai's variant);
            needs `2 * pct_start * total_steps - 2 < total_steps - 1`.

    Returns:
        A schedule `count -> value` (float32).

    References:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning
        Rates", 2019.

    Example:
        >>> import sharpax
        >>> lr = sharpax.one_cycle(1.0, total_steps=100)
        >>> print(f"{float(lr(0)):.3f} {float(lr(29)):.3f} {float(lr(99)):.1e}")
        0.040 1.000 4.0e-06
    """
    owner = "one_cycle"
    check_positive(owner, peak_value=peak_value, div_factor=div_factor)
    check_positive(owner, final_div_factor=final_div_factor)
    check_int(owner, "total_steps", total_steps, minimum=2)
    check_range(owner, "pct_start", pct_start, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_choice(owner, "anneal", anneal, ("cosine", "linear"))
    if not pct_start * total_steps > 1:
        raise ValueError(
            f"{owner}: pct_start * total_steps must be > 1 (a non-empty warmup phase), "
            f"got {pct_start} * {total_steps}"
        )
    initial = peak_value / div_factor
    minimum = initial / final_div_factor
    # (end count, start value, end value) of each phase, torch's float end steps.
    up_end = float(pct_start * total_steps) - 1
    if three_phase:
        down_end = float(2 * pct_start * total_steps) - 2
        if not down_end < total_steps - 1:
            raise ValueError(
                f"{owner}: with three_phase, 2 * pct_start * total_steps - 2 must be < total_steps - 1, "
                f"got pct_start={pct_start}, total_steps={total_steps}"
            )
        phases = [
            (up_end, initial, peak_value),
            (down_end, peak_value, initial),
            (float(total_steps - 1), initial, minimum),
        ]
    else:
        phases = [(up_end, initial, peak_value), (float(total_steps - 1), peak_value, minimum)]

    def shape(start: float, end: float, p: Array) -> Array:
        if anneal == "cosine":
            return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * p) + 1)
        # Interpolated from the nearer end, so that both ends are exact in float32.
        return jnp.where(p < 0.5, start + (end - start) * p, end - (end - start) * (1 - p))

    def schedule(count: Numeric) -> Array:
        c = to_float(clamp(as_count(count), 0, total_steps - 1))
        value = None
        phase_start = 0.0
        for end_step, start_value, end_value in phases:
            p = jnp.clip((c - phase_start) / (end_step - phase_start), 0.0, 1.0)
            piece = shape(start_value, end_value, p)
            value = piece if value is None else jnp.where(c <= phase_start, value, piece)
            phase_start = end_step
        return jnp.asarray(value, F32)

    return schedule
