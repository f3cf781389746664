"""The shared SAM perturbation: hand-computed values, masks, dtypes, sharding, extreme gradients, and the
build-time and call-time errors of every SAM-family constructor."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax.wrappers._sam_geometry import Perturbation


def _e(params, grads, **kwargs):
    """The perturbation e = perturb(params, grads) - params."""
    kwargs.setdefault("rho", 0.5)
    perturbed = Perturbation("test", **kwargs).perturb(params, grads)
    return jax.tree.map(
        lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64), perturbed, params
    )


W = jnp.array([1.0, 2.0])
G = jnp.array([3.0, 4.0])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # rho g / ||g|| = 0.5 (3, 4) / 5
        ({}, [0.3, 0.4]),
        # rho sign(g)
        ({"p": math.inf}, [0.5, 0.5]),
        # ASAM: T = |w| = (1, 2), T g = (3, 8), ||T g|| = sqrt(73), e = 0.5 (1 * 3, 4 * 4) / sqrt(73)
        ({"adaptive": True}, [1.5 / math.sqrt(73), 8.0 / math.sqrt(73)]),
        # T = |w| + 0.5 = (1.5, 2.5), T g = (4.5, 10), e = 0.5 (2.25 * 3, 6.25 * 4) / sqrt(120.25)
        ({"adaptive": True, "eta": 0.5}, [3.375 / math.sqrt(120.25), 12.5 / math.sqrt(120.25)]),
        # ASAM with p = inf: rho T sign(g) = 0.5 (1.5, 2.5)
        ({"adaptive": True, "eta": 0.5, "p": math.inf}, [0.75, 1.25]),
    ],
)
def test_perturbation_hand_values(kwargs, expected):
    np.testing.assert_allclose(_e(W, G, **kwargs), expected, rtol=1e-6)


def test_norm_is_global_over_the_tree():
    e = _e({"a": jnp.ones(1), "b": jnp.ones(1)}, {"a": jnp.array([3.0]), "b": jnp.array([4.0])})
    np.testing.assert_allclose([e["a"][0], e["b"][0]], [0.3, 0.4], rtol=1e-6)


@pytest.mark.parametrize(
    "mask",
    [
        {"a": True, "b": {"c": False, "d": False}},
        {"a": True, "b": False},  # a prefix of the params tree
        lambda params: jax.tree.map(lambda x: x.ndim == 1, params),
    ],
)
def test_mask_limits_the_perturbation_and_the_norm(mask):
    params = {"a": jnp.ones(2), "b": {"c": jnp.ones((2, 2)), "d": jnp.ones((1, 1))}}
    grads = {"a": jnp.array([3.0, 4.0]), "b": {"c": jnp.full((2, 2), 100.0), "d": jnp.ones((1, 1))}}
    perturbed = Perturbation("test", rho=0.5, mask=mask).perturb(params, grads)
    np.testing.assert_allclose(perturbed["a"] - 1.0, [0.3, 0.4], rtol=1e-6)  # norm over "a" only
    assert perturbed["b"]["c"] is params["b"]["c"] and perturbed["b"]["d"] is params["b"]["d"]


def test_mask_through_the_public_forms():
    params = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([1.0, 1.0])}
    loss = lambda p: jnp.sum(p["a"] ** 2) + jnp.sum(p["b"] ** 2)
    mask = {"a": True, "b": False}
    _, grads = sharpax.sam_value_and_grad(loss, 5.0, mask=mask)(params)
    # e_a = 5 g_a / ||g_a|| = (3, 4) with g_a = (6, 8); b is not perturbed: its gradient stays 2 b.
    np.testing.assert_allclose(grads["a"], [12.0, 16.0], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [2.0, 2.0], rtol=1e-6)
    tx = sharpax.sam(sharpax.sgd(1.0), 5.0, mask=mask)
    updates, _ = tx.update(jax.grad(loss)(params), tx.init(params), params, grad_fn=jax.grad(loss))
    np.testing.assert_allclose(updates["a"], [-12.0, -16.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-2.0, -2.0], rtol=1e-6)


def test_bad_masks_are_rejected():
    with pytest.raises(TypeError, match="Python bools"):
        Perturbation("sam", mask={"a": jnp.array(True)}).perturb({"a": W}, {"a": G})
    with pytest.raises(ValueError, match="mask"):
        Perturbation("sam", mask={"x": True}).perturb({"a": W}, {"a": G})


def test_non_float_leaves_are_never_perturbed():
    params = {"w": W, "steps": jnp.array([7], jnp.int32)}
    grads = {"w": G, "steps": np.zeros([1], jax.dtypes.float0)}
    perturbed = Perturbation("test", rho=0.5).perturb(params, grads)
    assert perturbed["steps"] is params["steps"]
    np.testing.assert_allclose(perturbed["w"] - W, [0.3, 0.4], rtol=1e-6)


def test_bfloat16_params_keep_their_dtype():
    params = {"w": W.astype(jnp.bfloat16), "b": jnp.ones(2)}
    perturbed = Perturbation("test", rho=0.5).perturb(params, {"w": G.astype(jnp.bfloat16), "b": G})
    assert perturbed["w"].dtype == jnp.bfloat16 and perturbed["b"].dtype == jnp.float32


def test_norm_is_global_across_devices():
    mesh = jax.make_mesh((8,), ("d",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    w = np.arange(32.0, dtype=np.float32).reshape(8, 4) / 10
    g = np.cos(w)
    perturb = jax.jit(lambda w, g: Perturbation("test", rho=0.5).perturb(w, g))
    got = perturb(jax.device_put(w, sharding), jax.device_put(g, sharding))
    assert len(got.sharding.device_set) == 8
    np.testing.assert_allclose(got - w, 0.5 * g / np.linalg.norm(g), rtol=1e-5, atol=1e-7)


# --- extreme gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"adaptive": True}, {"p": math.inf}])
def test_zero_gradient_gives_zero_perturbation(kwargs):
    np.testing.assert_array_equal(_e(W, jnp.zeros(2), **kwargs), [0.0, 0.0])
    loss, grads = sharpax.sam_value_and_grad(lambda w: jnp.sum(w * 0.0), **kwargs)(W)
    np.testing.assert_array_equal(grads, [0.0, 0.0])


def test_huge_gradient_is_normalised_without_overflow():
    # ||g||^2 = 4e60 overflows float32; e must still be rho g / ||g|| = 0.5 * (1, 1, 1, 1) / 2.
    w = jnp.ones(4)
    np.testing.assert_allclose(_e(w, jnp.full(4, 1e30)), np.full(4, 0.25), rtol=1e-6)
    np.testing.assert_allclose(_e(w, jnp.full(4, 1e30), adaptive=True), np.full(4, 0.25), rtol=1e-6)
    loss, grads = jax.jit(sharpax.sam_value_and_grad(lambda w: 1e30 * jnp.sum(w)))(w)
    np.testing.assert_allclose(grads, np.full(4, 1e30), rtol=1e-6)
    _, gsam_grads = jax.jit(sharpax.gsam_value_and_grad(lambda w: 1e30 * jnp.sum(w**2)))(w)
    assert np.isfinite(np.asarray(gsam_grads)).all()


def test_nan_in_the_loss_value_does_not_reach_the_gradient():
    loss_fn = lambda w: jnp.sum(w**2) + jax.lax.stop_gradient(jnp.asarray(jnp.nan))
    loss, grads = jax.jit(sharpax.sam_value_and_grad(loss_fn, 0.5))(jnp.array([3.0, 4.0]))
    assert np.isnan(loss)
    np.testing.assert_allclose(grads, [6.6, 8.8], rtol=1e-6)  # 2 (w + 0.5 w / ||w||)


# --- rho schedules ------------------------------------------------------------------------------------


def test_value_and_grad_rho_schedule_reads_sam_step():
    rho = lambda step: 0.5 * (step + 1)  # 0.5 at step 0, 1.0 at step 1
    sam_grad = jax.jit(sharpax.sam_value_and_grad(lambda w: jnp.sum(w**2), rho))
    w = jnp.array([3.0, 4.0])
    np.testing.assert_allclose(sam_grad(w, sam_step=0)[1], [6.6, 8.8], rtol=1e-6)
    np.testing.assert_allclose(sam_grad(w, sam_step=1)[1], [7.2, 9.6], rtol=1e-6)
    with pytest.raises(TypeError, match="sam_step"):
        sam_grad(w)


def test_transform_rho_schedule_counts_steps_and_static_rho_adds_no_state():
    loss = lambda w: jnp.sum(w**2)
    w = jnp.array([3.0, 4.0])
    tx = sharpax.sam(sharpax.sgd(1.0), lambda step: 0.5 * (jnp.asarray(step, jnp.float32) + 1))
    state = tx.init(w)
    u0, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
    u1, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
    np.testing.assert_allclose([u0, u1], [[-6.6, -8.8], [-7.2, -9.6]], rtol=1e-6)
    assert int(state.count) == 2
    static = sharpax.sam(sharpax.adam(1e-3), 0.05).init({"w": jnp.ones((3, 3))})
    base = sharpax.adam(1e-3).init({"w": jnp.ones((3, 3))})
    assert static.count is None
    assert jax.tree.structure(static.inner_state) == jax.tree.structure(base)
    nbytes = lambda t: sum(x.nbytes for x in jax.tree.leaves(t))
    assert nbytes(static) == nbytes(base)


def test_lr_proportional_rho():
    lr = optax.linear_schedule(0.1, 0.0, 100)
    rho = sharpax.lr_proportional_rho(lr, 0.1, 0.0, rho_max=0.04, rho_min=0.02)
    np.testing.assert_allclose([rho(0), rho(50), rho(100)], [0.04, 0.03, 0.02], rtol=1e-6)


# --- errors -------------------------------------------------------------------------------------------

CONSTRUCTORS = {
    "sam_value_and_grad": lambda **kw: sharpax.sam_value_and_grad(jnp.sum, **kw),
    "gsam_value_and_grad": lambda **kw: sharpax.gsam_value_and_grad(jnp.sum, **kw),
    "sam": lambda **kw: sharpax.sam(sharpax.sgd(0.1), **kw),
    "gsam": lambda **kw: sharpax.gsam(sharpax.sgd(0.1), **kw),
    "periodic_sam": lambda **kw: sharpax.periodic_sam(sharpax.sgd(0.1), **kw),
    "looksam": lambda **kw: sharpax.looksam(sharpax.sgd(0.1), **kw),
    "friendly_sam": lambda **kw: sharpax.friendly_sam(sharpax.sgd(0.1), **kw),
    "wsam": lambda **kw: sharpax.wsam(sharpax.sgd(0.1), 0.1, **kw),
    "wsam_value_and_grad": lambda **kw: sharpax.wsam_value_and_grad(jnp.sum, **kw),
}


@pytest.mark.parametrize("name", CONSTRUCTORS)
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"rho": -0.1}, "rho"),
        ({"p": 3}, "p"),
        ({"p": 1}, "p"),
        ({"eta": -1.0}, "eta"),
        ({"rho": math.nan}, "rho"),
    ],
)
def test_bad_perturbation_arguments(name, kwargs, argument):
    with pytest.raises(ValueError, match=rf"^{name}: {argument} must"):
        CONSTRUCTORS[name](**kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "argument"),
    [
        ("periodic_sam", {"k": 0}, "k"),
        ("looksam", {"k": 0}, "k"),
        ("looksam", {"k": 2.0}, "k"),
        ("looksam", {"alpha": -0.5}, "alpha"),
        ("gsam", {"alpha": -0.5}, "alpha"),
        ("gsam_value_and_grad", {"alpha": math.nan}, "alpha"),
        ("sam_value_and_grad", {"m": 0}, "m"),
    ],
)
def test_bad_family_arguments(name, kwargs, argument):
    with pytest.raises(ValueError, match=rf"^{name}: {argument} must"):
        CONSTRUCTORS[name](**kwargs)


@pytest.mark.parametrize("name", ["sam", "gsam", "periodic_sam", "looksam"])
def test_update_without_grad_fn_or_params_says_what_to_pass(name):
    tx = CONSTRUCTORS[name]()
    state = tx.init(W)
    with pytest.raises(ValueError, match=rf"^{name}: .*grad_fn=grad_fn"):
        tx.update(G, state, W)
    with pytest.raises(ValueError, match=rf"^{name}: update needs the params"):
        tx.update(G, state, grad_fn=lambda p: G)


def test_grad_fn_with_the_wrong_tree_is_reported():
    tx = sharpax.sam(sharpax.sgd(0.1))
    params = {"a": W}
    with pytest.raises(ValueError, match="what grad_fn returns"):
        tx.update({"a": G}, tx.init(params), params, grad_fn=lambda p: {"b": G})
