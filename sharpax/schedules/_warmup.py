"""Warmup schedules: linear and exponential ramps to a peak, and the Transformer's (Noam) schedule."""

from __future__ import annotations

import math

import jax.numpy as jnp

from sharpax._types import Numeric, Schedule
from sharpax._validation import check_finite, check_int, check_positive
from sharpax.schedules._common import F32, as_count, clamp, full, to_float


def linear_warmup(peak_value: float, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    r"""Ramp linearly from `init_value` to `peak_value` over `warmup_steps` updates, then stay at the peak.

    .. math::
        \eta(c) = \eta_0 + (\eta_{peak} - \eta_0) \, \frac{\min(c, W)}{W}

    with `c` the update count (0 at the first update). This is also "warmup then constant". Same values
    as `optax.linear_schedule(init_value, peak_value, warmup_steps)` (up to rounding: optax interpolates
    from the end), except that `warmup_steps=0` gives the peak from the first update (optax gives
    `init_value`). torch's `LinearLR` multiplies the base rate by a factor instead.

    Args:
        peak_value: value reached at count `warmup_steps` and kept after, finite.
        warmup_steps: length of the ramp, an integer >= 0 (0: constant `peak_value`).
        init_value: value at count 0, finite.

    Returns:
        A schedule `count -> value` (float32), jit- and vmap-able.

    References:
        Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017.

    labml's `AdamWarmup` (lr `t * peak / W` at its 1-based step t, plus 1e-8) is
    `linear_warmup(peak, W - 1, init_value=peak / W)`; the Transformer tutorials' `AdamWarmup` is
    `noam_schedule`.

    Example:
        "Adam with linear warmup" (the AdamWarmup recipe) is one line:

        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.adam(sharpax.linear_warmup(1e-3, 1000))
        >>> sharpax.linear_warmup(1.0, 4)(jnp.arange(6))
        Array([0.  , 0.25, 0.5 , 0.75, 1.  , 1.  ], dtype=float32)
    """
    owner = "linear_warmup"
    check_int(owner, "warmup_steps", warmup_steps, minimum=0)
    check_finite(owner, peak_value=peak_value, init_value=init_value)

    def schedule(count: Numeric):
        count = as_count(count)
        if warmup_steps == 0:
            return full(count, peak_value)
        c = clamp(count, 0, warmup_steps)
        ramp = init_value + (peak_value - init_value) * (to_float(c) / warmup_steps)
        # The peak itself, not init + (peak - init) rounded, once the warmup is over.
        return jnp.where(c >= warmup_steps, jnp.asarray(peak_value, F32), ramp).astype(F32)

    return schedule


def exponential_warmup(peak_value: float, warmup_steps: int, init_value: float) -> Schedule:
    r"""Ramp geometrically (linearly in log space) from `init_value` to `peak_value`, then stay there.

    .. math::
        \eta(c) = \eta_0 \left(\frac{\eta_{peak}}{\eta_0}\right)^{\min(c, W) / W}

    Each warmup step multiplies the value by the same factor, so a ramp over several decades spends as
    long in each decade. optax and torch have no namesake (torch's `ExponentialLR` decays).
    For the "1 - exp(-t/tau)" warmup of Ma & Yarats see `untuned_exponential_warmup`.

    Args:
        peak_value: value reached at count `warmup_steps` and kept after, > 0.
        warmup_steps: length of the ramp, an integer >= 0 (0: constant `peak_value`).
        init_value: value at count 0, > 0.

    Returns:
        A schedule `count -> value` (float32).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.exponential_warmup(1.0, 3, init_value=1e-3)(jnp.arange(5)).round(6)
        Array([0.001, 0.01 , 0.1  , 1.   , 1.   ], dtype=float32)
    """
    owner = "exponential_warmup"
    check_int(owner, "warmup_steps", warmup_steps, minimum=0)
    check_positive(owner, peak_value=peak_value, init_value=init_value)
    log_init = math.log(init_value)
    log_ratio = math.log(peak_value) - log_init

    def schedule(count: Numeric):
        count = as_count(count)
        if warmup_steps == 0:
            return full(count, peak_value)
        c = clamp(count, 0, warmup_steps)
        ramp = jnp.exp(log_init + log_ratio * (to_float(c) / warmup_steps))
        ramp = jnp.where(c <= 0, jnp.asarray(init_value, F32), ramp)
        return jnp.where(c >= warmup_steps, jnp.asarray(peak_value, F32), ramp).astype(F32)

    return schedule


def noam_schedule(d_model: int, warmup_steps: int, factor: float = 1.0) -> Schedule:
    r"""The Transformer's learning rate (Vaswani et al. 2017): linear warmup, then inverse square root.

    .. math::
        \eta(c) = f \, d_{model}^{-1/2} \min\left(s^{-1/2},\; s \, W^{-3/2}\right), \quad s = c + 1

    `s` is the paper's 1-based step number, so the first update (count 0) uses step 1 and the peak
    `f (d_{model} W)^{-1/2}` is reached at count `W - 1`. optax has no namesake; the Annotated
    Transformer's `rate(step)` is the same function of `step = count + 1`.

    Args:
        d_model: the model width, > 0.
        warmup_steps: the paper's `warmup_steps`, an integer >= 1.
        factor: overall multiplier f > 0 (the paper uses 1; the Annotated Transformer 1 or 2).

    Returns:
        A schedule `count -> value` (float32).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, eq. (3).

    Example:
        >>> import sharpax
        >>> lr = sharpax.noam_schedule(d_model=512, warmup_steps=4000)
        >>> print(f"{float(lr(3999)):.3e}")  # the peak, (512 * 4000) ** -0.5
        6.988e-04
    """
    owner = "noam_schedule"
    check_positive(owner, d_model=d_model, factor=factor)
    check_int(owner, "warmup_steps", warmup_steps, minimum=1)
    scale = factor * d_model**-0.5
    slope = warmup_steps**-1.5

    def schedule(count: Numeric):
        # s in float32 before adding 1: a saturated int32 count would overflow.
        s = to_float(clamp(as_count(count), 0)) + 1
        return (scale * jnp.minimum(jnp.reciprocal(jnp.sqrt(s)), s * slope)).astype(F32)

    return schedule
