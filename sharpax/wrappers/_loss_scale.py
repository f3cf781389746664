"""Dynamic loss scaling for float16 training: the scale as a pytree, and the state of a SAM transformation
that keeps one (`loss_scale=`), skipping any step where either pass's gradient is not finite.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import at_least_float32, find_state, is_float_leaf, without_nnx_variables
from sharpax._types import Array, PyTree
from sharpax._validation import check_int, check_range


def all_finite(tree: PyTree) -> Array:
    """True (a bool scalar) when every floating leaf of `tree` is free of NaN and infinity.

    Args:
        tree: a pytree of arrays (non-floating leaves are ignored).

    Returns:
        A bool scalar array.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sharpax.all_finite({"a": jnp.ones(2), "b": jnp.array([1.0, jnp.inf])})
        Array(False, dtype=bool)
    """
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if is_float_leaf(x)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.array(True)


class DynamicLossScale(NamedTuple):
    r"""A dynamic loss scale for float16 training (`torch.amp.GradScaler`'s rule), as a pytree of arrays.

    .. math::
        \text{finite step: } c \leftarrow c + 1, \text{ and if } c = \text{period}: \;
            s \leftarrow \text{factor} \cdot s \text{ (if finite)}, \; c \leftarrow 0 \\
        \text{non-finite step: } s \leftarrow \max(s / \text{factor}, s_{\min}), \; c \leftarrow 0

    Differentiate `scale(loss)` (the loss times s, so that float16 gradients do not underflow),
    `unscale` the gradients before any use, and `adjust` the scale by whether they were finite; a
    non-finite step is skipped. Build one with `sharpax.dynamic_loss_scale`. Every field is an array,
    so the whole scale goes through `jit` and checkpoints (jmp's `DynamicLossScale` keeps `period` and
    `factor` as static fields and loses `min_loss_scale` when unflattened, which `jit` does). Unlike
    torch's `GradScaler` (which halves the scale without a floor, and grows and shrinks by separate
    factors) it has a floor and one factor, as jmp's. optax has no loss scaling.

    The SAM forms take it (`sam_value_and_grad(...)(params, ..., loss_scale=)`, and
    `sam(..., loss_scale=)` and the other transformation forms), so that a non-finite gradient in either
    of their two passes skips the step and the perturbation is taken from the unscaled gradient.

    Attributes:
        loss_scale: the scale s, a float32 scalar.
        counter: the finite steps since the scale last changed, an int32 scalar.
        period: the finite steps after which the scale grows, an int32 scalar.
        factor: the growth factor (and the inverse of the shrink factor), a float32 scalar.
        min_loss_scale: the floor of the scale, a float32 scalar.

    References:
        Micikevicius et al., "Mixed Precision Training", ICLR 2018 (loss scaling);
        `torch.amp.GradScaler`; google-deepmind/jmp's `DynamicLossScale`.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> scale = sharpax.dynamic_loss_scale(2.0**10, period=2)
        >>> loss_fn = lambda w: jnp.sum(w**2)
        >>> grads = scale.unscale(jax.grad(lambda w: scale.scale(loss_fn(w)))(jnp.ones(2)))
        >>> grads
        Array([2., 2.], dtype=float32)
        >>> scale = scale.adjust(sharpax.all_finite(grads))  # one finite step: the count moves
        >>> scale.loss_scale, scale.counter
        (Array(1024., dtype=float32), Array(1, dtype=int32))
        >>> scale.adjust(jnp.array(False)).loss_scale  # a non-finite step halves it
        Array(512., dtype=float32)
    """

    loss_scale: Array
    counter: Array
    period: Array
    factor: Array
    min_loss_scale: Array

    def scale(self, loss: Array) -> Array:
        """`loss` times the scale, in float32 or wider (a float16 loss times 2^15 would overflow)."""
        loss = jnp.asarray(loss)
        dtype = at_least_float32(loss.dtype)
        return loss.astype(dtype) * self.loss_scale.astype(dtype)

    def unscale(self, tree: PyTree) -> PyTree:
        """Each floating leaf divided by the scale (computed in float32 or wider), in its own dtype."""

        def one(x):
            if not is_float_leaf(x):
                return x
            x = jnp.asarray(x)
            dtype = at_least_float32(x.dtype)
            return (x.astype(dtype) * (1 / self.loss_scale).astype(dtype)).astype(x.dtype)

        return jax.tree.map(one, tree)

    def adjust(self, finite: Array) -> DynamicLossScale:
        """The next scale, after a step whose gradients were `finite` (a bool scalar) or not."""
        finite = jnp.asarray(finite)
        grown = self.loss_scale * self.factor
        due = self.counter + 1 >= self.period
        on_finite = jnp.where(due & jnp.isfinite(grown), grown, self.loss_scale)
        on_overflow = jnp.maximum(self.loss_scale / self.factor, self.min_loss_scale)
        counter = jnp.where(finite & ~due, self.counter + 1, jnp.zeros_like(self.counter))
        return self._replace(
            loss_scale=jnp.where(finite, on_finite, on_overflow).astype(self.loss_scale.dtype),
            counter=counter,
        )


def dynamic_loss_scale(
    initial_scale: float = 2.0**15,
    *,
    period: int = 2000,
    factor: float = 2.0,
    min_loss_scale: float = 1.0,
) -> DynamicLossScale:
    r"""A fresh `DynamicLossScale`: `initial_scale`, grown by `factor` every `period` finite steps.

    .. math::
        s_0 = \text{initial\_scale}, \qquad c_0 = 0

    The defaults are jmp's (torch's `GradScaler` starts at 2^16 and has no floor).

    Args:
        initial_scale: the first scale, > 0 (and >= `min_loss_scale`).
        period: finite steps in a row before the scale grows, an integer >= 1.
        factor: the growth factor, >= 1; a non-finite step divides the scale by it (1: a static scale
            that still skips non-finite steps).
        min_loss_scale: the floor of the scale, > 0.

    Returns:
        A `DynamicLossScale`.

    References:
        google-deepmind/jmp, `DynamicLossScale`; `torch.amp.GradScaler`.

    Example:
        >>> import sharpax
        >>> sharpax.dynamic_loss_scale(2.0**12, period=100).loss_scale
        Array(4096., dtype=float32)
    """
    owner = "dynamic_loss_scale"
    check_range(owner, "initial_scale", initial_scale, 0.0, low_inclusive=False)
    check_range(owner, "min_loss_scale", min_loss_scale, 0.0, low_inclusive=False)
    check_range(owner, "factor", factor, 1.0)
    check_int(owner, "period", period)
    if float(initial_scale) < float(min_loss_scale):
        raise ValueError(
            f"{owner}: initial_scale must be >= min_loss_scale ({min_loss_scale!r}), "
            f"got {initial_scale!r}"
        )
    return DynamicLossScale(
        loss_scale=jnp.asarray(initial_scale, jnp.float32),
        counter=jnp.zeros([], jnp.int32),
        period=jnp.asarray(period, jnp.int32),
        factor=jnp.asarray(factor, jnp.float32),
        min_loss_scale=jnp.asarray(min_loss_scale, jnp.float32),
    )


def check_loss_scale(owner: str, loss_scale: Any) -> None:
    """`loss_scale` must be None or a `DynamicLossScale` (build time)."""
    if loss_scale is not None and not isinstance(loss_scale, DynamicLossScale):
        raise TypeError(
            f"{owner}: loss_scale must be None or a DynamicLossScale "
            f"(sharpax.dynamic_loss_scale()), got {loss_scale!r}"
        )


class LossScaleState(NamedTuple):
    """State of a SAM transformation built with `loss_scale=`: the current scale and the SAM state."""

    loss_scale: DynamicLossScale
    inner_state: optax.OptState


def current_loss_scale(opt_state: optax.OptState) -> DynamicLossScale:
    """The `DynamicLossScale` of the (single) SAM transformation built with `loss_scale=` in `opt_state`.

    Scale the loss of both passes with it (`current_loss_scale(state).scale(loss)`); the transformation
    unscales the gradients with the same scale and adjusts it in the state it returns. The state may
    hold the SAM transformation at any depth (a chain, `lookahead`, `inject_hyperparams`, ...).

    Args:
        opt_state: an optimizer state holding exactly one `LossScaleState`.

    Returns:
        The `DynamicLossScale` to scale this step's loss with.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.sam(sharpax.sgd(0.1), loss_scale=sharpax.dynamic_loss_scale(2.0**8))
        >>> sharpax.current_loss_scale(tx.init(jnp.ones(2))).loss_scale
        Array(256., dtype=float32)
    """
    hint = " (a SAM transformation built with loss_scale=)"
    return find_state(
        "current_loss_scale", without_nnx_variables(opt_state), LossScaleState, hint
    ).loss_scale


def skip_unless(
    finite: Array, updates: PyTree, new_state: PyTree, old_state: PyTree
) -> tuple[PyTree, PyTree]:
    """`(updates, new_state)` when `finite`, else zero updates and `old_state` bit for bit."""
    keep = lambda new, old: jnp.where(finite, new, old)
    zero = lambda u: jnp.where(finite, u, jnp.zeros_like(u)) if is_float_leaf(u) else u
    return jax.tree.map(zero, updates), jax.tree.map(keep, new_state, old_state)
