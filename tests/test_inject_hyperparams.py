"""Hyperparameters at run time: `sharpax.inject_hyperparams` is bit-identical to the static optimizer,
a learning rate changed between steps does not recompile, and the current value can be read back."""

from __future__ import annotations

import dataclasses
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from tests.optimizer_table import CASES, OPTION_CASES
from tests.references.torch_reference import load_inputs

STEPS = 30


def _problem():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(k1, (32, 4))
    y = jax.random.normal(k2, (32,))
    params = {"w": jax.random.normal(k3, (4, 8)) * 0.5, "b": jnp.zeros(8), "v": jnp.ones(8) * 0.1}

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w"] + p["b"][None, :]) @ p["v"] - y) ** 2)

    return params, loss


def _train(tx, steps=STEPS, between=None, max_traces=None):
    """`steps` updates of one jitted step (update and apply fused, as in a training loop).

    `between(i, state)` may replace the state before step i; with `max_traces`, the step fails once it
    is traced (compiled) more often. Returns the params and the step function (for its compilation
    count)."""
    params, loss = _problem()

    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    if max_traces is not None:
        step = chex.assert_max_traces(step, n=max_traces)
    step = jax.jit(step)
    state = tx.init(params)
    for i in range(steps):
        if between is not None:
            state = between(i, state)
        params, state = step(params, state)
    return params, state, step


def _assert_bitwise(a, b):
    chex.assert_trees_all_equal(a, b)


def _non_unit_lr(case):
    # A static learning rate of exactly 1.0 is the documented XLA exception (see below).
    kwargs = dict(case.kwargs)
    if kwargs.get("learning_rate") == 1.0:
        kwargs["learning_rate"] = 0.5
    return dataclasses.replace(case, kwargs=kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_injected_learning_rate_is_bit_identical_to_static(case):
    case = _non_unit_lr(case)
    static, _, _ = _train(case.build())
    injected, state, _ = _train(sharpax.inject_hyperparams(case.make)(**case.kwargs))
    _assert_bitwise(injected, static)
    assert sharpax.current_learning_rate(state) == np.float32(case.kwargs["learning_rate"])


def test_decoupled_weight_decay_can_be_injected_bit_identically():
    kwargs = dict(learning_rate=1e-2, weight_decay=0.1)
    static, _, _ = _train(sharpax.adamw(**kwargs))
    tx = sharpax.inject_hyperparams(sharpax.adamw, ("learning_rate", "weight_decay"))(**kwargs)
    injected, state, _ = _train(tx)
    _assert_bitwise(injected, static)
    assert sharpax.current_hyperparams(state)["weight_decay"] == np.float32(0.1)


def test_why_optax_default_drifts():
    """optax injects b1, b2, eps too. A constant `1 - b1` is folded in float64 and rounded once; a
    traced one is a float32 subtraction, and the two differ (the root of optax issue 1532)."""
    assert np.float32(1 - 0.9) != np.float32(1) - np.float32(0.9)
    assert np.float32(1 - 0.999) != np.float32(1) - np.float32(0.999)
    static, _, _ = _train(sharpax.adam(1e-2))
    everything, _, _ = _train(optax.inject_hyperparams(sharpax.adam)(learning_rate=1e-2))
    # close, but not the same trajectory
    for key in static:
        np.testing.assert_allclose(everything[key], static[key], rtol=1e-3, atol=1e-4)


def test_unit_learning_rate_differs_only_through_xla_fusion():
    """lr == 1.0 exactly: XLA rewrites the static `p + (-1.0) * u` as `p - u`, which fuses differently
    from a multiply by a traced 1.0. The optimizer update itself is still bit-identical."""
    params, loss = _problem()
    grads = jax.grad(loss)(params)
    static_tx = sharpax.adadelta(1.0)
    injected_tx = sharpax.inject_hyperparams(sharpax.adadelta)(learning_rate=1.0)
    s_static, s_injected = static_tx.init(params), injected_tx.init(params)
    update_static, update_injected = jax.jit(static_tx.update), jax.jit(injected_tx.update)
    for _ in range(20):
        u_static, s_static = update_static(grads, s_static, params)
        u_injected, s_injected = update_injected(grads, s_injected, params)
        _assert_bitwise(u_injected, u_static)


def test_changing_the_learning_rate_does_not_recompile_and_matches_a_piecewise_schedule():
    lrs = {0: 1e-2, 10: 3e-3, 20: 1e-3}

    def between(i, state):
        return sharpax.set_hyperparams(state, learning_rate=lrs[i]) if i in lrs else state

    tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=5.0)  # overwritten before step 0
    # one compilation for all 30 steps and 3 learning rates
    injected, state, _ = _train(tx, between=between, max_traces=1)
    assert sharpax.current_learning_rate(state) == np.float32(1e-3)

    piecewise = sharpax.join_schedules(
        [lambda c, v=v: jnp.full(c.shape, v, jnp.float32) for v in lrs.values()], [10, 20]
    )
    static, _, _ = _train(sharpax.adam(piecewise))
    _assert_bitwise(injected, static)


def test_a_python_float_in_the_state_would_recompile():
    """Why `set_hyperparams` casts: a weakly typed Python float is a new jit signature."""
    tx = sharpax.inject_hyperparams(sharpax.sgd)(learning_rate=0.1)

    def between(i, state):
        if i == 3:
            return state._replace(hyperparams={**state.hyperparams, "learning_rate": 0.05})
        return state

    _, _, step = _train(tx, steps=5, between=between)
    assert step._cache_size() == 2


def test_injected_schedule_is_bit_identical_and_logged():
    schedule = sharpax.warmup_cosine_decay(1e-2, 5, 40, end_value=1e-4)
    static, _, _ = _train(sharpax.adam(schedule))
    tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=schedule)
    injected, _, _ = _train(tx)
    _assert_bitwise(injected, static)

    # The logged value is the one the last update used.
    params, _ = _problem()
    state = tx.init(params)
    assert sharpax.current_learning_rate(state) == schedule(0)
    for count in range(7):
        _, state = tx.update(params, state, params)
        assert sharpax.current_learning_rate(state) == schedule(count)


def test_current_learning_rate_reads_optax_states_and_nested_states():
    params = jnp.zeros(3)
    optax_state = optax.inject_hyperparams(optax.sgd)(learning_rate=0.3).init(params)
    assert sharpax.current_learning_rate(optax_state) == np.float32(0.3)
    chained = optax.chain(
        optax.clip_by_global_norm(1.0), sharpax.inject_hyperparams(sharpax.sgd)(learning_rate=0.2)
    )
    state = chained.init(params)
    assert sharpax.current_learning_rate(state) == np.float32(0.2)
    state = sharpax.set_hyperparams(state, learning_rate=0.7)
    assert sharpax.current_learning_rate(state) == np.float32(0.7)
    assert state[1].hyperparams["learning_rate"].dtype == jnp.float32
    updates, _ = chained.update(jnp.ones(3) * 0.1, state)
    np.testing.assert_allclose(updates, -0.07 * np.ones(3), rtol=1e-6)


def test_errors_are_readable():
    with pytest.raises(ValueError, match="dynamic must name parameters of adam"):
        sharpax.inject_hyperparams(sharpax.adam, ("lr",))
    with pytest.raises(ValueError, match="exactly one injected-hyperparameter state"):
        sharpax.current_learning_rate(sharpax.adam(1e-3).init(jnp.zeros(2)))
    tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=sharpax.linear_warmup(1e-3, 5))
    state = tx.init(jnp.zeros(2))
    with pytest.raises(ValueError, match="learning_rate follows a schedule"):
        sharpax.set_hyperparams(state, learning_rate=1e-4)
    with pytest.raises(ValueError, match="b1 is not injected"):
        sharpax.set_hyperparams(state, b1=0.5)
    only_b1 = sharpax.inject_hyperparams(sharpax.adam, "b1")(1e-3)
    with pytest.raises(ValueError, match="no learning_rate"):
        sharpax.current_learning_rate(only_b1.init(jnp.zeros(2)))


@pytest.mark.parametrize("factory", [sharpax.sgd, sharpax.rmsprop, sharpax.adam, sharpax.adagrad])
def test_optax_inject_hyperparams_builds_the_same_chain_in_init_and_update(factory):
    """A hyperparameter that removes a block when it is a known 0 (momentum, weight decay, lr_decay)
    must not do so for a concrete array in `init` and a tracer in `update`."""
    tx = optax.inject_hyperparams(factory)(learning_rate=0.1)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(params, state, params)
    assert np.all(np.isfinite(updates["w"]))


def test_with_untuned_warmup_matches_the_scheduled_learning_rate():
    lr, b2 = 1e-2, 0.9
    for shape, factor in [
        ("linear", sharpax.untuned_linear_warmup(b2)),
        ("exponential", sharpax.untuned_exponential_warmup(b2)),
    ]:
        wrapped, _, _ = _train(sharpax.with_untuned_warmup(sharpax.adam(lr, b2=b2), b2, shape))
        scheduled, _, _ = _train(sharpax.adam(sharpax.multiply_schedules(factor, lr), b2=b2))
        for key in wrapped:  # u * lr * w versus u * (lr * w): float rounding only
            np.testing.assert_allclose(wrapped[key], scheduled[key], rtol=1e-5, atol=1e-6)


def test_scale_by_schedule_leaves_integer_leaves_alone():
    tx = optax.chain(sharpax.sgd(1.0), sharpax.scale_by_schedule(lambda c: 0.5))
    params = {"w": jnp.ones(2), "step": jnp.array(3, jnp.int32)}
    grads = {"w": jnp.ones(2), "step": jnp.array(7, jnp.int32)}
    updates, state = tx.update(grads, tx.init(params), params)
    np.testing.assert_array_equal(updates["w"], -0.5 * np.ones(2, np.float32))
    assert updates["step"] == 7 and updates["step"].dtype == jnp.int32
    assert state[1].count == 1


@pytest.mark.parametrize(
    "make,kwargs",
    [
        (sharpax.sgd, dict(learning_rate=0.01, momentum=0.9)),
        (sharpax.adam, dict(learning_rate=1e-2)),
    ],
    ids=["sgd_momentum", "adam"],
)
def test_bfloat16_params_are_bit_identical_too(make, kwargs):
    """The injected learning rate takes the params' dtype, as a Python float would (weak typing)."""
    params = {"w": (jnp.arange(8.0) / 7 - 0.5).astype(jnp.bfloat16)}

    def loss(p):
        return jnp.sum((p["w"].astype(jnp.float32) - 0.3) ** 2 * jnp.arange(8.0))

    def train(tx):
        step = jax.jit(lambda p, s: _apply(tx, jax.grad(loss)(p), s, p))
        p, s = params, tx.init(params)
        for _ in range(20):
            p, s = step(p, s)
        return p, s

    static, _ = train(make(**kwargs))
    injected, state = train(sharpax.inject_hyperparams(make)(**kwargs))
    _assert_bitwise(injected, static)
    assert injected["w"].dtype == jnp.bfloat16
    assert sharpax.current_learning_rate(state).dtype == jnp.bfloat16


def _apply(tx, grads, state, params):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state


# Hyperparameters whose known zero removes a block from an optimizer's chain.
BLOCK_GATES = ("weight_decay", "momentum", "dampening", "lr_decay")
# The table's cases where one of them is a zero (default or given): optax's wrapper changes these.
OPTAX_CHANGES_STRUCTURE = {"sgd", "sgd_nesterov", "adam", "rmsprop", "nadam", "radam"}


def _paths(state):
    flat = jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: x is None)[0]
    return [jax.tree_util.keystr(path) for path, _ in flat]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_inner_state_structure_under_each_inject_hyperparams(case):
    """What each wrapper gives (documented at `sharpax.inject_hyperparams`): sharpax's keeps the plain
    optimizer's state as its inner state; optax's adds the blocks of zero hyperparameters, unless they
    are passed as `static_args`."""
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    plain = _paths(case.build().init(params))
    ours = sharpax.inject_hyperparams(case.make)(**case.kwargs)
    assert _paths(ours.init(params).inner_state) == plain
    theirs = optax.inject_hyperparams(case.make)(**case.kwargs)
    assert (_paths(theirs.init(params).inner_state) != plain) == (
        case.id in OPTAX_CHANGES_STRUCTURE
    )
    gates = [name for name in BLOCK_GATES if name in inspect.signature(case.make).parameters]
    kept = optax.inject_hyperparams(case.make, static_args=gates)(**case.kwargs)
    assert _paths(kept.init(params).inner_state) == plain


def test_a_plain_checkpoint_resumes_under_sharpax_inject_hyperparams():
    """The plain `sgd(lr, momentum=0)` state (nothing but an empty chain) goes into the injected
    state as it is, and training continues bit for bit; optax's wrapper has a momentum buffer there."""
    params, loss = _problem()
    plain = sharpax.sgd(0.1)
    state = plain.init(params)
    for _ in range(3):
        updates, state = plain.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    restored = jax.tree.map(np.asarray, (params, state))  # what a checkpoint gives back

    injected = sharpax.inject_hyperparams(sharpax.sgd)(learning_rate=0.1)
    p, s = restored[0], injected.init(restored[0])._replace(inner_state=restored[1])
    for _ in range(3):
        u, s = injected.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, u)
        updates, state = plain.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    for got, want in zip(jax.tree.leaves(p), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(got, want)
    theirs = optax.inject_hyperparams(sharpax.sgd)(learning_rate=0.1).init(restored[0])
    assert jax.tree.structure(theirs.inner_state) != jax.tree.structure(restored[1])


def test_set_hyperparams_keeps_the_sharding_of_the_value_it_replaces():
    """A learning rate replicated over 8 devices stays so (it came back on one device: in a
    multi-process job a host-local array, which orbax refuses to checkpoint)."""
    mesh = jax.make_mesh((8,), ("data",))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=1e-2)
    state = jax.device_put(tx.init({"w": jnp.ones(8)}), replicated)
    state = sharpax.set_hyperparams(state, learning_rate=1e-3)
    lr = state.hyperparams["learning_rate"]
    assert lr.sharding == replicated and float(lr) == np.float32(1e-3)


# ---- optax.inject_hyperparams over sharpax's optimizers ----

# Under jit the hyperparameters are tracers, which is where a chain built from their values breaks;
# the `*_defaults` cases inject every default (zeros included). Eagerly they are concrete, so a few
# cases suffice there.
DEFAULTS = [case for case in OPTION_CASES if case.id.endswith("_defaults")]
INJECT_CASES = [
    *(pytest.param(case, True, id=f"{case.id}-jit") for case in CASES + DEFAULTS),
    *(pytest.param(case, False, id=f"{case.id}-nojit") for case in CASES[::4]),
]


@pytest.mark.parametrize(("case", "jit"), INJECT_CASES)
def test_optax_inject_hyperparams_updates_equal_the_plain_ones(case, jit):
    """Every float hyperparameter becomes state (defaults included); the updates equal the plain ones."""
    params = {"a": jnp.linspace(-1.0, 1.0, 3), "b": jnp.ones((2, 2))}
    grads = [jax.tree.map(lambda p, k=k: jnp.cos(p * (k + 1)), params) for k in range(2)]
    injected = optax.inject_hyperparams(case.make)(**case.kwargs)
    plain = case.build()

    def both(g, states):  # one compilation for the two optimizers
        (u_inj, s_inj), (u_plain, s_plain) = (
            injected.update(g, states[0], params),
            plain.update(g, states[1], params),
        )
        return (u_inj, u_plain), (s_inj, s_plain)

    both = jax.jit(both) if jit else both
    states = (injected.init(params), plain.init(params))
    for g in grads:  # the first step is special (momentum seeds, bias corrections), so two
        (u_inj, u_plain), states = both(g, states)
        chex.assert_trees_all_close(u_inj, u_plain, rtol=2e-6, atol=1e-7)
    assert "learning_rate" in states[0].hyperparams


def test_inject_hyperparams_changes_the_learning_rate_in_the_state():
    tx = optax.inject_hyperparams(sharpax.adam)(learning_rate=1e-3)
    p = jnp.ones(2)
    state = tx.init(p)
    state.hyperparams["learning_rate"] = jnp.asarray(0.5)
    u, _ = jax.jit(tx.update)(p, state, p)
    np.testing.assert_allclose(u, [-0.5, -0.5], rtol=1e-6)


def test_bsam_under_inject_hyperparams():
    # Every number becomes state (the seed too, as an int32 array); the step is the plain one.
    loss = lambda w: 0.5 * jnp.sum(w**2) + jnp.sum(jnp.sin(w))
    w = jnp.linspace(-1.0, 1.0, 5)
    injected = optax.inject_hyperparams(sharpax.bsam)(learning_rate=0.1, num_data=10, rho=0.1)
    plain = sharpax.bsam(0.1, num_data=10, rho=0.1)

    @jax.jit
    def both(states):
        return [
            tx.update(None, s, w, grad_fn=jax.grad(loss))[0]
            for tx, s in zip((injected, plain), states, strict=True)
        ]

    u_injected, u_plain = both((injected.init(w), plain.init(w)))
    np.testing.assert_allclose(u_injected, u_plain, rtol=1e-6)


def test_radam_traced_threshold_decides_like_the_static_one():
    """optax.inject_hyperparams makes b2 and threshold traced: rho_t is then compared in float32.

    On the torch parity problem (50 steps), where the rectifier switches on within the run."""
    params, grads = load_inputs()

    def trajectory(tx):
        @jax.jit
        def step(p, s, g):
            updates, s = tx.update(g, s, p)
            return optax.apply_updates(p, updates), s

        p = {k: jnp.asarray(v) for k, v in params.items()}
        s, out = tx.init(p), []
        for t in range(next(iter(grads.values())).shape[0]):
            p, s = step(p, s, {k: jnp.asarray(v[t]) for k, v in grads.items()})
            out.append(p)
        return out

    static = trajectory(sharpax.radam(1e-2, b2=0.99, threshold=6.0))
    injected = optax.inject_hyperparams(sharpax.radam)(learning_rate=1e-2, b2=0.99, threshold=6.0)
    chex.assert_trees_all_close(trajectory(injected), static, rtol=2e-6, atol=1e-7)
