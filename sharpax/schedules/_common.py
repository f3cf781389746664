"""Helpers shared by the schedules: count handling, argument checks, decay shapes on [0, 1]."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from sharpax._types import Array, Numeric
from sharpax._validation import check_choice

F32 = jnp.float32


def as_count(count: Numeric) -> Array:
    """The step count as an array (int32 for integers; floats are kept, for plotting)."""
    count = jnp.asarray(count)
    if jnp.issubdtype(count.dtype, jnp.integer):
        return count.astype(jnp.int32)
    return count.astype(F32)


def clamp(count: Array, low: int, high: int | None = None) -> Array:
    """`count` clipped to [low, high] in its own dtype, before any float conversion.

    Clipping in the integer domain keeps counts far past the end (up to int32 max) exact.
    """
    count = jnp.maximum(count, low)
    return count if high is None else jnp.minimum(count, high)


def to_float(count: Array) -> Array:
    return count.astype(F32)


def full(count: Array, value: Numeric) -> Array:
    """`value` broadcast to the shape of `count`, as float32 (a constant piece)."""
    return jnp.full(jnp.shape(count), value, F32)


# Decay shapes: f(p) for progress p in [0, 1], f(0) = 1 and f(1) = 0.
DECAY_SHAPES: dict[str, Callable[[Array], Array]] = {
    "linear": lambda p: 1 - p,
    "cosine": lambda p: 0.5 * (1 + jnp.cos(jnp.pi * p)),
    "1-sqrt": lambda p: 1 - jnp.sqrt(p),
    "1-square": lambda p: 1 - p * p,
}


def check_shape(owner: str, name: str, shape: str) -> None:
    check_choice(owner, name, shape, tuple(DECAY_SHAPES))


def progress(steps_done: Array, length: int) -> Array:
    """min(steps_done, length) / length as float32 in [0, 1]; 1 when `length` is 0 (no NaN)."""
    if length == 0:
        return full(steps_done, 1.0)
    return to_float(clamp(steps_done, 0, length)) / length


def anneal(
    steps_done: Array,
    length: int,
    start: float | Array,
    end: float | Array,
    shape: str | Callable[[Array], Array],
) -> Array:
    """`end + (start - end) * f(p)` with f a decay shape (a `DECAY_SHAPES` name, or a function of the
    progress p in [0, 1] going from 1 to 0); exactly `start` at p = 0 and `end` at p = 1."""
    factor = DECAY_SHAPES[shape] if isinstance(shape, str) else shape
    p = progress(steps_done, length)
    value = end + (start - end) * factor(p)
    value = jnp.where(p <= 0, jnp.asarray(start, F32), value)
    return jnp.where(p >= 1, jnp.asarray(end, F32), value).astype(F32)
