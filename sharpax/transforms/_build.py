"""How an optimizer alias is assembled from blocks: weight decay, the scaling rule, the learning rate."""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sharpax._tree import float_leaves_only
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


def checked_schedule(owner: str, name: str, value: ScalarOrSchedule) -> ScalarOrSchedule:
    """`value` unchanged if it is not callable; a schedule wrapped to check what it returns, otherwise.

    The signature is checked now (one positional argument, the step count); the value is checked when
    the schedule is traced (a real scalar), so the check costs nothing inside `jit`. A schedule that
    returns a vector would otherwise broadcast against the params or fail with a shape error deep in
    the update.
    """
    if not callable(value):
        return value
    try:
        inspect.signature(value).bind(0)
    except TypeError:
        raise TypeError(
            f"{owner}: the {name} schedule must take one argument, the step count; got {value!r}"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): the call itself will tell
        pass

    @functools.wraps(value)
    def schedule(count):
        out = value(count)
        dtype = getattr(out, "dtype", None)
        if (dtype is None and not isinstance(out, (int, float))) or isinstance(out, bool):
            raise TypeError(
                f"{owner}: the {name} schedule must return a real scalar, got {out!r} "
                f"({type(out).__name__})"
            )
        if np.ndim(out) != 0:
            raise ValueError(
                f"{owner}: the {name} schedule must return a scalar, got shape {np.shape(out)}"
            )
        if dtype is not None and not (
            jnp.issubdtype(dtype, jnp.number) and not jnp.issubdtype(dtype, jnp.complexfloating)
        ):
            raise TypeError(f"{owner}: the {name} schedule must return a real scalar, got {dtype}")
        return out

    return schedule


def weight_decay_block(
    weight_decay: ScalarOrSchedule, owner: str = "weight_decay_block"
) -> optax.GradientTransformation | None:
    """`g + weight_decay * p`, or nothing when the decay is a known zero."""
    if is_static_zero(weight_decay):
        return None
    return optax.add_decayed_weights(checked_schedule(owner, "weight_decay", weight_decay))


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
