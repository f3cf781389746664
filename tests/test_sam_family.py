"""GSAM, LookSAM, periodic SAM and m-sharpness against numpy references written from their papers.

Goldens: `references/sam_gsam.npz` and `references/sam_looksam.npz` from `references/sam_references.py` (float64
numpy, hand-written backprop); the references are also re-run live, and checked on tiny hand cases.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax.wrappers._sam_geometry import gsam_direction
from tests.references import GOLDEN_DIR
from tests.references import sam_references as ref
from tests.references.torch_reference import GOLDEN_VS_LIVE_F64

# float32 JAX against float64 numpy over 30 steps.
TOL = dict(rtol=1e-5, atol=1e-5)


def mlp_loss(params, x, y):
    out = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]
    return jnp.mean((out - y) ** 2)


def _problem():
    x, y, params = ref.make_problem()
    return jnp.asarray(x), jnp.asarray(y), jax.tree.map(jnp.asarray, params)


def _flat(params):
    return np.concatenate([np.asarray(params[k], np.float64).ravel() for k in ref.SHAPES])


def _run_transform(tx, steps=ref.STEPS):
    x, y, params = _problem()

    @jax.jit
    def step(params, state):
        grads = jax.grad(mlp_loss)(params, x, y)
        grad_fn = lambda p: jax.grad(mlp_loss)(p, x, y)
        updates, state = tx.update(grads, state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    state, out = tx.init(params), [_flat(params)]
    for _ in range(steps):
        params, state = step(params, state)
        out.append(_flat(params))
    return np.stack(out)


def test_reference_backprop_matches_jax_grad():
    x, y, params = _problem()
    vec = _flat(params)
    np.testing.assert_allclose(
        ref.mlp_grad(vec, x, y), _flat(jax.jit(jax.grad(mlp_loss))(params, x, y)), rtol=1e-5
    )
    np.testing.assert_allclose(ref.mlp_loss(vec, x, y), float(mlp_loss(params, x, y)), rtol=1e-6)


# --- GSAM ---------------------------------------------------------------------------------------------


def test_gsam_direction_hand_case():
    # g = (1, 0), g_p = (1, 1): g_par = (0.5, 0.5), g_perp = (0.5, -0.5); alpha = 0.5 gives
    # (1, 1) - 0.5 * (0.5, -0.5) = (0.75, 1.25). Split over two leaves: the decomposition is global.
    got = gsam_direction(
        {"a": jnp.ones(1), "b": jnp.zeros(1)}, {"a": jnp.ones(1), "b": jnp.ones(1)}, 0.5
    )
    np.testing.assert_allclose([got["a"][0], got["b"][0]], [0.75, 1.25], rtol=1e-6)
    np.testing.assert_allclose(ref.gsam_direction([1.0, 0.0], [1.0, 1.0], 0.5), [0.75, 1.25])


def test_gsam_direction_zero_sam_gradient_is_not_nan():
    got = gsam_direction(jnp.array([1.0, 2.0]), jnp.zeros(2), 0.5)
    np.testing.assert_allclose(got, [-0.5, -1.0])  # g_perp = g when g_p carries no direction


def _gsam_schedules():
    lr = optax.linear_schedule(ref.GSAM["lr_max"], ref.GSAM["lr_min"], ref.STEPS)
    rho = sharpax.lr_proportional_rho(
        lr, ref.GSAM["lr_max"], ref.GSAM["lr_min"], ref.GSAM["rho_max"], ref.GSAM["rho_min"]
    )
    return lr, rho


def test_gsam_transform_matches_reference():
    lr, rho = _gsam_schedules()
    tx = sharpax.gsam(sharpax.sgd(lr), rho, alpha=ref.GSAM["alpha"])
    golden = np.load(GOLDEN_DIR / "sam_gsam.npz")["params"]
    np.testing.assert_allclose(_run_transform(tx), golden, **TOL)


def test_gsam_value_and_grad_matches_reference_and_live_numpy():
    lr, rho = _gsam_schedules()
    x, y, params = _problem()
    tx = sharpax.sgd(lr)
    gsam_grad = sharpax.gsam_value_and_grad(mlp_loss, rho, alpha=ref.GSAM["alpha"])

    @jax.jit
    def step(params, state, t):
        _, grads = gsam_grad(params, x, y, sam_step=t)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state, out = tx.init(params), [_flat(params)]
    for t in range(ref.STEPS):
        params, state = step(params, state, t)
        out.append(_flat(params))
    live = ref.gsam_reference(
        _flat(_problem()[2]), *ref.make_problem()[:2], steps=ref.STEPS, lr_fn=ref.gsam_lr,
        rho_fn=ref.gsam_rho, alpha=ref.GSAM["alpha"],
    )  # fmt: skip
    golden = np.load(GOLDEN_DIR / "sam_gsam.npz")["params"]
    np.testing.assert_allclose(live, golden, **GOLDEN_VS_LIVE_F64)
    np.testing.assert_allclose(np.stack(out), golden, **TOL)
    sam_only = ref.gsam_reference(
        _flat(_problem()[2]), *ref.make_problem()[:2], steps=ref.STEPS, lr_fn=ref.gsam_lr,
        rho_fn=ref.gsam_rho, alpha=0.0,
    )  # fmt: skip
    assert np.abs(sam_only[-1] - golden[-1]).max() > 1e-3  # alpha matters at this tolerance


# --- LookSAM ------------------------------------------------------------------------------------------


def test_looksam_hand_case():
    # g = (1, 0), g_s = (1, 1): g_v = (0, 1). Then g = (2, 0), alpha = 0.5: (2, 0) + 0.5 * 2 * (0, 1).
    w = jnp.ones(2)
    tx = sharpax.looksam(sharpax.sgd(1.0), rho=0.1, k=2, alpha=0.5)
    sam_grad = lambda p: jnp.array([1.0, 1.0])
    u, state = tx.update(jnp.array([1.0, 0.0]), tx.init(w), w, grad_fn=sam_grad)
    np.testing.assert_allclose(u, [-1.0, -1.0])  # a SAM step applies g_s
    np.testing.assert_allclose(state.vertical_direction, [0.0, 1.0], atol=1e-7)
    u, state = tx.update(jnp.array([2.0, 0.0]), state, w, grad_fn=sam_grad)
    np.testing.assert_allclose(u, [-2.0, -1.0], atol=1e-7)


def test_looksam_matches_reference():
    tx = sharpax.looksam(
        sharpax.sgd(ref.LOOKSAM["lr"]), ref.LOOKSAM["rho"], ref.LOOKSAM["k"], ref.LOOKSAM["alpha"]
    )
    golden = np.load(GOLDEN_DIR / "sam_looksam.npz")["params"]
    live = ref.looksam_reference(
        _flat(_problem()[2]), *ref.make_problem()[:2], steps=ref.STEPS, **ref.LOOKSAM
    )
    np.testing.assert_allclose(live, golden, **GOLDEN_VS_LIVE_F64)
    np.testing.assert_allclose(_run_transform(tx), golden, **TOL)


def test_looksam_with_k1_is_sam():
    sam = _run_transform(sharpax.sam(sharpax.sgd(0.1), 0.1), steps=4)
    looksam = _run_transform(sharpax.looksam(sharpax.sgd(0.1), 0.1, k=1), steps=4)
    np.testing.assert_allclose(looksam, sam, rtol=1e-6)


# --- periodic SAM -------------------------------------------------------------------------------------


def test_periodic_sam_matches_numpy():
    lr, rho, k = 0.1, 0.1, 3
    x, y, params = ref.make_problem()
    w, expected = ref.flatten(params), []
    expected.append(w.copy())
    for t in range(10):
        g = ref.mlp_grad(w, x, y)
        d = ref.mlp_grad(w + rho * g / np.linalg.norm(g), x, y) if t % k == 0 else g
        w = w - lr * d
        expected.append(w.copy())
    got = _run_transform(sharpax.periodic_sam(sharpax.sgd(lr), rho, k), steps=10)
    np.testing.assert_allclose(got, np.stack(expected), **TOL)


def test_periodic_sam_decided_on_the_host_is_periodic_sam():
    """The branch-free form of docs/sam_efficient.md: two jitted steps around one Adam and its state, the
    SAM one (`sam_value_and_grad`) called on steps 0, k, 2k, ... by the Python loop, follow
    `periodic_sam`'s trajectory."""
    lr, rho, k = 0.02, 0.1, 3
    x, y, params = _problem()
    base = sharpax.adam(lr)

    def make_step(value_and_grad):
        @jax.jit
        def step(params, state):
            _, grads = value_and_grad(params, x, y)
            updates, state = base.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return step

    sam_step = make_step(sharpax.sam_value_and_grad(mlp_loss, rho))
    plain_step = make_step(jax.value_and_grad(mlp_loss))
    state, got = base.init(params), [_flat(params)]
    for t in range(10):
        params, state = (sam_step if t % k == 0 else plain_step)(params, state)
        got.append(_flat(params))
    want = _run_transform(sharpax.periodic_sam(sharpax.adam(lr), rho, k), steps=10)
    np.testing.assert_allclose(np.stack(got), want, rtol=1e-6, atol=1e-7)
    plain = _run_transform(sharpax.adam(lr), steps=10)
    assert np.max(np.abs(want - plain)) > 1e-3  # the SAM steps made a difference


@pytest.mark.parametrize(
    "make", [lambda b: sharpax.periodic_sam(b, 0.1, k=5), lambda b: sharpax.looksam(b, 0.1, k=5)]
)
def test_plain_steps_do_not_run_the_second_pass(make):
    calls = []
    x, y, params = _problem()
    tx = make(sharpax.sgd(0.1))

    def grad_fn(p):
        jax.debug.callback(lambda: calls.append(1))
        return jax.grad(mlp_loss)(p, x, y)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(mlp_loss)(params, x, y), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(10):
        params, state = step(params, state)
    jax.effects_barrier()
    assert len(calls) == 2  # steps 0 and 5 only


# --- m-sharpness --------------------------------------------------------------------------------------


def test_m_sharpness_matches_per_chunk_numpy():
    rho, m = 0.1, 4
    x, y, params = ref.make_problem()
    w = ref.flatten(params)
    chunk_grads, chunk_losses = [], []
    for xc, yc in zip(
        np.split(x, m), np.split(y, m), strict=True
    ):  # contiguous chunks of the batch
        g = ref.mlp_grad(w, xc, yc)
        chunk_grads.append(ref.mlp_grad(w + rho * g / np.linalg.norm(g), xc, yc))
        chunk_losses.append(ref.mlp_loss(w, xc, yc))
    jx, jy, jparams = _problem()
    loss, grads = jax.jit(sharpax.sam_value_and_grad(mlp_loss, rho, m=m))(jparams, jx, jy)
    np.testing.assert_allclose(_flat(grads), np.mean(chunk_grads, 0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(loss), np.mean(chunk_losses), rtol=1e-6)
    _, whole = jax.jit(sharpax.sam_value_and_grad(mlp_loss, rho))(jparams, jx, jy)
    assert np.abs(_flat(whole) - _flat(grads)).max() > 1e-4  # chunking changes the gradient


def test_m_sharpness_aux_is_stacked_and_keywords_are_whole():
    def loss_fn(w, x, *, scale):
        return jnp.sum(w * x[:, 0]) * scale, jnp.sum(x)

    x = jnp.arange(6.0).reshape(6, 1)
    (loss, aux), grads = jax.jit(sharpax.sam_value_and_grad(loss_fn, 0.1, m=3, has_aux=True))(
        jnp.ones(1), x, scale=2.0
    )
    np.testing.assert_allclose(aux, [1.0, 5.0, 9.0])  # one first-pass aux per chunk of 2 rows
    np.testing.assert_allclose(loss, 2.0 * 15.0 / 3)  # mean of the chunk losses
    np.testing.assert_allclose(grads, [2.0 * 15.0 / 3])  # linear loss: the gradient ignores e


def test_m_sharpness_needs_a_divisible_batch():
    with pytest.raises(ValueError, match=r"with m=4, .* divisible by 4, got shape \(6, 1\)"):
        sharpax.sam_value_and_grad(lambda w, x: jnp.sum(w * x), m=4)(jnp.ones(1), jnp.ones((6, 1)))


@pytest.mark.parametrize("m", [2, 1], ids=["m-sharpness", "per-device"])
def test_batch_check_names_a_non_array_argument(m):
    """A non-array leaf in a positional argument (a function kept in a model's pytree) gets our message,
    naming the argument, not JAX's conversion error."""
    loss = lambda w, static, x: static["scale"] * jnp.mean(x) * jnp.sum(w**2)
    kwargs = {"m": m}
    if m == 1:
        mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
        kwargs |= {"mesh_axis": "data", "mesh": mesh}
    sam_grad = sharpax.sam_value_and_grad(loss, 0.1, **kwargs)
    static = {"scale": 2.0, "act": jnp.tanh}
    with pytest.raises(ValueError, match=r"positional argument 1 \(params is 0\) at \['act'\]"):
        sam_grad(jnp.ones(2), static, jnp.ones((4, 1)))
    if m > 1:
        with pytest.raises(ValueError, match=r"shape \(3, 1\) at positional argument 2"):
            sam_grad(jnp.ones(2), {"scale": jnp.ones(4)}, jnp.ones((3, 1)))
