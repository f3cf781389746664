"""Gradient accumulation (`microbatches=`): SAM, ASAM and GSAM on k microbatches equal SAM on the whole
batch (one perturbation from the mean gradient), with aux, with m-sharpness outside, on 8 devices; the
peak temporary memory drops; and what `optax.MultiSteps(sam(...))` computes instead.

References: SAM on the whole batch, in float64 numpy (hand-written backprop of `golden/sam_references`)
and through the whole-batch forms (checked against davda54/sam and the papers' rules elsewhere).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import sharpax
from sharpax.wrappers._microbatches import split_microbatches
from tests.references import sam_references as ref

RHO = 0.1
# float32 sums in another order (per microbatch, then the mean) against the whole batch at once.
TOL = dict(rtol=1e-5, atol=1e-7)


def mlp_loss(params, x, y):
    out = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]
    return jnp.mean((out - y) ** 2)


def aux_loss(params, x, y):
    out = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]
    loss = jnp.mean((out - y) ** 2)
    return loss, {"mae": jnp.mean(jnp.abs(out - y)), "pos": jnp.mean((out > 0).astype(jnp.float32))}


def problem(batch=16, seed=0):
    x, y, params = ref.make_problem()
    rng = np.random.default_rng(seed)
    if batch != 16:
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        y = rng.standard_normal((batch, 2)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(y), jax.tree.map(jnp.asarray, params)


def assert_trees_close(got, want, **tol):
    chex.assert_trees_all_close(got, want, **(tol or TOL))


def test_microbatches_are_strided_rows():
    x = jnp.arange(12.0).reshape(6, 2)
    chunks = split_microbatches((x,), 3)[0]
    for j in range(3):
        np.testing.assert_array_equal(chunks[j], x[j::3])


def test_microbatched_value_and_grad_is_the_whole_batch():
    x, y, params = problem()
    split = sharpax.microbatched_value_and_grad(aux_loss, 4, has_aux=True)
    whole = jax.value_and_grad(aux_loss, has_aux=True)
    ((loss, aux), grads), ((want_loss, want_aux), want) = jax.jit(
        lambda *a: (split(*a), whole(*a))
    )(params, x, y)
    assert_trees_close(grads, want)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    assert_trees_close(aux, want_aux)  # means over rows: the mean of the microbatch means
    np.testing.assert_allclose(ref.flatten(grads), ref.mlp_grad(ref.flatten(params), x, y), **TOL)


def test_each_pass_sees_one_microbatch_at_a_time():
    shapes = []

    def loss_fn(params, x, y):
        shapes.append(x.shape)
        return mlp_loss(params, x, y)

    x, y, params = problem()
    jax.jit(sharpax.sam_value_and_grad(loss_fn, RHO, microbatches=4)).lower(params, x, y)
    assert set(shapes) == {(4, 4)}  # rows 16 / 4, never the whole batch


def test_sam_microbatches_equal_whole_batch_numpy():
    x, y, params = problem()
    loss, grads = jax.jit(sharpax.sam_value_and_grad(mlp_loss, RHO, microbatches=4))(params, x, y)
    w = ref.flatten(params)
    g = ref.mlp_grad(w, x, y)
    want = ref.mlp_grad(w + RHO * g / np.linalg.norm(g), x, y)  # one e, from the whole gradient
    np.testing.assert_allclose(ref.flatten(grads), want, **TOL)
    np.testing.assert_allclose(loss, ref.mlp_loss(w, x, y), rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        pytest.param(
            sharpax.sam_value_and_grad, {"adaptive": True, "eta": 0.01, "rho": 0.5}, id="asam"
        ),
        pytest.param(sharpax.gsam_value_and_grad, {"m": 2, "has_aux": True}, id="gsam-m2-aux"),
        pytest.param(
            sharpax.gsam_value_and_grad, {"alpha": 0.3}, id="gsam", marks=pytest.mark.slow
        ),
        pytest.param(
            sharpax.sam_value_and_grad,
            {"p": 3.0, "has_aux": True},
            id="sam-p3-aux",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            sharpax.sam_value_and_grad,
            {"m": 2, "rho": lambda step: 0.05 * (step + 1)},
            id="sam-m2-schedule",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_microbatches_equal_the_whole_batch(make, kwargs):
    # m is the outer split: each of the m chunks is accumulated over its own microbatches, so with
    # m = 2 and 2 microbatches the result is m-sharpness with m = 2 on whole chunks.
    x, y, params = problem()
    kwargs = {"rho": RHO, **kwargs}
    loss_fn = aux_loss if kwargs.get("has_aux") else mlp_loss
    whole = make(loss_fn, **kwargs)
    split = make(loss_fn, microbatches=2, **kwargs)
    step = {"sam_step": jnp.asarray(3)} if callable(kwargs["rho"]) else {}
    both = jax.jit(lambda *a: (split(*a, **step), whole(*a, **step)))  # one compilation
    (value, got), (want_value, want) = both(params, x, y)
    assert_trees_close(got, want)
    assert_trees_close(value, want_value)  # loss, and aux (stacked per chunk with m = 2)
    if kwargs.get("m") and kwargs.get("has_aux"):
        assert value[1]["mae"].shape == (2,)


def test_microbatches_under_8_devices_batch_sharded():
    x, y, params = problem(batch=64)
    mesh = jax.make_mesh((8,), ("data",))
    xs, ys = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (x, y))
    params8 = jax.device_put(params, NamedSharding(mesh, P()))
    want = jax.jit(sharpax.gsam_value_and_grad(mlp_loss, RHO, alpha=0.2))(params, x, y)
    split = jax.jit(sharpax.gsam_value_and_grad(mlp_loss, RHO, alpha=0.2, microbatches=4))
    loss, grads = split(params8, xs, ys)
    assert_trees_close(grads, want[1], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(loss, want[0], rtol=1e-5)
    assert all(g.sharding.is_fully_replicated for g in jax.tree.leaves(grads))


def test_microbatches_with_per_device_sam():
    x, y, params = problem(batch=64)
    mesh = jax.make_mesh((8,), ("data",))
    kwargs = dict(has_aux=True, mesh_axis="data", mesh=mesh)
    split = sharpax.sam_value_and_grad(aux_loss, RHO, microbatches=2, **kwargs)
    whole = sharpax.sam_value_and_grad(aux_loss, RHO, **kwargs)
    ((loss, aux), grads), ((want_loss, want_aux), want) = jax.jit(
        lambda *a: (split(*a), whole(*a))
    )(params, x, y)
    assert_trees_close(grads, want, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    assert aux["mae"].shape == (8,)  # one per device, each averaged over its microbatches
    assert_trees_close(aux, want_aux)


def test_transformation_with_microbatched_grad_fn_equals_whole_batch():
    x, y, params = problem()
    tx = sharpax.sam(sharpax.sgd(0.1, momentum=0.9), RHO)
    vg = sharpax.microbatched_value_and_grad(mlp_loss, 4)

    @jax.jit
    def split_step(params, state):
        _, grads = vg(params, x, y)
        return tx.update(grads, state, params, grad_fn=lambda p: vg(p, x, y)[1])

    @jax.jit
    def whole_step(params, state):
        grads = jax.grad(mlp_loss)(params, x, y)
        return tx.update(grads, state, params, grad_fn=lambda p: jax.grad(mlp_loss)(p, x, y))

    state_a = state_b = tx.init(params)
    for _ in range(3):
        updates_a, state_a = split_step(params, state_a)
        updates_b, state_b = whole_step(params, state_b)
        assert_trees_close(updates_a, updates_b)
        params = optax.apply_updates(params, updates_b)


@pytest.mark.loose_promotion  # optax.MultiSteps multiplies ints by bools
def test_multisteps_perturbs_with_the_mean_but_takes_the_second_pass_on_the_last_microbatch():
    # optax.MultiSteps(sam(sgd), k) calls sam's update at every mini-step with the running mean of the
    # first-pass gradients, and keeps only the k-th: e from the mean over all k microbatches (as on
    # the whole batch), but grad_fn is the last call's closure, over the last microbatch only.
    x, y, params = problem()
    k, lr = 4, 0.1
    tx = optax.MultiSteps(sharpax.sam(sharpax.sgd(lr), RHO), every_k_schedule=k)
    state = tx.init(params)
    xs, ys = split_microbatches((x, y), k)
    update = jax.jit(lambda g, s, xb, yb: tx.update(g, s, params, grad_fn=_grad_fn(xb, yb)))
    for j in range(k):
        updates, state = update(jax.grad(mlp_loss)(params, xs[j], ys[j]), state, xs[j], ys[j])
    w = ref.flatten(params)
    g_mean = np.mean([ref.mlp_grad(w, xs[j], ys[j]) for j in range(k)], axis=0)
    e = RHO * g_mean / np.linalg.norm(g_mean)
    last_only = ref.mlp_grad(w + e, xs[-1], ys[-1])
    np.testing.assert_allclose(ref.flatten(updates), -lr * last_only, **TOL)
    whole = ref.mlp_grad(w + e, x, y)  # what microbatches=k gives
    assert np.abs(last_only - whole).max() > 1e-2


def _grad_fn(x, y):
    return lambda p: jax.grad(mlp_loss)(p, x, y)


def _temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_microbatches_lower_the_peak_temporary_memory():
    # A batch whose activations outweigh the params: the scan keeps one microbatch's alive per pass.
    rng = np.random.default_rng(0)
    params = {
        "w1": jnp.asarray(rng.standard_normal((16, 256)), jnp.float32),
        "b1": jnp.zeros(256),
        "w2": jnp.asarray(rng.standard_normal((256, 2)), jnp.float32),
        "b2": jnp.zeros(2),
    }
    x = jnp.asarray(rng.standard_normal((2048, 16)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((2048, 2)), jnp.float32)
    one = _temp_bytes(sharpax.sam_value_and_grad(mlp_loss, RHO), params, x, y)
    four = _temp_bytes(sharpax.sam_value_and_grad(mlp_loss, RHO, microbatches=4), params, x, y)
    assert four < 0.5 * one, (one, four)


@pytest.mark.parametrize("value", [0, -2, 1.5, True, None])
@pytest.mark.parametrize(
    "build",
    [
        lambda k: sharpax.sam_value_and_grad(mlp_loss, microbatches=k),
        lambda k: sharpax.gsam_value_and_grad(mlp_loss, microbatches=k),
        lambda k: sharpax.microbatched_value_and_grad(mlp_loss, k),
    ],
    ids=["sam_value_and_grad", "gsam_value_and_grad", "microbatched_value_and_grad"],
)
def test_bad_microbatches_fail_at_build_time(build, value):
    with pytest.raises(ValueError, match=r"^\w+: microbatches must be an integer >= 1"):
        build(value)


def test_batch_not_divisible_fails_at_trace_time_with_the_shapes():
    x, y, params = problem()
    with pytest.raises(
        ValueError,
        match=r"^sam_value_and_grad: with m=2, microbatches=3, .* divisible by 6, got shape \(16, 4\)",
    ):
        jax.jit(sharpax.sam_value_and_grad(mlp_loss, m=2, microbatches=3))(params, x, y)
    with pytest.raises(
        ValueError,
        match=r"^microbatched_value_and_grad: with microbatches=5, .*got shape \(16, 4\)",
    ):
        sharpax.microbatched_value_and_grad(mlp_loss, 5)(params, x, y)
    per_device = sharpax.sam_value_and_grad(
        mlp_loss, microbatches=4, mesh_axis="data", mesh=jax.make_mesh((8,), ("data",))
    )
    with pytest.raises(ValueError, match=r"8 devices\), microbatches=4, .* divisible by 32"):
        per_device(params, x, y)


def test_integer_aux_cannot_be_averaged():
    x, y, params = problem()
    loss_fn = lambda p, x, y: (mlp_loss(p, x, y), {"n": jnp.sum(x > 0)})
    with pytest.raises(TypeError, match=r"microbatches=2, .* got int32 at \['n'\]"):
        sharpax.sam_value_and_grad(loss_fn, microbatches=2, has_aux=True)(params, x, y)
