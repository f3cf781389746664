"""How an optimizer alias is assembled from blocks: weight decay, the scaling rule, the learning rate."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import is_float_leaf
from sharpax._types import PyTree, ScalarOrSchedule
from sharpax._validation import (
    check_gradients,
    check_non_negative,
    check_state,
    checked_schedule,
    is_static_number,
)
from sharpax.transforms._numerics import increment


def is_static_zero(value: Any) -> bool:
    """True when `value` is a known 0 (the block it controls can be left out of the chain).

    jax arrays never count, even concrete ones: `inject_hyperparams` passes a concrete array to `init`
    and a tracer to `update`, and both must build the same chain (the same state structure).
    """
    if isinstance(value, jax.Array):
        return False
    return is_static_number(value) and float(value) == 0.0


def weight_decay_block(
    weight_decay: ScalarOrSchedule, owner: str = "weight_decay_block"
) -> optax.GradientTransformation | None:
    """`g + weight_decay * p`, or nothing when the decay is a known zero."""
    if is_static_zero(weight_decay):
        return None
    weight_decay = checked_schedule(owner, "weight_decay", weight_decay)
    if not callable(weight_decay):
        return optax.add_decayed_weights(weight_decay)
    return _scheduled_decay(weight_decay)


class ScheduledWeightDecayState(NamedTuple):
    """The step count of a scheduled weight decay (the field optax's `WeightDecaySchedule` has)."""

    count: jax.Array


def _scheduled_decay(schedule: optax.Schedule) -> optax.GradientTransformation:
    """`optax.add_decayed_weights(schedule)` with the count advanced at every step.

    optax 0.2.6 (our floor) never advances the count: the decay stays at `schedule(0)`.
    """

    def init_fn(params):
        del params
        return ScheduledWeightDecayState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("weight decay: update needs params")
        rate = schedule(state.count)
        updates = jax.tree.map(lambda g, p: g + rate * p, updates, params)
        return updates, ScheduledWeightDecayState(increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


def optimizer(
    owner: str,
    *blocks: optax.GradientTransformation | None,
    learning_rate: ScalarOrSchedule,
) -> optax.GradientTransformationExtraArgs:
    """`chain(*blocks, scale_by_learning_rate(learning_rate))` over the floating leaves only.

    `None` blocks (a disabled option) are dropped. Integer, bool and float0 leaves pass through untouched.
    A gradient tree whose structure differs from the params' raises a `ValueError` naming both.
    """
    check_non_negative(owner, learning_rate=learning_rate)
    learning_rate = checked_schedule(owner, "learning_rate", learning_rate)
    chained = optax.chain(
        *(b for b in blocks if b is not None), optax.scale_by_learning_rate(learning_rate)
    )
    return float_leaves_only(chained, owner)


def _float_or_none(x: Any) -> Any:
    # A Python float leaf is a float param (optax optimises it too); passing it through would hand
    # the raw gradient back as the update.
    if isinstance(x, (float, complex)):
        return jnp.asarray(x)
    return x if is_float_leaf(x) else None


def _non_float_to_none(tree: PyTree) -> PyTree:
    return jax.tree.map(_float_or_none, tree)


def float_leaves_only(
    tx: optax.GradientTransformation, owner: str = "float_leaves_only"
) -> optax.GradientTransformationExtraArgs:
    """Run `tx` on the floating leaves only; integer, bool and float0 leaves pass through untouched.

    Python float leaves count as floating (as 0-d arrays), as in optax.

    The inner transform sees `None` where the params are not floating point, so its state holds nothing
    for them and its math needs no special cases. Gradients are checked first (`check_gradients`), so
    a mistake is reported in terms of the caller's own trees.
    """
    tx = optax.with_extra_args_support(tx)

    def init_fn(params: PyTree) -> optax.OptState:
        return tx.init(_non_float_to_none(params))

    def update_fn(updates, state, params=None, **extra_args):
        check_gradients(owner, updates, params)
        float_updates = _non_float_to_none(updates)
        float_params = None if params is None else _non_float_to_none(params)
        try:
            new_updates, new_state = tx.update(float_updates, state, float_params, **extra_args)
        except Exception:
            # Diagnose only on failure: tracing init on every update would slow every compile.
            check_state(owner, state, jax.eval_shape(tx.init, float_updates))
            raise
        merged = jax.tree.map(
            lambda new, old: old if new is None else new,
            new_updates,
            updates,
            is_leaf=lambda x: x is None,
        )
        return merged, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
