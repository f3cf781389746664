"""Pytree helpers shared by every transform: readable structure errors, float-leaf filtering."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sharpax._types import PyTree


def is_float_leaf(x: Any) -> bool:
    """True for floating (and complex) arrays and Python floats; False for ints, bools, float0, None."""
    if isinstance(x, (float, complex)):
        return True
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def _describe(x: Any) -> str:
    dtype = getattr(x, "dtype", type(x).__name__)
    return f"{dtype}{list(np.shape(x))}"


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
    # A gradient of another shape would broadcast against its buffer (silently, under JAX's default
    # rank promotion) instead of failing.
    for (path, g), r in zip(
        jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(reference), strict=True
    ):
        if np.shape(g) != np.shape(r):
            raise ValueError(
                f"{owner}: the gradient at {jax.tree_util.keystr(path)} has shape "
                f"{np.shape(g)}, the {what} leaf there has shape {np.shape(r)}"
            )


def check_gradients(owner: str, updates: PyTree, params: PyTree | None) -> None:
    """Raise a readable error for gradients no optimizer can use (trace time only, free in `jit`).

    Every gradient must be an array (or a Python number). When `params` is passed, the gradients must
    match it in structure and shape, a float param needs a floating gradient, and a non-float param
    (never trained: its gradient passes through) must not receive a floating one.
    """
    for path, g in jax.tree_util.tree_leaves_with_path(updates):
        if not hasattr(g, "dtype") and not isinstance(g, (int, float, complex)):
            raise TypeError(
                f"{owner}: the gradient at {jax.tree_util.keystr(path)} is {_describe(g)}; "
                "gradients must be arrays"
            )
    if params is None:
        return
    check_tree_match(owner, updates, params, what="params")
    for (path, g), p in zip(
        jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(params), strict=True
    ):
        where = jax.tree_util.keystr(path)
        if is_float_leaf(p) and not is_float_leaf(g):
            raise TypeError(
                f"{owner}: the gradient at {where} is {_describe(g)} but the param is "
                f"{_describe(p)}; a floating-point param needs a floating-point gradient"
            )
        if is_float_leaf(g) and not is_float_leaf(p):
            raise TypeError(
                f"{owner}: the param at {where} is {_describe(p)}, which is not trained, but its "
                f"gradient is {_describe(g)}; cast the param to a float dtype to train it, or pass "
                "a float0 gradient (jax.grad(..., allow_int=True))"
            )


def zeros_like_tree(tree: PyTree, dtype: Any | None = None) -> PyTree:
    """Zeros shaped like `tree`, in `dtype` (default: each leaf's own); works on ShapeDtypeStructs.

    `zeros_like` (not `zeros(shape)`) so that each buffer is placed with its leaf's sharding: state
    initialised from sharded params is sharded the same way, not gathered on one device.
    """
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype or x.dtype), tree)


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


def _check_state(owner: str, state: Any, expected: Any) -> None:
    """A state from another optimizer (or restored without its NamedTuples) fails here, readably."""
    got, want = jax.tree.structure(state), jax.tree.structure(expected)
    if got != want:
        raise ValueError(
            f"{owner}: the gradient tree does not match the optimizer state: the state does not have "
            "the structure this optimizer's init gives for these gradients. Either the gradients have "
            "another structure than the params the state was made for, or the state was made by another "
            "optimizer (a checkpoint restored without a target also loses its NamedTuples).\n"
            f"  state: {got}\n  expected for these gradients: {want}"
        )


def float_leaves_only(
    tx: optax.GradientTransformationExtraArgs, owner: str = "float_leaves_only"
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
            _check_state(owner, state, jax.eval_shape(tx.init, float_updates))
            raise
        merged = jax.tree.map(
            lambda new, old: old if new is None else new,
            new_updates,
            updates,
            is_leaf=lambda x: x is None,
        )
        return merged, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
