"""Other programs for `sharpax.momentum_sam`'s numbers, timed beside it by bench_sam on a GPU.

`momentum_sam` computes the norm of the new direction from a base update of its own, then the step from a
second base update behind an optimization barrier, so that the step's kernels can write the new buffer
over the old one. The forms here change one thing each:

- `one update`: the base update computed once (sharpax before 2026-11-27). The norm of the new buffer is
  needed before the move, which reads the old buffer too, so XLA copies the old buffer first.
- `flat norm`: the norm's reduction over each leaf raveled to one dimension (on the H200 the 2-D row
  reduction of the library form left |v_t| to a kernel of its own, written out and read back).
- `split norm`: Blue's three sums as three reductions instead of one variadic one.
- `complex norm`: Blue's ranges above and below tbig only (no scaling of tiny values, whose squares
  flush to 0: for rho / (||v|| + 1e-12) that matters only where the 1e-12 dominates), as the real and
  imaginary parts of one complex sum, a reduction of one operand.
- `two-sum norm`: the same two sums as one reduction of two operands.
- `squares norm`: a plain sum of squares, which overflows past 1.8e19 in float32: not a candidate for the
  library, the lower bound of what the norm's pass can cost.

On XLA:CPU the barrier is expanded early and the two updates merge again: each form compiles to what
`momentum_sam` compiles to there. `check_same_numbers` asserts that a form's numbers are momentum_sam's
before a benchmark times it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import sharpax
from sharpax._tree import is_float_leaf
from sharpax._types import Array, State, Updates
from sharpax.transforms._numerics import increment
from sharpax.wrappers._sam_efficient import (
    MomentumSAMState,
    _barrier,
    _direction,
    _move,
    _new_direction,
    _shift,
)
from sharpax.wrappers._sam_geometry import NORM_EPS, accumulation_dtype, blue_norm, global_norm

OWNER = "momentum_sam (benchmark form)"


def _split_blue_norm(leaves: Sequence[Array], dtype: Any) -> Array:
    """Blue's norm with its three sums as three reductions: zero, the value as it is, or zero where a
    value is outside the medium range (the benchmark's values all are inside it)."""
    tsml, tbig = 2.0**-63, 2.0**52
    medium = sum(
        jnp.sum(jnp.square(jnp.where((a > tbig) | (a < tsml), 0, a)))
        for a in (jnp.abs(x).astype(dtype) for x in leaves)
    )
    small = sum(jnp.sum(jnp.where(jnp.abs(x) < tsml, 1.0, 0.0).astype(dtype)) for x in leaves)
    big = sum(jnp.sum(jnp.where(jnp.abs(x) > tbig, 1.0, 0.0).astype(dtype)) for x in leaves)
    # The counts only keep the two other reductions alive; they are 0 for the benchmark's values.
    return jnp.sqrt(medium) + 0 * (small + big)


def _two_range_terms(x: Array, dtype: Any) -> tuple[Array, Array]:
    """|x|^2 up to Blue's tbig (2^52 in float32), and above it scaled by sbig (2^-76) first; squares
    below float32's range flush to 0, which moves rho / (||v|| + 1e-12) only where 1e-12 dominates."""
    tbig, sbig = 2.0**52, lax.optimization_barrier(jnp.asarray(2.0**-76, dtype))
    a = jnp.abs(x).astype(dtype)
    big = a > tbig
    return jnp.square(jnp.where(big, 0, a)), jnp.square(jnp.where(big, a, 0) * sbig)


def _combine_two_ranges(medium: Array, large: Array, dtype: Any) -> Array:
    sbig = lax.optimization_barrier(jnp.asarray(2.0**-76, dtype))
    one = jnp.ones([], dtype)
    with_large = jnp.sqrt(jnp.where(large > 0, large + (medium * sbig) * sbig, one)) / sbig
    return jnp.where(large > 0, with_large, jnp.sqrt(medium))


def _complex_norm(leaves: Sequence[Array], dtype: Any) -> Array:
    """The two ranges as the real and imaginary parts of one complex sum: one reduction operand."""
    total = sum(jnp.sum(lax.complex(*_two_range_terms(x, dtype))) for x in leaves)
    return _combine_two_ranges(jnp.real(total), jnp.imag(total), dtype)


def _two_sum_norm(leaves: Sequence[Array], dtype: Any) -> Array:
    """The two ranges as one reduction of two operands."""
    zero = jnp.zeros([], dtype)
    medium, large = zero, zero
    for x in leaves:
        terms = _two_range_terms(x, dtype)
        m, g = lax.reduce(
            terms, (zero, zero), lambda a, b: (a[0] + b[0], a[1] + b[1]), tuple(range(x.ndim))
        )
        medium, large = medium + m, large + g
    return _combine_two_ranges(medium, large, dtype)


NORMS: dict[str, Callable[[Sequence[Array], Any], Array]] = {
    "complex norm": _complex_norm,
    "two-sum norm": _two_sum_norm,
    "flat norm": lambda leaves, dtype: blue_norm([jnp.ravel(x) for x in leaves], dtype),
    "split norm": _split_blue_norm,
    "squares norm": lambda leaves, dtype: jnp.sqrt(
        sum(jnp.sum(jnp.square(x.astype(dtype))) for x in leaves)
    ),
}
FORMS = ("one update", *NORMS)


def _scale(rho: float, new: Updates, norm: Callable[[Sequence[Array], Any], Array]) -> Array:
    leaves = [d for d in jax.tree.leaves(new) if is_float_leaf(d)]
    dtype = accumulation_dtype(leaves)
    return jnp.asarray(rho, dtype) / (norm(leaves, dtype) + jnp.asarray(NORM_EPS, dtype))


def momentum_sam_form(
    base_optimizer: optax.GradientTransformation, rho: float, form: str
) -> optax.GradientTransformationExtraArgs:
    """`sharpax.momentum_sam(base_optimizer, rho)` as the program `form` (one of `FORMS`); a constant
    rho, the state and `init` momentum_sam's own."""
    reference = sharpax.momentum_sam(base_optimizer, rho)
    base = optax.with_extra_args_support(base_optimizer)

    def step(updates, state, params, scale, extra_args):
        old = _direction(OWNER, state)
        weights = _shift(params, old, state.scale)
        base_updates, inner_state = base.update(updates, state.inner_state, weights, **extra_args)
        direction, new = _new_direction(OWNER, state, base_updates, inner_state)
        if scale is None:
            scale = _scale(rho, new, global_norm).astype(state.scale.dtype)
        new_updates = _move(base_updates, old, new, state.scale, scale)
        count = None if state.count is None else increment(state.count)
        return new_updates, MomentumSAMState(
            scale=scale, direction=direction, count=count, inner_state=inner_state
        )

    def update_fn(updates, state, params=None, **extra_args) -> tuple[Updates, State]:
        if form == "one update":
            return step(updates, state, params, None, extra_args)
        weights = _shift(params, _direction(OWNER, state), state.scale)
        probe_updates, probe_inner = base.update(updates, state.inner_state, weights, **extra_args)
        _, probe = _new_direction(OWNER, state, probe_updates, probe_inner)
        scale = _scale(rho, probe, NORMS[form]).astype(state.scale.dtype)
        updates, state, params, scale = _barrier((updates, state, params, scale))
        return step(updates, state, params, scale, extra_args)

    return optax.GradientTransformationExtraArgs(reference.init, update_fn)


def check_same_numbers(tx, base_optimizer, rho, loss_fn, params, x, y, steps: int = 3) -> None:
    """Three jitted steps of `tx` and of `sharpax.momentum_sam` give the same params, to float32
    rounding carried through three steps (the forms sum the norm in another order)."""
    trajectories = []
    for form in (sharpax.momentum_sam(base_optimizer, rho), tx):

        @jax.jit
        def train_step(p, s, form=form):
            updates, s = form.update(jax.grad(loss_fn)(p, x, y), s, p)
            return optax.apply_updates(p, updates), s

        p, s = params, form.init(params)
        for _ in range(steps):
            p, s = train_step(p, s)
        trajectories.append([np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(p)])
    for want, got in zip(*trajectories, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
