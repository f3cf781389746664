"""Shared type aliases. Reuses optax's where they exist; adds only what sharpax needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import chex
from optax import Params, ScalarOrSchedule, Schedule, Updates

PyTree = Any
Mask = PyTree | Callable[[Params], PyTree] | None
"""A pytree of bools shaped like the params (or a prefix of it), or a callable building one."""

GradFn = Callable[[Params], Updates]
"""`grad_fn(params) -> grads`: what the two-pass wrappers call at the perturbed params."""

Array = chex.Array
Numeric = chex.Numeric

__all__ = [
    "Array",
    "GradFn",
    "Mask",
    "Numeric",
    "Params",
    "PyTree",
    "Schedule",
    "ScalarOrSchedule",
    "Updates",
]
