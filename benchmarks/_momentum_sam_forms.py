"""Other programs for `sharpax.momentum_sam`'s numbers, timed beside it by bench_sam on a GPU.

`momentum_sam` computes the norm of the new direction from a base update of its own, then the step from a
second base update behind an optimization barrier, so that the step's kernels can write the new buffer
over the old one; on GPUs the norm is `two_range_norm`, a reduction of two operands that XLA fuses with
the computation of the buffer. Each form here undoes one of those choices:

- `one update`: the base update computed once, the norm Blue's (sharpax before commit 0c59e58). The norm
  of the new buffer is needed before the move, which reads the old buffer too, so XLA copies the old
  buffer first.
- `blue norm`: the barrier, with Blue's norm (sharpax at commit 0c59e58). XLA:GPU does not fuse its
  three-operand reduction with the buffer's computation: |v_t| is written out and read back.
- `squares norm`: the barrier, with a plain sum of squares, which overflows past 1.8e19 in float32: not
  a candidate for the library, the floor of what the norm's pass can cost.

Commit 0c59e58 also has the forms that were tried and dropped (Blue's reduction over raveled leaves, as
three reductions, and the two ranges as one complex sum); benchmarks/README.md has their numbers.

On XLA:CPU the barrier is expanded early and the two updates merge again, and the norm is the CPU's:
each form compiles to what `momentum_sam` compiles to there. `check_same_numbers` asserts that a form's
numbers are momentum_sam's before a benchmark times it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax
from sharpax._types import Array, State, Updates
from sharpax.wrappers._momentum_sam import _barrier, _inverse_norm_scale, _next_scale, _step
from sharpax.wrappers._sam_geometry import blue_norm, global_norm

OWNER = "momentum_sam (benchmark form)"


NORMS: dict[str, Callable[[Sequence[Array], Any], Array]] = {
    "blue norm": blue_norm,
    "squares norm": lambda leaves, dtype: jnp.sqrt(
        sum(jnp.sum(jnp.square(x.astype(dtype))) for x in leaves)
    ),
}
FORMS = ("one update", *NORMS)


def momentum_sam_form(
    base_optimizer: optax.GradientTransformation, rho: float, form: str
) -> optax.GradientTransformationExtraArgs:
    """`sharpax.momentum_sam(base_optimizer, rho)` as the program `form` (one of `FORMS`); the state
    and `init` momentum_sam's own."""
    reference = sharpax.momentum_sam(base_optimizer, rho)
    base = optax.with_extra_args_support(base_optimizer)

    def update_fn(updates, state, params=None, **extra_args) -> tuple[Updates, State]:
        if params is None:
            raise ValueError(f"{OWNER}: update needs the params")
        if form == "one update":
            scale_of = lambda new: _inverse_norm_scale(
                OWNER, rho, new, state.count, global_norm
            ).astype(state.scale.dtype)
            return _step(OWNER, base, updates, state, params, extra_args, scale_of)
        scale = _next_scale(OWNER, base, rho, updates, state, params, extra_args, NORMS[form])
        updates, state, params, scale = _barrier((updates, state, params, scale))
        return _step(OWNER, base, updates, state, params, extra_args, lambda _: scale)

    return optax.GradientTransformationExtraArgs(reference.init, update_fn)


def check_same_numbers(tx, base_optimizer, rho, loss_fn, params, x, y, steps: int = 2) -> None:
    """Two jitted steps of `tx` and of `sharpax.momentum_sam` give the same params, to float32
    rounding carried through the steps (the forms sum the norm in another order). Two, not more: on
    the H200, Adam took a norm's rounding to 1e-5 differences in the third step's params, at entries
    whose gradients are near 0."""
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
