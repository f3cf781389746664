"""How an optimizer alias is assembled from blocks: weight decay, the scaling rule, the learning rate."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import is_float_leaf
from sharpax._types import Mask, PyTree, ScalarOrSchedule
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
    weight_decay: ScalarOrSchedule,
    owner: str = "weight_decay_block",
    mask: Mask = None,
) -> optax.GradientTransformation | None:
    """`g + weight_decay * p` on the leaves `mask` selects, or nothing when the decay is a known zero.

    `mask` is optax's: a pytree of bools shaped like the params (or a prefix of it), or a callable
    building one from the params; the callable is given the caller's params (complex leaves as they
    are), not the real view the blocks see.
    """
    if is_static_zero(weight_decay):
        return None
    weight_decay = checked_schedule(owner, "weight_decay", weight_decay)
    if callable(weight_decay):
        decay = _scheduled_decay(weight_decay)
    else:
        decay = optax.add_decayed_weights(weight_decay)
    if mask is None:
        return decay
    if callable(mask):
        user_mask = mask
        mask = lambda params: user_mask(from_real_view(params))
    # A bool at a complex leaf is a prefix of its RealImag pair: optax.masked broadcasts it.
    return optax.masked(decay, mask)


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
    complex_params: bool = True,
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
    return float_leaves_only(chained, owner, complex_params)


class RealImag(NamedTuple):
    """A complex leaf as the optimizer's blocks see it: its real and imaginary parts (torch's view_as_real).

    Kept as two arrays of the param's shape, not one array with a trailing axis of 2, so that rules
    which look at a leaf's shape (factored second moments, orthogonalised matrices, masks by `ndim`)
    see the shape of the param.
    """

    real: Any
    imag: Any


def _is_real_imag(x: Any) -> bool:
    return isinstance(x, RealImag)


def _real_dtype(dtype: Any) -> Any:
    return jnp.finfo(dtype).dtype  # complex64 -> float32, complex128 -> float64


def _view(x: Any) -> Any:
    """A floating leaf as itself, a complex one as `RealImag`, anything else as `None`."""
    # A Python float leaf is a float param (optax optimises it too); passing it through would hand
    # the raw gradient back as the update.
    if isinstance(x, (float, complex)):
        x = jnp.asarray(x)
    if not is_float_leaf(x):
        return None
    if not jnp.issubdtype(x.dtype, jnp.complexfloating):
        return x
    if isinstance(x, jax.ShapeDtypeStruct):  # abstract init (e.g. a restore target)
        part = jax.ShapeDtypeStruct(x.shape, _real_dtype(x.dtype), sharding=x.sharding)
        return RealImag(part, part)
    return RealImag(jnp.real(x), jnp.imag(x))


def as_real_view(tree: PyTree) -> PyTree:
    """`tree` as the blocks of `optimizer(...)` see it: complex leaves as `RealImag`, non-floats `None`."""
    return jax.tree.map(_view, tree)


def _unview(x: Any) -> Any:
    return jax.lax.complex(x.real, x.imag) if isinstance(x, RealImag) else x


def from_real_view(tree: PyTree) -> PyTree:
    """The inverse of `as_real_view` on its floating leaves: each `RealImag` becomes a complex leaf."""
    return jax.tree.map(_unview, tree, is_leaf=_is_real_imag)


def _refuse_complex(owner: str, tree: PyTree) -> None:
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        # A Python float leaf has no dtype (and is real).
        if isinstance(x, complex) or (
            hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.complexfloating)
        ):
            raise TypeError(
                f"{owner}: complex params are not supported (as in torch.optim), got "
                f"{jnp.result_type(x)} at {jax.tree_util.keystr(path)}"
            )


def float_leaves_only(
    tx: optax.GradientTransformation,
    owner: str = "float_leaves_only",
    complex_params: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """Run `tx` on the floating leaves only, complex ones as their real and imaginary parts.

    Integer, bool and float0 leaves pass through untouched; the inner transform sees `None` there, so
    its state holds nothing for them and its math needs no special cases. Python float leaves count
    as floating (as 0-d arrays), as in optax.

    A complex leaf is seen as `RealImag(real, imag)`, two real arrays of its shape: every rule acts
    on the real and imaginary parts as on two real params, as torch.optim does (`view_as_real`), and
    the update is put back together as a complex array. The state holds real buffers for it (a
    `RealImag` of them). Gradients of complex params are in optax's and torch's convention, the
    conjugate of what `jax.grad` returns (see docs/complex.md).

    With `complex_params=False` (rules torch refuses complex params for, e.g. factored or
    orthogonalised ones), a complex leaf is a `TypeError` instead.

    Gradients are checked first (`check_gradients`), so a mistake is reported in terms of the
    caller's own trees.
    """
    tx = optax.with_extra_args_support(tx)

    def init_fn(params: PyTree) -> optax.OptState:
        if not complex_params:
            _refuse_complex(owner, params)
        return tx.init(as_real_view(params))

    def update_fn(updates, state, params=None, **extra_args):
        check_gradients(owner, updates, params)
        if not complex_params:
            _refuse_complex(owner, updates)
        float_updates = as_real_view(updates)
        float_params = None if params is None else as_real_view(params)
        try:
            new_updates, new_state = tx.update(float_updates, state, float_params, **extra_args)
        except Exception:
            # Diagnose only on failure: tracing init on every update would slow every compile.
            check_state(owner, state, jax.eval_shape(tx.init, float_updates))
            raise
        leaves, treedef = jax.tree.flatten(updates)
        merged = [
            old if new is None else _unview(new)
            for new, old in zip(treedef.flatten_up_to(new_updates), leaves, strict=True)
        ]
        return jax.tree.unflatten(treedef, merged), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
