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
from tests.references import GOLDEN_DIR


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
    "ae_sam": lambda **kw: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=10, **kw),
}


@pytest.mark.parametrize("name", CONSTRUCTORS)
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"rho": -0.1}, "rho"),
        ({"p": 0.5}, "p"),
        ({"p": -1}, "p"),
        ({"p": math.nan}, "p"),
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


@pytest.mark.parametrize("name", ["sam", "gsam", "periodic_sam", "looksam", "ae_sam"])
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


# --- any p-norm ---------------------------------------------------------------------------------------

GOLDEN_P2 = GOLDEN_DIR / "sam_p2_perturbations.npz"
P_VALUES = [1, 1.5, 3, 4, math.inf]


def numpy_e(w, g, rho, p, adaptive=False, eta=0.0):
    """The dual-norm maximiser in float64, written from its definition: v = T g, e = T e_hat with
    e_hat = rho sign(v) |v|^(q-1) / ||v||_q^(q-1) (p = inf: rho sign(v); p = 1: rho sign(v) / k on the
    k entries of largest |v|)."""
    w, g = np.asarray(w, np.float64), np.asarray(g, np.float64)
    t = np.abs(w) + eta if adaptive else np.ones_like(w)
    v = t * g
    if p == math.inf:
        e_hat = rho * np.sign(v)
    elif p == 1:
        top = np.abs(v) == np.abs(v).max()
        e_hat = np.where(top, rho * np.sign(v) / top.sum(), 0.0)
    else:
        q = p / (p - 1)
        e_hat = rho * np.sign(v) * np.abs(v) ** (q - 1) / np.sum(np.abs(v) ** q) ** ((q - 1) / q)
    return t * e_hat


def _random_tree(seed, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return {
        "a": jnp.asarray(rng.standard_normal(37), dtype),
        "b": jnp.asarray(rng.standard_normal((5, 3)), dtype),
    }


def _flat(tree):
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def _p_norm(x, p):
    return np.abs(x).max() if p == math.inf else np.sum(np.abs(x) ** p) ** (1 / p)


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("adaptive", [False, True])
def test_p_norm_perturbation_matches_numpy_and_is_the_maximiser(p, adaptive):
    w, g = _random_tree(0), _random_tree(1)
    perturb = jax.jit(lambda w, g: Perturbation("t", 0.3, adaptive, 0.01, p).perturb(w, g))
    e = _flat(perturb(w, g)) - _flat(w)
    wf, gf = _flat(w), _flat(g)
    np.testing.assert_allclose(e, numpy_e(wf, gf, 0.3, p, adaptive, 0.01), rtol=2e-5, atol=1e-7)
    t = np.abs(wf) + 0.01 if adaptive else np.ones(wf.size)
    np.testing.assert_allclose(_p_norm(e / t, p), 0.3, rtol=2e-5)  # on the ball's boundary
    # g . e = rho ||T g||_q (Hoelder, with equality), and no d with ||T^-1 d||_p = rho does better.
    q = 1.0 if p == math.inf else math.inf if p == 1 else p / (p - 1)
    np.testing.assert_allclose(gf @ e, 0.3 * _p_norm(t * gf, q), rtol=2e-5)
    u = np.random.default_rng(4).standard_normal((2000, gf.size))
    u[:10] = np.sign(gf) * np.abs(gf) ** np.linspace(0.5, 3.0, 10)[:, None]  # near-maximisers too
    d = t * 0.3 * u / np.array([_p_norm(row, p) for row in u])[:, None]
    assert np.all(d @ gf <= gf @ e * (1 + 1e-5))


def test_p_one_splits_rho_evenly_between_ties_across_leaves():
    params = {"a": jnp.zeros(3), "b": jnp.zeros(2)}
    grads = {"a": jnp.array([1.0, -3.0, 2.0]), "b": jnp.array([3.0, 0.5])}
    e = _e(params, grads, rho=0.5, p=1)
    np.testing.assert_array_equal(e["a"], [0.0, -0.25, 0.0])
    np.testing.assert_array_equal(e["b"], [0.25, 0.0])


@pytest.mark.parametrize("p", [1, 1.5, 3, math.inf])
def test_p_norm_zero_gradient_gives_zero_and_scale_does_not_matter(p):
    w, g = _random_tree(5), _random_tree(6)
    np.testing.assert_array_equal(_flat(_e(w, jax.tree.map(jnp.zeros_like, g), p=p)), 0.0)
    # e is homogeneous of degree 0 in g: 1e30 g (whose squares overflow) and 1e-30 g give the same e.
    base = _flat(_e(w, g, p=p))
    for scale in (1e30, 1e-30):
        scaled = _flat(_e(w, jax.tree.map(lambda x, s=scale: x * s, g), p=p))
        np.testing.assert_allclose(scaled, base, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("p", [1.5, 3])
def test_p_norm_in_bfloat16_is_computed_in_float32(p):
    w, g = _random_tree(7, jnp.bfloat16), _random_tree(8, jnp.bfloat16)
    perturbed = Perturbation("t", rho=0.3, p=p).perturb(w, g)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(perturbed))
    # Only the final cast to bfloat16 (8 bits of mantissa) rounds: e_hat itself is float32.
    want = numpy_e(_flat(w), _flat(g), 0.3, p)
    np.testing.assert_allclose(_flat(perturbed), _flat(w) + want, rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(_p_norm(want, p), 0.3, rtol=1e-6)


@pytest.mark.parametrize("p", [1, 3])
def test_p_norm_is_global_across_devices(p):
    mesh = jax.make_mesh((8,), ("d",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d"))
    w = np.arange(32.0, dtype=np.float32).reshape(8, 4) / 10
    g = np.cos(w)
    perturb = jax.jit(lambda w, g: Perturbation("test", rho=0.5, p=p).perturb(w, g))
    got = perturb(jax.device_put(w, sharding), jax.device_put(g, sharding))
    assert len(got.sharding.device_set) == 8
    want = numpy_e(w.ravel(), g.ravel(), 0.5, p).reshape(8, 4)
    np.testing.assert_allclose(np.asarray(got) - w, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [1, 3])
def test_p_norm_through_every_form(p):
    loss = lambda w: jnp.sum(w**2)
    w = jnp.array([3.0, -4.0, 1.0])
    g = 2 * np.asarray(w, np.float64)
    g_p = 2 * (np.asarray(w, np.float64) + numpy_e(w, g, 0.5, p))
    g_perp = g - (g @ g_p) / (g_p @ g_p) * g_p
    for name, (build, direction) in {
        "sam_value_and_grad": (lambda: sharpax.sam_value_and_grad(loss, 0.5, p=p), g_p),
        "gsam_value_and_grad": (
            lambda: sharpax.gsam_value_and_grad(loss, 0.5, 0.3, p=p),
            g_p - 0.3 * g_perp,
        ),
    }.items():
        np.testing.assert_allclose(jax.jit(build())(w)[1], direction, rtol=1e-5, err_msg=name)
    for name, direction in {
        "sam": g_p,
        "gsam": g_p - 0.1 * g_perp,  # alpha's default
        "periodic_sam": g_p,  # step 0 is a SAM step
        "looksam": g_p,
    }.items():
        tx = CONSTRUCTORS[name](rho=0.5, p=p)  # around sgd(0.1)
        updates, _ = tx.update(jax.grad(loss)(w), tx.init(w), w, grad_fn=jax.grad(loss))
        np.testing.assert_allclose(updates, -0.1 * direction, rtol=1e-5, err_msg=name)


# The p = 2 code of main before the p-norm work (commit 371cbe4, `Perturbation.perturb`), verbatim but
# for the mask: the other p-norms must not have changed a bit of it.
def _main_p2_perturb(params, grads, rho, adaptive=False, eta=0.0):
    from sharpax.wrappers._sam_geometry import NORM_EPS, accumulation_dtype, global_norm

    p_leaves, treedef = jax.tree.flatten(params)
    ws, gs = p_leaves, treedef.flatten_up_to(grads)
    dtype = accumulation_dtype(ws + gs)
    rho = jnp.asarray(rho, dtype)
    if adaptive:
        scales = [jnp.abs(w).astype(dtype) + jnp.asarray(eta, dtype) for w in ws]
    else:
        scales = [None] * len(ws)
    times = lambda t, x: x if t is None else t * x
    v = [times(t, g.astype(dtype)) for t, g in zip(scales, gs, strict=True)]
    factor = rho / (global_norm(v, dtype) + jnp.asarray(NORM_EPS, dtype))
    es = [times(t, x) * factor for t, x in zip(scales, v, strict=True)]
    out = [w + e.astype(w.dtype) for w, e in zip(p_leaves, es, strict=True)]
    return jax.tree.unflatten(treedef, out)


def test_p2_is_bit_for_bit_main():
    from tests.references import make_pnorm_goldens as gen

    cases = gen.cases()
    perturb = lambda fn: jax.jit(
        lambda trees: {name: fn(p, g, **cases[name][2]) for name, (p, g) in trees.items()}
    )({name: (p, g) for name, (p, g, _) in cases.items()})
    got = perturb(lambda p, g, **kw: Perturbation("t", p=2.0, **kw).perturb(p, g))
    golden = np.load(GOLDEN_P2)
    for name, tree in got.items():
        for key, leaf in tree.items():
            # The golden may come from another CPU, where XLA may sum in another order (vector
            # width): 1 ulp. In-process below, bit for bit.
            np.testing.assert_array_max_ulp(
                np.asarray(leaf.astype(jnp.float32)), golden[f"{name}/{key}"], maxulp=1
            )
    del cases["mask"]
    old = perturb(_main_p2_perturb)
    bits = lambda tree: [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]
    assert bits({k: got[k] for k in old}) == bits(old)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0.99, ValueError, r"p must be in \[1, inf\]"),
        (-math.inf, ValueError, r"p must be in \[1, inf\]"),
        ("2", TypeError, "p must be a real number"),
        (lambda step: 2.0, TypeError, "p must be a static number"),
    ],
)
def test_bad_p_names_the_argument(value, error, match):
    for name, build in CONSTRUCTORS.items():
        with pytest.raises(error, match=rf"^{name}: {match}"):
            build(p=value)
    with pytest.raises(TypeError, match="p must be a static number"):
        jax.jit(lambda p: sharpax.sam(sharpax.sgd(0.1), p=p))(3.0)
