"""The Hessian of a loss as a linear operator on the float leaves of its params, and the vector algebra
its solvers share. Vectors are lists of arrays shaped like those leaves, in the accumulation dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sharpax._random import normal
from sharpax._types import Array, Params, PyTree
from sharpax.wrappers._sam_geometry import accumulation_dtype, global_dot

Vector = list[Array]
"""One array per float leaf of the params (a point of the parameter space, or a direction)."""

Basis = list[Array]
"""One array per float leaf, with a leading axis: row i of every leaf together is vector i."""

# Products with a basis run at full float32 precision: TPUs (and GPUs with TF32) would otherwise round
# their inputs to bf16 (tf32), and reorthogonalisation at that precision loses orthogonality.
HIGHEST = lax.Precision.HIGHEST


def explicit_spec(x: Any) -> Any:
    """The PartitionSpec of `x` when it is sharded over a mesh with explicit axes (JAX's sharding in
    types), else None (unsharded, or auto axes, where XLA propagates shardings by itself)."""
    try:
        spec = jax.typeof(x).sharding.spec
    except AttributeError:
        return None
    return spec if any(axis is not None for axis in spec) else None


def _is_real_float(x: Any) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _as_array(x: Any) -> Any:
    return jnp.asarray(x) if isinstance(x, (int, float, complex)) and not isinstance(x, bool) else x


def refuse_complex(owner: str, params: Params) -> None:
    """A TypeError naming the first complex leaf: the toolkit measures real params only."""
    for path, x in jax.tree_util.tree_leaves_with_path(params):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise TypeError(
                f"{owner}: the param at {jax.tree_util.keystr(path)} is complex ({x.dtype}); "
                "sharpax.sharpness is defined for real floating-point params only"
            )


class HessianOperator:
    """`loss_fn(params, *args)` as a function of its float leaves, with Hessian-vector products.

    Integer and bool leaves are held fixed (they are not differentiable); complex leaves are refused.
    """

    def __init__(self, owner: str, loss_fn: Callable[..., Array], params: Params, args: tuple):
        if not callable(loss_fn):
            raise TypeError(f"{owner}: loss_fn must be callable, got {loss_fn!r}")
        refuse_complex(owner, params)
        self.owner, self.loss_fn, self.args = owner, loss_fn, args
        self._leaves, self._treedef = jax.tree.flatten(jax.tree.map(_as_array, params))
        self._where = [i for i, x in enumerate(self._leaves) if _is_real_float(x)]
        if not self._where:
            raise ValueError(f"{owner}: params has no floating-point leaves to differentiate")

    @property
    def leaves(self) -> Vector:
        """The float leaves of the params, in their own dtypes."""
        return [self._leaves[i] for i in self._where]

    @property
    def dtype(self) -> Any:
        """float32, or float64 when a float leaf is float64 (x64): where every reduction runs."""
        return accumulation_dtype(self.leaves)

    @property
    def size(self) -> int:
        """The number of parameters: entries of the float leaves (the Hessian is size x size)."""
        return int(sum(np.prod(x.shape, dtype=np.int64) for x in self.leaves))

    def params_at(self, leaves: Sequence[Array]) -> Params:
        """The params with the float leaves replaced (cast to their own dtypes)."""
        out = list(self._leaves)
        for i, x in zip(self._where, leaves, strict=True):
            out[i] = x.astype(self._leaves[i].dtype)
        return jax.tree.unflatten(self._treedef, out)

    def leaves_of(self, tree: PyTree, what: str) -> Vector:
        """The leaves of `tree` at the params' float leaves; `tree` must be shaped like the params."""
        got, want = jax.tree.structure(tree), self._treedef
        if got != want:
            raise ValueError(
                f"{self.owner}: {what} must have the structure of params.\n"
                f"  {what}: {got}\n  params: {want}"
            )
        leaves = jax.tree.leaves(tree)
        for (path, x), p in zip(
            jax.tree_util.tree_leaves_with_path(tree), self._leaves, strict=True
        ):
            if jnp.shape(x) != jnp.shape(p):
                raise ValueError(
                    f"{self.owner}: {what} has shape {jnp.shape(x)} at {jax.tree_util.keystr(path)}, "
                    f"where the param has shape {jnp.shape(p)}"
                )
        return [jnp.asarray(leaves[i]) for i in self._where]

    def loss(self, leaves: Sequence[Array]) -> Array:
        return self.loss_fn(self.params_at(leaves), *self.args)

    def hvp(self, v: Vector) -> Vector:
        """H v by forward-over-reverse: the directional derivative of the gradient along v."""
        leaves = self.leaves
        tangents = [x.astype(p.dtype) for x, p in zip(v, leaves, strict=True)]
        _, hv = jax.jvp(jax.grad(self.loss), (leaves,), (tangents,))
        return [x.astype(self.dtype) for x in hv]

    def to_tree(self, vectors: Basis, leading: int | None = None) -> PyTree:
        """Float-leaf arrays back into the params' structure; other leaves become zeros.

        `leading` is the size of a leading axis the arrays carry (None for a single vector).
        """
        extra = () if leading is None else (leading,)
        out = [jnp.zeros(extra + jnp.shape(x), getattr(x, "dtype", None)) for x in self._leaves]
        for i, x in zip(self._where, vectors, strict=True):
            out[i] = x
        return jax.tree.unflatten(self._treedef, out)


# ------------------------------------------------------------------------------------ vector algebra


def dot(a: Vector, b: Vector, dtype: Any) -> Array:
    return global_dot(a, b, dtype)


def norm(v: Vector, dtype: Any) -> Array:
    # A plain sum of squares: the vectors here are unit ones and their images under H, far from
    # float32's overflow, and a guarded norm (`global_norm`) costs a conditional in every loop body.
    return jnp.sqrt(dot(v, v, dtype))


def scale(v: Vector, c: Array) -> Vector:
    return [x * c for x in v]


def normalize(v: Vector, dtype: Any) -> Vector:
    """v / ||v||, and all zeros (never NaN) for a zero vector."""
    n = norm(v, dtype)
    return scale(v, jnp.where(n > 0, 1 / jnp.where(n > 0, n, 1), 0).astype(dtype))


def random_vector(key: Array, like: Vector, dtype: Any, kind: str = "normal") -> Vector:
    """Independent standard normal (or Rademacher +-1) entries, shaped like `like`, in `dtype`.

    One draw for all the leaves, then split: XLA compiles a random-number kernel per distinct shape,
    and per leaf that made most of the compile time of a solver.
    """
    sizes = [int(np.prod(x.shape, dtype=np.int64)) for x in like]
    shape = (sum(sizes),)
    if kind == "rademacher":
        flat = jax.random.rademacher(key, shape, dtype)
    else:
        flat = normal(key, shape, dtype)
    parts = jnp.split(flat, np.cumsum(sizes)[:-1]) if len(sizes) > 1 else [flat]
    out = []
    for p, x in zip(parts, like, strict=True):
        p, spec = p.reshape(x.shape), explicit_spec(x)
        out.append(p if spec is None else jax.sharding.reshard(p, spec))
    return out


def zeros_basis(like: Vector, rows: int, dtype: Any) -> Basis:
    """`rows` zero vectors; broadcast from each leaf so that a sharded leaf gives a sharded basis."""
    return [jnp.broadcast_to(jnp.zeros_like(x, dtype)[None], (rows, *x.shape)) for x in like]


def set_row(basis: Basis, i: Array, v: Vector) -> Basis:
    return [b.at[i].set(x) for b, x in zip(basis, v, strict=True)]


def coefficients(basis: Basis, v: Vector) -> Array:
    """The inner products of every row of `basis` with `v` (zero rows give zero)."""

    def one(b, x):
        if explicit_spec(x) is None:
            return jnp.tensordot(b, x, axes=x.ndim, precision=HIGHEST)
        # Over explicitly sharded axes a contraction needs its output sharding spelled out; a
        # reduction does not (it is slower than the dot on CPU, hence only here).
        return jnp.sum(b * x[None], axis=tuple(range(1, b.ndim)))

    return jnp.asarray(sum(one(b, x) for b, x in zip(basis, v, strict=True)))


def combine(basis: Basis, c: Array) -> Vector:
    """sum_i c[i] * row i of `basis` (c may carry trailing axes: one vector per column)."""
    return [jnp.tensordot(c, b, axes=(0, 0), precision=HIGHEST) for b in basis]


BLOCK = 16
"""Rows of the basis projected out together: the filled rows only, a block at a time."""


def orthogonalize(v: Vector, basis: Basis, rows: Array) -> Vector:
    """v minus its projection on the first `rows` rows of `basis` (orthonormal), applied twice.

    Block Gram-Schmidt over the filled rows only (a `rows`-dependent number of blocks of `BLOCK` rows;
    the last block may overlap the one before, which re-projects a few rows harmlessly), so a step
    costs O(rows x n), not O(num_rows x n). Two passes ("twice is enough", Parlett): one leaves a
    component of the order of the rounding error times the cancellation, the second removes it.
    """
    total = basis[0].shape[0]
    block = min(BLOCK, total)

    def one_block(b, v):
        start = jnp.minimum(b * block, total - block)
        rows_b = [lax.dynamic_slice_in_dim(q, start, block, axis=0) for q in basis]
        proj = combine(rows_b, coefficients(rows_b, v))
        return [x - p for x, p in zip(v, proj, strict=True)]

    num_blocks = (rows + block - 1) // block
    for _ in range(2):
        v = lax.fori_loop(0, num_blocks, one_block, v)
    return v
