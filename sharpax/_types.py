"""Shared type aliases. Reuses optax's where they exist; adds only what sharpax needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
from optax import OptState, Params, ScalarOrSchedule, Schedule, Updates

PyTree = Any
Mask = PyTree | Callable[[Params], PyTree] | None
"""A pytree of bools shaped like the params (or a prefix of it), or a callable building one."""

GradFn = Callable[[Params], Updates]
"""`grad_fn(params) -> grads`: what the two-pass wrappers call at the perturbed params."""

State = NamedTuple
"""An optimizer state as sharpax builds it: a NamedTuple, whose fields may be None (an unused buffer).

optax's `OptState` (chex's `ArrayTree`) has no None in it, although jax and optax take None as an
empty subtree; `init` and `update` closures declare this type so that they fit optax's protocols.
"""

Array = jax.Array
"""A jax array (what the transformations' states and the schedules' values are)."""

ArrayLike = jax.typing.ArrayLike
"""A jax or numpy array or a Python scalar: what a schedule takes (optax's `Schedule` argument)."""

Numeric = ArrayLike
"""A number or an array of numbers (same as `ArrayLike`)."""

__all__ = [
    "Array",
    "ArrayLike",
    "GradFn",
    "Mask",
    "Numeric",
    "OptState",
    "Params",
    "PyTree",
    "Schedule",
    "ScalarOrSchedule",
    "State",
    "Updates",
]
