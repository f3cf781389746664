"""Pytree helpers shared by every transform: readable structure errors, float-leaf filtering."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from sharpax._types import PyTree


def is_float_leaf(x: Any) -> bool:
    """True for floating (and complex) arrays; False for ints, bools, float0 and None."""
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def check_tree_match(
    owner: str, updates: PyTree, reference: PyTree, what: str = "optimizer state"
) -> None:
    """Raise a readable `ValueError` when `updates` and `reference` have different tree structures.

    Runs at trace time only (structures are static), so it costs nothing inside `jit`.
    """
    got = jax.tree.structure(updates)
    want = jax.tree.structure(reference)
    if got != want:
        raise ValueError(
            f"{owner}: the gradient tree does not match the {what}.\n"
            f"  gradients: {got}\n  {what}: {want}\n"
            "Pass gradients with the same structure as the params the optimizer was initialised with."
        )


def zeros_like_tree(tree: PyTree, dtype: Any | None = None) -> PyTree:
    """Zeros shaped like `tree`, in `dtype` (default: each leaf's own); works on ShapeDtypeStructs."""
    return jax.tree.map(lambda x: jnp.zeros(x.shape, dtype or x.dtype), tree)


def cast_like(x: Any, like: Any) -> Any:
    """`x` as an array of `like`'s dtype (scalars such as bias corrections, cast to a leaf's dtype)."""
    return jnp.asarray(x, dtype=like.dtype)


def _float_or_none(x: Any) -> Any:
    # A Python float leaf is a float param (optax optimises it too); passing it through would hand
    # the raw gradient back as the update.
    if isinstance(x, (float, complex)):
        return jnp.asarray(x)
    return x if is_float_leaf(x) else None


def _non_float_to_none(tree: PyTree) -> PyTree:
    return jax.tree.map(_float_or_none, tree)


def float_leaves_only(
    tx: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
    """Run `tx` on the floating leaves only; integer, bool and float0 leaves pass through untouched.

    Python float leaves count as floating (as 0-d arrays), as in optax.

    The inner transform sees `None` where the params are not floating point, so its state holds nothing
    for them and its math needs no special cases.
    """
    tx = optax.with_extra_args_support(tx)

    def init_fn(params: PyTree) -> optax.OptState:
        return tx.init(_non_float_to_none(params))

    def update_fn(updates, state, params=None, **extra_args):
        float_updates = _non_float_to_none(updates)
        float_params = None if params is None else _non_float_to_none(params)
        new_updates, new_state = tx.update(float_updates, state, float_params, **extra_args)
        merged = jax.tree.map(
            lambda new, old: old if new is None else new,
            new_updates,
            updates,
            is_leaf=lambda x: x is None,
        )
        return merged, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
