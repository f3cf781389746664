"""Hyperparameters other than the learning rate given as schedules (torch's cycled momentum / beta_1)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from sharpax._types import Array, Schedule
from sharpax._validation import checked_schedule


def scheduled(owner: str, name: str, value: float | Schedule) -> float | Schedule:
    """`value` unchanged if it is a number; a schedule checked as `checked_schedule` does."""
    return checked_schedule(owner, name, value) if callable(value) else value


def value_at(value: Any, count: Array) -> Any:
    """The value for the update whose count (before the increment, 0 at the first update) is `count`.

    A number is returned as it is (a Python float stays weakly typed, so the static path is the same
    program as before); a schedule's value is a float32 scalar, as torch's per-step momentum.
    """
    if callable(value):
        return jnp.asarray(value(count), jnp.float32)
    return value
