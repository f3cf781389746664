"""Gradient accumulation inside one step: the batch split into microbatches, each pass one `lax.scan`.

`microbatched_value_and_grad` is a drop-in for `jax.value_and_grad` whose peak activation memory is one
microbatch's; the SAM gradient forms run each of their two passes through the same scan.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sharpax._tree import at_least_float32, is_float_leaf
from sharpax._types import PyTree
from sharpax._validation import check_int


def check_batch(owner: str, args: tuple, parts: dict[str, int], *, sharded: bool = False) -> None:
    """Every leaf of the positional batch arguments needs a leading axis divisible by the product of
    `parts` (what each factor is -> the factor, e.g. {"m=2": 2, "microbatches=4": 4}); a readable
    `ValueError` with the shape otherwise (trace time, free in `jit`). `sharded`: the first part is a
    device count, and the leaves are split over the devices even when it is 1 (so they need an axis).
    """
    total = int(np.prod(list(parts.values()), dtype=np.int64))
    if total == 1 and not sharded:
        return
    names = list(parts)
    given = ", ".join(
        name for i, name in enumerate(names) if parts[name] > 1 or (sharded and i == 0)
    )
    # Checked before anything converts the leaves, so that a non-array leaf (a function or a string kept
    # in a model's pytree) gets this message, naming the argument, rather than JAX's conversion error.
    for path, x in jax.tree_util.tree_leaves_with_path(args):
        where = _describe_arg(path)
        if not hasattr(x, "shape") and not isinstance(x, (int, float, complex)):
            raise ValueError(
                f"{owner}: with {given}, every leaf of the positional batch arguments must be an "
                f"array with a leading batch axis; {where} is a {type(x).__name__} ({x!r:.60}). Pass "
                "values that are not batched as keywords (or close over them)."
            )
        shape = np.shape(x)
        if not shape or shape[0] % total:
            raise ValueError(
                f"{owner}: with {given}, every leaf of the positional batch arguments needs a leading "
                f"axis divisible by {total}, got shape {shape} at {where} (pass unbatched values as "
                "keywords)"
            )


def _describe_arg(path: tuple) -> str:
    """Where a leaf of the positional batch arguments sits, counting `params` as argument 0."""
    index, rest = path[0].idx, path[1:]
    at = f" at {jax.tree_util.keystr(rest)}" if rest else ""
    return f"positional argument {index + 1} (params is 0){at}"


def split_microbatches(args: PyTree, count: int) -> PyTree:
    """Each leaf from (B, ...) to (count, B // count, ...): microbatch j holds rows j, j + count, ...

    Strided, not contiguous: a batch sharded over devices along its leading axis gives microbatches
    that are each spread over all the devices (a contiguous split would put each on a few of them).
    """

    def split(x):
        x = jnp.asarray(x)
        return jnp.moveaxis(x.reshape((x.shape[0] // count, count, *x.shape[1:])), 1, 0)

    return jax.tree.map(split, args)


def _zeros_like_output(s: jax.ShapeDtypeStruct) -> jax.Array:
    """The zero running sum for one output of `fn`; inside `shard_map`, varying over the same mesh axes
    as that output (a scan's carry must keep its type, and a per-device gradient varies)."""
    zeros = jnp.zeros(s.shape, at_least_float32(s.dtype))
    manual = getattr(s, "manual_axis_type", None)
    varying = tuple(sorted(manual.varying if manual is not None else getattr(s, "vma", ())))
    return lax.pcast(zeros, varying, to="varying") if varying else zeros


def mean_over_microbatches(
    owner: str,
    fn: Callable[[tuple], PyTree],
    count: int,
    args: tuple,
    aux_at: tuple[int, ...] = (0, 1),
) -> PyTree:
    """The mean of `fn(microbatch)` over `count` microbatches of `args`, one `lax.scan` over them.

    The running sum is kept in float32 or wider (bfloat16 gradients would lose bits over many
    microbatches) and the mean comes back in each leaf's own dtype. Every leaf `fn` returns must be
    floating, the mean of an integer is not one: only an aux can break that, found at the indices
    `aux_at` of `fn`'s output (`((loss, aux), grads)` by default), which the error message names.
    """
    if count == 1:
        return fn(args)
    chunks = split_microbatches(args, count)
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), chunks)
    shapes = jax.eval_shape(fn, one)
    for path, s in jax.tree_util.tree_leaves_with_path(shapes):
        if not is_float_leaf(s):
            in_aux = tuple(getattr(key, "idx", None) for key in path[: len(aux_at)]) == aux_at
            where = jax.tree_util.keystr(path[len(aux_at) :] if in_aux else path)
            raise TypeError(
                f"{owner}: with microbatches={count}, aux is averaged over the microbatches, so its "
                f"leaves must be floating point; got {s.dtype} at {where} (return a count as float32)"
            )
    total = jax.tree.map(_zeros_like_output, shapes)

    def body(total, chunk):
        out = fn(chunk)
        return jax.tree.map(lambda t, o: t + o.astype(t.dtype), total, out), None

    total, _ = lax.scan(body, total, chunks)
    return jax.tree.map(lambda t, s: (t / count).astype(s.dtype), total, shapes)


def microbatched_value_and_grad(
    loss_fn: Callable[..., Any], microbatches: int, *, has_aux: bool = False
) -> Callable[..., tuple[Any, PyTree]]:
    r"""`jax.value_and_grad(loss_fn)` of the whole batch, computed one microbatch at a time.

    .. math::
        \big(L, \nabla L\big) = \frac{1}{k} \sum_{j=1}^{k} \big(L(w; B_j), \nabla L(w; B_j)\big)

    The positional arguments after `params` are split along their leading axis into k microbatches
    B_j (microbatch j holds rows j, j + k, j + 2k, ..., so that a batch sharded over devices gives
    microbatches spread over all of them), and one `lax.scan` runs the forward-backward pass on each
    and averages: the peak activation memory is one microbatch's. Keyword arguments go whole to every
    microbatch. For a loss that is a mean over the rows this is the whole batch's value and gradient
    (for a sum, it is 1/k of it). The sums run in float32 or wider; the results come back in their
    own dtype. optax's `MultiSteps` accumulates across calls (one microbatch per step) instead;
    torch accumulates `.grad` over several `backward()` calls.

    This is the second pass of a SAM transformation on a whole batch: build `grad_fn` with it
    (`grad_fn = lambda p: vg(p, x, y)[1]`) and the first-pass gradients too; the SAM gradient forms take
    `microbatches=` directly.

    Args:
        loss_fn: `loss_fn(params, *args, **kwargs) -> loss` (or `(loss, aux)` with `has_aux`), a scalar
            that is a mean over the rows of the batch.
        microbatches: the number k of microbatches, an integer >= 1 that divides the leading axis of
            every positional batch argument (checked at trace time).
        has_aux: `loss_fn` returns `(loss, aux)`; aux is averaged over the microbatches, so its leaves
            must be floating point (a per-example output is not meaningful averaged).

    Returns:
        `value_and_grad(params, *args, **kwargs) -> (value, grads)`, as `jax.value_and_grad`'s.

    References:
        The gradient accumulation of optax's `MultiSteps` and of PyTorch training loops, in one step.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> loss_fn = lambda w, x: jnp.mean((x @ w) ** 2)
        >>> x = jnp.arange(8.0).reshape(4, 2)
        >>> value, grads = sharpax.microbatched_value_and_grad(loss_fn, 2)(jnp.ones(2), x)
        >>> value, grads  # jax.value_and_grad(loss_fn)(jnp.ones(2), x) gives the same
        (Array(69., dtype=float32), Array([62., 76.], dtype=float32))
    """
    owner = "microbatched_value_and_grad"
    check_int(owner, "microbatches", microbatches)
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)

    def accumulated(params, *args, **kwargs):
        check_batch(owner, args, {f"microbatches={microbatches}": microbatches})
        return mean_over_microbatches(
            owner, lambda batch: value_and_grad(params, *batch, **kwargs), microbatches, args
        )

    return accumulated
