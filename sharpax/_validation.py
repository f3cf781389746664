"""Build-time validation of hyperparameters, with messages that name the argument and the range.

Checks skip traced values (so `optax.inject_hyperparams` works) and schedules (checked when called).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_static_number(value: Any) -> bool:
    """True for Python and concrete numpy/jax scalars; False for tracers, schedules and None."""
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return False
    if isinstance(value, (str, bytes)):
        return False
    try:
        return np.ndim(value) == 0
    except Exception:  # noqa: BLE001 - anything that is not array-like is not a static number
        return False


def check_number(owner: str, name: str, value: Any) -> None:
    """Raise `TypeError` unless `value` is a real scalar, a traced value or a schedule.

    Catches a string, `None`, a bool, a complex number or an array of several elements passed for a
    number, which would otherwise fail later with an unrelated message (or broadcast silently).
    """
    if callable(value) or isinstance(value, jax.core.Tracer):
        return
    kind = getattr(value, "dtype", None)
    if kind is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if kind is not None and np.ndim(value) != 0:
        raise TypeError(
            f"{owner}: {name} must be a scalar or a schedule, got an array of shape {np.shape(value)}"
        )
    if (
        kind is not None
        and jnp.issubdtype(kind, jnp.number)
        and not jnp.issubdtype(kind, jnp.complexfloating)
    ):
        return
    raise TypeError(
        f"{owner}: {name} must be a real number or a schedule, got {value!r} ({type(value).__name__})"
    )


def check_range(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise `ValueError("owner: name must be in [low, high), got value")` for a bad static value.

    Traced values and schedules pass unchecked: their values are not known at build time. Values that
    are not real scalars raise `TypeError` (`check_number`); NaN and infinities are always out of range.
    """
    check_number(owner, name, value)
    if not is_static_number(value):
        return
    x = float(value)
    ok_low = x >= low if low_inclusive else x > low
    ok_high = x <= high if high_inclusive else x < high
    if not math.isfinite(x) or not (ok_low and ok_high):
        left = "[" if low_inclusive and math.isfinite(low) else "("
        right = "]" if high_inclusive and math.isfinite(high) else ")"
        raise ValueError(f"{owner}: {name} must be in {left}{low}, {high}{right}, got {value!r}")


def check_non_negative(owner: str, **values: Any) -> None:
    """`check_range(owner, name, value, 0, inf)` for each keyword."""
    for name, value in values.items():
        check_range(owner, name, value, 0.0)


def check_beta(owner: str, **values: Any) -> None:
    """Each keyword must be in [0, 1) (a decay rate of an exponential moving average).

    "Below 1" in float32, where the update runs: 1 - 1e-17 passes [0, 1) in Python's float64 but is
    1.0 in float32, and its bias correction 1 - b**t would be 0.
    """
    for name, value in values.items():
        check_range(owner, name, value, 0.0, 1.0, high_inclusive=False)
        if is_static_number(value) and np.float32(value) >= 1.0:
            raise ValueError(
                f"{owner}: {name} must be in [0.0, 1.0), got {value!r}, which is 1.0 in float32 "
                f"(the largest float32 below 1 is {float(np.nextafter(np.float32(1), np.float32(0)))})"
            )


def check_positive_int(owner: str, name: str, value: Any) -> None:
    """`value` must be an integer >= 1 (a period or a number of steps)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {choices}, got {value!r}")


def check_float_dtype(owner: str, **dtypes: Any) -> None:
    """Each keyword must be `None` or a floating dtype (the dtype of an optimizer's moment buffer)."""
    for name, dtype in dtypes.items():
        if dtype is None:
            continue
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"{owner}: {name} must be a floating dtype or None, got {dtype!r}"
            ) from None
        if not jnp.issubdtype(resolved, jnp.floating):  # numpy does not count bfloat16
            raise TypeError(f"{owner}: {name} must be a floating dtype or None, got {resolved}")


def check_transformation(owner: str, name: str, value: Any) -> None:
    """`value` must be an optax `GradientTransformation` (anything with callable `init` and `update`)."""
    if not (callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))):
        raise TypeError(
            f"{owner}: {name} must be an optax.GradientTransformation (e.g. sharpax.adam(1e-3)), "
            f"got {value!r}"
        )


def check_key(owner: str, key: Any) -> None:
    """`key` must be a JAX PRNG key: a typed key (`jax.random.key`) or a raw uint32[2] one (`PRNGKey`)."""
    if isinstance(key, jax.core.Tracer):
        return
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return
    if dtype == np.uint32 and np.shape(key)[-1:] == (2,):
        return
    raise TypeError(f"{owner}: key must be a JAX PRNG key (e.g. jax.random.key(0)), got {key!r}")
