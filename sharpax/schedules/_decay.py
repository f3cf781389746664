"""Warmup followed by a decay: cosine, linear, polynomial, exponential, inverse square root, and WSD."""

from __future__ import annotations

import jax.numpy as jnp

from sharpax._types import Array, Numeric, Schedule
from sharpax._validation import check_finite, check_int, check_positive, check_range
from sharpax.schedules._common import (
    DECAY_SHAPES,
    F32,
    anneal,
    as_count,
    check_shape,
    clamp,
    to_float,
)
from sharpax.schedules._warmup import linear_warmup


def _check_warmup_decay(owner: str, warmup_steps: int, decay_steps: int, **values) -> None:
    check_int(owner, "warmup_steps", warmup_steps, minimum=0)
    check_int(owner, "decay_steps", decay_steps, minimum=warmup_steps)
    check_finite(owner, **values)


def _warmup_then(init_value, peak_value, warmup_steps, after) -> Schedule:
    """`linear_warmup` for counts < W, then `after(count - W)`; each piece sees an in-range count."""
    warmup = linear_warmup(peak_value, warmup_steps, init_value)

    def schedule(count: Numeric) -> Array:
        count = as_count(count)
        rest = after(clamp(count - warmup_steps, 0))
        if warmup_steps == 0:
            return rest
        return jnp.where(count < warmup_steps, warmup(count), rest).astype(F32)

    return schedule


def _warmup_anneal(owner, peak_value, warmup_steps, decay_steps, init_value, end_value, shape):
    _check_warmup_decay(
        owner,
        warmup_steps,
        decay_steps,
        peak_value=peak_value,
        init_value=init_value,
        end_value=end_value,
    )
    length = decay_steps - warmup_steps
    return _warmup_then(
        init_value,
        peak_value,
        warmup_steps,
        lambda k: anneal(k, length, peak_value, end_value, shape),
    )


def warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    r"""Linear warmup to `peak_value`, then a half-cosine down to `end_value`, then `end_value` forever.

    .. math::
        \eta(c) = \eta_{end} + (\eta_{peak} - \eta_{end})
                  \left[\tfrac12 \left(1 + \cos \pi p\right)\right]^{e}, \quad
        p = \frac{\min(c - W, D - W)}{D - W} \quad (c \ge W)

    The same function as `optax.warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps,
    decay_steps, end_value, exponent)`, but `decay_steps == warmup_steps` is allowed (optax raises) and
    `warmup_steps=0` starts at the peak. torch's `CosineAnnealingLR` is the decay part, without warmup.

    Args:
        peak_value: value at the end of the warmup, finite.
        warmup_steps: length of the linear warmup, an integer >= 0.
        decay_steps: the count at which the decay reaches `end_value`, warmup included (optax's
            convention), an integer >= `warmup_steps` (equal: straight to `end_value` after the warmup).
        init_value: value at count 0, finite.
        end_value: final value, finite.
        exponent: power e > 0 of the cosine factor.

    Returns:
        A schedule `count -> value` (float32).

    References:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> lr = sharpax.warmup_cosine_decay(1.0, warmup_steps=2, decay_steps=4)
        >>> lr(jnp.arange(6)).round(6)
        Array([0. , 0.5, 1. , 0.5, 0. , 0. ], dtype=float32)
    """
    owner = "warmup_cosine_decay"
    check_positive(owner, exponent=exponent)
    cosine = DECAY_SHAPES["cosine"]
    return _warmup_anneal(
        owner,
        peak_value,
        warmup_steps,
        decay_steps,
        init_value,
        end_value,
        lambda p: cosine(p) ** exponent,
    )


def warmup_linear_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
) -> Schedule:
    r"""Linear warmup to `peak_value`, then a straight line down to `end_value`, then `end_value`.

    .. math::
        \eta(c) = \eta_{end} + (\eta_{peak} - \eta_{end}) (1 - p), \quad
        p = \frac{\min(c - W, D - W)}{D - W} \quad (c \ge W)

    The triangular schedule of BERT/`transformers.get_linear_schedule_with_warmup` (which multiplies a
    base rate and ends at 0). optax: `join_schedules` of two `linear_schedule`s.

    Args:
        peak_value: value at the end of the warmup, finite.
        warmup_steps: length of the linear warmup, an integer >= 0.
        decay_steps: the count at which the decay reaches `end_value`, warmup included (optax's
            convention), an integer >= `warmup_steps` (equal: straight to `end_value` after the warmup).
        init_value: value at count 0, finite.
        end_value: final value, finite.

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.warmup_linear_decay(1.0, 1, 5)(jnp.arange(7))
        Array([0.  , 1.  , 0.75, 0.5 , 0.25, 0.  , 0.  ], dtype=float32)
    """
    return _warmup_anneal(
        "warmup_linear_decay",
        peak_value,
        warmup_steps,
        decay_steps,
        init_value,
        end_value,
        "linear",
    )


def warmup_polynomial_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    power: float = 1.0,
    init_value: float = 0.0,
    end_value: float = 0.0,
) -> Schedule:
    r"""Linear warmup to `peak_value`, then a polynomial decay to `end_value`, then `end_value`.

    .. math::
        \eta(c) = \eta_{end} + (\eta_{peak} - \eta_{end}) (1 - p)^{k}, \quad
        p = \frac{\min(c - W, D - W)}{D - W} \quad (c \ge W)

    The decay is `optax.polynomial_schedule(peak_value, end_value, power, decay_steps - warmup_steps,
    transition_begin=warmup_steps)` and torch's `PolynomialLR` with an end value; `power=1` is
    `warmup_linear_decay`.

    Args:
        peak_value: value at the end of the warmup, finite.
        warmup_steps: length of the linear warmup, an integer >= 0.
        decay_steps: the count at which the decay reaches `end_value`, warmup included (optax's
            convention), an integer >= `warmup_steps` (equal: straight to `end_value` after the warmup).
        power: exponent k > 0.
        init_value: value at count 0, finite.
        end_value: final value, finite.

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.warmup_polynomial_decay(1.0, 0, 2, power=2.0)(jnp.arange(4))
        Array([1.  , 0.25, 0.  , 0.  ], dtype=float32)
    """
    owner = "warmup_polynomial_decay"
    check_positive(owner, power=power)
    return _warmup_anneal(
        owner,
        peak_value,
        warmup_steps,
        decay_steps,
        init_value,
        end_value,
        lambda p: (1 - p) ** power,
    )


def warmup_exponential_decay(
    peak_value: float,
    warmup_steps: int,
    decay_rate: float,
    transition_steps: int = 1,
    init_value: float = 0.0,
    end_value: float = 0.0,
    staircase: bool = False,
) -> Schedule:
    r"""Linear warmup to `peak_value`, then multiply by `decay_rate` every `transition_steps` updates.

    .. math::
        \eta(c) = \max\left(\eta_{end},\; \eta_{peak} \, r^{(c - W) / T}\right) \quad (c \ge W)

    with the exponent floored when `staircase`. As `optax.warmup_exponential_decay_schedule` with
    `transition_begin=0` and a floor `end_value` (optax's default is no floor); torch's `ExponentialLR`
    is `transition_steps=1` without warmup.

    Args:
        peak_value: value at the end of the warmup, finite.
        warmup_steps: length of the linear warmup, an integer >= 0.
        decay_rate: factor r per `transition_steps`, in (0, 1].
        transition_steps: number of updates per factor r, an integer >= 1.
        init_value: value at count 0, finite.
        end_value: floor of the decay, finite (0: no floor for positive values).
        staircase: decay in whole steps of r (floor of the exponent).

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.warmup_exponential_decay(1.0, 1, decay_rate=0.5)(jnp.arange(5))
        Array([0.   , 1.   , 0.5  , 0.25 , 0.125], dtype=float32)
    """
    owner = "warmup_exponential_decay"
    check_int(owner, "warmup_steps", warmup_steps, minimum=0)
    check_int(owner, "transition_steps", transition_steps, minimum=1)
    check_range(owner, "decay_rate", decay_rate, 0.0, 1.0, low_inclusive=False)
    check_finite(owner, peak_value=peak_value, init_value=init_value, end_value=end_value)

    def after(k: Array) -> Array:
        exponent = to_float(k // transition_steps if staircase else k)
        if not staircase:
            exponent = exponent / transition_steps
        # r ** x underflows to 0 far past the end; the floor keeps it at end_value.
        return jnp.maximum(
            peak_value * jnp.power(jnp.asarray(decay_rate, F32), exponent), end_value
        )

    return _warmup_then(init_value, peak_value, warmup_steps, after)


def warmup_inverse_sqrt_decay(
    peak_value: float,
    warmup_steps: int,
    init_value: float = 0.0,
    timescale: float | None = None,
) -> Schedule:
    r"""Linear warmup to `peak_value`, then decay as the inverse square root of the count.

    .. math::
        \eta(c) = \eta_{peak} \left(1 + \frac{c - W}{\tau}\right)^{-1/2} \quad (c \ge W)

    With the default `tau = W` this is fairseq's `inverse_sqrt` after warmup,
    `peak * sqrt(W / c)`; a separate `timescale` is big_vision's `rsqrt` schedule. `warmup_steps=0`
    needs no special case: tau defaults to 1 then. optax has no namesake.

    Args:
        peak_value: value at the end of the warmup, finite.
        warmup_steps: length of the linear warmup, an integer >= 0.
        init_value: value at count 0, finite.
        timescale: tau > 0, the count after the warmup at which the value is `peak / sqrt(2)`;
            default `max(warmup_steps, 1)`.

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.warmup_inverse_sqrt_decay(1.0, 4)(jnp.array([0, 2, 4, 16]))
        Array([0. , 0.5, 1. , 0.5], dtype=float32)
    """
    owner = "warmup_inverse_sqrt_decay"
    check_int(owner, "warmup_steps", warmup_steps, minimum=0)
    check_finite(owner, peak_value=peak_value, init_value=init_value)
    tau = max(warmup_steps, 1) if timescale is None else timescale
    check_positive(owner, timescale=tau)

    def after(k: Array) -> Array:
        return (peak_value * jnp.reciprocal(jnp.sqrt(1 + to_float(k) / tau))).astype(F32)

    return _warmup_then(init_value, peak_value, warmup_steps, after)


def warmup_stable_decay(
    peak_value: float,
    total_steps: int,
    warmup_steps: int,
    cooldown_steps: int,
    init_value: float = 0.0,
    end_value: float = 0.0,
    cooldown_shape: str = "1-sqrt",
) -> Schedule:
    r"""Warmup-stable-decay (WSD, "trapezoidal"): warm up, hold the peak, cool down at the end.

    .. math::
        \eta(c) = \begin{cases}
          \text{linear warmup} & c < W \\
          \eta_{peak} & W \le c < T - C \\
          \eta_{end} + (\eta_{peak} - \eta_{end}) f\left(\frac{\min(c - T + C, C)}{C}\right) & c \ge T - C
        \end{cases}

    with the cooldown shape f: `"linear"` 1-p, `"cosine"` (1 + cos pi p)/2, `"1-sqrt"` 1 - sqrt(p)
    (the best of Hägele et al.), `"1-square"` 1 - p^2. The value is `end_value` from count T on.
    optax and torch have no namesake.

    Args:
        peak_value: value held between warmup and cooldown, finite.
        total_steps: the count at which the cooldown ends, an integer >= warmup_steps + cooldown_steps.
        warmup_steps: length of the linear warmup, an integer >= 0.
        cooldown_steps: length of the cooldown, an integer >= 0 (0: drop to `end_value` at T).
        init_value: value at count 0, finite.
        end_value: value at the end of the cooldown and after, finite.
        cooldown_shape: one of "linear", "cosine", "1-sqrt", "1-square".

    Returns:
        A schedule `count -> value` (float32).

    References:
        Hu et al., "MiniCPM: Unveiling the Potential of Small Language Models", 2024.
        Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations", 2024.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> lr = sharpax.warmup_stable_decay(1.0, 8, 2, 4, cooldown_shape="linear")
        >>> lr(jnp.arange(10))
        Array([0.  , 0.5 , 1.  , 1.  , 1.  , 0.75, 0.5 , 0.25, 0.  , 0.  ], dtype=float32)
    """
    owner = "warmup_stable_decay"
    check_int(owner, "warmup_steps", warmup_steps, minimum=0)
    check_int(owner, "cooldown_steps", cooldown_steps, minimum=0)
    check_int(owner, "total_steps", total_steps, minimum=warmup_steps + cooldown_steps)
    check_shape(owner, "cooldown_shape", cooldown_shape)
    check_finite(owner, peak_value=peak_value, init_value=init_value, end_value=end_value)
    stable_steps = total_steps - warmup_steps - cooldown_steps

    def after(k: Array) -> Array:
        cooldown = anneal(
            clamp(k - stable_steps, 0), cooldown_steps, peak_value, end_value, cooldown_shape
        )
        return jnp.where(k < stable_steps, jnp.asarray(peak_value, F32), cooldown)

    return _warmup_then(init_value, peak_value, warmup_steps, after)
