"""What the shared battery does not cover for Adafactor, Muon, Rprop and ASGD: Muon's bfloat16
Newton-Schulz against torch's own function, the layouts, the non-matrix error and the AdamW recipe,
ASGD's averaged weights against their closed form, and the arguments that are not numbers."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax.transforms._muon import newton_schulz


def _random(shape, seed=0, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, jnp.float32)


@pytest.mark.torch
@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (16, 16), (24, 64), (64, 24)])
@pytest.mark.parametrize(
    "steps,coefficients", [(5, (3.4445, -4.775, 2.0315)), (8, (1.5, -0.5, 0.0))]
)
def test_newton_schulz_is_torch_s(shape, steps, coefficients):
    """The bfloat16 iteration rounds where torch's does (each addmm once, from float32): the outputs
    agree but for entries whose float32 accumulation order (BLAS-dependent) rounds the other way, by
    one bfloat16 ulp. Measured here: identical but for one 64 x 24 entry in 1,536."""
    torch = pytest.importorskip("torch")
    from torch.optim._muon import _zeropower_via_newtonschulz

    g = np.asarray(_random(shape))
    want = _zeropower_via_newtonschulz(torch.tensor(g), coefficients, steps, 1e-7).float().numpy()
    got = np.asarray(jax.jit(lambda x: newton_schulz(x, coefficients, steps))(g), np.float32)
    assert got.dtype == np.float32 and want.shape == got.shape
    differ = got != want
    assert differ.mean() <= 0.01, differ.mean()
    ulp = np.spacing(np.abs(want).astype(jnp.bfloat16).astype(np.float32) + 1e-30) * 2**16
    np.testing.assert_array_less(np.abs(got - want)[differ], 1.01 * ulp[differ] + 1e-30)


def test_layouts_are_transposes_of_each_other():
    """Flax's (in, out) kernel is torch's weight transposed: the same step, transposed, bit for bit,
    square matrices included (the iteration runs in torch's orientation either way)."""
    grads = [_random((6, 6), 3), _random((4, 9), 4)]
    for g in grads:
        params = jnp.zeros_like(g)
        flax_tx = sharpax.muon(0.02, weight_decay=0.1)
        torch_tx = sharpax.muon(0.02, weight_decay=0.1, layout="out_in")
        u_flax, _ = flax_tx.update(g, flax_tx.init(params), params)
        u_torch, _ = torch_tx.update(g.T, torch_tx.init(params.T), params.T)
        np.testing.assert_array_equal(u_flax, u_torch.T)
    # The rate adjustment reads torch's shape: a (fan_in=4, fan_out=9) kernel is a 9 x 4 weight,
    # sqrt(max(1, 9 / 4)) = 1.5. Without momentum the direction is the gradient itself.
    g = grads[1]
    tx = sharpax.muon(1.0, weight_decay=0.0, momentum=0.0, nesterov=False)
    u, _ = tx.update(g, tx.init(g), g)
    orthogonal = newton_schulz(g.T).astype(jnp.float32).T
    np.testing.assert_allclose(u, -1.5 * orthogonal, rtol=1e-7)


def test_muon_refuses_non_matrices_and_points_to_the_recipe():
    tx = sharpax.muon(1e-3)
    message = (
        "muon: the leaf at ['b'] has shape [4]; Muon orthogonalizes 2-D matrices only. "
        "Use sharpax.muon_with_adamw(...)"
    )
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones(4)}
    with pytest.raises(ValueError, match=re.escape(message)):
        tx.init(params)
    state = tx.init({"w": params["w"], "b": jnp.ones((2, 2))})  # a state made for other shapes
    with pytest.raises(ValueError, match="Muon orthogonalizes 2-D matrices only"):
        tx.update(params, state, params)
    # Integer leaves are not trained, whatever their rank.
    tx.init({"w": params["w"], "step": jnp.zeros(3, jnp.int32)})


@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
@pytest.mark.parametrize("shape", [(2, 0), (0, 3)])
def test_muon_steps_an_empty_matrix_beside_a_full_one(shape, adjust_lr_fn):
    # torch's rate adjustment divides by the fan-in; an empty weight has nothing to scale. The full
    # matrix's update must not change because an empty one sits beside it.
    tx = sharpax.muon(0.02, adjust_lr_fn=adjust_lr_fn)
    w = _random((5, 3))
    params = {"empty": jnp.zeros(shape), "w": w}
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    assert updates["empty"].shape == shape
    alone, _ = jax.jit(tx.update)({"w": w}, tx.init({"w": w}), {"w": w})
    np.testing.assert_array_equal(updates["w"], alone["w"])


def test_muon_with_adamw_sends_each_leaf_to_its_optimizer():
    params = {"w": _random((5, 3)), "emb": _random((7, 3), 1), "b": _random((3,), 2)}
    grads = {k: _random(v.shape, 10 + i) for i, (k, v) in enumerate(params.items())}
    muon = sharpax.muon(0.02, weight_decay=0.1)
    adamw = sharpax.adamw(3e-4, weight_decay=0.01)

    def one_step(tx, p, g):
        return tx.update(g, tx.init(p), p)[0]

    # Default: every 2-D leaf to Muon. With a mask: the embedding to AdamW, as in the usual recipe.
    for mask, muon_leaves in [(None, {"w", "emb"}), ({"w": True, "emb": False, "b": False}, {"w"})]:
        tx = sharpax.muon_with_adamw(
            0.02, adamw_learning_rate=3e-4, adamw_weight_decay=0.01, muon_mask=mask
        )
        got = one_step(tx, params, grads)
        for k in params:
            inner = muon if k in muon_leaves else adamw
            want = one_step(inner, {k: params[k]}, {k: grads[k]})[k]
            np.testing.assert_array_equal(got[k], want, err_msg=k)
    bad = sharpax.muon_with_adamw(muon_mask={"w": True, "emb": True, "b": True})
    with pytest.raises(ValueError, match=re.escape("muon: the leaf at ['b'] has shape [3]")):
        bad.init(params)


def test_asgd_averages_the_iterates_from_t0_on():
    """torch's mu_t = 1 / max(1, t - 1 - t0): with t0 = 2, ax_t is the params themselves up to step
    t0 + 2 = 4, then the running mean of the iterates from step 4 on. Closed form here, over 12 steps."""
    t0 = 2.0
    tx = sharpax.asgd(0.05, lambd=0.01, t0=t0)
    params = {"w": _random((3, 2)), "n": jnp.array(5, jnp.int32)}
    np.testing.assert_array_equal(
        sharpax.asgd_averaged_params(tx.init(params), params)["w"], params["w"]
    )
    state, iterates = tx.init(params), []
    for t in range(1, 13):
        g = {"w": _random((3, 2), t), "n": np.zeros((), jax.dtypes.float0)}
        updates, state = jax.jit(tx.update)(g, state, params)
        params = {**params, "w": optax.apply_updates(params["w"], updates["w"])}
        iterates.append(params["w"])
        averaged = sharpax.asgd_averaged_params(state, params)
        first = min(t, int(t0) + 2)
        want = np.mean(np.stack(iterates[first - 1 :]), axis=0)
        np.testing.assert_allclose(averaged["w"], want, rtol=2e-6, atol=1e-7, err_msg=f"step {t}")
        assert averaged["n"] == 5
    with pytest.raises(ValueError, match="exactly one ScaleByAsgdState"):
        sharpax.asgd_averaged_params(sharpax.adam(1e-3).init(params), params)


def test_adafactor_factoring_is_symmetric_and_skips_empty_leaves():
    g, w = _random((4, 6)), _random((4, 6), 1)
    tx = sharpax.adafactor(0.1, weight_decay=0.1)
    update = jax.jit(tx.update)  # eager dispatch of every primitive costs seconds here
    u, _ = update(g, tx.init(w), w)
    u_t, _ = update(g.T, tx.init(w.T), w.T)
    np.testing.assert_allclose(u, u_t.T, rtol=1e-6, atol=1e-8)
    params = {"empty": jnp.zeros((2, 0, 3)), "t": _random((2, 3, 4))}
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(params, state, params)
    assert updates["empty"].shape == (2, 0, 3)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves((updates, state)))
    assert state[0].row_var["t"].shape == (2, 3, 1) and state[0].col_var["t"].shape == (2, 1, 4)


@pytest.mark.parametrize(
    "build,error,match",
    [
        (
            lambda: sharpax.rprop(etas=(1.5, 1.2)),
            ValueError,
            r"rprop: etas\[0\] must be in \(0.0, 1.0\)",
        ),
        (
            lambda: sharpax.rprop(etas=(0.5, 1.0)),
            ValueError,
            r"rprop: etas\[1\] must be in \(1.0, inf\)",
        ),
        (
            lambda: sharpax.rprop(step_sizes=(1.0, 0.1)),
            ValueError,
            r"step_sizes\[1\] must be in \[1.0, inf\)",
        ),
        (lambda: sharpax.rprop(step_sizes=(1e-6,)), ValueError, "must be pairs"),
        (lambda: sharpax.rprop(lambda c: 0.1), TypeError, "the initial step size"),
        (
            lambda: sharpax.adafactor(eps=(None, -1.0)),
            ValueError,
            r"eps\[1\] must be in \[0.0, inf\)",
        ),
        (
            lambda: sharpax.adafactor(eps=(-1.0, 1e-3)),
            ValueError,
            r"eps\[0\] must be in \[0.0, inf\)",
        ),
        (lambda: sharpax.adafactor(eps=1e-3), ValueError, "eps must be a pair"),
        (lambda: sharpax.muon(ns_steps=0), ValueError, "ns_steps must be an integer >= 1"),
        (lambda: sharpax.muon(ns_steps=100), ValueError, "below 100"),
        (
            lambda: sharpax.muon(ns_coefficients=(1.0, 2.0)),
            ValueError,
            r"ns_coefficients must be \(a, b, c\)",
        ),
        (lambda: sharpax.muon(adjust_lr_fn="sqrt"), ValueError, "adjust_lr_fn must be one of"),
        (lambda: sharpax.muon(layout="torch"), ValueError, "layout must be one of"),
        (
            lambda: sharpax.muon_with_adamw(adamw_b1=1.0),
            ValueError,
            r"adamw_b1 must be in \[0.0, 1.0\)",
        ),
    ],
)
def test_argument_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()
