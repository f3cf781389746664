"""The untuned warmups of Ma & Yarats (2019), as schedules and as a multiplier on any optimizer."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import is_float_leaf
from sharpax._types import Array, Numeric, Schedule
from sharpax._validation import check_beta, check_choice, check_finite, check_transformation
from sharpax.schedules._common import F32, as_count, clamp, to_float
from sharpax.transforms._numerics import increment


def _step_number(count: Numeric) -> Array:
    # The paper's t is Adam's 1-based step: the first update (count 0) has t = 1 and a factor > 0.
    return to_float(clamp(as_count(count), 0)) + 1


def untuned_linear_warmup(b2: float = 0.999, peak_value: float = 1.0) -> Schedule:
    r"""Ma & Yarats' untuned linear warmup: reach `peak_value` after :math:`2 / (1 - \beta_2)` updates.

    .. math::
        \omega(c) = \eta_{peak} \min\left(1, \frac{1 - \beta_2}{2} t\right), \quad t = c + 1

    With `peak_value=1` this is the warmup factor :math:`\omega_t` of the paper, to multiply a learning
    rate (`multiply_schedules`) or an optimizer's updates (`with_untuned_warmup`). The paper's t is 1-based
    (the first update is already scaled by `(1 - b2) / 2`, not 0), as in `pytorch_warmup`'s
    `UntunedLinearWarmup`; that package rounds the period down to an integer, here it is exact.

    Args:
        b2: the optimizer's second-moment decay beta_2, in [0, 1).
        peak_value: the value after the warmup, finite (1: a factor).

    Returns:
        A schedule `count -> value` (float32).

    References:
        Ma & Yarats, "On the Adequacy of Untuned Warmup for Adaptive Optimization", AAAI 2021.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.untuned_linear_warmup(b2=0.5)(jnp.arange(5))  # period 2 / (1 - 0.5) = 4
        Array([0.25, 0.5 , 0.75, 1.  , 1.  ], dtype=float32)
    """
    owner = "untuned_linear_warmup"
    check_beta(owner, b2=b2)
    check_finite(owner, peak_value=peak_value)
    rate = (1 - b2) / 2

    def schedule(count: Numeric) -> Array:
        factor = jnp.minimum(1.0, rate * _step_number(count))
        return (peak_value * factor).astype(F32)

    return schedule


def untuned_exponential_warmup(b2: float = 0.999, peak_value: float = 1.0) -> Schedule:
    r"""Ma & Yarats' untuned exponential warmup, with time constant :math:`1 / (1 - \beta_2)`.

    .. math::
        \omega(c) = \eta_{peak} \left(1 - e^{-(1 - \beta_2) t}\right), \quad t = c + 1

    Tracks Adam's bias correction :math:`1 - \beta_2^t`. t is 1-based as in
    `untuned_linear_warmup`. Computed with `expm1` so that small factors keep their precision.

    Args:
        b2: the optimizer's second-moment decay beta_2, in [0, 1).
        peak_value: the limit of the warmup, finite (1: a factor).

    Returns:
        A schedule `count -> value` (float32).

    References:
        Ma & Yarats, "On the Adequacy of Untuned Warmup for Adaptive Optimization", AAAI 2021.

    Example:
        >>> import sharpax
        >>> print(f"{float(sharpax.untuned_exponential_warmup(b2=0.999)(999)):.4f}")  # t = 1000: 1 - 1/e
        0.6321
    """
    owner = "untuned_exponential_warmup"
    check_beta(owner, b2=b2)
    check_finite(owner, peak_value=peak_value)
    rate = 1 - b2

    def schedule(count: Numeric) -> Array:
        return (peak_value * -jnp.expm1(-rate * _step_number(count))).astype(F32)

    return schedule


class ScaleByScheduleState(NamedTuple):
    """State of `scale_by_schedule`: the number of updates done."""

    count: Array


def scale_by_schedule(schedule: Schedule) -> optax.GradientTransformation:
    r"""Multiply the (floating) updates by `schedule(count)`: a schedule applied to any optimizer.

    .. math::
        u_t \leftarrow \omega(c) \, u_t

    Chain it after an optimizer to scale its steps by a warmup factor without touching its
    learning rate. Like `optax.scale_by_schedule`, but integer, bool and float0 leaves pass through
    untouched (optax casts the factor to the leaf's dtype, which rounds it to 0 for integers).

    Args:
        schedule: `count -> factor`, count 0 at the first update.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByScheduleState`.

    Example:
        >>> import jax.numpy as jnp, optax, sharpax
        >>> tx = optax.chain(sharpax.sgd(1.0), sharpax.scale_by_schedule(lambda c: 0.5))
        >>> u, _ = tx.update(jnp.ones(2), tx.init(jnp.zeros(2)))
        >>> u
        Array([-0.5, -0.5], dtype=float32)
    """
    if not callable(schedule):
        raise ValueError(f"scale_by_schedule: schedule must be callable, got {schedule!r}")

    def init_fn(params):
        del params
        return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        factor = jnp.asarray(schedule(state.count), F32)

        def scale(u):
            return (u * factor.astype(u.dtype)).astype(u.dtype) if is_float_leaf(u) else u

        new_updates = jax.tree.map(scale, updates)
        return new_updates, ScaleByScheduleState(count=increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def with_untuned_warmup(
    tx: optax.GradientTransformation, b2: float = 0.999, shape: str = "linear"
) -> optax.GradientTransformationExtraArgs:
    r"""Wrap any optimizer so that its updates are multiplied by Ma & Yarats' untuned warmup factor.

    .. math::
        u_t \leftarrow \omega_t \, u_t, \quad
        \omega_t = \min\left(1, \tfrac{1 - \beta_2}{2} t\right) \text{ (linear) or }
        1 - e^{-(1 - \beta_2) t} \text{ (exponential)}

    Equal (up to float rounding of the product) to giving the optimizer the learning rate
    `multiply_schedules(untuned_linear_warmup(b2), lr)`, but works for an optimizer built elsewhere
    and composes with its own schedule. Pass the optimizer's own beta_2. The paper recommends
    `"linear"`. pytorch_warmup's `UntunedLinearWarmup` / `UntunedExponentialWarmup` are the torch
    counterparts (they round the period down to an integer).

    Args:
        tx: the optimizer to warm up (any `optax.GradientTransformation`).
        b2: its second-moment decay beta_2, in [0, 1).
        shape: "linear" (over 2 / (1 - b2) updates) or "exponential".

    Returns:
        `optax.chain(tx, scale_by_schedule(omega))`.

    References:
        Ma & Yarats, "On the Adequacy of Untuned Warmup for Adaptive Optimization", AAAI 2021.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.with_untuned_warmup(sharpax.adam(1e-3, b2=0.999), b2=0.999)
        >>> u, _ = tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
        >>> print(f"{float(u[0]):.2e}")  # -lr * (1 - b2) / 2 on the first update
        -5.00e-07
    """
    owner = "with_untuned_warmup"
    check_transformation(owner, "tx", tx)
    check_beta(owner, b2=b2)
    check_choice(owner, "shape", shape, ("linear", "exponential"))
    factor = untuned_linear_warmup(b2) if shape == "linear" else untuned_exponential_warmup(b2)
    return optax.chain(tx, scale_by_schedule(factor))
