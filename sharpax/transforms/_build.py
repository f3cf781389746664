"""How an optimizer alias is assembled from blocks: weight decay, the scaling rule, the learning rate."""

from __future__ import annotations

import jax
import optax

from sharpax._tree import check_tree_match, float_leaves_only
from sharpax._types import ScalarOrSchedule
from sharpax._validation import check_non_negative, is_static_number


def is_static_zero(value: object) -> bool:
    """True when `value` is a known 0 (the block it controls can be left out of the chain).

    jax arrays never count, even concrete ones: `inject_hyperparams` passes a concrete array to `init`
    and a tracer to `update`, and both must build the same chain (the same state structure).
    """
    if isinstance(value, jax.Array):
        return False
    return is_static_number(value) and float(value) == 0.0  # type: ignore[arg-type]


def weight_decay_block(weight_decay: ScalarOrSchedule) -> optax.GradientTransformation | None:
    """`g + weight_decay * p`, or nothing when the decay is a known zero."""
    return None if is_static_zero(weight_decay) else optax.add_decayed_weights(weight_decay)


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
    chained = optax.chain(
        *(b for b in blocks if b is not None), optax.scale_by_learning_rate(learning_rate)
    )
    tx = float_leaves_only(chained)

    def update_fn(updates, state, params=None, **extra_args):
        # Before any block maps over (updates, params), so the error names both trees, not jax's internals.
        if params is not None:
            check_tree_match(owner, updates, params, what="params")
        return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)
