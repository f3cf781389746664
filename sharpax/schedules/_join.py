"""Schedules built from schedules: pieces joined at boundaries, products, and GSAM's rho that follows
a learning rate."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from sharpax._types import Array, Numeric, ScalarOrSchedule, Schedule
from sharpax._validation import check_int, check_non_negative, check_range
from sharpax.schedules._common import F32, as_count, clamp


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    r"""Run `schedules[i]` on the counts `[boundaries[i-1], boundaries[i])`, each from its own count 0.

    .. math::
        \eta(c) = \eta_i(c - b_{i-1}) \quad \text{for } b_{i-1} \le c < b_i \quad (b_{-1} = 0)

    As `optax.join_schedules`, except that each piece is evaluated only at counts inside its own range
    (the count is clamped into it before the call): a piece that is NaN or infinite outside its range,
    such as `lambda c: 1 / (10 - c)` on [0, 10), can neither leak a NaN into the value nor into a
    gradient through the selection (`jnp.where` passes NaN gradients from the unused branch). It stays
    a branch-free `jnp.where`, so it vmaps over counts.

    Args:
        schedules: the pieces, at least one; each maps its local count (0 at its start) to a value.
        boundaries: the counts where the next piece starts, non-decreasing integers >= 0,
            `len(schedules) - 1` of them (equal boundaries skip a piece).

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> up = sharpax.linear_warmup(1.0, 2)
        >>> down = lambda c: 1.0 / (1.0 + c)
        >>> sharpax.join_schedules([up, down], [2])(jnp.arange(5))
        Array([0.        , 0.5       , 1.        , 0.5       , 0.33333334], dtype=float32)
    """
    owner = "join_schedules"
    schedules = list(schedules)
    boundaries = list(boundaries)
    if not schedules:
        raise ValueError(f"{owner}: schedules must hold at least one schedule, got none")
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(
            f"{owner}: boundaries must hold len(schedules) - 1 = {len(schedules) - 1} counts, "
            f"got {len(boundaries)}"
        )
    for b in boundaries:
        check_int(owner, "each boundary", b, minimum=0)
    if any(b1 > b2 for b1, b2 in zip(boundaries[:-1], boundaries[1:], strict=True)):
        raise ValueError(f"{owner}: boundaries must be non-decreasing, got {boundaries}")
    starts = [0, *boundaries]
    ends: list[int | None] = [*boundaries, None]

    def schedule(count: Numeric) -> Array:
        count = as_count(count)
        value = None
        for piece, start, end in zip(schedules, starts, ends, strict=True):
            # The last count of the piece's own range; an empty piece is evaluated at its start.
            last = None if end is None else max(end - start - 1, 0)
            local = clamp(count - start, 0, last)
            piece_value = jnp.asarray(piece(local), F32)
            value = piece_value if value is None else jnp.where(count < start, value, piece_value)
        return jnp.asarray(value, F32)

    return schedule


def _as_schedule(value: ScalarOrSchedule) -> Schedule:
    return value if callable(value) else (lambda count: value)


def multiply_schedules(*schedules: ScalarOrSchedule) -> Schedule:
    r"""The pointwise product of schedules (and numbers): :math:`\eta(c) = \prod_i \eta_i(c)`.

    Build a multiplier once and apply it to any base, e.g. a warmup factor times a decay. optax has no
    namesake (its `scale_by_schedule` scales updates, not schedules).

    Args:
        *schedules: schedules `count -> value` or numbers, at least one.

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> warm = sharpax.linear_warmup(1.0, 2)   # a factor 0 -> 1
        >>> decay = sharpax.warmup_linear_decay(1e-2, 0, 4)
        >>> sharpax.multiply_schedules(warm, decay)(jnp.arange(4))
        Array([0.     , 0.00375, 0.005  , 0.0025 ], dtype=float32)
    """
    if not schedules:
        raise ValueError("multiply_schedules: schedules must hold at least one schedule, got none")
    parts = [_as_schedule(s) for s in schedules]

    def schedule(count: Numeric) -> Array:
        count = as_count(count)
        value = jnp.asarray(parts[0](count), F32)
        for part in parts[1:]:
            value = value * jnp.asarray(part(count), F32)
        return jnp.broadcast_to(value, jnp.shape(count))

    return schedule


def lr_proportional_rho(
    learning_rate: Schedule,
    lr_max: float,
    lr_min: float,
    rho_max: float,
    rho_min: float = 0.0,
) -> Schedule:
    r"""The rho schedule that moves in proportion to a learning-rate schedule (GSAM, Zhuang et al. 2022).

    .. math::
        \rho_t = \rho_{min} + (\rho_{max} - \rho_{min}) \, \frac{\eta_t - \eta_{min}}{\eta_{max} - \eta_{min}}

    Pass it as `rho` to any SAM-family wrapper (with `sam_step=` in the gradient form). Equivalent to
    juntang-zhuang/GSAM's `ProportionScheduler`; optax and torch.optim have no counterpart.

    Args:
        learning_rate: the learning-rate schedule `step -> eta_t`.
        lr_max: the largest learning rate of the schedule (maps to `rho_max`), > lr_min.
        lr_min: the smallest (maps to `rho_min`).
        rho_max: rho at `lr_max`, >= rho_min.
        rho_min: rho at `lr_min`, >= 0.

    Returns:
        A schedule `step -> rho_t`.

    References:
        Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022, Section 5.

    Example:
        >>> import optax, sharpax
        >>> lr = optax.linear_schedule(0.1, 0.0, transition_steps=100)
        >>> rho = sharpax.lr_proportional_rho(lr, 0.1, 0.0, rho_max=0.04, rho_min=0.02)
        >>> rho(50)  # half-way down the learning rate, half-way down rho
        Array(0.03, dtype=float32)
    """
    owner = "lr_proportional_rho"
    check_non_negative(owner, rho_min=rho_min)
    check_range(owner, "rho_max", rho_max, rho_min)
    check_range(owner, "lr_max", lr_max, lr_min, low_inclusive=False)

    def schedule(step):
        fraction = (jnp.asarray(learning_rate(step), jnp.float32) - lr_min) / (lr_max - lr_min)
        return rho_min + (rho_max - rho_min) * fraction

    return schedule
