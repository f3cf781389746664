"""The schedule the torch twins return, and the float32 arithmetic they share.

Each twin is a `count -> learning rate` function equal to torch's rate at update `count` (its
`count + 1`-th `optimizer.step()`), with what composition needs: the rate as a factor of the base rate
(for `chained_scheduler`) and the momentum schedule of the cycling schedulers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from sharpax._types import Array, ArrayLike, Numeric
from sharpax._validation import check_int, check_non_negative, check_number, is_static_number

F32 = jnp.float32
INT32_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True, eq=False)
class LRSchedule:
    """A torch learning-rate scheduler as a schedule: `schedule(count)` is the rate of update `count`.

    Callable like any sharpax schedule (`count` is 0 at the first update; integer counts, scalar or
    array), so it goes wherever a learning rate goes. The other fields serve composition.

    Attributes:
        name: the twin that built it, e.g. `"step_lr"` (for error messages).
        base_lr: the base rate torch reads from the optimizer, a float (or a traced scalar); `None`
            for `cyclic_lr`/`one_cycle_lr`, which set the rate themselves.
        rate: `int32 count -> float32 rate`.
        factor: for schedulers whose torch step multiplies the current rate (chainable in torch's
            `ChainedScheduler`): `count -> rate / base_lr`; `None` otherwise.
        momentum: the momentum (or Adam's beta_1) schedule torch sets alongside the rate
            (`cyclic_lr`, `one_cycle_lr` with `cycle_momentum=True`); `None` otherwise.
        resume: how torch's `SequentialLR` continues this scheduler from the rate the previous one
            left, `(previous rate, local count) -> rate`; `None` when it restarts from `base_lr`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sched = sharpax.lr_scheduler.one_cycle_lr(max_lr=0.1, total_steps=100)
        >>> tx = sharpax.sgd(sched, momentum=sched.momentum, nesterov=True)  # torch's recipe
        >>> float(sched(29)), round(float(sched.momentum(29)), 4)  # the peak, the momentum's low
        (0.10000000149011612, 0.85)
    """

    name: str
    base_lr: float | None
    rate: Callable[[Array], Array] = dataclasses.field(repr=False)
    factor: Callable[[Array], Array] | None = dataclasses.field(default=None, repr=False)
    momentum: Callable[[Numeric], Array] | None = dataclasses.field(default=None, repr=False)
    resume: Callable[[Array, Array], Array] | None = dataclasses.field(default=None, repr=False)

    def __call__(self, count: Numeric) -> Array:
        return self.rate(as_count(count))


def as_count(count: Numeric) -> Array:
    """The update count as int32, negative counts clamped to 0 (torch's counts are integers)."""
    count = jnp.asarray(count)
    if not jnp.issubdtype(count.dtype, jnp.integer):
        count = jnp.floor(count)
    return jnp.maximum(count.astype(jnp.int32), 0)


def to_f32(x: ArrayLike) -> Array:
    return jnp.asarray(x).astype(F32)


def _split(a: Array) -> tuple[Array, Array]:
    """Veltkamp's split of a float32 into two halves of 12 significant bits (products exact)."""
    t = a * F32(4097.0)
    high = t - (t - a)
    return high, a - high


def power(base: float, exponent: Array) -> Array:
    """`base ** exponent` for a static base >= 0 and an integer exponent >= 0, to ~1 float32 ulp.

    `exp(n log(base))` rounds `n log(base)` to float32, an error of `|n log(base)| * 2**-24` relative
    (tens of ulps after a few hundred decays); a float32 `base` raised to `n` is off by `n` roundings
    of the base. Here the rounding error of the product is recovered exactly (Dekker's two-product)
    and `log(base)` carried in two float32 parts from float64, so the result is within ~2 ulps of
    torch's float64 value rounded to float32.
    """
    n = to_f32(exponent)
    if base == 0.0:
        return jnp.where(n == 0, F32(1.0), F32(0.0))
    log_base = math.log(base)
    log_high = float(np.float32(log_base))
    log_low = float(np.float32(log_base - log_high))
    product = n * F32(log_high)
    (n_hi, n_lo), (l_hi, l_lo) = _split(n), _split(F32(log_high))
    error = ((n_hi * l_hi - product) + n_hi * l_lo + n_lo * l_hi) + n_lo * l_lo
    value = jnp.exp(product) * (F32(1.0) + (error + n * F32(log_low)))
    return jnp.where(n == 0, F32(1.0), value)


def cosine_factor(remaining: ArrayLike, length: ArrayLike) -> Array:
    r"""`(1 + cos(pi (length - remaining) / length)) / 2` written as :math:`\sin^2(\pi r / 2L)`.

    With `remaining` counted in integers the angle is exact to float32 rounding where the cosine form
    would cancel (near its minimum, `1 + cos` of an angle near pi loses all its digits).
    """
    s = jnp.sin(F32(math.pi / 2) * (to_f32(remaining) / to_f32(length)))
    return s * s


def check_static(owner: str, **values: Any) -> None:
    """Each keyword must be a real Python/numpy number: the twins precompute their constants."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")


def check_milestones(owner: str, milestones: Sequence[int], *, strictly_increasing: bool) -> list:
    milestones = list(milestones)
    for m in milestones:
        check_int(owner, "each milestone", m, 0)
    if strictly_increasing and any(
        a >= b for a, b in zip(milestones[:-1], milestones[1:], strict=True)
    ):
        raise ValueError(f"{owner}: milestones must be strictly increasing, got {milestones}")
    return milestones


def table_lookup(table: np.ndarray, count: Array) -> Array:
    """`table[min(count, len(table) - 1)]` as float32: a host-computed schedule, held past its end."""
    values = jnp.asarray(table, F32)
    return values[jnp.minimum(count, len(table) - 1)]


def check_base_rate(owner: str, lr: Any) -> None:
    """The optimizer's base rate: a number >= 0, or a traced scalar (e.g. under `jax.vmap` over
    learning rates), left unchecked since its value is not known."""
    check_number(owner, "lr", lr)
    check_non_negative(owner, lr=lr)


def rate_of(lr: Any) -> Array:
    """The base rate as a float32 scalar (a Python float, a numpy or a traced scalar)."""
    return jnp.asarray(lr, F32)


def lr_schedule(
    name: str,
    base_lr: Any,
    rate: Callable[[Array], Array],
    **fields: Any,
) -> LRSchedule:
    if is_static_number(base_lr):
        base_lr = float(base_lr)
    return LRSchedule(name, base_lr, rate, **fields)
