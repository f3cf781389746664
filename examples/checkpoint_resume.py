"""Checkpoint and resume with orbax: sharpax states are NamedTuples of arrays, so they save like params.

The optimizer is Lookahead around AdamW with a warmup-cosine schedule: the slow weights, the moments and
the schedule's position all live in `(params, opt_state)`, so that pair is the whole checkpoint.

Trains a small regression, saves params + optimizer state at the halfway step, restores them into a fresh
process-like start and finishes; the resumed run lands exactly where an uninterrupted one does.

    python examples/checkpoint_resume.py
"""

from __future__ import annotations

import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

import sharpax

STEPS = 60


def make_optimizer() -> optax.GradientTransformation:
    schedule = sharpax.warmup_cosine_decay(1.0, 5, STEPS)
    return sharpax.lookahead(
        sharpax.adamw(schedule, weight_decay=1e-2), sync_period=7
    )  # the checkpoint falls mid-cycle


def problem():
    x = jax.random.normal(jax.random.key(0), (64, 8))
    y = x @ jnp.arange(1.0, 9.0) + 0.1
    params = {"w": jnp.zeros(8), "b": jnp.zeros([])}
    return params, x, y


def make_step(tx):
    @jax.jit
    def step(params, opt_state, x, y):
        grads = jax.grad(lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def train(params, opt_state, step, x, y, start, stop):
    for _ in range(start, stop):
        params, opt_state = step(params, opt_state, x, y)
    return params, opt_state


def main():
    tx = make_optimizer()
    step = make_step(tx)
    params, x, y = problem()
    opt_state = tx.init(params)
    reference, _ = train(params, opt_state, step, x, y, 0, STEPS)

    params, opt_state = train(params, opt_state, step, x, y, 0, STEPS // 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp).absolute() / f"step_{STEPS // 2}"
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(path, {"params": params, "opt_state": opt_state})
        del params, opt_state

        # A fresh start: build the same optimizer, use its `init` only for the structure to restore into.
        tx = make_optimizer()
        fresh_params, _, _ = problem()
        target = {"params": fresh_params, "opt_state": tx.init(fresh_params)}
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(path, abstract)
    params, opt_state = train(
        restored["params"], restored["opt_state"], make_step(tx), x, y, STEPS // 2, STEPS
    )
    gaps = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), params, reference)
    gap = max(jax.tree.leaves(gaps))
    same_structure = jax.tree.structure(restored) == jax.tree.structure(target)
    print(f"restored into the optimizer's own state types: {same_structure}")
    print(f"w after resume: {np.round(np.asarray(params['w']), 3)}")
    print(f"max |resumed - uninterrupted| = {gap:.3g}")
    return params, reference


if __name__ == "__main__":
    main()
