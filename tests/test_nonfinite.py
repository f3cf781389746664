"""Non-finite gradients: `optax.apply_if_finite` around any sharpax optimizer skips the bad step with
nothing lost (params and state bit-for-bit unchanged, `total_notfinite` counts the skips), sharded too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests import reliability_common as rc
from tests.optimizer_table import CASES, CASES_BY_ID

# Step 0 and 3 are finite; step 1 has one NaN in one matrix entry, step 2 an inf in the scalar leaf.
BAD_STEPS = (1, 2)


def _grad_sequence():
    grads = rc.make_grads(steps=4)
    grads["w"] = grads["w"].at[1, 0, 0].set(jnp.nan)
    grads["head"]["scale"] = grads["head"]["scale"].at[2].set(jnp.inf)
    return grads


def _step(grads, i):
    return jax.tree.map(lambda g: g[i], grads)


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_apply_if_finite_traces_around_every_optimizer(case):
    """Both branches of apply_if_finite's `lax.cond` must agree on every state leaf's dtype and weak
    type: traced (not compiled) for every optimizer, with an integer leaf and a bfloat16 leaf."""
    tx = optax.apply_if_finite(case.build(), max_consecutive_errors=3)
    params = {**rc.make_params(), "step": jnp.zeros([], jnp.int32), "h": jnp.ones(3, jnp.bfloat16)}
    state = jax.eval_shape(tx.init, params)
    # jax.grad(..., allow_int=True) gives an integer param a float0 gradient.
    grads = {**params, "step": np.zeros((), jax.dtypes.float0)}
    updates, new_state = jax.eval_shape(tx.update, grads, state, params)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state), strict=True):
        assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)


def _run_skipping(tx, params, grads, step_fn):
    wrapped = optax.apply_if_finite(tx, max_consecutive_errors=5)
    state = wrapped.init(params)
    history = []
    for i in range(4):
        updates, state = step_fn(wrapped, _step(grads, i), state, params)
        params = optax.apply_updates(params, updates)
        history.append((params, state))
    return history


def _jitted_step(wrapped, g, state, params):
    return jax.jit(wrapped.update)(g, state, params)


def _check_skips(tx, params, grads, history):
    after_first = history[0]
    for i in BAD_STEPS:
        p, s = history[i]
        assert _bits(p) == _bits(after_first[0]), f"step {i}: params changed"
        assert _bits(s.inner_state) == _bits(after_first[1].inner_state), f"step {i}: state changed"
        assert not bool(s.last_finite)
    assert int(history[2][1].total_notfinite) == 2
    assert int(history[3][1].total_notfinite) == 2
    assert int(history[3][1].notfinite_count) == 0

    # What remains is the inner optimizer on the two finite steps alone.
    finite = jax.tree.map(lambda g: g[jnp.array([0, 3])], grads)
    want, _ = rc.apply_grads_eager(tx, params, tx.init(params), finite)
    for got, w in zip(jax.tree.leaves(history[3][0]), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(w), rtol=1e-6, atol=1e-7)
        assert np.all(np.isfinite(np.asarray(got)))


NONFINITE_FAST = ("sgd_nesterov", "adam_l2_amsgrad", "nadam", "lion")


@pytest.mark.parametrize("case", rc.table(NONFINITE_FAST))
def test_apply_if_finite_skips_bad_steps(case):
    tx = case.build()
    params, grads = rc.make_params(), _grad_sequence()
    history = _run_skipping(tx, params, grads, _jitted_step)
    _check_skips(tx, params, grads, history)


def test_apply_if_finite_skips_on_every_shard():
    """A NaN on one device skips the step on all eight: the finiteness test is a global reduction."""
    tx = CASES_BY_ID["adamw_amsgrad"].build()
    params, grads = rc.make_params(), _grad_sequence()
    mesh = rc.mesh_2x4()
    specs = jax.tree.map(lambda s: jax.sharding.PartitionSpec(None, *s), rc.PARAM_SPECS)
    sharded_params = rc.put(params, mesh, rc.PARAM_SPECS)
    sharded_grads = rc.put(grads, mesh, specs)
    history = _run_skipping(tx, sharded_params, sharded_grads, _jitted_step)
    _check_skips(tx, params, grads, history)
    for leaf, spec in zip(
        jax.tree.leaves(history[-1][0]), jax.tree.leaves(rc.PARAM_SPECS), strict=True
    ):
        assert leaf.sharding.is_equivalent_to(jax.sharding.NamedSharding(mesh, spec), leaf.ndim)


def test_apply_if_finite_with_low_precision_params_and_integer_leaves():
    """bfloat16 params with float32 moments, and an integer leaf the optimizer passes through."""
    tx = CASES_BY_ID["adam"].build(mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    params = {"w": jnp.ones((4,), jnp.bfloat16), "n": jnp.array(7, jnp.int32)}
    w_grads = jnp.array([[1, 2, 3, 4], [1, jnp.nan, 3, 4], [4, 3, 2, 1]], jnp.bfloat16)
    # jax.grad(..., allow_int=True) gives an integer param a float0 gradient.
    grads = [{"w": w, "n": np.zeros((), jax.dtypes.float0)} for w in w_grads]
    wrapped = optax.apply_if_finite(tx, max_consecutive_errors=5)
    state = wrapped.init(params)
    step = jax.jit(wrapped.update)
    before = None
    for i in range(3):
        updates, state = step(grads[i], state, params)
        # The integer leaf's update is its float0 gradient, which optax.apply_updates cannot add.
        assert updates["n"].dtype == jax.dtypes.float0
        params = {**params, "w": optax.apply_updates(params["w"], updates["w"])}
        if i == 0:
            before = (_bits(params), _bits(state.inner_state))
        if i == 1:
            assert (_bits(params), _bits(state.inner_state)) == before
    assert params["w"].dtype == jnp.bfloat16 and int(params["n"]) == 7
    assert int(state.total_notfinite) == 1
    assert jax.tree.leaves(state.inner_state)[1].dtype == jnp.float32


def _grad_fn_for(grads_now):
    """A second pass that returns `grads_now` (finite or not), as SAM's `grad_fn` would."""
    return lambda params: grads_now


def test_lookahead_inside_apply_if_finite_skips_with_slow_weights_and_counter_kept():
    """`apply_if_finite(lookahead(...))`: a skipped step leaves the slow weights and the sync counter
    as they were (inside, lookahead would count the skipped step toward its next sync)."""
    import sharpax

    tx = sharpax.lookahead(sharpax.adam(1e-2), sync_period=2)
    params, grads = rc.make_params(), _grad_sequence()
    history = _run_skipping(tx, params, grads, _jitted_step)
    _check_skips(tx, params, grads, history)


def test_sam_over_apply_if_finite_skips_a_non_finite_second_pass():
    """SAM's second gradient can be non-finite when the first is not: `sam(apply_if_finite(base))`
    checks the gradient the base optimizer actually receives, and skips with nothing lost."""
    import sharpax

    base = CASES_BY_ID["adam_l2_amsgrad"].build()
    tx = sharpax.sam(optax.apply_if_finite(base, max_consecutive_errors=5), rho=0.05)
    params = rc.make_params()
    finite = _step(rc.make_grads(steps=1), 0)
    poisoned = jax.tree.map(lambda g: g.at[...].set(jnp.nan) if g.ndim == 0 else g, finite)
    state = tx.init(params)
    step = jax.jit(lambda g, s, p, g2: tx.update(g, s, p, grad_fn=_grad_fn_for(g2)))
    updates, state = step(finite, state, params, finite)
    params = optax.apply_updates(params, updates)
    before = (_bits(params), _bits(state.inner_state.inner_state))
    updates, state = step(finite, state, params, poisoned)  # first pass finite, second not
    params = optax.apply_updates(params, updates)
    assert (_bits(params), _bits(state.inner_state.inner_state)) == before
    assert int(state.inner_state.total_notfinite) == 1
