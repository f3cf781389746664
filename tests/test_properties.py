"""Property tests (hypothesis) over arbitrary nested pytrees, for every optimizer of the table.

Trees mix dicts, lists and tuples with float32, bfloat16, 0-d, zero-size, int, bool, Python float and
None leaves. For each: jit == no jit, the state is a pytree of arrays of fixed structure, a zero
learning rate changes nothing, finite in -> finite out, non-float leaves pass through untouched.
Derandomized, so CI sees the same examples every run: one explicit tree holding every kind of leaf for
each state layout, then 12 drawn (optimizer, tree) pairs. Every example compiles, so the budget is small.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.optimizer_table import CASES, CASES_BY_ID

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STEPS = 2  # the first step is special (momentum seeds, bias corrections), so two
SHAPES = [(), (0,), (2, 3), (1, 0, 2)]


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A param leaf and its gradients for each step (not a pytree node, so trees stop here)."""

    param: Any
    grads: tuple[Any, ...]
    kind: str


def _floats(dtype, shape):
    # Finite and moderate: squares of 1e3 stay far from float32/bfloat16 overflow. No subnormals:
    # jitted XLA code on CPU flushes them to zero (p + 0 would not be p).
    values = st.floats(-1e3, 1e3, width=32, allow_subnormal=False)
    return hnp.arrays(np.float32, shape, elements=values).map(lambda a: jnp.asarray(a, dtype))


@st.composite
def leaves(draw):
    kind = draw(
        st.sampled_from(["float32", "float32", "bfloat16", "int32", "bool", "pyfloat", "none"])
    )
    if kind == "none":
        return None
    if kind == "pyfloat":
        values = st.floats(-1e3, 1e3, width=32, allow_subnormal=False)
        return Leaf(draw(values), tuple(draw(values) for _ in range(STEPS)), kind)
    shape = draw(st.sampled_from(SHAPES))
    if kind == "int32":
        ints = hnp.arrays(np.int32, shape, elements=st.integers(-100, 100)).map(jnp.asarray)
        return Leaf(draw(ints), tuple(draw(ints) for _ in range(STEPS)), kind)
    if kind == "bool":
        bools = hnp.arrays(np.bool_, shape).map(jnp.asarray)
        return Leaf(draw(bools), tuple(draw(bools) for _ in range(STEPS)), kind)
    dtype = jnp.float32 if kind == "float32" else jnp.bfloat16
    return Leaf(
        draw(_floats(dtype, shape)), tuple(draw(_floats(dtype, shape)) for _ in range(STEPS)), kind
    )


def _containers(children, min_size=0):
    return st.one_of(
        st.dictionaries(st.sampled_from("abcd"), children, min_size=min_size, max_size=3),
        st.lists(children, min_size=min_size, max_size=3),
        st.lists(children, min_size=min_size, max_size=3).map(tuple),
    )


# The root is a non-empty container: a bare `None` params tree means "params not passed" to optax,
# and hypothesis' first (simplest) draws would otherwise spend the small budget on empty trees.
trees = _containers(st.recursive(leaves(), _containers, max_leaves=6), min_size=1)


def split(tree):
    """`(params, [grads at step t])`, and the kind of every leaf, from a tree of `Leaf`s."""
    is_leaf = lambda x: isinstance(x, Leaf)
    params = jax.tree.map(lambda leaf: leaf.param, tree, is_leaf=is_leaf)
    grads = [
        jax.tree.map(lambda leaf, t=t: leaf.grads[t], tree, is_leaf=is_leaf) for t in range(STEPS)
    ]
    kinds = jax.tree.map(lambda leaf: leaf.kind, tree, is_leaf=is_leaf)
    return params, grads, kinds


def run(update, state, params, grads):
    states, all_updates = [state], []
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
        states.append(state)
        all_updates.append(updates)
    return params, all_updates, states


def _close(a, b, kind):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    # XLA fuses under jit and rounds bfloat16 intermediates differently than op-by-op dispatch.
    tol = {"bfloat16": (2e-2, 1e-2)}.get(kind, (2e-5, 1e-6))
    np.testing.assert_allclose(a, b, rtol=tol[0], atol=tol[1])


def _is_finite(x):
    return bool(np.all(np.isfinite(np.asarray(x, np.float32))))


def _leaf(kind, *values):
    return Leaf(values[0], tuple(values[1:]), kind)


# Every kind of leaf in one tree, so that each optimizer sees all of them whatever hypothesis draws.
ALL_KINDS = {
    "dense": {
        "w": _leaf("float32", *(jnp.full((2, 3), v, jnp.float32) for v in (0.5, 1.0, -2.0, 0.0)))
    },
    "empty": [_leaf("float32", *(jnp.zeros((0,), jnp.float32),) * 4), None],
    "half": (
        _leaf("bfloat16", *(jnp.full((3,), v, jnp.bfloat16) for v in (1.5, -0.25, 3.0, 0.0))),
    ),
    "scalar": _leaf("float32", *(jnp.asarray(v, jnp.float32) for v in (1.0, 2.0, 0.0, -1.0))),
    "python": _leaf("pyfloat", 0.5, 1.0, -1.0, 0.25),
    "step": _leaf("int32", *(jnp.asarray([v, v + 1], jnp.int32) for v in range(4))),
    "flag": _leaf("bool", *(jnp.asarray([v % 2 == 0]) for v in range(4))),
    "frozen": None,
}


# One case per distinct state layout (momentum or not, AMSGrad's max, centered RMSprop, ...).
LAYOUTS = [
    CASES_BY_ID[i]
    for i in (
        "sgd",
        "sgd_momentum_dampening_wd",
        "adam",
        "adam_l2_amsgrad",
        "adamw",
        "adagrad",
        "adadelta",
        "rmsprop",
        "rmsprop_centered_momentum_wd",
        "nadam",
        "radam",
        "adamax",
        "lion",
        "adafactor",
        "muon_adamw",
        "rprop",
        "asgd",
    )
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in LAYOUTS])
def test_properties_on_every_kind_of_leaf(case):
    check_properties(case, ALL_KINDS)


@SETTINGS
@given(case=st.sampled_from(CASES), tree=trees)
def test_properties_on_random_trees(case, tree):
    check_properties(case, tree)


def check_properties(case, tree):
    params, grads, kinds = split(tree)
    flat_kinds = jax.tree.leaves(kinds)
    tx = case.build()
    lr = case.kwargs["learning_rate"]

    # One compilation serves the case's learning rate and zero: a traced lr builds the same chain.
    @jax.jit
    def update_at(lr, g, s, p):
        return case.build(learning_rate=lr).update(g, s, p)

    state = tx.init(params)
    p_jit, u_jit, s_jit = run(lambda g, s, p: update_at(lr, g, s, p), state, params, grads)
    p_eager, u_eager, s_eager = run(tx.update, state, params, grads)

    # The state is a pytree of arrays, of one structure, shape and dtype from init on.
    for states in (s_jit, s_eager):
        for s in states:
            assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(s))
            assert jax.tree.structure(s) == jax.tree.structure(states[0])
            assert [(x.shape, x.dtype) for x in jax.tree.leaves(s)] == [
                (x.shape, x.dtype) for x in jax.tree.leaves(states[0])
            ]
        assert all(
            _is_finite(x)
            for x in jax.tree.leaves(states[-1])
            if jnp.issubdtype(x.dtype, jnp.inexact)
        )

    for t in range(STEPS):
        # None leaves stay None: the updates have the gradients' structure.
        assert jax.tree.structure(u_jit[t]) == jax.tree.structure(grads[t])
        assert jax.tree.structure(u_eager[t]) == jax.tree.structure(grads[t])
        leaves_t = zip(
            flat_kinds,
            jax.tree.leaves(grads[t]),
            jax.tree.leaves(u_jit[t]),
            jax.tree.leaves(u_eager[t]),
            strict=True,
        )
        for kind, g, a, b in leaves_t:
            if kind in ("int32", "bool"):
                # Untouched: the gradient comes back as the update, value and dtype.
                for u in (a, b):
                    assert jnp.asarray(u).dtype == jnp.asarray(g).dtype
                    np.testing.assert_array_equal(u, g)
            else:
                assert kind == "pyfloat" or jnp.asarray(a).dtype == jnp.asarray(g).dtype
                assert _is_finite(a) and _is_finite(b)  # finite in -> finite out
                _close(a, b, kind)  # jit == no jit
    for kind, a, b in zip(
        flat_kinds, jax.tree.leaves(p_jit), jax.tree.leaves(p_eager), strict=True
    ):
        if kind not in ("int32", "bool"):
            _close(a, b, kind)

    # A zero learning rate changes nothing (bit for bit) and its updates are zeros (not for Rprop,
    # whose learning rate is only the initial step size, taken from the state).
    if not case.lr_scales_updates:
        return
    p_zero, u_zero, _ = run(lambda g, s, p: update_at(0.0, g, s, p), state, params, grads)
    leaves_zero = zip(
        flat_kinds,
        jax.tree.leaves(params),
        jax.tree.leaves(p_zero),
        jax.tree.leaves(u_zero[-1]),
        strict=True,
    )
    for kind, before, after, u in leaves_zero:
        if kind in ("int32", "bool"):
            continue  # passed through: their "gradient" is added, by design
        np.testing.assert_array_equal(np.asarray(after, np.float32), np.asarray(before, np.float32))
        assert not np.any(np.asarray(u, np.float32)), "a zero learning rate must give zero updates"
