"""Numerics: low-precision params (bfloat16 with float32 moments, float16), a step count at the int32
limit, and 10^5 steps of tiny gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from tests import reliability_common as rc
from tests.optimizer_table import CASES

WITH_MOMENT_DTYPES = [case for case in CASES if case.moment_dtypes]
INT32_MAX = np.iinfo(np.int32).max


def _float32_moments(case):
    return case.build(**{name: jnp.float32 for name in case.moment_dtypes})


def _run(tx, params, grads):
    """Eager steps over `grads` (stacked on axis 0); returns params, state and the last updates."""
    state = tx.init(params)
    updates = None
    for i in range(len(jax.tree.leaves(grads)[0])):
        g = jax.tree.map(lambda x, i=i: x[i], grads)
        updates, state = tx.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, state, updates


def _cast(tree, dtype):
    return jax.tree.map(lambda x: x.astype(dtype), tree)


def _assert_finite(tree, what):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        assert bool(jnp.all(jnp.isfinite(leaf))), (
            f"{what}{jax.tree_util.keystr(path)} is not finite"
        )


def _moment_dtypes(tx, state, params) -> set:
    dtypes = set()
    optax.tree_map_params(tx, lambda buf, _: dtypes.add(buf.dtype), state, params)
    return dtypes


@pytest.mark.parametrize("low", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize("case", WITH_MOMENT_DTYPES, ids=lambda c: c.id)
def test_low_precision_params_with_float32_moments(case, low):
    """Params stay in their low precision, the moments are float32, and the run follows float32's.

    The gradients hold exact zeros and values whose squares underflow float16 (1e-4): with float32
    moments neither may give 0 / 0 (eps = 1e-8 is 0 in float16).
    """
    tx = _float32_moments(case)
    params32, grads32 = rc.make_params(), rc.make_grads(steps=3)
    grads32["w"] = grads32["w"].at[:, 0].set(0.0).at[:, 1].multiply(1e-4)
    params, state, updates = _run(tx, _cast(params32, low), _cast(grads32, low))
    want, _, _ = _run(case.build(), params32, grads32)

    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(low)}
    assert {leaf.dtype for leaf in jax.tree.leaves(updates)} == {jnp.dtype(low)}
    assert _moment_dtypes(tx, state, params) == {jnp.dtype(jnp.float32)}
    _assert_finite((params, state), "")
    # Distance from float32's run: a few roundings of params near 1 to 8 (bf16) or 11 (f16) bits.
    tol = 3e-2 if low == jnp.bfloat16 else 4e-3
    for got, w in zip(jax.tree.leaves(params), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(w), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_float16_params(case):
    """float16 end to end (state included) on gradients whose squares stay in float16's range."""
    params32 = rc.make_params()
    grads32 = jax.tree.map(lambda g: jnp.sign(g) * (0.25 + jnp.abs(g)), rc.make_grads(steps=3))
    params, state, updates = _run(
        case.build(), _cast(params32, jnp.float16), _cast(grads32, jnp.float16)
    )
    want, _, _ = _run(case.build(), params32, grads32)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float16)}
    _assert_finite((params, state, updates), "")
    for got, w in zip(jax.tree.leaves(params), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(w), rtol=5e-3, atol=5e-3)


def _with_counts(state, value):
    """`state` with every integer leaf (the step counters) set to `value`."""
    is_int = lambda x: jnp.issubdtype(x.dtype, jnp.integer)
    return jax.tree.map(lambda x: jnp.full_like(x, value) if is_int(x) else x, state)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_step_count_saturates_at_int32_max(case):
    """Three steps from a count of 2**31 - 2: the counters stop at 2**31 - 1 (no wrap to a negative
    count, which would turn `1 - b**t` into -inf), and the updates equal those at a count of 10**7,
    where every bias correction is already 1 in float32."""
    tx = case.build()
    params, grads = rc.make_params(), rc.make_grads(steps=3)
    state = tx.init(params)
    near_max, reference = _with_counts(state, INT32_MAX - 1), _with_counts(state, 10**7)
    for i in range(3):
        g = jax.tree.map(lambda x, i=i: x[i], grads)
        updates, near_max = tx.update(g, near_max, params)
        want, reference = tx.update(g, reference, params)
        _assert_finite(updates, f"step {i} updates")
        if not case.stationary_late:
            # ASGD's step size and Adafactor's relative step still shrink with the count: finite
            # updates (checked above) and a saturated counter (below) are the claim.
            continue
        if case.kwargs.get("lr_decay"):
            # Adagrad's lr decay divides by 1 + count * lr_decay: smaller, never negative.
            for u, w in zip(jax.tree.leaves(updates), jax.tree.leaves(want), strict=True):
                assert bool(jnp.all(jnp.sign(u) == jnp.sign(w)))
                assert bool(jnp.all(jnp.abs(u) <= jnp.abs(w)))
        else:
            for u, w in zip(jax.tree.leaves(updates), jax.tree.leaves(want), strict=True):
                np.testing.assert_allclose(np.asarray(u), np.asarray(w), rtol=1e-6, atol=1e-9)
    for leaf in jax.tree.leaves(near_max):
        if jnp.issubdtype(leaf.dtype, jnp.integer):
            assert int(leaf) == INT32_MAX
    _assert_finite(near_max, "state")


TINY_STEPS = 100_000
TINY_FAST = ("adam_l2_amsgrad", "nadamw", "radam", "adadelta", "adagrad", "lion")


@pytest.mark.parametrize("case", rc.table(TINY_FAST))
def test_many_tiny_steps_stay_finite(case):
    """10^5 steps (one `fori_loop`) of gradients at and below float32's normal range, and zeros."""
    tx = case.build()
    params = {"w": jnp.array([1.0, -1.0, 0.5, 0.0, 2.0]), "s": jnp.ones([])}
    tiny = {"w": jnp.array([1e-20, -1e-30, 0.0, 1e-38, 3e-20]), "s": jnp.array(-1e-25)}

    @jax.jit
    def run(params):
        def body(i, carry):
            p, s = carry
            g = jax.tree.map(lambda t: jnp.where(i % 3 == 0, -t, t), tiny)
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        return jax.lax.fori_loop(0, TINY_STEPS, body, (params, tx.init(params)))

    final, state = run(params)
    _assert_finite((final, state), "")
    # Gradients this small add at most ~1e-12 per step to an adaptive rule (m / eps) and weight decay
    # only shrinks: no param may grow by more than 1e-3. The sign-based rules take steps whatever the
    # gradient's size: lion lr * sign(.), so its bound is the number of steps times lr; Rprop a step
    # size that grows while the sign holds, up to its largest (50 by default).
    if case.make is sharpax.lion:
        bound = TINY_STEPS * case.kwargs["learning_rate"]
    elif case.make is sharpax.rprop:
        bound = TINY_STEPS * case.kwargs.get("step_sizes", (1e-6, 50.0))[1]
    else:
        bound = 1e-3
    for got, start in zip(jax.tree.leaves(final), jax.tree.leaves(params), strict=True):
        assert bool(jnp.all(jnp.abs(got) <= jnp.abs(start) + bound)), (got, start)
