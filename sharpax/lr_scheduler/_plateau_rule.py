"""torch's ReduceLROnPlateau decision, written once for the in-graph (jnp) and host (Python) forms."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from sharpax._validation import check_choice, check_int, check_range
from sharpax.lr_scheduler._schedule import check_static


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class PlateauConfig:
    """The arguments of torch's `ReduceLROnPlateau`, checked; a pytree without leaves (static)."""

    lr: float
    mode: str
    factor: float
    patience: int
    threshold: float
    threshold_mode: str
    cooldown: int
    min_lr: float
    eps: float


def plateau_config(
    owner: str,
    lr: float,
    mode: str,
    factor: float,
    patience: int,
    threshold: float,
    threshold_mode: str,
    cooldown: int,
    min_lr: float,
    eps: float,
) -> PlateauConfig:
    check_static(owner, lr=lr, factor=factor, threshold=threshold, min_lr=min_lr, eps=eps)
    check_range(owner, "lr", lr, 0.0)
    check_choice(owner, "mode", mode, ("min", "max"))
    check_choice(owner, "threshold_mode", threshold_mode, ("rel", "abs"))
    # torch requires factor < 1; a negative factor would give a negative rate.
    check_range(owner, "factor", factor, 0.0, 1.0, high_inclusive=False)
    check_int(owner, "patience", patience, 0)
    check_int(owner, "cooldown", cooldown, 0)
    check_range(owner, "threshold", threshold, 0.0)
    check_range(owner, "min_lr", min_lr, 0.0)
    check_range(owner, "eps", eps, 0.0)
    return PlateauConfig(
        float(lr), mode, float(factor), int(patience), float(threshold), threshold_mode, int(cooldown),
        float(min_lr), float(eps),
    )  # fmt: skip


def worst(config: PlateauConfig) -> float:
    """torch's `mode_worse`: the initial `best`, beaten by any finite metric."""
    return float("inf") if config.mode == "min" else float("-inf")


def is_better(config: PlateauConfig, value: Any, best: Any) -> Any:
    """torch's `_is_better`, the same expressions (so the same rounding on the host)."""
    if config.mode == "min" and config.threshold_mode == "rel":
        return value < best * (1.0 - config.threshold)
    if config.mode == "min":
        return value < best - config.threshold
    if config.threshold_mode == "rel":
        return value > best * (config.threshold + 1.0)
    return value > best + config.threshold


def plateau_step(
    config: PlateauConfig,
    where: Any,
    value: Any,
    lr: Any,
    best: Any,
    bad: Any,
    cooldown: Any,
    scaled: Any,
) -> tuple[Any, Any, Any, Any, Any]:
    """One `scheduler.step(value)` of torch's ReduceLROnPlateau.

    `where(condition, if_true, if_false)` selects: `jnp.where` in the graph, a Python conditional on
    the host. `scaled` is `lr * factor` (torch's float64 product on the host; in the graph, the initial
    rate times `factor ** (reductions + 1)`, which does not accumulate a float32 rounding per
    reduction). Returns the new `(lr, best, num_bad_epochs, cooldown_counter, reduced)`.
    """
    better = is_better(config, value, best)
    best = where(better, value, best)
    bad = where(better, 0, bad + 1)
    in_cooldown = cooldown > 0
    cooldown = where(in_cooldown, cooldown - 1, cooldown)
    bad = where(in_cooldown, 0, bad)  # torch ignores bad epochs during the cooldown
    reduce = bad > config.patience
    new_lr = where(scaled < config.min_lr, config.min_lr, scaled)  # max(lr * factor, min_lr)
    # torch skips a reduction smaller than eps, but restarts the cooldown and the count either way.
    reduced = reduce & (lr - new_lr > config.eps)
    lr = where(reduced, new_lr, lr)
    cooldown = where(reduce, config.cooldown, cooldown)
    bad = where(reduce, 0, bad)
    return lr, best, bad, cooldown, reduced
