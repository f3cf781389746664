"""An experimental form of `sharpax.momentum_sam` for the GPU benchmarks: the base update run twice.

`momentum_sam` needs the norm of the new momentum before it can move the params, and the move reads the
old momentum too; so the new buffer cannot be written over the old one until the move is done, and XLA
copies the old buffer first (two of momentum-SAM's extra arrays of traffic per step). Here the base
update runs once for the norm alone (XLA keeps only the reduction), then again behind an optimization
barrier for the step, whose kernels can read the old buffer and write the new one in place: on a GPU,
where one multi-output fusion could compute the new moments and the move, that would save the copy (not
measured yet). XLA:CPU expands the barrier early and merges the two updates again: on bench_sam's MLP
and Transformer trees the compiled step is momentum_sam's own (the same copies, temporary size and bytes
accessed by XLA's cost analysis). The numbers are momentum_sam's (the same float ops in the same order);
`check_same_numbers` asserts it before a benchmark times the form.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
from jax import lax

import sharpax
from sharpax._types import State, Updates
from sharpax.transforms._numerics import increment
from sharpax.wrappers._sam_efficient import (
    MomentumSAMState,
    _direction,
    _inverse_norm_scale,
    _move,
    _new_direction,
    _shift,
)

OWNER = "momentum_sam_recompute"


def momentum_sam_recompute(
    base_optimizer: optax.GradientTransformation, rho: float
) -> optax.GradientTransformationExtraArgs:
    """`sharpax.momentum_sam(base_optimizer, rho)` with the base update computed once for the norm of
    the new direction and again, after a barrier, for the step (the state and `init` are its own)."""
    reference = sharpax.momentum_sam(base_optimizer, rho)
    base = optax.with_extra_args_support(base_optimizer)

    def update_fn(updates, state, params=None, **extra_args) -> tuple[Updates, State]:
        if params is None:
            raise ValueError(f"{OWNER}: update needs the params, got params=None")
        weights = _shift(params, _direction(OWNER, state), state.scale)
        probe_updates, probe_inner = base.update(updates, state.inner_state, weights, **extra_args)
        _, probe = _new_direction(OWNER, state, probe_updates, probe_inner)
        scale = _inverse_norm_scale(OWNER, rho, probe, state.count).astype(state.scale.dtype)
        # Past the barrier nothing is the same value as before it, so XLA cannot merge the two updates,
        # and the step's reads of the old buffer come after the norm is known.
        updates, state, params, scale = lax.optimization_barrier((updates, state, params, scale))
        old = _direction(OWNER, state)
        weights = _shift(params, old, state.scale)
        base_updates, inner_state = base.update(updates, state.inner_state, weights, **extra_args)
        direction, new = _new_direction(OWNER, state, base_updates, inner_state)
        new_updates = _move(base_updates, old, new, state.scale, scale)
        count = None if state.count is None else increment(state.count)
        return new_updates, MomentumSAMState(
            scale=scale, direction=direction, count=count, inner_state=inner_state
        )

    return optax.GradientTransformationExtraArgs(reference.init, update_fn)


def check_same_numbers(base_optimizer, rho, loss_fn, params, x, y, steps: int = 3) -> None:
    """Three jitted steps of this form and of `sharpax.momentum_sam` give the same params (to float32
    rounding: XLA may fuse the two programs differently)."""
    trajectories = []
    for tx in (
        sharpax.momentum_sam(base_optimizer, rho),
        momentum_sam_recompute(base_optimizer, rho),
    ):

        @jax.jit
        def step(p, s, tx=tx):
            updates, s = tx.update(jax.grad(loss_fn)(p, x, y), s, p)
            return optax.apply_updates(p, updates), s

        p, s = params, tx.init(params)
        for _ in range(steps):
            p, s = step(p, s)
        trajectories.append([np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(p)])
    for want, got in zip(*trajectories, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
