"""sharpax.sharpness against exact references: the dense Hessian (`jax.hessian`, float64) and its
`numpy.linalg.eigh`, PyHessian's own stochastic Lanczos quadrature and density (goldens from
`references/make_sharpness_goldens.py`), brute-force searches of the rho-ball, and direct evaluations of the
loss; then jit, vmap over keys, float32/bfloat16 params, a loss over batches, and 8-device sharding.
"""

from __future__ import annotations

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sharpax
from sharpax.sharpness import _operator
from sharpax.sharpness._lanczos import lanczos
from sharpax.sharpness._operator import HessianOperator
from sharpax.wrappers._sam_geometry import Perturbation
from tests.references import GOLDEN_DIR

S = sharpax.sharpness
ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = np.load(GOLDEN_DIR / "sharpness_pyhessian.npz")


# ------------------------------------------------------------------------------------------- problems


def mlp_loss(params, x, y):
    """Mean cross-entropy of a tanh MLP (torch's CrossEntropyLoss on the golden's torch model)."""
    h = jnp.tanh(x @ params["l0"]["kernel"] + params["l0"]["bias"][None])
    logits = h @ params["l1"]["kernel"] + params["l1"]["bias"][None]
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)


def mlp_problem(dtype=jnp.float32):
    """The golden's 3-6-4 MLP (52 parameters) and its 16 points; kernels are torch's weights transposed."""
    g = {k: GOLDEN[f"slq_{k}"] for k in ("w0", "b0", "w1", "b1", "x", "y")}
    params = {
        "l0": {"kernel": jnp.asarray(g["w0"].T, dtype), "bias": jnp.asarray(g["b0"], dtype)},
        "l1": {"kernel": jnp.asarray(g["w1"].T, dtype), "bias": jnp.asarray(g["b1"], dtype)},
    }
    return params, jnp.asarray(g["x"], dtype), jnp.asarray(g["y"], jnp.int32)


def dense_hessian(loss_fn, params, *args) -> np.ndarray:
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda f, *a: loss_fn(unravel(f), *a)))
    return np.asarray(hessian(flat, *args), np.float64)


@functools.cache
def mlp_hessian_x64() -> np.ndarray:
    """The dense float64 Hessian of the golden MLP's loss (52 x 52), computed once."""
    with jax.enable_x64(True):
        return dense_hessian(mlp_loss, *mlp_problem(jnp.float64))


def flat_rows(vecs) -> np.ndarray:
    """Row i: eigenvector i flattened in ravel_pytree's order (the dense Hessian's)."""
    leaves = [np.asarray(v, np.float64) for v in jax.tree.leaves(vecs)]
    return np.concatenate([v.reshape(len(v), -1) for v in leaves], axis=1)


def assert_same_direction(got: np.ndarray, want: np.ndarray, tol: float) -> None:
    """Unit vectors equal up to sign."""
    err = min(np.linalg.norm(got - want), np.linalg.norm(got + want))
    assert err <= tol, err


def quadratic(eigenvalues, seed=0):
    """L(w) = 0.5 w^T A w + b^T w on a tree {"a": (3, 4), "b": (n - 12,)} plus an integer leaf; A has
    the given eigenvalues and random orthonormal eigenvectors (columns of U, in the flattened order)."""
    n = len(eigenvalues)
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = u @ np.diag(eigenvalues) @ u.T
    b = rng.standard_normal(n)
    params = {"a": jnp.ones((3, 4)), "b": jnp.zeros(n - 12), "step": jnp.array(7, jnp.int32)}

    def loss(p):
        w = jnp.concatenate([p["a"].ravel(), p["b"]])
        return 0.5 * w @ jnp.asarray(a, w.dtype) @ w + jnp.asarray(b, w.dtype) @ w

    return loss, params, u


# ------------------------------------------------------------------------------------ eigenvalues


def test_top3_eigenpairs_of_an_mlp_match_the_dense_hessian():
    lam, u = np.linalg.eigh(mlp_hessian_x64())
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        eigs, vecs = jax.jit(
            lambda p, key: S.hessian_eigenvalues(
                mlp_loss, p, x, y, k=3, num_iterations=40, key=key, tol=1e-10
            )
        )(params, jax.random.key(0))
    assert eigs.dtype == jnp.float64
    np.testing.assert_allclose(eigs, lam[::-1][:3], rtol=1e-6)
    assert jax.tree.structure(vecs) == jax.tree.structure(params)
    for v, p in zip(jax.tree.leaves(vecs), jax.tree.leaves(params), strict=True):
        assert v.shape == (3, *p.shape) and v.dtype == jnp.float64
    rows = flat_rows(vecs)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-12)
    for i in range(3):
        assert_same_direction(rows[i], u[:, -1 - i], 1e-6)


def test_float32_under_jit_and_vmap_on_a_quadratic_with_a_known_spectrum():
    # A dominant negative eigenvalue (-9): power iteration (PyHessian) would return it; the k largest
    # algebraic ones are 5, 4, 3. 30 parameters: the default 100 iterations are at most 30. float32,
    # one compiled function vmapped over 3 keys (error bars): every start finds the same eigenpairs,
    # and every trace estimate lies within the Hutchinson standard error of tr A, from its own probes.
    spectrum = np.concatenate([[5.0, 4.0, 3.0, -9.0], np.linspace(-2.0, 2.5, 26)])
    loss, params, u = quadratic(spectrum)
    a = u @ np.diag(spectrum) @ u.T
    num_samples = 10

    def measures(key):
        eigs, vecs = S.hessian_eigenvalues(loss, params, k=3, key=key)
        trace = S.hessian_trace(loss, params, num_samples=num_samples, key=key)
        return eigs, vecs, trace

    eigs, vecs, traces = jax.jit(jax.vmap(measures))(jax.random.split(jax.random.key(1), 3))
    assert eigs.dtype == traces.dtype == vecs["a"].dtype == jnp.float32
    np.testing.assert_allclose(eigs, np.tile([5.0, 4.0, 3.0], (3, 1)), rtol=1e-5)
    for r in range(3):
        rows = np.stack(
            [np.concatenate([np.ravel(vecs["a"][r, i]), vecs["b"][r, i]]) for i in range(3)]
        )
        for i in range(3):
            assert_same_direction(rows[i], u[:, i], 1e-4)
    np.testing.assert_array_equal(vecs["step"], jnp.zeros((3, 3), jnp.int32))  # not differentiated
    standard_error = np.sqrt(2 * np.sum((a - np.diag(np.diag(a))) ** 2) / num_samples)
    assert np.all(np.abs(np.asarray(traces) - np.sum(spectrum)) <= 4 * standard_error), traces
    assert len(set(np.asarray(traces).tolist())) == 3  # independent probes per key


@pytest.mark.slow
def test_top3_of_a_quadratic_with_a_known_spectrum_in_float64():
    spectrum = np.concatenate([[5.0, 4.0, 3.0, -9.0], np.linspace(-2.0, 2.5, 26)])
    with jax.enable_x64(True):
        loss, params, u = quadratic(spectrum)
        eigs, vecs = jax.jit(
            lambda p, key: S.hessian_eigenvalues(loss, p, k=3, key=key, tol=1e-10)
        )(params, jax.random.key(1))
    np.testing.assert_allclose(eigs, [5.0, 4.0, 3.0], rtol=1e-6)
    rows = np.stack([np.concatenate([np.ravel(vecs["a"][i]), vecs["b"][i]]) for i in range(3)])
    for i in range(3):
        assert_same_direction(rows[i], u[:, i], 1e-6)


@pytest.mark.slow
def test_a_repeated_top_eigenvalue_is_found_twice_with_tol_zero():
    spectrum = np.concatenate([[4.0, 4.0, 3.0], np.linspace(-1.0, 1.0, 17)])
    with jax.enable_x64(True):
        loss, params, _ = quadratic(spectrum, seed=3)
        eigs, _ = S.hessian_eigenvalues(
            loss, params, k=3, num_iterations=20, key=jax.random.key(0), tol=0
        )
    np.testing.assert_allclose(eigs, [4.0, 4.0, 3.0], rtol=1e-9)


# ------------------------------------------------------------------------------------------ trace


def test_trace_is_within_the_hutchinson_standard_error_of_the_dense_trace():
    num_samples = 200
    h = mlp_hessian_x64()
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        got = jax.jit(
            lambda p, key: S.hessian_trace(mlp_loss, p, x, y, num_samples=num_samples, key=key)
        )(params, jax.random.key(2))
    assert got.dtype == jnp.float64
    # Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher z.
    off_diagonal = h - np.diag(np.diag(h))
    standard_error = np.sqrt(2 * np.sum(off_diagonal**2) / num_samples)
    assert abs(float(got) - np.trace(h)) <= 4 * standard_error, (got, np.trace(h), standard_error)


def test_trace_is_exact_for_a_diagonal_hessian():
    # Rademacher probes: z^T D z = tr D for every probe, whatever the key.
    loss = lambda p: 0.5 * jnp.sum(jnp.array([3.0, -5.0, 2.5]) * p["w"] ** 2) + jnp.sum(p["v"] ** 2)
    params = {"w": jnp.ones(3), "v": jnp.ones((2, 2))}
    got = S.hessian_trace(loss, params, num_samples=3, key=jax.random.key(5))
    np.testing.assert_allclose(got, 3.0 - 5.0 + 2.5 + 8.0, rtol=1e-6)


@pytest.mark.slow
def test_trace_estimates_over_keys_have_the_rademacher_variance():
    # 400 independent estimates of N = 5 probes (vmap over keys): their spread is the theoretical
    # standard error (a Gaussian probe's would be larger by 2 sum_i H_ii^2 / N).
    params, x, y = mlp_problem()
    h = mlp_hessian_x64()
    keys = jax.random.split(jax.random.key(0), 400)
    estimates = jax.jit(
        jax.vmap(lambda k: S.hessian_trace(mlp_loss, params, x, y, num_samples=5, key=k))
    )(keys)
    off_diagonal = h - np.diag(np.diag(h))
    standard_error = np.sqrt(2 * np.sum(off_diagonal**2) / 5)
    assert abs(np.mean(estimates) - np.trace(h)) <= 4 * standard_error / np.sqrt(400)
    np.testing.assert_allclose(np.std(estimates), standard_error, rtol=0.15)


# ---------------------------------------------------------------------------------------- spectrum


def test_spectrum_moments_match_the_exact_eigenvalues():
    num_runs = 8
    h = mlp_hessian_x64()
    n = h.shape[0]
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        nodes, weights = jax.jit(
            lambda p, key: S.hessian_spectrum(
                mlp_loss, p, x, y, num_lanczos=10, num_runs=num_runs, key=key
            )
        )(params, jax.random.key(3))
    nodes, weights = np.asarray(nodes), np.asarray(weights)
    assert nodes.shape == weights.shape == (num_runs, 10)
    assert np.all(np.diff(np.asarray(nodes), axis=1) >= 0) and np.all(weights >= 0)
    np.testing.assert_allclose(np.sum(weights), 1.0, rtol=1e-12)
    for j in (1, 2):
        # Each run is v^T H^j v exactly (Gauss quadrature, 2 m - 1 >= j), v = z / sqrt(n) with z
        # Rademacher: mean tr(H^j) / n, variance 2 sum_{i != l} (H^j)_{il}^2 / n^2 per run.
        hj = np.linalg.matrix_power(h, j)
        var = 2 * np.sum((hj - np.diag(np.diag(hj))) ** 2) / n**2
        got = float(np.sum(weights * nodes**j))
        assert abs(got - np.trace(hj) / n) <= 4 * np.sqrt(var / num_runs), (j, got)


@pytest.mark.slow
def test_spectrum_over_the_whole_space_has_the_exact_eigenvalues_as_nodes():
    h = mlp_hessian_x64()
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        nodes, weights = S.hessian_spectrum(
            mlp_loss, params, x, y, num_lanczos=200, num_runs=2, key=jax.random.key(4)
        )
    nodes, weights = np.asarray(nodes), np.asarray(weights)
    assert nodes.shape == (2, h.shape[0])  # at most n steps
    lam = np.linalg.eigh(h)[0]
    np.testing.assert_allclose(nodes, np.stack([lam, lam]), atol=1e-10)
    np.testing.assert_allclose(np.sum(weights, axis=1), [0.5, 0.5], rtol=1e-12)


@functools.partial(jax.jit, static_argnums=4)
def _jit_lanczos(params, x, y, v, steps):
    hessian = HessianOperator("test", mlp_loss, params, (x, y))
    return lanczos(hessian, v, steps, jax.random.key(0))


@pytest.mark.slow
def test_lanczos_quadrature_is_exact_for_the_start_vector():
    # With m steps from v, sum_l w_l theta_l^j = v^T H^j v for j < 2m (Golub & Meurant); m = 12.
    h = mlp_hessian_x64()
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        hessian = HessianOperator("test", mlp_loss, params, (x, y))
        v = _operator.random_vector(jax.random.key(0), hessian.leaves, jnp.float64, "rademacher")
        v = _operator.normalize(v, jnp.float64)
        result = _jit_lanczos(params, x, y, v, 12)
        off = result.beta[:-1]
        nodes, s = np.linalg.eigh(np.diag(result.alpha) + np.diag(off, 1) + np.diag(off, -1))
        flat_v = np.asarray(ravel_pytree(hessian.params_at(v))[0])
        for j in range(10):
            want = flat_v @ np.linalg.matrix_power(h, j) @ flat_v
            np.testing.assert_allclose(np.sum(s[0] ** 2 * nodes**j), want, rtol=1e-9, atol=1e-14)


def test_slq_matches_pyhessian_run_by_run_from_the_same_starts():
    # PyHessian's density() on the same float64 torch MLP with its Rademacher starts recorded. It
    # normalises every Lanczos vector by ||w|| + 1e-6 (utils.normalization; the betas here are ~0.2,
    # so its vectors are ~5e-6 short of unit) and keeps T in float32 (torch.zeros(iter, iter)): the
    # tolerance is for those two, not for a difference of algorithm.
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        for start, want_nodes, want_weights in zip(
            GOLDEN["slq_starts"], GOLDEN["slq_nodes"], GOLDEN["slq_weights"], strict=True
        ):
            # PyHessian's order is model.parameters(): W0 (6, 3), b0, W1 (4, 6), b1.
            w0, b0, w1, b1 = np.split(start, [18, 24, 48])
            v = {
                "l0": {"kernel": w0.reshape(6, 3).T, "bias": b0},
                "l1": {"kernel": w1.reshape(4, 6).T, "bias": b1},
            }
            v = _operator.normalize([jnp.asarray(a) for a in jax.tree.leaves(v)], jnp.float64)
            result = _jit_lanczos(params, x, y, v, GOLDEN["slq_nodes"].shape[1])
            off = result.beta[:-1]
            nodes, s = np.linalg.eigh(np.diag(result.alpha) + np.diag(off, 1) + np.diag(off, -1))
            order = np.argsort(want_nodes)
            np.testing.assert_allclose(nodes, want_nodes[order], rtol=2e-5, atol=1e-6)
            np.testing.assert_allclose(s[0] ** 2, want_weights[order], atol=1e-5)


@pytest.mark.parametrize("name", ["fine", pytest.param("wide", marks=pytest.mark.slow)])
def test_spectral_density_matches_pyhessian_density_generate(name):
    num_bins, sigma_squared = GOLDEN[f"density_{name}_params"]
    nodes, per_run = GOLDEN["density_nodes"], GOLDEN["density_weights"]
    weights = per_run / len(per_run)  # hessian_spectrum's convention: one density over all runs
    want, want_grid = GOLDEN[f"density_{name}"], GOLDEN[f"density_{name}_grid"]
    density_fn = jax.jit(
        functools.partial(S.spectral_density, num_bins=int(num_bins), sigma_squared=sigma_squared)
    )
    with jax.enable_x64(True):
        density, grid = density_fn(jnp.asarray(nodes), jnp.asarray(weights))
        np.testing.assert_allclose(grid, want_grid, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(density, want, rtol=1e-9, atol=1e-12 * want.max())
    density, grid = density_fn(jnp.asarray(nodes, jnp.float32), jnp.asarray(weights, jnp.float32))
    # float32 grid points near 30 are off by ~2e-6, a few 1e-4 of a kernel width of ~0.02.
    np.testing.assert_allclose(density, want, atol=2e-3 * want.max())


# -------------------------------------------------------------------------------------- SAM sharpness


def _bumpy(w):
    return jnp.sin(3 * w[0]) + jnp.cos(2 * w[1]) + 0.5 * w[0] * w[1] + 0.3 * w[0] ** 2


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_sharpness_matches_a_brute_force_search_of_the_ball(adaptive):
    rho, eta = (0.3, 0.0) if not adaptive else (0.5, 0.1)
    with jax.enable_x64(True):
        w = jnp.array([0.3, -0.2])
        scale = np.abs(np.asarray(w)) + eta if adaptive else np.ones(2)
        # Every point of the ball ||e / scale|| <= rho on a polar grid, the boundary included.
        r, t = np.meshgrid(np.linspace(0, rho, 301), np.linspace(0, 2 * np.pi, 4001))
        e = scale[:, None] * np.stack([(r * np.cos(t)).ravel(), (r * np.sin(t)).ravel()])
        base = float(_bumpy(np.asarray(w)))
        brute = float(np.max(_bumpy(np.asarray(w)[:, None] + e))) - base

        kwargs = dict(rho=rho, adaptive=adaptive, eta=eta)
        one = S.sam_sharpness(_bumpy, w, **kwargs)
        many = S.sam_sharpness(_bumpy, w, ascent_steps=60, **kwargs)
        g = np.asarray(jax.grad(_bumpy)(w))
        first_order = rho * scale**2 * g / np.linalg.norm(scale * g)  # Foret et al. / Kwon et al.
        np.testing.assert_allclose(
            one, float(_bumpy(np.asarray(w) + first_order)) - base, rtol=1e-12
        )
        assert float(one) <= brute < 1.2 * float(one)  # the first-order estimate is close, below
        np.testing.assert_allclose(many, brute, rtol=1e-5)
        assert many.dtype == jnp.float64


@pytest.mark.slow
def test_sam_sharpness_is_the_perturbation_sharpax_sam_takes():
    params, x, y = mlp_problem()

    @jax.jit
    def both(params):
        grads = jax.grad(mlp_loss)(params, x, y)
        moved = Perturbation("test", rho=0.05).perturb(params, grads)
        want = mlp_loss(moved, x, y) - mlp_loss(params, x, y)
        return S.sam_sharpness(mlp_loss, params, x, y, rho=0.05), want

    got, want = both(params)
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------- landscapes


def test_filter_normalized_direction_matches_each_filter_norm_and_skips_biases():
    params = {
        "dense": {"kernel": jnp.arange(12.0).reshape(3, 4) - 5.0, "bias": jnp.ones(4)},
        "conv": {"kernel": jnp.asarray(np.random.default_rng(0).standard_normal((3, 3, 2, 5)))},
        "half": {"kernel": jnp.ones((4, 3), jnp.bfloat16)},
        "count": jnp.array(3, jnp.int32),
    }
    d = jax.jit(S.filter_normalized_direction)(jax.random.key(1), params)
    np.testing.assert_array_equal(d["dense"]["bias"], jnp.zeros(4))
    assert d["count"].dtype == jnp.int32 and d["count"] == 0
    assert d["half"]["kernel"].dtype == jnp.bfloat16
    for w, u, axes, rtol in [
        (params["dense"]["kernel"], d["dense"]["kernel"], (0,), 1e-5),
        (params["conv"]["kernel"], d["conv"]["kernel"], (0, 1, 2), 1e-5),
        (params["half"]["kernel"], d["half"]["kernel"], (0,), 1e-2),
    ]:
        np.testing.assert_allclose(
            np.sqrt(np.sum(np.square(np.asarray(u, np.float32)), axis=axes)),
            np.sqrt(np.sum(np.square(np.asarray(w, np.float32)), axis=axes)),
            rtol=rtol,
        )


def _relu_mlp(params, x, y):
    h = x
    for name in ("l0", "l1"):
        h = jax.nn.relu(h @ params[name]["kernel"] + params[name]["bias"][None])
    logits = h @ params["l2"]["kernel"] + params["l2"]["bias"][None]
    return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])


def _normalized_mlp(params, x, y):
    """Layer 0 followed by a per-unit standardisation over the batch (BatchNorm without its affine)."""
    z = x @ params["l0"]["kernel"] + params["l0"]["bias"][None]
    h = jax.nn.relu((z - z.mean(0, keepdims=True)) / jnp.sqrt(z.var(0, keepdims=True)))
    logits = h @ params["l1"]["kernel"] + params["l1"]["bias"][None]
    return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])


def _relu_problem():
    # numpy draws: an eager jax.random call compiles a kernel per shape, seconds of the test budget.
    rng = np.random.default_rng(0)
    sizes = (4, 8, 8, 3)
    params = {
        f"l{i}": {
            "kernel": jnp.asarray(rng.standard_normal((m, n)) / np.sqrt(m), jnp.float32),
            "bias": jnp.full(n, 0.1),
        }
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }
    x = jnp.asarray(rng.standard_normal((32, 4)), jnp.float32)
    return params, x, jnp.arange(32) % 3


@functools.partial(jax.jit, static_argnums=(0, 4))
def _landscape(loss, params, x, y, direction):
    key1, key2 = jax.random.split(jax.random.key(7))
    dirs = (direction(key1, params), direction(key2, params))
    return S.loss_landscape(loss, params, x, y, directions=dirs, alphas=jnp.linspace(-1, 1, 5))


def _gaussian_direction(seed, params):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda w: jnp.asarray(rng.standard_normal(w.shape), w.dtype), params)


def test_filter_normalized_landscape_is_invariant_to_rescaling_a_relu_network_layer_by_layer():
    # A ReLU network rescaled layer by layer (layer 1's kernel and bias by 4, layer 2's kernel by 1/4)
    # computes the same function. Li et al.'s directions follow the rescaling, so the landscape does
    # not move; a plain Gaussian direction does not, and the loss along it changes (the test can fail).
    params, x, y = _relu_problem()
    scaled = jax.tree.map(lambda a: a, params)
    scaled["l1"] = {"kernel": params["l1"]["kernel"] * 4.0, "bias": params["l1"]["bias"] * 4.0}
    scaled["l2"] = {"kernel": params["l2"]["kernel"] / 4.0, "bias": params["l2"]["bias"]}
    relu_mlp = jax.jit(_relu_mlp)
    np.testing.assert_allclose(relu_mlp(scaled, x, y), relu_mlp(params, x, y), rtol=1e-6)
    before = _landscape(_relu_mlp, params, x, y, S.filter_normalized_direction)
    after = _landscape(_relu_mlp, scaled, x, y, S.filter_normalized_direction)
    np.testing.assert_allclose(after, before, rtol=1e-5)
    # A plain Gaussian direction (the same draws for both) does not follow the rescaling.
    g = _gaussian_direction(7, params)
    moved = lambda p: jax.tree.map(lambda w, d: w + d, p, g)
    assert abs(relu_mlp(moved(scaled), x, y) - relu_mlp(moved(params), x, y)) > 0.1


@pytest.mark.slow
def test_filter_normalized_landscape_is_invariant_to_rescaling_the_filters_of_a_normalised_layer():
    # Each filter of a layer followed by a normalisation rescaled by its own factor: the same function.
    params, x, y = _relu_problem()
    net = {"l0": params["l0"], "l1": params["l2"]}
    factors = jnp.linspace(0.2, 5.0, 8)
    filters = {
        "l0": {"kernel": net["l0"]["kernel"] * factors[None], "bias": net["l0"]["bias"] * factors}
    }
    filters["l1"] = net["l1"]
    before = _landscape(_normalized_mlp, net, x, y, S.filter_normalized_direction)
    after = _landscape(_normalized_mlp, filters, x, y, S.filter_normalized_direction)
    np.testing.assert_allclose(after, before, rtol=1e-5)


def test_loss_landscape_evaluates_every_point_with_the_first_axis_along_the_first_direction():
    params = {"w": jnp.array([0.5, -1.0, 2.0]), "n": jnp.array(3, jnp.int32)}
    loss = lambda p, c: jnp.sum(c * p["w"] ** 2) + jnp.sum(p["w"]) * p["n"].astype(jnp.float32)
    c = jnp.array([1.0, 2.0, 3.0])
    d1 = {"w": jnp.array([1.0, 0.0, 0.5]), "n": jnp.array(0, jnp.int32)}
    d2 = {"w": jnp.array([0.0, -2.0, 1.0]), "n": jnp.array(0, jnp.int32)}
    alphas = jnp.array([-0.5, 0.0, 0.25, 1.0])

    @jax.jit
    def both(params, c, d1, d2, alphas):
        line = S.loss_landscape(loss, params, c, directions=(d1,), alphas=alphas)
        grid = S.loss_landscape(loss, params, c, directions=(d1, d2), alphas=alphas, batch_size=3)
        return line, grid

    line, grid = both(params, c, d1, d2, alphas)
    assert line.shape == (4,) and grid.shape == (4, 4)
    w, u, v, cn = (np.asarray(a, np.float64) for a in (params["w"], d1["w"], d2["w"], c))
    at = lambda a, b: np.sum(cn * (w + (a * u + b * v)) ** 2) + 3 * np.sum(w + (a * u + b * v))
    np.testing.assert_allclose(line, [at(a, 0.0) for a in alphas], rtol=1e-6)
    np.testing.assert_allclose(grid, [[at(a, b) for b in alphas] for a in alphas], rtol=1e-6)
    np.testing.assert_allclose(grid[:, 1], line, rtol=1e-6)  # alphas[1] = 0 along the second one


# ------------------------------------------------------------------- jit, vmap, dtypes, batches, devices


@pytest.mark.slow
def test_float32_under_jit_and_vmap_over_keys_against_the_dense_hessian():
    # One compiled function, float32, vmapped over 3 keys (error bars): every start converges to the
    # dense Hessian's top eigenvalues, and every trace estimate lies within the Hutchinson standard
    # error of its trace, each from its own probes.
    params, x, y = mlp_problem()
    keys = jax.random.split(jax.random.key(0), 3)
    num_samples = 20

    def measures(key):
        eigs, _ = S.hessian_eigenvalues(mlp_loss, params, x, y, k=2, key=key)
        trace = S.hessian_trace(mlp_loss, params, x, y, num_samples=num_samples, key=key)
        return eigs, trace

    eigs, traces = jax.jit(jax.vmap(measures))(keys)
    assert eigs.dtype == traces.dtype == jnp.float32
    h = mlp_hessian_x64()
    lam = np.linalg.eigh(h)[0]
    np.testing.assert_allclose(eigs, np.tile(lam[::-1][:2], (3, 1)), rtol=1e-4)
    standard_error = np.sqrt(2 * np.sum((h - np.diag(np.diag(h))) ** 2) / num_samples)
    assert np.all(np.abs(np.asarray(traces) - np.trace(h)) <= 4 * standard_error), traces
    assert len(set(np.asarray(traces).tolist())) == 3  # independent probes per key


@pytest.mark.slow
def test_every_function_jits_and_vmaps_over_keys():
    params, x, y = mlp_problem()
    keys = jax.random.split(jax.random.key(0), 3)

    def measures(key):
        eigs, vecs = S.hessian_eigenvalues(mlp_loss, params, x, y, k=2, key=key)
        trace = S.hessian_trace(mlp_loss, params, x, y, num_samples=4, key=key)
        nodes, weights = S.hessian_spectrum(
            mlp_loss, params, x, y, num_lanczos=6, num_runs=2, key=key
        )
        d = S.filter_normalized_direction(key, params)
        line = S.loss_landscape(mlp_loss, params, x, y, directions=(d,), alphas=jnp.ones(2))
        return eigs, vecs, trace, nodes, weights, line

    one = jax.jit(measures)
    batched = jax.jit(jax.vmap(measures))(keys)
    for i, key in enumerate(keys):
        want = one(key)
        got = jax.tree.map(lambda a, i=i: a[i], batched)
        values = lambda r: [r[0], *jax.tree.leaves(r[2:])]  # all but the eigenvectors
        for g, w in zip(values(got), values(want), strict=True):
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
        # An eigenvector's sign is arbitrary: batched and single runs round differently.
        for g, w in zip(flat_rows(got[1]), flat_rows(want[1]), strict=True):
            assert_same_direction(g, w, 1e-4)


@pytest.mark.slow
def test_bfloat16_params_give_a_float32_trace_near_the_float32_one():
    params, x, y = mlp_problem()
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    trace = jax.jit(
        lambda p, x: S.hessian_trace(mlp_loss, p, x, y, num_samples=20, key=jax.random.key(0))
    )
    got = trace(half, x.astype(jnp.bfloat16))
    assert got.dtype == jnp.float32
    # The same probes on float32 params; bfloat16 keeps 8 bits of the mantissa.
    np.testing.assert_allclose(got, trace(params, x), rtol=5e-2)


@pytest.mark.slow
def test_bfloat16_params_eigenvalues_sam_spectrum_and_landscape():
    params, x, y = mlp_problem()
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    xh, key = x.astype(jnp.bfloat16), jax.random.key(0)
    eigs, vecs = S.hessian_eigenvalues(mlp_loss, half, xh, y, key=key)
    assert eigs.dtype == jnp.float32 and jax.tree.leaves(vecs)[0].dtype == jnp.float32
    want = np.linalg.eigh(mlp_hessian_x64())[0][-1]
    np.testing.assert_allclose(eigs, [want], rtol=3e-2)
    rise = S.sam_sharpness(mlp_loss, half, xh, y, rho=0.1)
    assert rise.dtype == jnp.float32
    np.testing.assert_allclose(rise, S.sam_sharpness(mlp_loss, params, x, y, rho=0.1), rtol=0.1)
    nodes, weights = S.hessian_spectrum(mlp_loss, half, xh, y, num_lanczos=8, num_runs=1, key=key)
    assert nodes.dtype == weights.dtype == jnp.float32
    d = S.filter_normalized_direction(key, half)
    alphas = jnp.linspace(-1, 1, 3)
    got = S.loss_landscape(mlp_loss, half, xh, y, directions=(d,), alphas=alphas)
    d32 = jax.tree.map(lambda a: a.astype(jnp.float32), d)
    want = S.loss_landscape(mlp_loss, params, x, y, directions=(d32,), alphas=alphas)
    np.testing.assert_allclose(got, want, rtol=3e-2)


def batched_loss(params, xs, ys):
    """The mean over equal batches, one batch in memory at a time (docs/sharpness.md's pattern)."""

    def body(_, batch):
        return None, jax.checkpoint(mlp_loss)(params, *batch)

    return jnp.mean(lax.scan(body, None, (xs, ys))[1])


BATCH_MEASURES = {
    "eigenvalues": lambda loss, p, *a: S.hessian_eigenvalues(
        loss, p, *a, k=2, key=jax.random.key(0)
    ),
    "trace": lambda loss, p, *a: S.hessian_trace(loss, p, *a, num_samples=3, key=jax.random.key(0)),
    "sam": lambda loss, p, *a: S.sam_sharpness(loss, p, *a, ascent_steps=2),
}


@pytest.mark.parametrize(
    "measure", [pytest.param(m, marks=pytest.mark.slow) for m in ("eigenvalues", "trace", "sam")]
)  # fmt: skip
def test_a_loss_that_is_a_mean_over_batches_gives_the_full_batch_results(measure):
    fn = BATCH_MEASURES[measure]
    with jax.enable_x64(True):
        params, x, y = mlp_problem(jnp.float64)
        xs, ys = x.reshape(4, 4, 3), y.reshape(4, 4)
        np.testing.assert_allclose(batched_loss(params, xs, ys), mlp_loss(params, x, y), rtol=1e-14)
        got = jax.jit(lambda p: fn(batched_loss, p, xs, ys))(params)
        want = jax.jit(lambda p: fn(mlp_loss, p, x, y))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14), got, want)


@pytest.mark.parametrize(
    "axis_type, everything",
    [
        # 8 virtual devices compile slowly; the other tests' budget left none for these.
        pytest.param(AxisType.Auto, False, marks=pytest.mark.slow),
        pytest.param(AxisType.Auto, True, marks=pytest.mark.slow),
        pytest.param(AxisType.Explicit, True, marks=pytest.mark.slow),
    ],
    ids=["auto-trace", "auto-all", "explicit-all"],
)
def test_sharded_params_on_8_devices_give_the_one_device_results(axis_type, everything):
    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("model",), axis_types=(axis_type,))
    rng = np.random.default_rng(0)
    normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
    params = {
        "l0": {"kernel": normal(3, 16) / 2, "bias": jnp.zeros(16)},
        "l1": {"kernel": normal(16, 4) / 4, "bias": jnp.zeros(4)},
    }
    x, y, key = normal(32, 3), jnp.arange(32) % 4, jax.random.key(0)
    specs = {
        "l0": {"kernel": P(None, "model"), "bias": P("model")},
        "l1": {"kernel": P("model"), "bias": P()},
    }

    def loss(params, x, y):
        h = jnp.tanh(x @ params["l0"]["kernel"] + params["l0"]["bias"][None])
        # With explicit axes a contraction over a sharded axis names its output sharding.
        out = P() if axis_type == AxisType.Explicit else None
        logits = jnp.einsum("bh,ho->bo", h, params["l1"]["kernel"], out_sharding=out)
        logits = logits + params["l1"]["bias"][None]
        picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)

    @jax.jit
    def measures(params, key):
        trace = S.hessian_trace(loss, params, x, y, num_samples=4, key=key)
        if not everything:
            return (trace,)
        eigs, vecs = S.hessian_eigenvalues(loss, params, x, y, k=2, num_iterations=12, key=key)
        nodes, _ = S.hessian_spectrum(loss, params, x, y, num_lanczos=5, num_runs=2, key=key)
        rise = S.sam_sharpness(loss, params, x, y, ascent_steps=3)
        d = S.filter_normalized_direction(key, params)
        grid = S.loss_landscape(loss, params, x, y, directions=(d, d), alphas=jnp.ones(2))
        return trace, vecs, eigs, nodes, rise, grid

    with jax.set_mesh(mesh):
        sharded = jax.tree.map(
            lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), params, specs
        )
        got, want = measures(sharded, key), measures(params, key)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got, want)
    if not everything:
        return
    # The eigenvectors stay sharded like the params, behind their leading axis.
    for v, p in zip(jax.tree.leaves(got[1]), jax.tree.leaves(sharded), strict=True):
        assert v.sharding.is_equivalent_to(NamedSharding(mesh, P(None, *p.sharding.spec)), v.ndim)


# ---------------------------------------------------------------------------------------- validation


def _loss(p):
    return jnp.sum(p**2)


W, KEY = jnp.ones(4), jax.random.key(0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: S.hessian_eigenvalues(_loss, W, k=0, key=KEY), ValueError, "k must be an integer >= 1"),
        (lambda: S.hessian_eigenvalues(_loss, W, k=5, key=KEY), ValueError, r"k must be an integer in \[1, 4\]"),
        (lambda: S.hessian_eigenvalues(_loss, W, k=2, num_iterations=1, key=KEY), ValueError, "num_iterations must be an integer >= k = 2"),
        (lambda: S.hessian_eigenvalues(_loss, W, tol=-1.0, key=KEY), ValueError, "tol must be in"),
        (lambda: S.hessian_eigenvalues(_loss, W, key=0), TypeError, "key must be a JAX PRNG key"),
        (lambda: S.hessian_eigenvalues(_loss, W, key=None), TypeError, "key must be a JAX PRNG key"),
        (lambda: S.hessian_eigenvalues(_loss, jnp.ones(2, jnp.int32), key=KEY), ValueError, "no floating-point leaves"),
        (lambda: S.hessian_eigenvalues(_loss, jnp.ones(2, jnp.complex64), key=KEY), TypeError, "is complex"),
        (lambda: S.hessian_eigenvalues(None, W, key=KEY), TypeError, "loss_fn must be callable"),
        (lambda: S.hessian_trace(_loss, W, num_samples=0, key=KEY), ValueError, "num_samples must be an integer >= 1"),
        (lambda: S.hessian_spectrum(_loss, W, num_lanczos=0, key=KEY), ValueError, "num_lanczos must be"),
        (lambda: S.hessian_spectrum(_loss, W, num_runs=0, key=KEY), ValueError, "num_runs must be"),
        (lambda: S.spectral_density(jnp.ones((1, 2)), jnp.ones((1, 2)), num_bins=1), ValueError, "num_bins must be an integer >= 2"),
        (lambda: S.spectral_density(jnp.ones((1, 2)), jnp.ones(2)), ValueError, "one shape"),
        (lambda: S.spectral_density(jnp.ones((1, 2)), jnp.ones((1, 2)), sigma_squared=0.0), ValueError, "sigma_squared must be in"),
        (lambda: S.sam_sharpness(_loss, W, rho=-0.1), ValueError, "rho must be in"),
        (lambda: S.sam_sharpness(_loss, W, ascent_steps=0), ValueError, "ascent_steps must be an integer >= 1"),
        (lambda: S.sam_sharpness(_loss, W, adaptive=1), TypeError, "adaptive must be a bool"),
        (lambda: S.loss_landscape(_loss, W, directions=(W, W, W), alphas=W), ValueError, "one or two"),
        (lambda: S.loss_landscape(_loss, W, directions=W, alphas=W), ValueError, "one or two"),
        (lambda: S.loss_landscape(_loss, W, directions=({"w": W},), alphas=W), ValueError, "structure of params"),
        (lambda: S.loss_landscape(_loss, W, directions=(jnp.ones(3),), alphas=W), ValueError, "has shape"),
        (lambda: S.loss_landscape(_loss, W, directions=(W,), alphas=jnp.ones((2, 2))), ValueError, "alphas must be a 1-D"),
        (lambda: S.loss_landscape(_loss, W, directions=(W,), alphas=W, batch_size=0), ValueError, "batch_size must be"),
        (lambda: S.filter_normalized_direction(3, W), TypeError, "key must be a JAX PRNG key"),
        (lambda: S.filter_normalized_direction(KEY, {"w": jnp.ones((2, 2), jnp.complex64)}), TypeError, r"param at \['w'\] is complex"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.slow
@pytest.mark.loose_promotion  # user code, written with numpy's promotion rules
def test_the_docs_page_runs_and_its_batches_pattern_gives_the_full_batch_result():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "sharpness.md").read_text(), re.S)
    namespace: dict = {}
    for block in blocks:
        exec(block, namespace)  # the page's own code, in order
    np.testing.assert_allclose(namespace["eigs_over_batches"], namespace["eigs"], rtol=1e-4)
    assert namespace["density"].shape == namespace["grid"].shape == (10_000,)
