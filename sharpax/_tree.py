"""Pytree helpers shared by every module: which leaves are floating, zeros like a tree, the one state of
a kind inside an optimizer state."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import optax

from sharpax._types import Array, PyTree


def is_float_leaf(x: Any) -> bool:
    """True for floating (and complex) arrays and Python floats; False for ints, bools, float0, None."""
    if isinstance(x, (float, complex)):
        return True
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)


def scalars_as_arrays(tree: PyTree) -> PyTree:
    """`tree` with Python float and complex leaves as 0-d arrays (float params, as optax takes them)."""
    return jax.tree.map(lambda x: jnp.asarray(x) if isinstance(x, (float, complex)) else x, tree)


def zeros_like_tree(tree: PyTree, dtype: Any | None = None) -> PyTree:
    """Zeros shaped like `tree`, in `dtype` (default: each leaf's own); works on ShapeDtypeStructs.

    `zeros_like` (not `zeros(shape)`) so that each buffer is placed with its leaf's sharding: state
    initialised from sharded params is sharded the same way, not gathered on one device.
    """
    return jax.tree.map(lambda x: jnp.zeros_like(x, dtype=dtype or jnp.result_type(x)), tree)


def float_leaves(tree: PyTree) -> tuple[list[Array], Callable[[list[Array]], PyTree]]:
    """The floating leaves of `tree`, and a function putting replacements back (other leaves untouched)."""
    leaves, treedef = jax.tree.flatten(tree)
    where = [i for i, x in enumerate(leaves) if is_float_leaf(x)]

    def rebuild(new: list[Array]) -> PyTree:
        out = list(leaves)
        for i, x in zip(where, new, strict=True):
            out[i] = x.astype(leaves[i].dtype)
        return jax.tree.unflatten(treedef, out)

    return [leaves[i] for i in where], rebuild


def real_parts(leaves: list[Array]) -> tuple[list[Array], Callable[[list[Array]], list[Array]]]:
    """`leaves` with each complex leaf split into its real and imaginary parts (torch's view_as_real).

    Returns the real leaves and a function putting a list like them back together (pairs of parts
    become complex leaves again). Norms, inner products and signs over the real leaves are those of
    the complex leaves seen as pairs of reals: `|z|^2 = re^2 + im^2`, `<z, w> = Re(z conj(w))`.
    """
    out: list[Array] = []
    is_complex = [jnp.iscomplexobj(x) for x in leaves]
    for x, c in zip(leaves, is_complex, strict=True):
        out.extend((jnp.real(x), jnp.imag(x)) if c else (x,))

    def rebuild(new: list[Array]) -> list[Array]:
        parts = iter(new)
        return [jax.lax.complex(next(parts), next(parts)) if c else next(parts) for c in is_complex]

    return out, rebuild


def at_least_float32(dtype: Any) -> Any:
    """`dtype`, or float32 where it is narrower (float16, bfloat16): where sums and scales run.

    Not `jnp.promote_types`, which refuses float16 with float32 under strict dtype promotion.
    """
    return jnp.float32 if jnp.finfo(dtype).bits < 32 else dtype


StateT = TypeVar("StateT")


def find_state(owner: str, opt_state: Any, cls: type[StateT], hint: str = "") -> StateT:
    """The single `cls` instance anywhere inside `opt_state` (a chain, a wrapper, or `cls` itself).

    Raises a `ValueError` naming `owner` and how many were found when there is not exactly one; `hint`
    (e.g. " (the state of sharpax.bsam)") follows "in the optimizer state" in the message.
    """
    found = optax.tree_utils.tree_get_all_with_path(
        opt_state, cls.__name__, filtering=lambda _, value: isinstance(value, cls)
    )
    if len(found) != 1:
        raise ValueError(
            f"{owner}: expected exactly one {cls.__name__} in the optimizer state{hint}, "
            f"found {len(found)}"
        )
    return found[0][1]


def without_nnx_variables(tree: PyTree) -> PyTree:
    """`tree` with every `flax.nnx.Variable` replaced by its value (`nnx.as_pure`), else as it is.

    `nnx.Optimizer`'s `opt_state` and `nnx.state(model, nnx.Param)` wrap each array in a Variable of a
    different type (`OptVariable`, `Param`), so the two trees do not map together until unwrapped. A
    tree holding Variables means flax.nnx is imported: without it there is nothing to unwrap.
    """
    nnx = sys.modules.get("flax.nnx")
    return tree if nnx is None else nnx.as_pure(tree)


def check_params_tree(owner: str, params: PyTree, state_tree: PyTree, what: str) -> None:
    """A readable `ValueError` when `params` is not shaped like `state_tree`, the params-shaped part of
    an optimizer state (`what` names it); its leaves may be subtrees there (None, a masked leaf)."""
    try:
        jax.tree.structure(params).flatten_up_to(state_tree)
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"{owner}: params do not match the {what} in the optimizer state (the tree of the params "
            f"it was initialised with): {err}"
        ) from None
