"""The SAM family's global norm: Blue's one-pass norm (the GPU path) against float64 norms at every scale,
its gradient, LAPACK's constants, and agreement with the CPU path (a plain sum of squares, rescaled by a
`lax.cond` only when it over- or underflows); and momentum-SAM's GPU norm, Blue's without its small
range, against the float64 norm of what it keeps."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sharpax.wrappers._sam_geometry import (
    _blue_constants,
    blue_norm,
    global_norm,
    scale_norm,
    two_range_norm,
)
from tests.optimizer_table import WRAPPERS

RNG = np.random.default_rng(0)

# Trees (lists of leaves) whose values fall below tsml (2^-63), above tbig (2^52) or between, alone and
# mixed, including a 0-d leaf; the float64 norm of their float32 values is the reference.
CASES = {
    "medium": [RNG.normal(size=(30, 7)), RNG.normal(size=5)],
    "big": [np.full(4, 1e30), np.array([1.0, 2.0])],
    "big scalar leaf": [np.array(-1e30), np.array([1.0, 2.0])],
    "big and small": [np.array([1e-30, 1e25, 3e20])],
    "small": [np.array([1e-20, -1e-30, 0.0, 3e-20]), np.array(-1e-25)],
    "small and medium": [np.array([1e-25, 1e-10, 3e-12]), np.array(2e-21)],
    "small dominating medium": [np.array([5e-20, 4e-20, 1e-21])],
    "at the thresholds": [np.array([2.0**-63, 2.0**52, -(2.0**-63), 1.0])],
    "zeros": [np.zeros(3)],
    "near float32's max": [np.array([1e38, 2e38])],
}


def _float64_norm(leaves):
    return np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in leaves))


@pytest.mark.parametrize("name", CASES)
def test_blue_norm_matches_a_float64_norm(name):
    leaves = [jnp.asarray(x, jnp.float32) for x in CASES[name]]
    want = _float64_norm(leaves)
    for norm in (blue_norm, jax.jit(blue_norm)):
        np.testing.assert_allclose(float(norm(leaves)), want, rtol=2e-7, atol=0)


@pytest.mark.parametrize("name", CASES)
def test_two_range_norm_is_the_norm_of_the_values_whose_squares_are_normal(name):
    # Values below tsml (2^-63) square below float32's smallest normal: they may count as 0, and the
    # rest is exact (a big value scaled before it is squared, as in Blue's algorithm).
    leaves = [jnp.asarray(x, jnp.float32) for x in CASES[name]]
    kept = [np.where(np.abs(np.asarray(x)) >= 2.0**-63, np.asarray(x), 0) for x in leaves]
    dropped = [np.asarray(x) - k for x, k in zip(leaves, kept, strict=True)]
    want = _float64_norm(kept)
    for norm in (two_range_norm, jax.jit(two_range_norm)):
        got = float(norm(leaves))
        assert (
            want * (1 - 2e-7) - 1e-30 <= got <= np.hypot(want, _float64_norm(dropped)) * (1 + 2e-7)
        )


@pytest.mark.parametrize("norm", [blue_norm, two_range_norm])
def test_norm_of_nan_is_nan_and_of_inf_is_inf(norm):
    for leaves in (
        [jnp.array([1.0, jnp.nan])],
        [jnp.array([1e30, jnp.nan])],
        [jnp.array([1e-30, jnp.nan])],
    ):
        assert np.isnan(float(jax.jit(norm)(leaves)))
    for leaves in ([jnp.array([1.0, jnp.inf])], [jnp.array([1e-30, -jnp.inf])]):
        assert float(jax.jit(norm)(leaves)) == np.inf


@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_two_range_norm_gradient_is_x_over_the_norm(scale):
    x = jnp.array([3.0, -4.0, 0.0], jnp.float32) * scale
    got = jax.jit(jax.grad(lambda x: two_range_norm([x])))(x)
    np.testing.assert_allclose(got, [0.6, -0.8, 0.0], rtol=1e-6)


def test_scale_norm_is_the_global_norm_here_and_two_range_norm_on_the_gpu_path(monkeypatch):
    leaves = [jnp.asarray(x, jnp.float32) for x in CASES["small"]]
    want = _float64_norm(leaves)
    np.testing.assert_allclose(float(jax.jit(scale_norm)(leaves)), want, rtol=2e-7)
    monkeypatch.setattr(jax.lax, "platform_dependent", lambda *args, default, **_: default(*args))
    # A new function to trace: jit's cache holds the first one, traced with the CPU path.
    assert float(jax.jit(lambda x: scale_norm(x))(leaves)) == float(two_range_norm(leaves)) < want


def test_blue_norm_of_complex_leaves_counts_real_and_imaginary_parts():
    z = jnp.array([3 + 4j, 1e30 - 2e30j, 1e-30j], jnp.complex64)
    want = _float64_norm([np.real(z), np.imag(z)])
    np.testing.assert_allclose(float(jax.jit(blue_norm)([z])), want, rtol=2e-7)


@pytest.mark.parametrize("scale", [1.0, 1e30, 1e-30])
def test_blue_norm_gradient_is_x_over_the_norm_at_every_scale(scale):
    # Neither branch that is not taken may leak a NaN (inf * 0) into the gradient.
    x = jnp.array([3.0, -4.0, 0.0], jnp.float32) * scale
    got = jax.jit(jax.grad(lambda x: blue_norm([x])))(x)
    np.testing.assert_allclose(got, [0.6, -0.8, 0.0], rtol=1e-6)
    mixed = jnp.array([3e-30, 4.0], jnp.float32)
    np.testing.assert_allclose(jax.grad(lambda x: blue_norm([x]))(mixed), [0.0, 1.0], atol=1e-7)


def test_blue_norm_under_vmap_is_the_norm_of_each_row():
    x = jnp.asarray(
        RNG.normal(size=(4, 6)) * np.array([[1.0], [1e30], [1e-30], [0.0]]), jnp.float32
    )
    got = jax.vmap(lambda row: blue_norm([row]))(x)
    want = [_float64_norm([row]) for row in np.asarray(x)]
    np.testing.assert_allclose(got, want, rtol=2e-7)


def test_blue_constants_are_lapacks():
    # Reference-LAPACK's la_constants: single precision and double precision (the latter as published).
    assert _blue_constants(jnp.float32) == (2.0**-63, 2.0**52, 2.0**75, 2.0**-76)
    assert _blue_constants(jnp.float64) == (2.0**-511, 2.0**486, 2.0**537, 2.0**-538)


@pytest.mark.parametrize("name", CASES)
def test_the_cpu_path_and_blue_norm_agree(name):
    leaves = [jnp.asarray(x, jnp.float32) for x in CASES[name]]
    np.testing.assert_allclose(
        float(jax.jit(global_norm)(leaves)), float(jax.jit(blue_norm)(leaves)), rtol=4e-7, atol=0
    )


def _three_steps(tx, params):
    loss = lambda p: sum(jnp.sum(jnp.sin(x) * x) for x in jax.tree.leaves(p))
    grad_fn = jax.grad(loss)

    @jax.jit
    def step(params, state):
        updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for _ in range(3):
        params, state = step(params, state)
    return params


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_the_family_steps_alike_on_the_gpu_path(name, monkeypatch):
    # The GPU path (Blue's norm) run on this CPU, by making `lax.platform_dependent` take its default.
    params = {
        "w": jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32),
        "b": jnp.linspace(-1.0, 1.0, 3),
    }
    want = _three_steps(WRAPPERS[name](), params)
    monkeypatch.setattr(jax.lax, "platform_dependent", lambda *args, default, **_: default(*args))
    got = _three_steps(WRAPPERS[name](), params)
    chex.assert_trees_all_close(got, want, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("path", ["cpu", "gpu"])
@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_a_zero_size_leaf_changes_nothing(name, path, monkeypatch):
    # The CPU path's rescaled branch took the max of each leaf, which has no identity on an empty one:
    # every member failed to trace on a tree with a zero-size leaf.
    if path == "gpu":
        monkeypatch.setattr(
            jax.lax, "platform_dependent", lambda *args, default, **_: default(*args)
        )
    params = {
        "w": jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32),
        "b": jnp.linspace(-1.0, 1.0, 3),
    }
    want = _three_steps(WRAPPERS[name](), params)
    got = _three_steps(WRAPPERS[name](), params | {"empty": jnp.zeros((0, 3))})
    assert got["empty"].shape == (0, 3)
    if name == "bsam":  # its noise keys are split by leaf count, as the reference's: other draws
        assert all(np.all(np.isfinite(got[k])) for k in params)
        return
    chex.assert_trees_all_close({k: got[k] for k in params}, want, rtol=1e-6, atol=1e-7)
