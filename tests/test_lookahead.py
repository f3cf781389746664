"""Lookahead: parity with pytorch_optimizer, a hand-derived trajectory, NaN safety, chains, flax."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from tests.references import make_lookahead_goldens as ref

SHARPAX_INNER = {
    "adam": lambda: sharpax.adam(0.05),
    "sgd_momentum": lambda: sharpax.sgd(0.05, momentum=0.9, dampening=0.1),
    "radam": lambda: sharpax.radam(0.05),
    "rmsprop_momentum": lambda: sharpax.rmsprop(0.01, momentum=0.9),
}
RANGER = ref.Case("ranger", 6, 0.5)
ALL_CASES = [*ref.CASES, RANGER]


def _loss(params):
    return ref.loss(params, jnp.cos, jnp.asarray)


@functools.cache
def _runner(inner: str, k: int, pullback: str):
    """A jitted 48-step run for one (inner, k, pullback); alpha is an argument, so it is compiled once."""

    def run(alpha):
        if inner == "ranger":
            tx = sharpax.ranger(0.05, sync_period=k, alpha=alpha)
        else:
            tx = sharpax.lookahead(SHARPAX_INNER[inner](), k, alpha, pullback_momentum=pullback)
        params = {name: jnp.asarray(value) for name, value in ref.INIT.items()}

        def step(carry, _):
            params, state = carry
            updates, state = tx.update(jax.grad(_loss)(params), state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), (params, sharpax.lookahead_params(state, params))

        _, (fast, slow) = jax.lax.scan(step, (params, tx.init(params)), length=ref.STEPS)
        return fast, slow

    return jax.jit(run)


@functools.cache
def _sharpax_trajectory(case: ref.Case) -> dict[str, np.ndarray]:
    fast, slow = _runner(case.inner, case.k, case.pullback)(jnp.float32(case.alpha))
    out = {f"params/{name}": np.asarray(value) for name, value in fast.items()}
    out.update({f"slow/{name}": np.asarray(value) for name, value in slow.items()})
    return out


# Absolute tolerances, params of order 1. The inner optimizers *alone* (k = 1000: no sync in 48 steps)
# already differ from torch on this problem by up to 4e-7 (sgd, rmsprop), 1.2e-5 (adam) and 1.4e-4
# (radam): sharpax evaluates the step-dependent scalars (1 - b2^t, RAdam's rho_t) in float32, torch in
# float64. The sgd and rmsprop cases, whose pullback modes are the reference's own, are the sharp test of
# the lookahead arithmetic; a wrong sync or pullback moves these trajectories by 1e-2 or more.
ATOL = {"sgd_momentum": 2e-6, "rmsprop_momentum": 2e-6, "adam": 4e-5, "radam": 4e-4, "ranger": 4e-4}


def _assert_trajectories_close(got: dict, want: dict, inner: str) -> None:
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=ATOL[inner], err_msg=key)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.inner}-{c.key}")
def test_matches_pytorch_optimizer_goldens(case):
    with np.load(ref.GOLDEN_DIR / f"lookahead_{case.inner}.npz") as golden:
        want = {
            key.split("/", 1)[1]: golden[key] for key in golden if key.startswith(case.key + "/")
        }
    assert want, f"no golden for {case}"
    _assert_trajectories_close(_sharpax_trajectory(case), want, case.inner)


@pytest.mark.torch
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.inner}-{c.key}")
def test_matches_pytorch_optimizer_live(case):
    pytest.importorskip("torch")
    pytest.importorskip("pytorch_optimizer")
    if case.inner == "ranger":
        want = ref.torch_ranger_trajectory()
    else:
        want = ref.torch_lookahead_trajectory(case)
    _assert_trajectories_close(_sharpax_trajectory(case), want, case.inner)


def test_pullback_modes_change_the_trajectory():
    # Guards the parity tests against a pullback that silently does nothing (as the unmodified
    # reference's does on Adam): the three modes must give three different trajectories.
    runs = [_sharpax_trajectory(ref.Case("adam", 3, 0.8, m)) for m in ("none", "reset", "pullback")]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(runs[i]["params/w"] - runs[j]["params/w"]).max() > 1e-3


def _sgd_run(tx, steps, x0=1.0):
    """Plain loop on L(x) = x^2 / 2 (gradient x); returns params and slow weights after each step."""
    params = jnp.array([x0])
    state = tx.init(params)
    fast, slow = [], []
    for _ in range(steps):
        updates, state = tx.update(params, state, params)
        params = optax.apply_updates(params, updates)
        fast.append(float(params[0]))
        slow.append(float(sharpax.lookahead_params(state, params)[0]))
    return fast, slow


def test_hand_derived_trajectory():
    # SGD lr 0.1 on x^2/2 multiplies the fast weight by 0.9 each step. k = 2, alpha = 0.5, x0 = 1:
    # step 1: fast 0.9                                 slow 1
    # step 2: fast 0.81 -> slow 1 + 0.5 (0.81 - 1) = 0.905, fast <- 0.905
    # step 3: fast 0.8145                              slow 0.905
    # step 4: fast 0.73305 -> slow 0.905 + 0.5 (0.73305 - 0.905) = 0.819025, fast <- 0.819025
    # step 5: fast 0.7371225                           slow 0.819025
    # step 6: fast 0.66341025 -> slow 0.819025 + 0.5 (0.66341025 - 0.819025) = 0.741217625
    fast, slow = _sgd_run(sharpax.lookahead(sharpax.sgd(0.1), sync_period=2, alpha=0.5), 6)
    np.testing.assert_allclose(
        fast, [0.9, 0.905, 0.8145, 0.819025, 0.7371225, 0.741217625], rtol=1e-6
    )
    np.testing.assert_allclose(
        slow, [1.0, 0.905, 0.905, 0.819025, 0.819025, 0.741217625], rtol=1e-6
    )


def test_alpha_schedule_is_read_at_the_update_count():
    # k = 2: syncs happen at counts 1 and 3. alpha(1) = 0.5 gives 0.905 as above; alpha(3) = 1 takes
    # the fast weights as they are: 0.905 * 0.81 = 0.73305. alpha = 0 would freeze the slow weights.
    schedule = lambda count: jnp.where(count < 2, 0.5, 1.0)
    fast, slow = _sgd_run(sharpax.lookahead(sharpax.sgd(0.1), 2, schedule), 4)
    np.testing.assert_allclose(fast, [0.9, 0.905, 0.8145, 0.73305], rtol=1e-6)
    _, slow = _sgd_run(sharpax.lookahead(sharpax.sgd(0.1), 2, 0.0), 4)
    np.testing.assert_allclose(slow, [1.0] * 4)


def test_k1_alpha1_is_the_inner_optimizer():
    params = {"w": jnp.array([0.3, -2.0]), "b": jnp.array(1.5)}
    grads = {"w": jnp.array([0.5, 1.0]), "b": jnp.array(-2.0)}
    inner, tx = sharpax.adam(0.1), sharpax.lookahead(sharpax.adam(0.1), 1, 1.0)
    p_inner, s_inner, p, s = params, inner.init(params), params, tx.init(params)
    for _ in range(3):
        u, s_inner = inner.update(grads, s_inner, p_inner)
        p_inner = optax.apply_updates(p_inner, u)
        u, s = tx.update(grads, s, p)
        p = optax.apply_updates(p, u)
    chex_close = functools.partial(np.testing.assert_allclose, rtol=1e-6)
    jax.tree.map(chex_close, p, p_inner)
    jax.tree.map(chex_close, sharpax.lookahead_params(s, p), p_inner)


def test_sync_update_lands_on_the_interpolated_point():
    key = jax.random.key(0)
    params = {"a": jax.random.normal(key, (64,)), "b": jax.random.normal(key, (8, 8)) * 100}
    tx = sharpax.lookahead(sharpax.adam(0.3), sync_period=3, alpha=0.3)
    inner = sharpax.adam(0.3)  # run alongside to know the fast weights before each sync
    state, inner_state = tx.init(params), inner.init(params)
    update = jax.jit(tx.update)
    slow_before = jax.tree.map(np.asarray, params)
    for step in range(6):
        grads = jax.tree.map(lambda x, step=step: jnp.sin(x) + step, params)
        updates, state = update(grads, state, params)
        inner_updates, inner_state = inner.update(grads, inner_state, params)
        before, params = params, optax.apply_updates(params, updates)
        if step % 3 != 2:
            # (compiled separately, the two can differ in the last bit)
            np.testing.assert_allclose(updates["a"], inner_updates["a"], rtol=1e-6)
            continue
        for name in params:
            fast = np.asarray(before[name] + inner_updates[name])
            want = slow_before[name] + np.float32(0.3) * (fast - slow_before[name])
            # Up to the rounding of before + (want - before): half an ulp of |want - before| for the
            # jump, half an ulp of |want| for the sum (pytorch_optimizer copies; it is exact), and
            # an ulp for the fast weights computed here and there.
            bound = 2 * np.finfo(np.float32).eps * (np.abs(want - before[name]) + np.abs(want))
            assert np.all(np.abs(params[name] - want) <= bound)
        # The params after a sync are the slow weights, bit for bit, now and after the next update.
        slow_before = jax.tree.map(np.asarray, params)
        jax.tree.map(np.testing.assert_array_equal, sharpax.lookahead_params(state, params), params)


def _probe():
    """A transform that passes updates through and keeps one float in its state (e.g. a monitor)."""

    def init_fn(params):
        del params
        return {"last_norm": jnp.zeros([])}

    def update_fn(updates, state, params=None):
        del params
        return updates, {"last_norm": state["last_norm"] + optax.tree.norm(updates)}

    return optax.GradientTransformation(init_fn, update_fn)


def test_reset_state_clears_nan_in_the_inner_state():
    tx = sharpax.lookahead(optax.chain(_probe(), sharpax.sgd(0.1)), 2, 0.5, reset_state=True)
    params = jnp.array([1.0, 2.0])
    state = tx.init(params)
    updates, state = tx.update(params, state, params)  # step 1: no sync
    params = optax.apply_updates(params, updates)
    assert float(state.inner_state[0]["last_norm"]) > 0
    poisoned = state._replace(
        inner_state=(({"last_norm": jnp.array(jnp.nan)}), state.inner_state[1])
    )
    updates, state = tx.update(params, poisoned, params)  # step 2: sync, inner state re-initialised
    assert float(state.inner_state[0]["last_norm"]) == 0.0
    assert np.all(np.isfinite(updates))
    # Without reset the NaN stays, and is still confined to the monitor.
    tx = sharpax.lookahead(optax.chain(_probe(), sharpax.sgd(0.1)), 2, 0.5)
    state = tx.init(params)
    _, state = tx.update(params, state, params)
    state = state._replace(inner_state=(({"last_norm": jnp.array(jnp.nan)}), state.inner_state[1]))
    updates, state = tx.update(params, state, params)
    assert np.isnan(state.inner_state[0]["last_norm"]) and np.all(np.isfinite(updates))


def test_reset_state_restarts_adam():
    # After a reset sync the inner Adam starts over: its next step has magnitude lr (first Adam step).
    tx = sharpax.lookahead(sharpax.adam(0.1), 2, 0.5, reset_state=True)
    params = jnp.array([1.0, -3.0])
    state = tx.init(params)
    for _ in range(2):
        updates, state = tx.update(jnp.array([2.0, 0.5]), state, params)
        params = optax.apply_updates(params, updates)
    assert int(state.inner_state[0].count) == 0
    updates, _ = tx.update(jnp.array([4.0, -1.0]), state, params)
    np.testing.assert_allclose(updates, [-0.1, 0.1], rtol=1e-5)


def _python_scalar_state():
    """A transform keeping Python scalars in its state (a flag, a float), as optax allows."""

    class FlagState(NamedTuple):
        flag: bool
        scale: float

    return optax.GradientTransformation(
        lambda params: FlagState(True, 1.0), lambda u, s, p=None: (u, s._replace(flag=False))
    )


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_reset_state_with_python_scalars_in_the_inner_state(jit):
    """The reset re-initialises an inner state holding Python scalars (optax.tree.cast_like called
    `.astype` on them), and the trajectory is that of the same inner optimizer without them."""
    with_flags = sharpax.lookahead(
        optax.chain(sharpax.adam(0.1), _python_scalar_state()), 2, 0.5, reset_state=True
    )
    plain = sharpax.lookahead(sharpax.adam(0.1), 2, 0.5, reset_state=True)
    runs = []
    for tx in (with_flags, plain):
        update = jax.jit(tx.update) if jit else tx.update
        params = jnp.array([1.0, -3.0])
        state = tx.init(params)
        for t in range(5):
            updates, state = update(jnp.array([2.0, 0.5]) * (t + 1), state, params)
            params = optax.apply_updates(params, updates)
        runs.append((params, state))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    flags = runs[0][1].inner_state[1]
    assert not bool(flags.flag) and flags.flag.dtype == jnp.bool_  # the 5th step did not sync
    assert float(flags.scale) == 1.0


@pytest.mark.parametrize("batched", [False, True])
def test_nan_in_the_branch_not_taken_does_not_leak(batched):
    # Non-sync step with slow weights of inf/NaN: the sync arithmetic would give NaN; the update must
    # be the inner one. Under vmap (an ensemble with per-member state) lax.cond becomes a select, so
    # both branches are computed: the select must still keep the NaN out.
    tx = sharpax.lookahead(sharpax.sgd(0.1, momentum=0.9), 3, 0.5, pullback_momentum="pullback")
    params = jnp.array([1.0, 2.0])

    def step(params, state):
        return tx.update(params, state, params)

    state = tx.init(params)
    state = state._replace(
        slow=jnp.array([jnp.inf, jnp.nan]), slow_momentum=(jnp.array([jnp.nan, jnp.inf]),)
    )
    if batched:
        state = jax.tree.map(lambda x: jnp.stack([x, x]), state)
        params = jnp.stack([params, params])
        updates, new_state = jax.vmap(step)(params, state)
    else:
        updates, new_state = step(params, state)
    np.testing.assert_allclose(updates, -0.1 * params, rtol=1e-6)
    assert np.all(np.isfinite(new_state.inner_state[0].buf))


def test_forwards_extra_args_to_the_inner_transform():
    # A dummy inner that needs `grad_fn` (as SAM does): it steps along -0.1 * grad_fn(params).
    def init_fn(params):
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, grad_fn):
        return jax.tree.map(lambda g: -0.1 * g, grad_fn(params)), state

    needs_grad_fn = optax.GradientTransformationExtraArgs(init_fn, update_fn)
    grad_fn = jax.grad(lambda p: 0.5 * jnp.sum(p**2))
    params = jnp.array([1.0])
    for tx in (
        sharpax.lookahead(needs_grad_fn, 2, 0.5),
        optax.chain(optax.identity(), sharpax.lookahead(needs_grad_fn, 2, 0.5)),
    ):
        state = tx.init(params)
        p = params
        for _ in range(2):  # the hand-derived trajectory again, with gradients from grad_fn
            updates, state = tx.update(jnp.zeros(1), state, p, grad_fn=grad_fn)
            p = optax.apply_updates(p, updates)
        np.testing.assert_allclose(p, [0.905], rtol=1e-6)
    with pytest.raises(TypeError, match="grad_fn"):
        tx = sharpax.lookahead(needs_grad_fn)
        tx.update(jnp.zeros(1), tx.init(params), params)


def test_in_a_chain_with_a_transform_after_it_that_keeps_the_updates():
    # keep_params_nonnegative changes nothing while the params stay positive (they do here): the run is
    # the run of lookahead alone, sync steps included, and lookahead_params finds the state in the chain.
    params = {"w": jnp.array([3.0, 4.0])}
    grads = lambda p: {"w": p["w"] - 2.0}
    alone = sharpax.lookahead(sharpax.adam(0.1), 3, 0.5)
    chained = optax.chain(
        sharpax.lookahead(sharpax.adam(0.1), 3, 0.5), optax.keep_params_nonnegative()
    )
    p1, s1, p2, s2 = params, alone.init(params), params, chained.init(params)
    for _ in range(9):
        u1, s1 = alone.update(grads(p1), s1, p1)
        p1 = optax.apply_updates(p1, u1)
        u2, s2 = chained.update(grads(p2), s2, p2)
        p2 = optax.apply_updates(p2, u2)
        np.testing.assert_array_equal(p1["w"], p2["w"])
        np.testing.assert_array_equal(
            sharpax.lookahead_params(s1, p1)["w"], sharpax.lookahead_params(s2, p2)["w"]
        )


def test_in_a_chain_with_a_transform_after_it_that_changes_the_updates():
    # chain(lookahead(sgd(0.1), k=2, alpha=0.5), scale(0.5)): the documented behaviour. The scale
    # halves the fast steps *and* the sync jump; lookahead reads the fast weights from the params it is
    # given and takes the params after a sync as the slow weights, so both follow the params the
    # caller really has. On x^2/2 from x0 = 1:
    # step 1: inner update -0.1 -> params 1 - 0.05 = 0.95                           slow 1
    # step 2: inner update -0.095, fast 0.855, slow 1 + 0.5 (0.855 - 1) = 0.9275,
    #         jump 0.9275 - 0.95 = -0.0225, halved -> params 0.93875 (not 0.9275),
    #         and the slow weights are where the params landed: 0.93875
    # step 3: inner update -0.093875 -> params 0.93875 - 0.0469375 = 0.8918125       slow 0.93875
    # step 4: inner update -0.08918125, fast 0.80263125,
    #         interpolated 0.93875 + 0.5 (0.80263125 - 0.93875) = 0.870690625,
    #         jump 0.870690625 - 0.8918125 = -0.021121875, halved -> params 0.8812515625 = slow
    tx = optax.chain(sharpax.lookahead(sharpax.sgd(0.1), 2, 0.5), optax.scale(0.5))
    fast, slow = _sgd_run(tx, 4)
    np.testing.assert_allclose(fast, [0.95, 0.93875, 0.8918125, 0.8812515625], rtol=1e-6)
    np.testing.assert_allclose(slow, [1.0, 0.93875, 0.93875, 0.8812515625], rtol=1e-6)


def test_lookahead_params_finds_the_state_anywhere():
    # k = 2: after 3 updates the slow weights are the params after update 2, not the current ones.
    params = {"w": jnp.array([1.0, 2.0]), "n": jnp.array(3, jnp.int32)}
    grads = {"w": jnp.array([1.0, -1.0]), "n": np.zeros((), jax.dtypes.float0)}

    def run(tx, params, grads):
        state, history = tx.init(params), []
        for _ in range(3):
            updates, state = tx.update(grads, state, params)
            params = {**params, "w": params["w"] + updates["w"]}  # apply_updates rejects float0
            history.append(params)
        assert updates["n"].dtype == jax.dtypes.float0  # integer leaves pass through
        return state, history

    for tx in (
        optax.chain(optax.identity(), sharpax.ranger(0.1, sync_period=2)),
        sharpax.lookahead(sharpax.sgd(0.1), 2, 0.5),
    ):
        state, history = run(tx, params, grads)
        slow = sharpax.lookahead_params(state, history[-1])
        assert int(slow["n"]) == 3  # no slow copy of integer leaves: taken from params
        np.testing.assert_array_equal(slow["w"], history[1]["w"])
        assert np.all(slow["w"] != history[2]["w"])
    w = {"w": params["w"]}  # these need one dtype, no float0 (strict promotion)
    for tx in (
        optax.inject_hyperparams(sharpax.ranger, static_args=("sync_period",))(
            learning_rate=0.1, sync_period=2
        ),
        optax.apply_if_finite(
            sharpax.lookahead(sharpax.sgd(0.1), 2, 0.5), max_consecutive_errors=3
        ),
    ):
        state = tx.init(w)
        history = []
        p = w
        for _ in range(3):
            updates, state = tx.update({"w": grads["w"]}, state, p)
            p = optax.apply_updates(p, updates)
            history.append(p)
        np.testing.assert_array_equal(sharpax.lookahead_params(state, p)["w"], history[1]["w"])
    with pytest.raises(ValueError, match="found 0"):
        sharpax.lookahead_params(sharpax.adam().init(params), params)
    twice = optax.chain(sharpax.lookahead(sharpax.sgd(0.1)), sharpax.lookahead(sharpax.sgd(0.1)))
    with pytest.raises(ValueError, match="found 2"):
        sharpax.lookahead_params(twice.init(params), params)


def test_memory_is_one_extra_copy_of_the_params():
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32, jnp.bfloat16)}
    nbytes = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))
    inner = lambda: sharpax.adam(1e-3)
    base = nbytes(jax.eval_shape(inner().init, params))
    wrapped = nbytes(jax.eval_shape(sharpax.lookahead(inner()).init, params))
    assert wrapped == base + nbytes(params) + 4 + 1  # the slow weights, an int32 count, a bool
    pullback = sharpax.lookahead(inner(), pullback_momentum="pullback")
    assert nbytes(jax.eval_shape(pullback.init, params)) == wrapped + nbytes(
        params
    )  # + slow momentum


def test_jit_donation_bfloat16_and_sharding():
    mesh = jax.make_mesh((8,), ("d",))
    sharding = jax.NamedSharding(mesh, jax.P("d"))
    params = {
        "w": jax.device_put(jnp.linspace(-1, 1, 64, dtype=jnp.float32), sharding),
        "h": jnp.ones(8, jnp.bfloat16),
    }
    tx = sharpax.lookahead(sharpax.adam(0.01), 2, 0.5, pullback_momentum="pullback")
    state = tx.init(params)
    assert state.slow["w"].sharding == sharding

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state):
        grads = jax.tree.map(jnp.sin, params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(4):
        params, state = step(params, state)
    assert params["h"].dtype == jnp.bfloat16 and state.slow["h"].dtype == jnp.bfloat16
    assert state.slow["w"].sharding.is_equivalent_to(sharding, 1)
    assert all(np.all(np.isfinite(np.asarray(x, np.float32))) for x in jax.tree.leaves(state.slow))


# Bad arguments: the rows of tests/bad_input_table.py.


@pytest.mark.parametrize("mode", ["reset", "pullback"])
def test_pullback_needs_a_momentum_buffer(mode):
    tx = sharpax.lookahead(sharpax.adagrad(0.1), pullback_momentum=mode)
    with pytest.raises(ValueError, match="needs a first-moment buffer"):
        tx.init(jnp.zeros(2))
    # optax's own momentum (field `trace`) is found.
    sharpax.lookahead(optax.sgd(0.1, momentum=0.9), pullback_momentum=mode).init(jnp.zeros(2))


def test_update_needs_params():
    tx = sharpax.lookahead(sharpax.sgd(0.1))
    with pytest.raises(ValueError, match="needs params"):
        tx.update(jnp.zeros(2), tx.init(jnp.zeros(2)))


@pytest.mark.loose_promotion
def test_flax_train_state():
    import flax.linen as nn
    from flax.training import train_state

    model = nn.Dense(3)
    x = jnp.ones((4, 2))
    params = model.init(jax.random.key(0), x)["params"]
    ts = train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=sharpax.lookahead(sharpax.radam(0.1), 2)
    )
    loss = lambda p: jnp.sum(ts.apply_fn({"params": p}, x) ** 2)
    history = []
    for _ in range(3):  # k = 2: the slow weights are the params after update 2
        ts = ts.apply_gradients(grads=jax.grad(loss)(ts.params))
        history.append(ts.params)
    slow = sharpax.lookahead_params(ts.opt_state, ts.params)
    jax.tree.map(np.testing.assert_array_equal, slow, history[1])
    assert np.all(slow["kernel"] != ts.params["kernel"])


@pytest.mark.loose_promotion
def test_flax_nnx_optimizer():
    from flax import nnx

    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, sharpax.lookahead(sharpax.radam(0.1), 2), wrt=nnx.Param)
    x = jnp.ones((4, 2))
    history = []
    for _ in range(3):
        grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
        optimizer.update(model, grads)
        history.append(np.asarray(model.kernel[...]))
    slow = sharpax.lookahead_params(
        nnx.as_pure(optimizer.opt_state), nnx.as_pure(nnx.state(model, nnx.Param))
    )
    np.testing.assert_array_equal(slow["kernel"], history[1])
    assert np.all(slow["kernel"] != history[2])
