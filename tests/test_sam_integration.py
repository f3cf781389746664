"""The SAM family in the places it is used: optax chains, wrappers forwarding extra args, flax
TrainState and BatchNorm (the batch statistics of the first pass), nnx.Optimizer, sharded batches."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax

LOSS = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
W = jnp.array([3.0, 1.0])


def _scale_by_extra_arg():
    """A base optimizer that needs an extra arg: u = -factor * g."""

    def update_fn(updates, state, params=None, *, factor, **extra):
        return jax.tree.map(lambda g: -factor * g, updates), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


def _forwarding_wrapper(inner):
    """The shape of a Lookahead-style wrapper: its own state around the inner one, extra args passed on."""

    def init_fn(params):
        return (jnp.zeros([], jnp.int32), inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        new_updates, inner_state = inner.update(updates, state[1], params, **extra_args)
        return new_updates, (state[0] + 1, inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@pytest.mark.parametrize(
    "make",
    [
        lambda base: sharpax.sam(base, 5.0),
        lambda base: sharpax.gsam(base, 5.0, 0.2),
        lambda base: sharpax.periodic_sam(base, 5.0, k=2),
        lambda base: sharpax.looksam(base, 5.0, k=2),
    ],
)
def test_extra_args_reach_the_base_through_chains_and_wrappers(make):
    g = jax.grad(LOSS)(W)
    reference, _ = make(sharpax.sgd(1.0)).update(
        g, make(sharpax.sgd(1.0)).init(W), W, grad_fn=jax.grad(LOSS)
    )
    for tx in [
        make(_scale_by_extra_arg()),
        optax.chain(make(_scale_by_extra_arg()), optax.identity()),
        _forwarding_wrapper(make(_scale_by_extra_arg())),
        _forwarding_wrapper(optax.chain(optax.identity(), make(_scale_by_extra_arg()))),
    ]:
        updates, _ = jax.jit(
            lambda s, tx=tx: tx.update(g, s, W, grad_fn=jax.grad(LOSS), factor=2.0)
        )(tx.init(W))
        np.testing.assert_allclose(updates, 2.0 * reference, rtol=1e-6)


def test_sam_hand_step():
    # g = (3, 4) at w = (3, 1); e = 5 g / ||g|| = (3, 4); the gradient at w + e = (6, 5) is (6, 20).
    tx = sharpax.sam(sharpax.sgd(1.0), 5.0)
    updates, _ = tx.update(jax.grad(LOSS)(W), tx.init(W), W, grad_fn=jax.grad(LOSS))
    np.testing.assert_allclose(updates, [-6.0, -20.0], rtol=1e-6)


def test_sam_transform_equals_value_and_grad_then_base():
    tx = sharpax.sam(sharpax.adam(0.1), 0.3, adaptive=True, eta=0.01)
    base = sharpax.adam(0.1)
    sam_grad = sharpax.sam_value_and_grad(LOSS, 0.3, adaptive=True, eta=0.01)
    a, b = tx.init(W), base.init(W)
    u_a, _ = tx.update(jax.grad(LOSS)(W), a, W, grad_fn=jax.grad(LOSS))
    u_b, _ = base.update(sam_grad(W)[1], b, W)
    np.testing.assert_allclose(u_a, u_b, rtol=1e-6)


# --- flax ---------------------------------------------------------------------------------------------


@pytest.mark.loose_promotion
def test_batchnorm_statistics_come_from_the_first_pass():
    nn = pytest.importorskip("flax.linen")

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.BatchNorm(use_running_average=False, momentum=0.5)(nn.Dense(4)(x))
            return nn.Dense(1)(nn.relu(x))

    x = jax.random.normal(jax.random.key(0), (8, 3))
    y = jnp.sum(x, axis=1, keepdims=True)
    variables = jax.jit(Net().init)(jax.random.key(1), x)

    def loss_fn(params, batch_stats, x, y):
        out, updates = Net().apply(
            {"params": params, "batch_stats": batch_stats}, x, mutable=["batch_stats"]
        )
        return jnp.mean((out - y) ** 2), updates["batch_stats"]

    @jax.jit  # one compilation for the three computations
    def run(params, stats):
        sam_out = sharpax.sam_value_and_grad(loss_fn, 0.5, has_aux=True)(params, stats, x, y)
        plain_out = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y)
        e = jax.tree.map(lambda g: 0.5 * g / optax.tree.norm(plain_out[1]), plain_out[1])
        _, second_stats = loss_fn(jax.tree.map(jnp.add, params, e), stats, x, y)
        return sam_out, plain_out, second_stats

    ((loss, new_stats), _), ((plain_loss, plain_stats), _), second_stats = run(
        variables["params"], variables["batch_stats"]
    )
    np.testing.assert_allclose(loss, plain_loss, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new_stats, plain_stats)
    # ... and not the statistics at the perturbed params w + e.
    differences = jax.tree.map(lambda a, b: np.abs(a - b).max(), new_stats, second_stats)
    assert max(jax.tree.leaves(differences)) > 1e-3


@pytest.mark.loose_promotion
def test_train_state_apply_gradients_unchanged():
    train_state = pytest.importorskip("flax.training.train_state")
    params = {"w": W}
    loss = lambda p: LOSS(p["w"])
    state = train_state.TrainState.create(apply_fn=None, params=params, tx=sharpax.adam(0.1))
    sam_grad = sharpax.sam_value_and_grad(loss, 0.5)

    @jax.jit
    def step(state):
        _, grads = sam_grad(state.params, sam_step=state.step)
        return state.apply_gradients(grads=grads)

    tx = sharpax.sam(sharpax.adam(0.1), 0.5)

    @jax.jit
    def manual_step(params, opt_state):
        u, opt_state = tx.update(jax.grad(loss)(params), opt_state, params, grad_fn=jax.grad(loss))
        return optax.apply_updates(params, u), opt_state

    expected, opt_state = params, tx.init(params)
    for _ in range(3):
        state = step(state)
        expected, opt_state = manual_step(expected, opt_state)
    np.testing.assert_allclose(state.params["w"], expected["w"], rtol=1e-6)
    assert int(state.step) == 3


@pytest.mark.loose_promotion
def test_nnx_optimizer_with_both_forms():
    nnx = pytest.importorskip("flax.nnx")
    x = jax.random.normal(jax.random.key(0), (8, 3))
    y = jnp.sum(x, axis=1, keepdims=True)

    def run(form):
        model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        loss = lambda p: jnp.mean((nnx.merge(graphdef, p, rest)(x) - y) ** 2)
        if form == "value_and_grad":
            optimizer = nnx.Optimizer(model, sharpax.adam(0.1), wrt=nnx.Param)
            sam_grad = jax.jit(sharpax.sam_value_and_grad(loss, 0.5))
            for _ in range(2):
                _, grads = sam_grad(nnx.state(model, nnx.Param))
                optimizer.update(model, grads)
        else:
            optimizer = nnx.Optimizer(model, sharpax.sam(sharpax.adam(0.1), 0.5), wrt=nnx.Param)
            for _ in range(2):
                grads = jax.grad(loss)(nnx.state(model, nnx.Param))
                optimizer.update(model, grads, grad_fn=jax.grad(loss))
        return np.asarray(model.kernel[...])

    manual_params = {"kernel": nnx.Linear(3, 1, rngs=nnx.Rngs(0)).kernel[...], "bias": jnp.zeros(1)}
    manual_loss = lambda p: jnp.mean((x @ p["kernel"] + p["bias"] - y) ** 2)
    tx, state = sharpax.adam(0.1), None
    state = tx.init(manual_params)
    for _ in range(2):
        _, grads = sharpax.sam_value_and_grad(manual_loss, 0.5)(manual_params)
        u, state = tx.update(grads, state, manual_params)
        manual_params = optax.apply_updates(manual_params, u)
    np.testing.assert_allclose(run("value_and_grad"), manual_params["kernel"], rtol=1e-5)
    np.testing.assert_allclose(run("transform"), manual_params["kernel"], rtol=1e-5)


# --- sharding -----------------------------------------------------------------------------------------


def test_m_sharpness_on_a_sharded_batch_is_per_device():
    mesh = jax.make_mesh((8,), ("batch",))
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    x = jax.random.normal(jax.random.key(0), (32, 3))
    y = jnp.sin(jnp.sum(x, axis=1))
    loss = lambda w, x, y: jnp.mean((jnp.tanh(x @ w) - y) ** 2)
    w = jnp.array([0.5, -0.3, 0.2])
    sam_grad = jax.jit(sharpax.sam_value_and_grad(loss, 0.2, m=8))
    sharded = sam_grad(w, jax.device_put(x, shard), jax.device_put(y, shard))
    single = sam_grad(w, x, y)
    # One SAM gradient per device shard of 4 rows, averaged.
    one_chunk = jax.jit(sharpax.sam_value_and_grad(loss, 0.2))
    per_device = [one_chunk(w, x[i : i + 4], y[i : i + 4])[1] for i in range(0, 32, 4)]
    np.testing.assert_allclose(sharded[1], np.mean(per_device, 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sharded[1], single[1], rtol=1e-5, atol=1e-7)
