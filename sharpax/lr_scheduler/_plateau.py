"""ReduceLROnPlateau as a transformation: the rate lives in the optimizer state, stepped by a metric."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sharpax._tree import without_nnx_variables
from sharpax._types import Array, Params, PyTree, State, Updates
from sharpax._validation import check_int
from sharpax.lr_scheduler._plateau_rule import PlateauConfig, plateau_config, worst
from sharpax.lr_scheduler._plateau_rule import plateau_step as rule_step
from sharpax.lr_scheduler._schedule import power
from sharpax.transforms._build import float_leaves_only


class ReduceLROnPlateauState(NamedTuple):
    """State of `reduce_lr_on_plateau`: torch's scheduler state, and the metric being accumulated.

    Attributes:
        learning_rate: the rate in effect (float32).
        best: the best metric so far (float32; +-inf before the first step).
        num_bad_epochs: plateau steps since the last improvement (int32).
        cooldown_counter: plateau steps left in the cooldown (int32).
        num_reductions: reductions taken (int32): the rate is `lr * factor ** num_reductions` (or
            `min_lr`), computed afresh each time rather than rounded once per reduction.
        count: metrics accumulated toward the next plateau step (int32).
        value_sum: their sum (float32).
        config: the scheduler's arguments, static (no leaves), so that `plateau_step` needs only
            the state.
    """

    learning_rate: Array
    best: Array
    num_bad_epochs: Array
    cooldown_counter: Array
    num_reductions: Array
    count: Array
    value_sum: Array
    config: PlateauConfig


def _initial_state(lr: float, config: PlateauConfig) -> ReduceLROnPlateauState:
    return ReduceLROnPlateauState(
        learning_rate=jnp.asarray(lr, jnp.float32),
        best=jnp.asarray(worst(config), jnp.float32),
        num_bad_epochs=jnp.zeros([], jnp.int32),
        cooldown_counter=jnp.zeros([], jnp.int32),
        num_reductions=jnp.zeros([], jnp.int32),
        count=jnp.zeros([], jnp.int32),
        value_sum=jnp.zeros([], jnp.float32),
        config=config,
    )


def _metric(owner: str, value: Any) -> Array:
    value = jnp.asarray(value)
    if value.ndim != 0 or not jnp.issubdtype(value.dtype, jnp.number):
        raise ValueError(
            f"{owner}: value must be a real scalar (the metric), got {value.dtype}{list(value.shape)}"
        )
    return value.astype(jnp.float32)


def _step(state: ReduceLROnPlateauState, value: Array) -> ReduceLROnPlateauState:
    config = state.config
    scaled = jnp.float32(config.lr) * power(config.factor, state.num_reductions + 1)
    lr, best, bad, cooldown, reduced = rule_step(
        config,
        jnp.where,
        value,
        state.learning_rate,
        state.best,
        state.num_bad_epochs,
        state.cooldown_counter,
        scaled,
    )
    return state._replace(
        num_reductions=state.num_reductions + reduced.astype(jnp.int32),
        learning_rate=lr.astype(jnp.float32),
        best=best.astype(jnp.float32),
        num_bad_epochs=bad.astype(jnp.int32),
        cooldown_counter=cooldown.astype(jnp.int32),
        count=jnp.zeros([], jnp.int32),
        value_sum=jnp.zeros([], jnp.float32),
    )


def reduce_lr_on_plateau(
    lr: float,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
    *,
    accumulation_size: int = 1,
) -> optax.GradientTransformationExtraArgs:
    r"""torch's `ReduceLROnPlateau`, as a transformation placed after an optimizer built with rate 1.

    `update(updates, state, params, value=metric)` multiplies the updates by the rate in effect, then
    takes torch's plateau step with `metric` (torch's `optimizer.step()` then `scheduler.step(metric)`):

    .. math::
        \text{better} \iff v < b (1 - \tau) \;(\text{min, rel}), \; v < b - \tau \;(\text{min, abs}),
        \; v > b (1 + \tau) \;(\text{max, rel}), \; v > b + \tau \;(\text{max, abs}) \\
        \text{after more than } P \text{ steps without improvement (none counted in a cooldown):} \;
        \eta \leftarrow \max(f \eta, \eta_{min}) \text{ unless that changes } \eta \text{ by } \le \epsilon

    When to step, under `jit` (where `value` is either always passed or never):

    - per update: `value=loss` at every update (`accumulation_size=1`, torch's scheduler stepped every
      batch);
    - per epoch, on the training loss: `value=loss` at every update and `accumulation_size=` the
      number of updates per epoch: the mean of the epoch's values takes one plateau step;
    - per epoch, on a validation metric computed after the epoch (torch's usual recipe): call `update`
      without `value` (the rate is applied, nothing is stepped), then `plateau_step(opt_state, metric)`
      after evaluating; or keep the rate on the host with `ReduceLROnPlateau` and `set_hyperparams`.

    `sharpax.current_learning_rate(state)` reads the rate. `optax.contrib.reduce_on_plateau` differs
    from torch: its patience counts differently (it reduces one step earlier), its new rate already
    scales the update that triggered it, it has no max mode, a floor relative to the initial rate
    instead of `min_lr`, and applies a relative and an absolute threshold at once. Here the comparisons
    run in float32: a metric within float32 rounding of `best * (1 - threshold)` may be judged
    otherwise than torch's float64.

    Args:
        lr: the initial rate, finite and >= 0.
        mode: "min" (a metric to lower) or "max".
        factor: the reduction, in [0, 1).
        patience: plateau steps without improvement tolerated, an integer >= 0.
        threshold: the improvement that counts, >= 0.
        threshold_mode: "rel" (relative to `best`) or "abs".
        cooldown: plateau steps after a reduction during which bad steps are not counted, integer >= 0.
        min_lr: the lowest rate, >= 0.
        eps: a reduction changing the rate by `eps` or less is skipped, >= 0.
        accumulation_size: the number of `value`s averaged into one plateau step, an integer >= 1.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `ReduceLROnPlateauState`.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.ReduceLROnPlateau`.

    Example:
        >>> import jax.numpy as jnp, optax, sharpax
        >>> from sharpax import lr_scheduler
        >>> tx = optax.chain(sharpax.sgd(1.0), lr_scheduler.reduce_lr_on_plateau(0.1, patience=1))
        >>> params = jnp.zeros(1)
        >>> state = tx.init(params)
        >>> for loss in [1.0, 1.0, 1.0]:  # no improvement after the first: reduced at the third
        ...     _, state = tx.update(jnp.ones(1), state, params, value=loss)
        >>> sharpax.current_learning_rate(state)
        Array(0.01, dtype=float32)
    """
    owner = "reduce_lr_on_plateau"
    config = plateau_config(
        owner, lr, mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps
    )
    check_int(owner, "accumulation_size", accumulation_size, 1)

    def init_fn(params: Params) -> State:
        del params
        return _initial_state(lr, config)

    def update_fn(
        updates, state, params=None, *, value=None, **extra_args
    ) -> tuple[Updates, State]:
        del params, extra_args
        rate = state.learning_rate
        scaled = jax.tree.map(lambda u: u * rate.astype(u.dtype), updates)
        if value is None:
            return scaled, state
        value = _metric(owner, value)
        count = state.count + 1
        value_sum = state.value_sum + value
        waiting = state._replace(count=count, value_sum=value_sum)
        if accumulation_size == 1:
            return scaled, _step(state, value)
        stepped = _step(state, value_sum / np.float32(accumulation_size))
        ready = count >= accumulation_size
        new_state = jax.tree.map(lambda a, b: jnp.where(ready, a, b), stepped, waiting)
        return scaled, new_state

    return float_leaves_only(optax.GradientTransformationExtraArgs(init_fn, update_fn), owner)


def _plateau_states(opt_state: PyTree) -> list:
    is_state = lambda x: isinstance(x, ReduceLROnPlateauState)
    return [x for x in jax.tree.leaves(opt_state, is_leaf=is_state) if is_state(x)]


def plateau_step(opt_state: PyTree, value: Any) -> PyTree:
    """One plateau step of the (single) `reduce_lr_on_plateau` inside `opt_state`, with `value`.

    For a metric computed outside the training step, e.g. a validation loss after each epoch (torch's
    `scheduler.step(val_loss)`): train with `update(...)` without `value`, then
    `opt_state = plateau_step(opt_state, val_loss)`. Pure and jittable; any partial accumulation
    (`accumulation_size > 1`) is discarded. With `flax.nnx`, pass `optimizer.opt_state` and write the
    (plain) result back: `nnx.update(optimizer.opt_state, nnx.state(new_state))`.

    Args:
        opt_state: an optimizer state holding exactly one `ReduceLROnPlateauState`, at any depth.
        value: the metric, a real scalar.

    Returns:
        The new optimizer state (the old one is unchanged).

    Example:
        >>> import jax.numpy as jnp, optax, sharpax
        >>> from sharpax import lr_scheduler
        >>> tx = optax.chain(sharpax.adam(1.0), lr_scheduler.reduce_lr_on_plateau(1e-3, patience=0))
        >>> state = tx.init(jnp.zeros(2))
        >>> state = lr_scheduler.plateau_step(state, 0.5)  # the first metric sets `best`
        >>> state = lr_scheduler.plateau_step(state, 0.7)  # worse, patience 0: reduced
        >>> sharpax.current_learning_rate(state)
        Array(1.e-04, dtype=float32)
    """
    opt_state = without_nnx_variables(opt_state)
    found = _plateau_states(opt_state)
    if len(found) != 1:
        raise ValueError(
            "plateau_step: opt_state must hold exactly one ReduceLROnPlateauState (from "
            f"sharpax.lr_scheduler.reduce_lr_on_plateau), found {len(found)}"
        )
    node = found[0]
    new_node = _step(node, _metric("plateau_step", value))
    return jax.tree.map(
        lambda x: new_node if x is node else x,
        opt_state,
        is_leaf=lambda x: isinstance(x, ReduceLROnPlateauState),
    )


def plateau_learning_rate(opt_state: PyTree) -> Array | None:
    """The product of the rates of the `reduce_lr_on_plateau` states in `opt_state`, `None` if none.

    Its one caller, `current_learning_rate`, has unwrapped any flax.nnx Variables already."""
    rates = [node.learning_rate for node in _plateau_states(opt_state)]
    if not rates:
        return None
    out = rates[0]
    for rate in rates[1:]:
        out = out * rate
    return out
