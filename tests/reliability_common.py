"""A small regression problem shared by the reliability tests: params, batches, loss and a scanned loop.

Shapes divide a 2x4 mesh and a batch of 8 devices, so the same problem runs sharded and unsharded.
"""

from __future__ import annotations

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from tests.optimizer_table import CASES

STEPS = 4
BATCH = 32

# How `make_params()` is laid out over a 2x4 mesh: a matrix split both ways, vectors split one way, a
# replicated scalar.
PARAM_SPECS = {"w": P("a", "b"), "b": P("b"), "head": {"v": P("a"), "scale": P()}}


def mesh_2x4(axis_type: AxisType = AxisType.Auto) -> jax.sharding.Mesh:
    return jax.make_mesh((2, 4), ("a", "b"), axis_types=(axis_type, axis_type))


def put(tree, mesh: jax.sharding.Mesh, specs):
    """`tree` placed on `mesh` with one PartitionSpec per leaf (`specs` shaped like `tree`)."""
    return jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), tree, specs)


def make_params(seed: int = 0) -> dict:
    """A nested tree with a matrix, vectors and a scalar: every kind of leaf an optimizer meets."""
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.normal(size=(8, 16)) * 0.5, jnp.float32),
        "b": jnp.asarray(rng.normal(size=(16,)) * 0.1, jnp.float32),
        "head": {
            "v": jnp.asarray(rng.normal(size=(16,)) * 0.25, jnp.float32),
            "scale": jnp.ones([]),
        },
    }


def make_batches(seed: int = 1, steps: int = STEPS) -> tuple[jax.Array, jax.Array]:
    """`steps` batches of inputs `(steps, BATCH, 8)` and targets `(steps, BATCH)`."""
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.normal(size=(steps, BATCH, 8)) * 0.5, jnp.float32)
    ys = jnp.asarray(rng.normal(size=(steps, BATCH)) * 0.5, jnp.float32)
    return xs, ys


def loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    hidden = jnp.tanh(x @ params["w"] + params["b"][None, :]) * params["head"]["scale"]
    return jnp.mean(jnp.square(hidden @ params["head"]["v"] - y))


def make_grads(seed: int = 2, steps: int = STEPS) -> dict:
    """A fixed sequence of gradients shaped like `make_params()`, stacked on a leading step axis."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=(steps, *p.shape)), p.dtype), make_params()
    )


def train(tx: optax.GradientTransformation, params, state, xs, ys):
    """`len(xs)` steps of `tx` on `loss`, scanned (one compiled program, no Python loop over steps)."""

    def step(carry, batch):
        p, s = carry
        g = jax.grad(loss)(p, *batch)
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(step, (params, state), (xs, ys))
    return params, state


def apply_grads(tx: optax.GradientTransformation, params, state, grads):
    """Apply a fixed gradient sequence (stacked on axis 0): the optimizer alone, no model."""

    def step(carry, g):
        p, s = carry
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(step, (params, state), grads)
    return params, state


def table(fast_ids: tuple[str, ...] = ()) -> list:
    """Every case of the shared table as a pytest param; those not in `fast_ids` are marked slow.

    A battery that compiles a program per optimizer runs a few representative cases by default and the
    whole table with `-m slow`, to keep the default suite within its time budget.
    """
    unknown = set(fast_ids) - {case.id for case in CASES}
    assert not unknown, unknown
    return [
        pytest.param(case, id=case.id, marks=() if case.id in fast_ids else pytest.mark.slow)
        for case in CASES
    ]


def train_eager(tx: optax.GradientTransformation, params, state, xs, ys):
    """`train` op by op, without compiling a program: a cheap one-device reference."""
    for x, y in zip(xs, ys, strict=True):
        u, state = tx.update(jax.grad(loss)(params, x, y), state, params)
        params = optax.apply_updates(params, u)
    return params, state


def apply_grads_eager(tx: optax.GradientTransformation, params, state, grads):
    """`apply_grads` op by op: a cheap one-device reference."""
    for i in range(len(jax.tree.leaves(grads)[0])):
        u, state = tx.update(jax.tree.map(lambda g, i=i: g[i], grads), state, params)
        params = optax.apply_updates(params, u)
    return params, state


def train_with_grad_fn_eager(tx, params, state, xs, ys):
    """`train_with_grad_fn` op by op: a cheap one-device reference."""
    for x, y in zip(xs, ys, strict=True):
        grad_fn = jax.grad(lambda p, x=x, y=y: loss(p, x, y))
        u, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        params = optax.apply_updates(params, u)
    return params, state


def train_with_grad_fn(tx, params, state, xs, ys):
    """`len(xs)` steps of a wrapper that takes `grad_fn` (SAM's second pass), scanned."""

    def step(carry, batch):
        p, s = carry
        grad_fn = jax.grad(lambda q: loss(q, *batch))
        u, s = tx.update(grad_fn(p), s, p, grad_fn=grad_fn)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.lax.scan(step, (params, state), (xs, ys))
    return params, state


def primitives(jaxpr) -> set[str]:
    """The names of every primitive in a jaxpr, those of the jaxprs inside it (jit, cond, scan) too."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            names |= primitives(sub)
    return names
