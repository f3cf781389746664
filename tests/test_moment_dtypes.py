"""State dtypes (`mu_dtype`, `nu_dtype`, `accumulator_dtype`): each buffer in its own dtype, updates in
the params' dtype, for every case of the table that has one."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.optimizer_table import CASES, CASES_BY_ID

DTYPE_CASES = [case for case in CASES if case.moment_dtypes]
# The state fields each option sets: the Adam family's moments, and the second-moment statistics of
# rmsprop (and its centered mean), adagrad and adadelta; sgd's momentum buffer.
STATE_FIELD = {
    "mu_dtype": ("mu",),
    "nu_dtype": ("nu", "nu_max", "square_avg", "grad_avg", "sum_of_squares", "acc_delta"),
    "accumulator_dtype": ("buf",),
}


def moments(state, field):
    """The moment tree named `field` in a sharpax optimizer state (None when the option is off)."""
    return optax.tree.get(state, field)


def problem(dtype):
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.25])}
    grads = [jax.tree.map(lambda p, k=k: jnp.sin(3.0 * p + k), params) for k in range(4)]
    cast = lambda tree: jax.tree.map(lambda x: x.astype(dtype), tree)
    return cast(params), [cast(g) for g in grads]


def run(tx, params, grads, jit):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params)
    init_state = state
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, updates, init_state, state


@functools.cache
def float32_reference(case_id):
    return run(CASES_BY_ID[case_id].build(), *problem(jnp.float32), jit=True)[0]


BF16_F32 = (jnp.bfloat16, jnp.float32)
F32_BF16 = (jnp.float32, jnp.bfloat16)


@pytest.mark.parametrize(
    ("case", "param_dtype", "moment_dtype", "jit"),
    [
        pytest.param(case, *dtypes, jit, id=f"{case.id}-{name}-{'jit' if jit else 'nojit'}")
        for case in DTYPE_CASES
        for dtypes, name, jits in [
            (BF16_F32, "bf16_params_f32_moments", (True,)),
            (F32_BF16, "f32_params_bf16_moments", (True,) if case.id in ("adam", "lion") else ()),
        ]
        for jit in jits
    ],
)
def test_moment_dtypes(case, param_dtype, moment_dtype, jit):
    params, grads = problem(param_dtype)
    options = {name: moment_dtype for name in case.moment_dtypes}
    new_params, updates, init_state, state = run(case.build(**options), params, grads, jit)

    for option in case.moment_dtypes:
        found = 0
        for field in STATE_FIELD[option]:
            for s in (init_state, state):
                tree = moments(s, field)
                if tree is None:
                    continue
                assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype(moment_dtype)}
                found += 1
        assert found, f"{option}: none of {STATE_FIELD[option]} in the state"
    for tree in (updates, new_params):
        assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype(param_dtype)}
    assert jax.tree.structure(init_state) == jax.tree.structure(state)

    # Same trajectory as float32 throughout, to bfloat16's resolution (8 bits: 2**-8 = 4e-3).
    ref_params = float32_reference(case.id)
    for got, want in zip(jax.tree.leaves(new_params), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("case", DTYPE_CASES, ids=lambda case: case.id)
def test_default_moment_dtype_is_the_params(case):
    params, _ = problem(jnp.bfloat16)
    state = case.build().init(params)
    for field in {f for option in case.moment_dtypes for f in STATE_FIELD[option]}:
        tree = moments(state, field)
        if tree is not None:
            assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize(
    "case, option",
    [
        pytest.param(case, option, id=f"{option}-{case.id}")
        for case in DTYPE_CASES
        if len(case.moment_dtypes) > 1
        for option in case.moment_dtypes
    ],
)
def test_state_dtype_options_are_independent(case, option):
    params, grads = problem(jnp.bfloat16)
    tx = case.build(**{option: jnp.float32})
    # Shapes and dtypes only: eval_shape traces the update without compiling or running it.
    updates, state = jax.eval_shape(tx.update, grads[0], tx.init(params), params)
    for other, fields in STATE_FIELD.items():
        want = jnp.float32 if other == option else jnp.bfloat16
        for field in fields:
            tree = moments(state, field)
            if tree is not None:
                assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype(want)}, field
    assert {leaf.dtype for leaf in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}
