"""Build-time validation of hyperparameters, with messages that name the argument and the range.

Checks skip traced values (so `optax.inject_hyperparams` works) and schedules (checked when called).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def is_static_number(value: Any) -> bool:
    """True for Python and concrete numpy/jax scalars; False for tracers, schedules and None."""
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return False
    try:
        return np.ndim(value) == 0
    except Exception:  # noqa: BLE001 - anything that is not array-like is not a static number
        return False


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

    Traced values and schedules pass unchecked: their values are not known at build time.
    """
    if not is_static_number(value):
        return
    x = float(value)
    ok_low = x >= low if low_inclusive else x > low
    ok_high = x <= high if high_inclusive else x < high
    if math.isnan(x) or not (ok_low and ok_high):
        left = "[" if low_inclusive and math.isfinite(low) else "("
        right = "]" if high_inclusive and math.isfinite(high) else ")"
        raise ValueError(f"{owner}: {name} must be in {left}{low}, {high}{right}, got {value!r}")


def check_non_negative(owner: str, **values: Any) -> None:
    """`check_range(owner, name, value, 0, inf)` for each keyword."""
    for name, value in values.items():
        check_range(owner, name, value, 0.0)


def check_beta(owner: str, **values: Any) -> None:
    """Each keyword must be in [0, 1) (a decay rate of an exponential moving average)."""
    for name, value in values.items():
        check_range(owner, name, value, 0.0, 1.0, high_inclusive=False)


def check_positive_int(owner: str, name: str, value: Any) -> None:
    """`value` must be an integer >= 1 (a period or a number of steps)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {choices}, got {value!r}")
