"""Twins of torch's scheduler combinators: SequentialLR (one after another) and ChainedScheduler
(all at once)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp

from sharpax._types import Array
from sharpax.lr_scheduler._schedule import (
    LRSchedule,
    as_count,
    check_milestones,
    lr_schedule,
    rate_of,
    to_f32,
)


def _check_schedules(owner: str, schedulers: Sequence[Callable]) -> list:
    schedulers = list(schedulers)
    if not schedulers:
        raise ValueError(f"{owner}: schedulers must hold at least one schedule, got none")
    for i, s in enumerate(schedulers):
        if not callable(s):
            raise TypeError(f"{owner}: schedulers[{i}] must be a schedule count -> rate, got {s!r}")
    return schedulers


def sequential_lr(schedulers: Sequence[Callable], milestones: Sequence[int]) -> LRSchedule:
    r"""torch's `SequentialLR`: `schedulers[i]` from count `milestones[i-1]` on, restarted there.

    .. math::
        \eta(c) = \eta_i(c - m_{i-1}) \quad \text{for } m_{i-1} \le c < m_i \quad (m_{-1} = 0)

    as torch restarts each scheduler at its milestone from the base rate (its closed form at epoch 0),
    except `multiplicative_lr`, which torch continues from the rate the previous scheduler left, times
    `lr_lambda(0)`: so does this one. Any sharpax schedule may be a piece (see also
    `sharpax.join_schedules`). The momentum schedules of cycling pieces are not combined.

    Args:
        schedulers: the pieces, at least one; each maps its local count (0 at its milestone) to a rate.
        milestones: strictly increasing integers >= 0, `len(schedulers) - 1` of them.

    Returns:
        An `LRSchedule` `count -> rate` (float32), not chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.SequentialLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> warmup = lr_scheduler.linear_lr(1.0, start_factor=0.5, total_iters=2)
        >>> decay = lr_scheduler.exponential_lr(1.0, gamma=0.5)
        >>> lr_scheduler.sequential_lr([warmup, decay], milestones=[2])(jnp.arange(5))
        Array([0.5 , 0.75, 1.  , 0.5 , 0.25], dtype=float32)
    """
    owner = "sequential_lr"
    schedulers = _check_schedules(owner, schedulers)
    milestones = check_milestones(owner, milestones, strictly_increasing=True)
    if len(milestones) != len(schedulers) - 1:
        raise ValueError(
            f"{owner}: milestones must hold len(schedulers) - 1 = {len(schedulers) - 1} counts, "
            f"got {len(milestones)}"
        )
    starts = [0, *milestones]

    def rate_of_first(n: int, count: Array) -> Array:
        """The rate of the sequence made of the first `n` pieces."""
        values = []
        for i, (piece, start) in enumerate(zip(schedulers[:n], starts[:n], strict=True)):
            local = jnp.maximum(count - start, 0)
            resume = getattr(piece, "resume", None)
            if resume is not None and start > 0:
                # torch continues it from the rate the pieces before it left at the milestone.
                previous = rate_of_first(i, jnp.asarray(start - 1, jnp.int32))
                value = resume(previous, local)
            else:
                value = to_f32(piece(local))
            values.append(jnp.broadcast_to(value, jnp.shape(count)))
        out = values[0]
        for start, value in zip(starts[1:n], values[1:], strict=True):
            out = jnp.where(count >= start, value, out)
        return out

    def rate(count: Array) -> Array:
        return rate_of_first(len(schedulers), count)

    base = getattr(schedulers[0], "base_lr", None)
    return lr_schedule(owner, base, rate)


def chained_scheduler(schedulers: Sequence[LRSchedule]) -> LRSchedule:
    r"""torch's `ChainedScheduler`: every scheduler steps the same rate, so their factors multiply.

    .. math::
        \eta(c) = \eta_0 \prod_i f_i(c)

    with :math:`f_i = \eta_i / \eta_0` each scheduler's factor. torch's chainable schedulers step the
    optimizer's current rate by a ratio, so their effects multiply; the members must share the base
    rate eta_0, as torch's share the optimizer. Schedulers that set the rate instead of scaling it
    (`lambda_lr`, `cyclic_lr`, `one_cycle_lr`, `cosine_annealing_warm_restarts`, `sequential_lr`,
    `cosine_annealing_lr` with `eta_min > 0`) are refused. With `cosine_annealing_lr`, the product is
    torch's value up to `T_max`; past it torch's additive restart step uses the base rate (see the
    porting guide).

    Args:
        schedulers: chainable `LRSchedule`s (`step_lr`, `multi_step_lr`, `exponential_lr`,
            `multiplicative_lr`, `constant_lr`, `linear_lr`, `polynomial_lr`, `cosine_annealing_lr`
            with `eta_min=0`, or another `chained_scheduler`), all with the same base rate.

    Returns:
        An `LRSchedule` `count -> rate` (float32), chainable.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.ChainedScheduler`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> warmup = lr_scheduler.constant_lr(1.0, factor=0.1, total_iters=2)
        >>> decay = lr_scheduler.exponential_lr(1.0, gamma=0.5)
        >>> lr_scheduler.chained_scheduler([warmup, decay])(jnp.arange(4))
        Array([0.1  , 0.05 , 0.25 , 0.125], dtype=float32)
    """
    owner = "chained_scheduler"
    schedulers = _check_schedules(owner, schedulers)
    factors: list[Callable[[Array], Array]] = []
    for i, s in enumerate(schedulers):
        if not isinstance(s, LRSchedule) or s.factor is None:
            what = s.name if isinstance(s, LRSchedule) else repr(s)
            raise ValueError(
                f"{owner}: schedulers[{i}] ({what}) is not chainable: torch's ChainedScheduler "
                "multiplies the rate by each scheduler's step, and this one sets the rate instead "
                "(chainable: step_lr, multi_step_lr, exponential_lr, multiplicative_lr, constant_lr, "
                "linear_lr, polynomial_lr, cosine_annealing_lr with eta_min=0)"
            )
        factors.append(s.factor)
    base = schedulers[0].base_lr
    for i, s in enumerate(schedulers):
        if not isinstance(base, float) or not isinstance(s.base_lr, float):
            if s.base_lr is not base:  # traced rates: only the same one can be checked
                raise ValueError(
                    f"{owner}: every scheduler must have the same base rate (torch's share one "
                    f"optimizer): schedulers[0] and schedulers[{i}] have different traced rates"
                )
        elif not math.isclose(s.base_lr, base, rel_tol=1e-12, abs_tol=0.0):
            raise ValueError(
                f"{owner}: every scheduler must have the same base rate (torch's share one "
                f"optimizer), got {base} for schedulers[0] and {s.base_lr} for schedulers[{i}]"
            )

    def factor(count: Array) -> Array:
        out = factors[0](count)
        for f in factors[1:]:
            out = out * f(count)
        return out

    return lr_schedule(owner, base, lambda c: rate_of(base) * factor(as_count(c)), factor=factor)
