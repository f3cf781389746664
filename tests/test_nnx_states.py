"""flax.nnx: every function that reads or rewrites an optimizer state takes `nnx.Optimizer`'s `opt_state`
and `nnx.state(model, nnx.Param)` as they are (their arrays wrapped in Variables), and gives what the same
optimizer run on plain arrays gives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax import lr_scheduler

nnx = pytest.importorskip("flax.nnx")

X = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
STEPS = 3


def _loss(model):
    return jnp.mean((model(X) - 0.5) ** 2)


def _model():
    return nnx.Linear(3, 2, rngs=nnx.Rngs(0))


def _train_nnx(tx):
    """`nnx.Optimizer` over `tx`, STEPS steps: (model, optimizer)."""
    model = _model()
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    for _ in range(STEPS):
        optimizer.update(model, nnx.grad(_loss)(model))
    return model, optimizer


def _train_plain(tx):
    """The same run on plain arrays (a dict of the Linear's params): (params, state)."""
    graphdef, params = nnx.split(_model(), nnx.Param)
    params = nnx.as_pure(params)
    loss = lambda p: _loss(nnx.merge(graphdef, p))
    state = tx.init(params)
    for _ in range(STEPS):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def _assert_arrays_equal(got, want):
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves, strict=True):
        assert isinstance(g, jax.Array), type(g)  # Variables unwrapped
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-7)


ACCESSORS = {
    "lookahead_params": (
        lambda: sharpax.lookahead(sharpax.adam(0.1), sync_period=2),
        sharpax.lookahead_params,
    ),
    "momentum_sam_params": (
        lambda: sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.5),
        sharpax.momentum_sam_params,
    ),
    "asgd_averaged_params": (
        lambda: sharpax.asgd(0.1, t0=0),
        sharpax.asgd_averaged_params,
    ),
}


@pytest.mark.parametrize("name", ACCESSORS)
def test_accessors_take_nnx_optimizer_state_and_model_params(name):
    make_tx, accessor = ACCESSORS[name]
    model, optimizer = _train_nnx(make_tx())
    params, state = _train_plain(make_tx())
    got = accessor(optimizer.opt_state, nnx.state(model, nnx.Param))
    want = accessor(state, params)
    _assert_arrays_equal(got, want)
    # Not the params themselves: each accessor returns other weights after these steps.
    assert not np.allclose(np.asarray(got["kernel"]), np.asarray(model.kernel[...]))
    nnx.update(model, got)  # evaluate with them
    np.testing.assert_array_equal(np.asarray(model.kernel[...]), np.asarray(want["kernel"]))


def test_bsam_sample_and_variance_take_nnx_state():
    tx = sharpax.bsam(0.1, num_data=8, s_init=2.0)
    model = _model()
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    key = jax.random.key(3)
    got = sharpax.bsam_sample(key, optimizer.opt_state, nnx.state(model, nnx.Param), 8)
    _assert_arrays_equal(got, sharpax.bsam_sample(key, tx.init(params), params, 8))
    _assert_arrays_equal(
        sharpax.bsam_variance(optimizer.opt_state, 8), sharpax.bsam_variance(tx.init(params), 8)
    )


def test_readers_return_arrays_from_nnx_state():
    dynamic = ("learning_rate", "weight_decay")
    tx = sharpax.inject_hyperparams(sharpax.adamw, dynamic)(learning_rate=0.05, weight_decay=0.1)
    _, optimizer = _train_nnx(tx)
    rate = sharpax.current_learning_rate(optimizer.opt_state)
    assert isinstance(rate, jax.Array) and float(rate) == pytest.approx(0.05)
    hyperparams = sharpax.current_hyperparams(optimizer.opt_state)
    assert all(isinstance(v, jax.Array) for v in hyperparams.values())
    assert float(hyperparams["weight_decay"]) == pytest.approx(0.1)

    ae = sharpax.ae_sam(sharpax.sgd(0.1), 0.05, total_steps=STEPS, lambda1=-10.0, lambda2=-10.0)
    model = _model()
    optimizer = nnx.Optimizer(model, ae, wrt=nnx.Param)
    graphdef, _ = nnx.split(model, nnx.Param)
    for _ in range(STEPS):  # thresholds far below: SAM on every step
        grad_fn = jax.grad(lambda p: _loss(nnx.merge(graphdef, p)))
        optimizer.update(model, nnx.grad(_loss)(model), grad_fn=grad_fn)
    fraction = sharpax.ae_sam_fraction(optimizer.opt_state)
    assert isinstance(fraction, jax.Array) and float(fraction) == 1.0


def _step_size(model, optimizer):
    """The size of the next update's move of the bias (SGD: rate times the gradient)."""
    before = np.asarray(model.bias[...])
    grad = np.asarray(nnx.grad(_loss)(model).bias[...])
    optimizer.update(model, nnx.grad(_loss)(model))
    return (before - np.asarray(model.bias[...])) / grad


def test_state_rewrites_go_back_into_the_nnx_optimizer():
    # set_hyperparams and plateau_step return a plain state; nnx.update writes it back.
    model, optimizer = _train_nnx(sharpax.inject_hyperparams(sharpax.sgd)(learning_rate=0.1))
    new_state = sharpax.set_hyperparams(optimizer.opt_state, learning_rate=0.01)
    nnx.update(optimizer.opt_state, nnx.state(new_state))
    np.testing.assert_allclose(_step_size(model, optimizer), 0.01, rtol=1e-5)

    tx = optax.chain(
        sharpax.sgd(1.0), lr_scheduler.reduce_lr_on_plateau(0.1, patience=0, factor=0.5)
    )
    model, optimizer = _train_nnx(tx)
    state = lr_scheduler.plateau_step(optimizer.opt_state, 1.0)  # sets the best value
    state = lr_scheduler.plateau_step(state, 2.0)  # worse, patience 0: the rate halves
    nnx.update(optimizer.opt_state, nnx.state(state))
    assert float(sharpax.current_learning_rate(optimizer.opt_state)) == pytest.approx(0.05)
    np.testing.assert_allclose(_step_size(model, optimizer), 0.05, rtol=1e-5)


@pytest.mark.parametrize("name", ACCESSORS)
def test_accessor_with_params_of_another_model_is_a_readable_error(name):
    make_tx, accessor = ACCESSORS[name]
    _, optimizer = _train_nnx(make_tx())
    other = nnx.state(nnx.Linear(3, 2, use_bias=False, rngs=nnx.Rngs(0)), nnx.Param)
    with pytest.raises(
        ValueError, match=rf"^{name}: params do not match the .* in the optimizer state"
    ):
        accessor(optimizer.opt_state, other)
