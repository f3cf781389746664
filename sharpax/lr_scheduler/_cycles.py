"""Twins of torch's cycling schedulers, CyclicLR and OneCycleLR, with their momentum schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp

from sharpax._types import Array, Numeric
from sharpax._validation import check_choice, check_int, check_non_negative, check_range
from sharpax.lr_scheduler._schedule import (
    F32,
    LRSchedule,
    as_count,
    check_static,
    lr_schedule,
    power,
    to_f32,
)


def cyclic_lr(
    *,
    base_lr: float,
    max_lr: float,
    step_size_up: int = 2000,
    step_size_down: int | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[Array], Array] | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> LRSchedule:
    r"""torch's `CyclicLR` (Smith's cyclical learning rates), with its momentum cycle.

    .. math::
        \eta(c) = \eta_{base} + (\eta_{max} - \eta_{base}) \, h(c) \, \sigma, \qquad
        m(c) = m_{max} - (m_{max} - m_{base}) \, h(c) \, \sigma

    with h the triangle going 0 -> 1 over `step_size_up` counts and back over `step_size_down`, and
    sigma the mode's scale: 1 ("triangular"), :math:`2^{1-k}` in cycle k = 1, 2, ... ("triangular2"),
    :math:`\gamma^c` ("exp_range"), or `scale_fn` of the cycle number or of the count (`scale_mode`).
    torch overwrites the optimizer's rate with `base_lr`, so both are keywords here.

    `cycle_momentum=True` (torch's default) makes torch overwrite the optimizer's momentum (SGD) or
    beta_1 (the Adam family) too: pass `schedule.momentum` as `sgd(..., momentum=...)` or
    `adam(..., b1=...)` to port that. Unlike torch, nothing is overwritten behind your back.

    Args:
        base_lr: the lower rate, finite and >= 0.
        max_lr: the upper rate, finite and >= 0.
        step_size_up: counts from `base_lr` to `max_lr`, an integer >= 1.
        step_size_down: counts back down, an integer >= 1 (default: `step_size_up`).
        mode: "triangular", "triangular2" or "exp_range" (ignored when `scale_fn` is given).
        gamma: "exp_range"'s decay per count, finite and >= 0.
        scale_fn: a custom scale sigma, jnp-traceable, called with the cycle number (1, 2, ...) or the
            count (`scale_mode`), values in [0, 1].
        scale_mode: "cycle" or "iterations", what `scale_fn` is called with.
        cycle_momentum: also build the momentum schedule (`.momentum`).
        base_momentum: the momentum at the rate's peak, finite.
        max_momentum: the momentum at the cycle's start, finite.

    Returns:
        An `LRSchedule` `count -> rate` (float32), not chainable; `.momentum` is its momentum schedule
        (`None` without `cycle_momentum`).

    References:
        Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017.
        PyTorch 2.13, `torch.optim.lr_scheduler.CyclicLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> clr = lr_scheduler.cyclic_lr(base_lr=0.1, max_lr=1.0, step_size_up=2)
        >>> clr(jnp.arange(5))
        Array([0.1 , 0.55, 1.  , 0.55, 0.1 ], dtype=float32)
        >>> [round(float(m), 3) for m in clr.momentum(jnp.arange(3))]  # cycled the other way
        [0.9, 0.85, 0.8]
    """
    owner = "cyclic_lr"
    check_static(owner, base_lr=base_lr, max_lr=max_lr, gamma=gamma)
    check_static(owner, base_momentum=base_momentum, max_momentum=max_momentum)
    check_non_negative(owner, base_lr=base_lr, max_lr=max_lr, gamma=gamma)
    check_range(owner, "base_momentum", base_momentum)
    check_range(owner, "max_momentum", max_momentum)
    check_int(owner, "step_size_up", step_size_up, 1)
    down = step_size_up if step_size_down is None else step_size_down
    check_int(owner, "step_size_down", down, 1)
    check_choice(owner, "scale_mode", scale_mode, ("cycle", "iterations"))
    if scale_fn is None:
        check_choice(owner, "mode", mode, ("triangular", "triangular2", "exp_range"))
        scale_mode = "iterations" if mode == "exp_range" else "cycle"
    elif not callable(scale_fn):
        raise TypeError(f"{owner}: scale_fn must be a function or None, got {scale_fn!r}")
    total = step_size_up + down

    def sigma(cycle: Array, count: Array) -> Array:
        if scale_fn is not None:
            return to_f32(scale_fn(cycle if scale_mode == "cycle" else count))
        if mode == "triangular":
            return jnp.ones(jnp.shape(count), F32)
        if mode == "triangular2":
            return jnp.exp2(-to_f32(cycle - 1))
        return power(float(gamma), count)

    def height(count: Array) -> Array:
        """`h(c) * sigma`: torch's `scale_factor` times its scale function."""
        cycle = count // total + 1
        into = count - (cycle - 1) * total  # torch's x = into / total, in integers
        triangle = jnp.where(
            into <= step_size_up,
            to_f32(into) / F32(step_size_up),
            to_f32(total - into) / F32(down),
        )
        return triangle * sigma(cycle, count)

    def momentum(count: Numeric) -> Array:
        return F32(max_momentum) - F32(max_momentum - base_momentum) * height(as_count(count))

    return lr_schedule(
        owner,
        base_lr,
        lambda c: F32(base_lr) + F32(max_lr - base_lr) * height(c),
        momentum=momentum if cycle_momentum else None,
    )


def _anneal(strategy: str, start: float, end: float, done: Array, left: Array, length: float):
    """torch's `_annealing_cos` / `_annealing_linear` from `start` to `end`, `done + left == length`.

    Each half of the phase is computed from the end it is close to, from integer-exact distances, so
    neither end loses digits to cancellation (a phase ending at a rate 1e5 times smaller than its
    start would otherwise keep only a few).
    """
    p, q = done / F32(length), left / F32(length)
    if strategy == "cos":
        # end + (start - end)(1 + cos(pi p)) / 2, with (1 + cos(pi p)) / 2 = cos^2(pi p / 2).
        s, c = jnp.sin(F32(math.pi / 2) * p), jnp.sin(F32(math.pi / 2) * q)
        from_start, from_end = (
            F32(start) + F32(end - start) * s * s,
            F32(end) + F32(start - end) * c * c,
        )
    else:
        from_start, from_end = F32(start) + F32(end - start) * p, F32(end) + F32(start - end) * q
    return jnp.where(p < 0.5, from_start, from_end)


def one_cycle_lr(
    *,
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> LRSchedule:
    r"""torch's `OneCycleLR` (Smith & Topin's 1cycle), with its momentum cycle.

    From `max_lr / div_factor` up to `max_lr` at count `pct_start * total - 1`, then down to
    `max_lr / (div_factor * final_div_factor)` at `total - 1` (`three_phase`: back to the start at
    `2 pct_start total - 2` first), each phase annealed as

    .. math::
        \text{cos}: \; a_{end} + (a_{start} - a_{end}) \frac{1 + \cos \pi p}{2}, \qquad
        \text{linear}: \; a_{start} + (a_{end} - a_{start}) \, p

    with p the fraction of the phase done; the momentum goes the other way, `max_momentum` ->
    `base_momentum` -> `max_momentum`. Counts 0 to `total_steps` equal torch's (torch raises past
    them); past `total_steps` the final rate and momentum are kept. `optax.cosine_onecycle_schedule`
    puts its boundaries at `int(pct_start * total)`, one step later, and ends elsewhere; the older
    `sharpax.one_cycle` has these rates through `total - 1` and no momentum.

    `cycle_momentum=True` (torch's default) makes torch overwrite the optimizer's momentum (SGD) or
    beta_1 (the Adam family): pass `schedule.momentum` as `sgd(..., momentum=...)` or
    `adam(..., b1=...)` to port that.

    Args:
        max_lr: the peak rate, finite and >= 0.
        total_steps: the cycle's length, an integer >= 1; or give `epochs` and `steps_per_epoch`.
        epochs: with `steps_per_epoch`, `total_steps = epochs * steps_per_epoch` (integers >= 1).
        steps_per_epoch: see `epochs`.
        pct_start: the fraction of the cycle going up, in [0, 1].
        anneal_strategy: "cos" or "linear".
        cycle_momentum: also build the momentum schedule (`.momentum`).
        base_momentum: the momentum at the peak rate, finite.
        max_momentum: the momentum at the start and end, finite.
        div_factor: the start rate is `max_lr / div_factor`, > 0.
        final_div_factor: the final rate is the start rate over `final_div_factor`, > 0.
        three_phase: the fast.ai variant's three phases.

    Returns:
        An `LRSchedule` `count -> rate` (float32), not chainable; `.momentum` is its momentum schedule
        (`None` without `cycle_momentum`).

    References:
        Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning
        Rates", 2019.
        PyTorch 2.13, `torch.optim.lr_scheduler.OneCycleLR`.

    Example:
        >>> import jax.numpy as jnp
        >>> from sharpax import lr_scheduler
        >>> sched = lr_scheduler.one_cycle_lr(max_lr=1.0, total_steps=5, pct_start=0.4, div_factor=4.0)
        >>> [round(float(v), 4) for v in sched(jnp.arange(5))]
        [0.25, 1.0, 0.75, 0.25, 0.0]
        >>> [round(float(m), 3) for m in sched.momentum(jnp.arange(5))]
        [0.95, 0.85, 0.875, 0.925, 0.95]
    """
    owner = "one_cycle_lr"
    if total_steps is not None:
        check_int(owner, "total_steps", total_steps, 1)
    elif epochs is not None and steps_per_epoch is not None:
        check_int(owner, "epochs", epochs, 1)
        check_int(owner, "steps_per_epoch", steps_per_epoch, 1)
        total_steps = epochs * steps_per_epoch
    else:
        raise ValueError(f"{owner}: give total_steps, or both epochs and steps_per_epoch")
    check_static(owner, max_lr=max_lr, pct_start=pct_start)
    check_static(owner, div_factor=div_factor, final_div_factor=final_div_factor)
    check_static(owner, base_momentum=base_momentum, max_momentum=max_momentum)
    check_non_negative(owner, max_lr=max_lr)
    check_range(owner, "pct_start", pct_start, 0.0, 1.0)
    check_range(owner, "div_factor", div_factor, 0.0, low_inclusive=False)
    check_range(owner, "final_div_factor", final_div_factor, 0.0, low_inclusive=False)
    check_range(owner, "base_momentum", base_momentum)
    check_range(owner, "max_momentum", max_momentum)
    check_choice(owner, "anneal_strategy", anneal_strategy, ("cos", "linear"))

    initial = max_lr / div_factor
    rates = {"initial": initial, "max": max_lr, "min": initial / final_div_factor}
    momenta = {"max": max_momentum, "base": base_momentum}
    up_end = float(pct_start * total_steps) - 1
    if three_phase:
        phases = [
            (up_end, "initial", "max", "max", "base"),
            (float(2 * pct_start * total_steps) - 2, "max", "initial", "base", "max"),
            (float(total_steps - 1), "initial", "min", "max", "max"),
        ]
    else:
        phases = [
            (up_end, "initial", "max", "max", "base"),
            (float(total_steps - 1), "max", "min", "base", "max"),
        ]
    starts = [0.0] + [phase[0] for phase in phases[:-1]]
    for start, (end, *_) in zip(starts, phases, strict=True):
        if end == start:
            raise ValueError(
                f"{owner}: a phase of pct_start={pct_start} and total_steps={total_steps} has length "
                "0, where torch divides by zero; change pct_start"
            )

    def piecewise(count: Array, values: dict, start_key: int) -> Array:
        t = to_f32(jnp.minimum(count, total_steps))
        pieces = []
        # torch takes the first phase whose end is >= the count (the last one otherwise).
        for start, phase in reversed(list(zip(starts, phases, strict=True))):
            end, first, last = phase[0], phase[start_key], phase[start_key + 1]
            value = _anneal(
                anneal_strategy,
                values[first],
                values[last],
                t - F32(start),
                F32(end) - t,
                end - start,
            )
            pieces.append((end, value))
        out = pieces[0][1]
        for end, value in pieces[1:]:
            out = jnp.where(t <= F32(end), value, out)
        final = values[phases[-1][start_key + 1]]
        return jnp.where(count > total_steps, F32(final), out)

    def momentum(count: Numeric) -> Array:
        return piecewise(as_count(count), momenta, 3)

    return lr_schedule(
        owner,
        None,
        lambda c: piecewise(c, rates, 1),
        momentum=momentum if cycle_momentum else None,
    )
