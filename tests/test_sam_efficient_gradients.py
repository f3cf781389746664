"""RWP and ESAM (`rwp_value_and_grad`, `esam_value_and_grad`) against their reference code, step by step.

References: `references/sam_rwp_nblt.npz` and `references/sam_esam_dydjw9.npz`, written by
`references/make_sam_efficient_gradient_goldens.py` from torch transcriptions of nblt/RWP's training step and
dydjw9/Efficient_SAM's `ESAM.step` (the ESAM one checked bit for bit against the reference's own class),
with the random draws taken from the same JAX keys; hand-worked 2-parameter cases; SAM itself; the
generator re-run live when torch is importable.
"""

from __future__ import annotations

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sharpax
from tests.references import GOLDEN_DIR
from tests.references import make_sam_efficient_gradient_goldens as gen
from tests.references import sam_references as ref
from tests.references.box_muller import box_muller_normal
from tests.references.torch_reference import GOLDEN_VS_LIVE

RWP_GOLDEN = np.load(GOLDEN_DIR / "sam_rwp_nblt.npz")
ESAM_GOLDEN = np.load(GOLDEN_DIR / "sam_esam_dydjw9.npz")
# float32 on both sides, 10 steps of SGD with momentum: torch and XLA round in different orders.
TOL = dict(rtol=2e-5, atol=2e-6)


def mlp_out(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]


def mlp_loss(params, x, y):
    return jnp.mean((mlp_out(params, x) - y) ** 2)


def per_example_loss(params, x, y):
    return jnp.mean((mlp_out(params, x) - y) ** 2, axis=1)


def _problem():
    x, y = jnp.asarray(RWP_GOLDEN["x"]), jnp.asarray(RWP_GOLDEN["y"])
    params = {k: jnp.asarray(RWP_GOLDEN[f"init_{k}"]) for k in ref.SHAPES}
    return x, y, params


def _flat(tree):
    return np.concatenate([np.asarray(tree[k]).ravel() for k in ref.SHAPES])


def _roll(grad_fn, tx, seed, keyed=True):
    """`gen.STEPS` jitted steps of `grad_fn` + `tx`; key t is fold_in(key(seed), t) as in the generator."""
    x, y, params = _problem()

    @jax.jit
    def step(params, state, key):
        loss, grads = grad_fn(params, x, y, key=key) if keyed else grad_fn(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss, grads

    state = tx.init(params)
    trajectory, losses, first_grads = [_flat(params)], [], None
    for t in range(gen.STEPS):
        params, state, loss, grads = step(
            params, state, jax.random.fold_in(jax.random.key(seed), t)
        )
        first_grads = _flat(grads) if first_grads is None else first_grads
        trajectory.append(_flat(params))
        losses.append(float(loss))
    return np.stack(trajectory), np.asarray(losses), first_grads


# ------------------------------------------------------------------------------------------------ RWP


@functools.cache
def rwp_mlp():
    """One jitted RWP gradient of the MLP, shared by the tests below (one compile per input layout)."""
    return jax.jit(sharpax.rwp_value_and_grad(mlp_loss, 0.3))


@functools.cache
def run_rwp(case, filter_axis=-1, alpha=None):
    gamma, case_alpha = gen.RWP_CASES[case]
    alpha = case_alpha if alpha is None else alpha
    rwp_grad = sharpax.rwp_value_and_grad(mlp_loss, gamma, alpha, filter_axis=filter_axis)
    return _roll(rwp_grad, sharpax.sgd(**_torch_sgd(gen.RWP_SGD)), gen.RWP_SEED)


def _torch_sgd(kwargs):
    return dict(
        learning_rate=kwargs["lr"], momentum=kwargs["momentum"], weight_decay=kwargs["weight_decay"]
    )


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if c != "rwp" else []) for c in gen.RWP_CASES]
)
def test_rwp_matches_nblt_golden(case):
    trajectory, losses, first_grads = run_rwp(case)
    np.testing.assert_allclose(first_grads, RWP_GOLDEN[f"{case}_grad0"], **TOL)
    np.testing.assert_allclose(trajectory, RWP_GOLDEN[f"{case}_params"], **TOL)
    np.testing.assert_allclose(losses, RWP_GOLDEN[f"{case}_loss"], **TOL)


@pytest.mark.parametrize(
    ("case", "mistake"),
    [
        ("rwp", dict(filter_axis=0)),
        pytest.param("rwp", dict(filter_axis=None), marks=pytest.mark.slow),
        pytest.param("rwp_alpha", dict(alpha=0.2), marks=pytest.mark.slow),
    ],
    ids=["filters-along-torch's-axis", "whole-tensor-norms", "alpha-weights-the-plain-gradient"],
)
def test_rwp_golden_detects_the_wrong_filter_axis_or_mixing(case, mistake):
    # In Flax's (in, out) layout the filters (torch's rows) are the last axis; norms along another axis,
    # or over the whole tensor, give other noise scales; 1 - alpha on the noisy gradient is the other
    # reading of the mixing.
    trajectory, _, _ = run_rwp(case, **mistake)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(trajectory, RWP_GOLDEN[f"{case}_params"], **TOL)


def test_rwp_goldens_move():
    for case in gen.RWP_CASES:
        golden = RWP_GOLDEN[f"{case}_params"]
        assert np.abs(golden[-1] - golden[0]).max() > 0.05


@pytest.mark.slow
def test_rwp_golden_the_noise_matters():
    # Guards the goldens: the noise changed the trajectory (gamma = 0 is far).
    golden = RWP_GOLDEN["rwp_params"]
    rwp_grad = sharpax.rwp_value_and_grad(mlp_loss, 0.0, 0.5)
    plain, _, _ = _roll(rwp_grad, sharpax.sgd(**_torch_sgd(gen.RWP_SGD)), gen.RWP_SEED)
    assert np.abs(plain[-1] - golden[-1]).max() > 1e-3


@pytest.mark.parametrize("alpha", [0.5, pytest.param(0.3, marks=pytest.mark.slow)])
def test_rwp_with_gamma_zero_is_the_mixed_plain_gradient(alpha):
    """gamma = 0: no noise, so the result is (1 - alpha) g(w; B_1) + alpha g(w; B_2), and the loss is
    L(w; B_1). With alpha = 0.5 and a mean-reduced loss over two equal halves, that is the full-batch
    gradient g(w; B) (equal up to float32 rounding of the two half-batch means)."""
    x, y, params = _problem()
    loss, grads = jax.jit(sharpax.rwp_value_and_grad(mlp_loss, gamma=0.0, alpha=alpha))(
        params, x, y, key=jax.random.key(0)
    )
    # float64 numpy backprop (sam_references.mlp_grad) on each half and on the whole batch.
    vec, x, y = (
        ref.flatten({k: np.asarray(v) for k, v in params.items()}),
        np.asarray(x),
        np.asarray(y),
    )
    want = (1 - alpha) * ref.mlp_grad(vec, x[:8], y[:8]) + alpha * ref.mlp_grad(vec, x[8:], y[8:])
    np.testing.assert_allclose(_flat(grads), want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, ref.mlp_loss(vec, x[:8], y[:8]), rtol=1e-6)
    if alpha == 0.5:
        np.testing.assert_allclose(_flat(grads), ref.mlp_grad(vec, x, y), rtol=1e-5, atol=1e-7)


def test_rwp_two_parameter_case_by_hand():
    """w = (3, 4) as one Flax kernel of shape (2, 1): one filter (the output unit), ||w|| = 5.

    loss(w; X) = mean_i 0.5 ||w - x_i||^2, so grad = w - mean(X). First half (1, 0), (0, 1): mean
    (0.5, 0.5); second half (2, 2), (4, 0): mean (3, 1). gamma = 0.1: n = 0.1 * 5 * z = 0.5 z, z the
    normals of the documented key scheme. alpha = 0.25:
    0.75 ((3, 4) - (0.5, 0.5)) + 0.25 ((3, 4) + n - (3, 1)) = (1.875, 2.625) + (0, 0.75) + 0.125 z
    = (1.875, 3.375) + 0.125 z. The loss on the first half: 0.5 mean(4 + 16, 9 + 9) = 9.5.
    """
    loss_fn = lambda w, x: 0.5 * jnp.mean(jnp.sum((w[:, 0][None] - x) ** 2, axis=1))
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]])
    key = jax.random.key(42)
    loss, grads = jax.jit(sharpax.rwp_value_and_grad(loss_fn, gamma=0.1, alpha=0.25))(
        jnp.array([[3.0], [4.0]]), x, key=key
    )
    z = box_muller_normal(jax.random.split(key, 1)[0], (2, 1))
    np.testing.assert_allclose(grads, jnp.array([[1.875], [3.375]]) + 0.125 * z, rtol=1e-6)
    np.testing.assert_allclose(loss, 9.5)


@pytest.mark.slow
def test_rwp_noise_is_filter_wise_with_std_gamma_times_the_filter_norm():
    # Scale the filters (last axis) by 1, 10 and 100 and read the noise back from a loss linear in w:
    # d/dw of sum(c * w) is c everywhere, so the noise only shows through a loss quadratic in w.
    gamma, n_in = 0.05, 4000
    w = jnp.ones((n_in, 3)) * jnp.array([1.0, 10.0, 100.0])[None] / jnp.sqrt(n_in)
    b = jnp.full((5,), 2.0)
    params = {"w": w, "b": b}
    # grad of 0.5 ||p||^2 (the batch only sets the split) is p itself: at w + n, w + n.
    loss_fn = lambda p, x: 0.5 * (jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2)) + 0 * jnp.sum(x)
    _, grads = jax.jit(sharpax.rwp_value_and_grad(loss_fn, gamma, alpha=1.0))(
        params, jnp.zeros((2, 1)), key=jax.random.key(3)
    )
    noise_w = np.asarray(grads["w"] - w)
    filter_norms = np.asarray(jnp.linalg.norm(w, axis=0))  # 1, 10, 100
    np.testing.assert_allclose(noise_w.std(axis=0), gamma * filter_norms, rtol=0.05)
    # A 1-d leaf is one filter: std gamma (||b|| + 1e-16), here 0.05 * sqrt(20); 5 draws, so loosely.
    assert 0.0 < np.abs(np.asarray(grads["b"] - b)).max() < 6 * gamma * np.sqrt(20)


@pytest.mark.slow
def test_rwp_filter_axis_tree_tuple_and_mask():
    params = {
        "emb": jnp.ones((6, 4)),
        "dense": jnp.ones((4, 3)),
        "qkv": jnp.ones((2, 3, 5)),  # Flax attention: (in, heads, head_dim)
        "bias": jnp.ones(3),
    }
    loss_fn = lambda p, x: 0.5 * sum(jnp.sum(v**2) for v in p.values()) + 0 * jnp.sum(x)
    x, key = jnp.zeros((2, 1)), jax.random.key(5)
    axes = {"emb": 0, "dense": -1, "qkv": (1, 2), "bias": None}
    rwp_grad = sharpax.rwp_value_and_grad(loss_fn, 0.1, 1.0, filter_axis=axes)
    _, grads = jax.jit(rwp_grad)(params, x, key=key)
    # The documented scheme, leaves in flatten order (bias, dense, emb, qkv). Filter norms: emb rows 2,
    # dense columns 2, qkv (h, d) units over the 2 inputs sqrt(2); the bias 0.1 (sqrt(3) + 1e-16).
    k_bias, k_dense, k_emb, k_qkv = jax.random.split(key, 4)
    for name, k, norm in [
        ("emb", k_emb, 2.0),
        ("dense", k_dense, 2.0),
        ("qkv", k_qkv, np.sqrt(2.0)),
        ("bias", k_bias, np.sqrt(3.0)),
    ]:
        want = 0.1 * norm * box_muller_normal(k, params[name].shape)
        np.testing.assert_allclose(grads[name] - 1, want, rtol=1e-5, atol=1e-7, err_msg=name)
    masked = sharpax.rwp_value_and_grad(
        loss_fn, 0.1, 1.0, mask={"emb": False, "dense": True, "qkv": False, "bias": False}
    )
    _, grads = jax.jit(masked)(params, x, key=key)
    assert all(np.all(grads[n] == 1) for n in ("emb", "qkv", "bias"))
    assert np.any(grads["dense"] != 1)


@pytest.mark.slow
def test_rwp_key_gives_reproducible_and_fresh_noise():
    x, y, params = _problem()
    rwp_grad = rwp_mlp()
    a = rwp_grad(params, x, y, key=jax.random.key(1))
    b = rwp_grad(params, x, y, key=jax.random.key(1))
    c = rwp_grad(params, x, y, key=jax.random.key(2))
    np.testing.assert_array_equal(_flat(a[1]), _flat(b[1]))
    assert np.abs(_flat(a[1]) - _flat(c[1])).max() > 1e-4
    # A raw uint32 key works too.
    rwp_grad(params, x, y, key=jax.random.PRNGKey(1))


def _count(jaxpr, name):
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += _count(sub, name)
    return total


def test_rwp_is_one_vmapped_pass():
    """loss_fn is traced once, on half the batch, and the step has the matmuls of one plain
    forward-backward (each batched over the two weight sets), not two passes' worth."""
    x, y, params = _problem()
    seen = []

    def traced_loss(params, x, y):
        seen.append(x.shape)
        return mlp_loss(params, x, y)

    rwp_grad = sharpax.rwp_value_and_grad(traced_loss, 0.1)
    jaxpr = jax.make_jaxpr(lambda p, x, y, k: rwp_grad(p, x, y, key=k))(
        params, x, y, jax.random.key(0)
    ).jaxpr
    assert seen == [(8, 4)]
    plain = jax.make_jaxpr(jax.value_and_grad(mlp_loss))(params, x, y).jaxpr
    assert _count(jaxpr, "dot_general") == _count(plain, "dot_general") == 5


@pytest.mark.slow
def test_rwp_has_aux_returns_the_first_halfs_aux():
    x, y, params = _problem()
    aux_loss = lambda p, x, y: (mlp_loss(p, x, y), {"out": mlp_out(p, x)})
    (loss, aux), grads = jax.jit(sharpax.rwp_value_and_grad(aux_loss, 0.3, has_aux=True))(
        params, x, y, key=jax.random.key(0)
    )
    want_loss, want_grads = rwp_mlp()(params, x, y, key=jax.random.key(0))
    np.testing.assert_allclose(_flat(grads), _flat(want_grads), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    w1, b1 = np.asarray(params["w1"], np.float64), np.asarray(params["b1"], np.float64)
    w2, b2 = np.asarray(params["w2"], np.float64), np.asarray(params["b2"], np.float64)
    first_half = np.tanh(np.asarray(x[:8]) @ w1 + b1) @ w2 + b2
    np.testing.assert_allclose(aux["out"], first_half, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_rwp_under_vmap_over_keys():
    x, y, params = _problem()
    rwp_grad = sharpax.rwp_value_and_grad(mlp_loss, 0.3)
    keys = jax.random.split(jax.random.key(0), 3)
    _, batched = jax.jit(jax.vmap(lambda k: rwp_grad(params, x, y, key=k)))(keys)
    for i in range(3):
        _, one = rwp_mlp()(params, x, y, key=keys[i])
        np.testing.assert_allclose(
            _flat(jax.tree.map(lambda g, i=i: g[i], batched)), _flat(one), rtol=1e-6, atol=1e-7
        )


# ----------------------------------------------------------------------------------------------- ESAM


def _esam_gamma(gamma):
    """The gamma at which sharpax keeps the reference's count: it keeps the losses that rose strictly
    more than the k-th largest rise, k = int(B gamma), i.e. k - 1 examples (no ties here)."""
    if gamma >= 0.99:
        return 1.0
    return (int(16 * gamma) - 1 + 0.5) / 16


@functools.cache
def run_esam(case, reference_count=True):
    rho, beta, gamma, adaptive = gen.ESAM_CASES[case]
    gamma = _esam_gamma(gamma) if reference_count else gamma
    esam_grad = sharpax.esam_value_and_grad(per_example_loss, rho, beta, gamma, adaptive=adaptive)
    return _roll(esam_grad, sharpax.sgd(**_torch_sgd(gen.ESAM_SGD)), gen.ESAM_SEED)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=[pytest.mark.slow] if c != "esam" else []) for c in gen.ESAM_CASES],
)
def test_esam_matches_dydjw9_golden(case):
    trajectory, losses, _ = run_esam(case)
    np.testing.assert_allclose(trajectory, ESAM_GOLDEN[f"{case}_params"], **TOL)
    np.testing.assert_allclose(losses, ESAM_GOLDEN[f"{case}_loss"], **TOL)


@pytest.mark.slow
def test_esam_golden_detects_one_example_more():
    # gamma = 0.5 keeps 8 of 16 examples here and 7 in the reference: the goldens see the difference.
    trajectory, _, _ = run_esam("esam", reference_count=False)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(trajectory, ESAM_GOLDEN["esam_params"], **TOL)


def test_esam_goldens_move_and_differ():
    for case in gen.ESAM_CASES:
        golden = ESAM_GOLDEN[f"{case}_params"]
        assert np.abs(golden[-1] - golden[0]).max() > 0.05
    assert np.abs(ESAM_GOLDEN["esam_params"][-1] - ESAM_GOLDEN["esam_full_params"][-1]).max() > 1e-3


def test_esam_with_beta_1_gamma_1_is_sam():
    """beta = 1 perturbs every tensor and gamma = 1 keeps every example: SAM, with ESAM's 1e-7 in place
    of SAM's 1e-12 in rho g / (||g|| + eps), invisible at ||g|| ~ 1 in float32."""
    x, y, params = _problem()
    loss, grads = jax.jit(sharpax.esam_value_and_grad(per_example_loss, 0.2, 1.0, 1.0))(
        params, x, y
    )
    sam_loss, sam_grads = jax.jit(sharpax.sam_value_and_grad(mlp_loss, 0.2))(params, x, y)
    np.testing.assert_allclose(_flat(grads), _flat(sam_grads), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loss, sam_loss, rtol=1e-6)


def test_esam_normalisation_constant_shows_at_tiny_gradients():
    """With ||g|| = 1e-7, ESAM's e = rho g / (1e-7 + 1e-7) is half SAM's rho g / (1e-7 + 1e-12).

    losses c x_i ||w||^2 with c = 1e-8, x = (1, 1), w = (3, 4): g = 2 c w, ||g|| = 1e-7, rho = 0.5:
    ESAM w + e = w + 0.25 (0.6, 0.8) = (3.15, 4.2), SAM w + 0.5 (0.6, 0.8) = (3.3, 4.4); grads 2 c (w + e).
    """
    c = 1e-8
    per_example = lambda w, x: c * x * jnp.sum(w**2)
    w, x = jnp.array([3.0, 4.0]), jnp.ones(2)
    _, esam = jax.jit(sharpax.esam_value_and_grad(per_example, 0.5, 1.0, 1.0))(w, x)
    sam_grad = sharpax.sam_value_and_grad(lambda w, x: jnp.mean(per_example(w, x)), 0.5)
    _, sam = jax.jit(sam_grad)(w, x)
    np.testing.assert_allclose(esam / (2 * c), [3.15, 4.2], rtol=1e-5)
    np.testing.assert_allclose(sam / (2 * c), [3.3, 4.4], rtol=1e-5)


def test_esam_selection_two_parameter_case_by_hand():
    """losses (x_i . w)^2, w = (1, 1), x = (1, 0), (0, 3), (2, 0), (0, 1): losses (1, 9, 4, 1), mean 3.75.
    g = mean 2 (x_i . w) x_i = ((2, 0) + (0, 18) + (8, 0) + (0, 2)) / 4 = (2.5, 5); rho = 0.1 ||g||
    gives e = 0.1 g = (0.25, 0.5) (to 2e-8), w + e = (1.25, 1.5). Losses there (1.5625, 20.25, 6.25,
    2.25) rose by (0.5625, 11.25, 2.25, 1.25): gamma = 0.5 keeps examples 1 and 2, and the gradient is
    (2 * 4.5 (0, 3) + 2 * 2.5 (2, 0)) / 2 = (5, 13.5)."""
    per_example = lambda w, x: (x @ w) ** 2
    x = jnp.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0], [0.0, 1.0]])
    rho = 0.1 * float(np.hypot(2.5, 5.0))
    loss, grads = jax.jit(sharpax.esam_value_and_grad(per_example, rho, 1.0, 0.5))(
        jnp.array([1.0, 1.0]), x
    )
    np.testing.assert_allclose(loss, 3.75)
    np.testing.assert_allclose(grads, [5.0, 13.5], rtol=1e-6)


def _swp_expected(kept, rho, beta):
    """losses x_i (a^2 + b^2) with a = 1, b = 2, x = (1, 1): g = (2, 4); the kept tensors' part g_hat,
    e = (rho / beta) g_hat / (||g_hat|| + 1e-7); the second pass gives 2 (w + e)."""
    g_hat = np.where(kept, [2.0, 4.0], 0.0)
    e = rho / beta * g_hat / (np.linalg.norm(g_hat) + 1e-7)
    return 2 * (np.array([1.0, 2.0]) + e)


def test_esam_random_tensor_subset_follows_the_documented_draw():
    rho, beta = 0.1, 0.5
    per_example = lambda p, x: x * (p["a"] ** 2 + p["b"] ** 2)
    params, x = {"a": jnp.array(1.0), "b": jnp.array(2.0)}, jnp.ones(2)
    esam_grad = jax.jit(sharpax.esam_value_and_grad(per_example, rho, beta, 1.0))
    patterns = set()
    for i in range(12):
        key = jax.random.key(i)
        kept = np.asarray(jax.random.uniform(key, (2,)) < beta)  # tensors in flatten order: a, b
        patterns.add(tuple(kept))
        _, grads = esam_grad(params, x, key=key)
        np.testing.assert_allclose(
            [grads["a"], grads["b"]], _swp_expected(kept, rho, beta), rtol=1e-6
        )
    assert len(patterns) == 4  # every subset, the empty one (e = 0) included, was exercised


def test_esam_keeps_each_tensor_with_probability_beta_under_vmap():
    beta, n = 0.3, 4000
    per_example = lambda p, x: x * (p["a"] ** 2 + p["b"] ** 2)
    params, x = {"a": jnp.array(1.0), "b": jnp.array(2.0)}, jnp.ones(2)
    esam_grad = sharpax.esam_value_and_grad(per_example, 0.1, beta, 1.0)
    keys = jax.random.split(jax.random.key(0), n)
    _, grads = jax.jit(jax.vmap(lambda k: esam_grad(params, x, key=k)))(keys)
    kept_a = np.asarray(grads["a"]) > 2.0 + 1e-4  # a perturbed tensor moved up its gradient
    kept_b = np.asarray(grads["b"]) > 4.0 + 1e-4
    for kept in (kept_a, kept_b):
        assert abs(kept.mean() - beta) < 4 * np.sqrt(beta * (1 - beta) / n)


def test_esam_second_pass_runs_on_the_selected_examples_only():
    """Three traces of the loss: the first pass (B), the sharpness forward at w + e (B), and the second
    pass on k = floor(gamma B) gathered examples; with gamma = 1 only the two passes of SAM."""
    x, y, params = _problem()
    for gamma, shapes in [(0.25, [16, 16, 4]), (1.0, [16, 16])]:
        seen = []

        def traced(params, x, y, seen=seen):
            seen.append(x.shape[0])
            return per_example_loss(params, x, y)

        esam_grad = sharpax.esam_value_and_grad(traced, 0.1, 1.0, gamma)
        jax.make_jaxpr(esam_grad)(params, x, y)
        assert seen == shapes


@pytest.mark.slow
def test_esam_has_aux_and_rho_schedule():
    x, y, params = _problem()
    aux_loss = lambda p, x, y: (per_example_loss(p, x, y), {"out": mlp_out(p, x)})
    esam_grad = sharpax.esam_value_and_grad(
        aux_loss, lambda step: 0.2 / (1 + step), 1.0, 0.5, has_aux=True
    )
    (loss, aux), grads = jax.jit(esam_grad)(params, x, y, sam_step=1)
    np.testing.assert_allclose(aux["out"], mlp_out(params, x), rtol=1e-6)
    np.testing.assert_allclose(loss, mlp_loss(params, x, y), rtol=1e-6)
    _, want = jax.jit(sharpax.esam_value_and_grad(per_example_loss, 0.1, 1.0, 0.5))(params, x, y)
    np.testing.assert_allclose(_flat(grads), _flat(want), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="rho is a schedule"):
        esam_grad(params, x, y)


# ------------------------------------------------------------------------------ sharding, live torch


@pytest.mark.parametrize(
    ("method", "axis_type"),
    [
        pytest.param("rwp", AxisType.Auto, marks=pytest.mark.slow),
        pytest.param("rwp", AxisType.Explicit, marks=pytest.mark.slow),
        pytest.param("esam", AxisType.Auto, marks=pytest.mark.slow),
        ("esam", AxisType.Explicit),  # 8 selected examples: gathered sharded over the 8 devices
        # 4 selected examples: gathered whole on every device.
        pytest.param("esam_k4", AxisType.Explicit, marks=pytest.mark.slow),
    ],
    ids=["rwp-auto", "rwp-explicit", "esam-auto", "esam-explicit", "esam-explicit-k4"],
)
def test_batch_sharded_over_8_devices_matches_one_device(method, axis_type):
    x, y, params = _problem()
    if method == "rwp":
        grad_fn = sharpax.rwp_value_and_grad(mlp_loss, 0.3)
    else:
        gamma = 0.25 if method == "esam_k4" else 0.5
        grad_fn = sharpax.esam_value_and_grad(per_example_loss, 0.2, 0.6, gamma)
    key = jax.random.key(4)
    want = (rwp_mlp() if method == "rwp" else jax.jit(grad_fn))(params, x, y, key=key)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(axis_type,))
    with jax.set_mesh(mesh):
        p8 = jax.device_put(params, NamedSharding(mesh, P()))
        x8, y8 = (jax.device_put(a, NamedSharding(mesh, P("data"))) for a in (x, y))
        key8 = jax.device_put(key, NamedSharding(mesh, P()))
        step = jax.jit(grad_fn)
        step.lower(p8, x8, y8, key=key8).compile()
        with jax.transfer_guard("disallow"):
            got = step(p8, x8, y8, key=key8)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-5)
    np.testing.assert_allclose(_flat(got[1]), _flat(want[1]), rtol=2e-5, atol=2e-6)
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(got[1]))


@pytest.mark.torch
@pytest.mark.slow
def test_rwp_matches_nblt_live():
    pytest.importorskip("torch")
    for case in gen.RWP_CASES:
        params, losses, grad0 = gen.rwp_trajectory(case)
        np.testing.assert_allclose(params, RWP_GOLDEN[f"{case}_params"], **GOLDEN_VS_LIVE)
        np.testing.assert_allclose(losses, RWP_GOLDEN[f"{case}_loss"], **GOLDEN_VS_LIVE)
        np.testing.assert_allclose(grad0, RWP_GOLDEN[f"{case}_grad0"], **GOLDEN_VS_LIVE)
        np.testing.assert_allclose(run_rwp(case)[0], params, **TOL)


@pytest.mark.torch
@pytest.mark.slow
def test_esam_matches_dydjw9_live():
    pytest.importorskip("torch")
    for case in gen.ESAM_CASES:
        params, losses = gen.esam_trajectory(case)
        np.testing.assert_allclose(params, ESAM_GOLDEN[f"{case}_params"], **GOLDEN_VS_LIVE)
        np.testing.assert_allclose(losses, ESAM_GOLDEN[f"{case}_loss"], **GOLDEN_VS_LIVE)
        np.testing.assert_allclose(run_esam(case)[0], params, **TOL)


def test_rwp_keeps_the_complex_leaves_the_mask_leaves_unperturbed():
    """Filter-wise noise is for real weights; a complex leaf masked out of it still gets its mixed
    gradient, both parts of it (the mix once cast it to float32, dropping the imaginary part)."""
    x = jnp.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1], [-1.0, 0.4]])
    params = {"z": jnp.array([1.0 + 2.0j, -0.5 + 0.3j]), "w": jnp.array([0.2, -0.7])}
    loss = lambda p, x: jnp.mean(
        jnp.abs(x.astype(p["z"].dtype) @ p["z"]) ** 2 + jnp.tanh(x @ p["w"])
    )
    rwp = sharpax.rwp_value_and_grad(loss, gamma=0.0, alpha=0.3, mask={"z": False, "w": True})
    _, grads = jax.jit(rwp)(params, x, key=jax.random.key(0))
    first, second = jax.grad(loss)(params, x[:2]), jax.grad(loss)(params, x[2:])
    for k in params:
        np.testing.assert_allclose(grads[k], 0.7 * first[k] + 0.3 * second[k], rtol=1e-6, err_msg=k)
    assert grads["z"].dtype == jnp.complex64 and np.all(np.imag(grads["z"]) != 0)
    with pytest.raises(TypeError, match=r"param at \['z'\] is complex64"):
        sharpax.rwp_value_and_grad(loss, gamma=0.1)(params, x, key=jax.random.key(0))


def test_esam_on_complex_params_is_its_real_view():
    """A complex param is its real and imaginary parts (as torch's view_as_real): ESAM on w = a + ib
    perturbs along conj(jax.grad) and returns JAX's gradient, the conjugate of the real view's."""
    x = jnp.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1], [-1.0, 0.4]])
    per_example = lambda w, x: jnp.abs(x.astype(w.dtype) @ w) ** 2
    real_view = lambda ab, x: per_example(lax.complex(ab[:, 0], ab[:, 1]), x)
    ab = jnp.array([[1.0, 2.0], [-0.5, 0.3]])
    esam = lambda f: jax.jit(sharpax.esam_value_and_grad(f, 0.1, 1.0, 0.5))
    loss, g = esam(per_example)(lax.complex(ab[:, 0], ab[:, 1]), x)
    real_loss, g_real = esam(real_view)(ab, x)
    np.testing.assert_allclose(loss, real_loss, rtol=1e-6)
    np.testing.assert_allclose(
        g, np.asarray(g_real[:, 0]) - 1j * np.asarray(g_real[:, 1]), rtol=1e-5, atol=1e-6
    )
