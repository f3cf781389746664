"""Momentum-SAM and AE-SAM against their references, step by step, under jit, vmap and 8 devices.

References: `references/sam_msam.npz`, 30-step trajectories of MarlonBecker/MSAM's own torch optimizers
(`MSAM`, `AdamW_MSAM`), and `references/sam_ae_sam.npz`, AE-SAM from a float64 transcription of the paper's
Algorithm 1 (no public code was found), both written by `references/make_sam_efficient_goldens.py`. The
float64 transcriptions of `references/sam_efficient_references.py` are checked against the goldens and run
live; the MSAM generator itself is re-run live when torch and an MSAM checkout (`MSAM_REPO`) are present.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sharpax
from tests import reliability_common as rc
from tests.references import GOLDEN_DIR
from tests.references import sam_efficient_references as eref
from tests.references import sam_references as ref
from tests.references.torch_reference import GOLDEN_VS_LIVE, GOLDEN_VS_LIVE_F64

MSAM = np.load(GOLDEN_DIR / "sam_msam.npz")
AE = np.load(GOLDEN_DIR / "sam_ae_sam.npz")
# float32 JAX against float32 torch (or float64 numpy) over 30 steps: the two round in different orders,
# and Adam's divisions drift by a few ulps more than SGD's sums.
TOL = {"sgd": dict(rtol=2e-5, atol=2e-6), "adamw": dict(rtol=2e-5, atol=1e-5)}


def mlp_loss(params, x, y):
    out = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]
    return jnp.mean((out - y) ** 2)


def _flat(params):
    return np.concatenate([np.asarray(params[k], np.float64).ravel() for k in ref.SHAPES])


def _init():
    return jax.tree.map(jnp.asarray, ref.make_problem()[2])


# --- momentum-SAM -------------------------------------------------------------------------------------


def _run_momentum_sam(tx, steps=eref.STEPS):
    """(held params, momentum_sam_params) after each step on the fixed batch, jitted."""
    x, y = map(jnp.asarray, ref.make_problem()[:2])
    params = _init()

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.grad(mlp_loss)(params, x, y), state, params)
        params = optax.apply_updates(params, updates)
        return params, state, sharpax.momentum_sam_params(state, params)

    state = tx.init(params)
    held, weights = [_flat(params)], [_flat(sharpax.momentum_sam_params(state, params))]
    for _ in range(steps):
        params, state, w = step(params, state)
        held.append(_flat(params))
        weights.append(_flat(w))
    return np.stack(held), np.stack(weights)


def _msam_transcription(case, **overrides):
    name, kwargs = eref.MSAM_CASES[case]
    x, y, init = ref.make_problem()
    kwargs = {**kwargs, **overrides}
    if name == "MSAM":
        return eref.msam_sgd_reference(ref.flatten(init), x, y, steps=eref.STEPS, **kwargs)
    return eref.msam_adamw_reference(
        ref.flatten(init), x, y, steps=eref.STEPS, **kwargs, **eref.ADAMW_DEFAULTS
    )


@pytest.mark.parametrize("case", list(eref.MSAM_CASES))
def test_msam_transcription_matches_msam_itself(case):
    held, weights = _msam_transcription(case)
    np.testing.assert_allclose(held, MSAM[f"{case}_params"], **TOL["sgd"])
    np.testing.assert_allclose(weights, MSAM[f"{case}_weights"], **TOL["sgd"])


# The sharpax forms of MSAM's cases. MSAM's SGD adds its L2 term at the perturbed point: a decay chained
# in front sees the held (perturbed) params, where sgd's own weight_decay would see the unperturbed ones.
MOMENTUM_SAM_CASES = {
    "sgd": lambda: sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.3),
    "sgd(optax)": lambda: sharpax.momentum_sam(optax.sgd(0.1, momentum=0.9), 0.3),
    "sgd_wd": lambda: optax.chain(
        optax.add_decayed_weights(0.05), sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.3)
    ),
    "adamw": lambda: sharpax.momentum_sam(sharpax.adamw(0.01, weight_decay=0.0), 0.5),
    "adamw(optax)": lambda: sharpax.momentum_sam(optax.adamw(0.01, weight_decay=0.0), 0.5),
}


@pytest.mark.parametrize(
    "name",
    [
        # optax's own adamw does not trace under strict dtype promotion.
        pytest.param(n, marks=pytest.mark.loose_promotion) if "optax" in n else n
        for n in MOMENTUM_SAM_CASES
    ],
)
def test_momentum_sam_matches_msam(name):
    case = name.split("(")[0]
    held, weights = _run_momentum_sam(MOMENTUM_SAM_CASES[name]())
    tol = TOL[case.split("_")[0]]
    np.testing.assert_allclose(held, MSAM[f"{case}_params"], **tol)
    # The accessor gives what MSAM's move_back_from_momentumAscent gives.
    np.testing.assert_allclose(weights, MSAM[f"{case}_weights"], **tol)


def test_adamw_decays_before_the_adam_step_as_torch_and_optax_do():
    """AdamW_MSAM decays after its Adam step; sharpax.adamw (like torch's AdamW) before it. Ours is the
    transcription in that order; MSAM's own run differs from it by the lr * wd * step term."""
    held, weights = _run_momentum_sam(
        sharpax.momentum_sam(sharpax.adamw(0.02, weight_decay=0.1), 0.5)
    )
    want_held, want_weights = _msam_transcription("adamw_wd", decay_after_step=False)
    np.testing.assert_allclose(held, want_held, **TOL["adamw"])
    np.testing.assert_allclose(weights, want_weights, **TOL["adamw"])
    gap = np.abs(held - MSAM["adamw_wd_params"]).max()
    assert 1e-4 < gap < 1e-2, gap  # lr * wd = 2e-3 of an Adam step of ~0.02, over 30 steps


def test_sgd_weight_decay_inside_sees_the_unperturbed_weights():
    held, _ = _run_momentum_sam(
        sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9, weight_decay=0.05), 0.3)
    )
    want, _ = _msam_transcription("sgd_wd", l2_at_perturbed=False)
    np.testing.assert_allclose(held, want, **TOL["sgd"])
    assert np.abs(held - MSAM["sgd_wd_params"]).max() > 1e-4  # MSAM's own rule is the chained form


def test_momentum_sam_hand_case():
    # The 2-parameter case of `msam_sgd_reference`'s docstring: loss 0.5 ||w||^2, lr 0.1, momentum 0.9,
    # rho 1. Held params (3, 4) -> (2.1, 2.8) -> (1.62, 2.16); unperturbed (2.7, 3.6), (2.22, 2.96).
    tx = sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 1.0)
    w = jnp.array([3.0, 4.0])
    state = tx.init(w)
    held, weights, updates = [], [], []
    for _ in range(2):
        u, state = tx.update(w, state, w)  # the gradient of 0.5 ||w||^2 at the held w is w
        w = optax.apply_updates(w, u)
        held.append(w)
        weights.append(sharpax.momentum_sam_params(state, w))
        updates.append(u)
    np.testing.assert_allclose(held, [[2.1, 2.8], [1.62, 2.16]], rtol=1e-6)
    np.testing.assert_allclose(weights, [[2.7, 3.6], [2.22, 2.96]], rtol=1e-6)
    np.testing.assert_allclose(updates, [[-0.9, -1.2], [-0.48, -0.64]], rtol=1e-5)
    np.testing.assert_allclose(state.scale, 1 / 8, rtol=1e-6)  # rho / ||v||, v = (4.8, 6.4)
    vec = np.array([3.0, 4.0])
    # The numpy transcription on the same case (its backprop is the MLP's: only the rule is reused).
    w_t, v, inv = vec, np.zeros(2), 0.0
    for _ in range(2):
        w_plain = w_t + inv * v
        v = 0.9 * v + w_t
        w_plain = w_plain - 0.1 * v
        inv = 1 / (np.linalg.norm(v) + eref.NORM_EPS)
        w_t = w_plain - inv * v
    np.testing.assert_allclose(w_t, [1.62, 2.16], rtol=1e-12)


class _SeenState(NamedTuple):
    seen: optax.Params


def _record_params():
    """A pass-through transform whose state is the params it was last given."""
    return optax.GradientTransformation(
        lambda p: _SeenState(jax.tree.map(jnp.zeros_like, p)),
        lambda u, s, p=None: (u, _SeenState(p)),
    )


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_accessor_returns_exactly_the_weights_the_base_steps_from(jit):
    loss = lambda p: jnp.sum(jnp.sin(p["a"])) + jnp.sum(p["b"] ** 3)
    tx = sharpax.momentum_sam(optax.chain(_record_params(), sharpax.adamw(0.1)), 0.5)
    update = jax.jit(tx.update) if jit else tx.update
    accessor = jax.jit(sharpax.momentum_sam_params) if jit else sharpax.momentum_sam_params
    params = {"a": jnp.array([0.3, -1.2, 2.0]), "b": jnp.array([[0.5], [-0.7]])}
    state = tx.init(params)
    for _ in range(3):
        expected = accessor(state, params)
        u, state = update(jax.grad(loss)(params), state, params)
        seen = jax.tree.leaves(state.inner_state[0].seen)
        for a, b in zip(seen, jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # bit for bit
        params = optax.apply_updates(params, u)
    assert float(state.scale) > 0  # the params do carry a perturbation


def test_without_a_momentum_buffer_the_last_update_is_the_direction():
    # Plain SGD has no buffer: v = -u = lr * g, the direction MSAM takes with momentum 0 (v = d = g).
    # 20 steps: without momentum this problem amplifies float32 rounding from about step 20 on (in
    # float64 the two agree over all 30 steps).
    tx = sharpax.momentum_sam(sharpax.sgd(0.1), 0.3)
    assert tx.init(_init()).direction is not None
    held, weights = _run_momentum_sam(tx, steps=20)
    want_held, want_weights = (a[:21] for a in _msam_transcription("sgd", momentum=0.0))
    np.testing.assert_allclose(held, want_held, **TOL["sgd"])
    np.testing.assert_allclose(weights, want_weights, **TOL["sgd"])


class _HiddenState(NamedTuple):
    velocity: optax.Updates


def _unnamed_momentum(momentum):
    """Heavy-ball momentum under a field name the buffer lookup does not know."""
    return optax.GradientTransformation(
        lambda p: _HiddenState(jax.tree.map(jnp.zeros_like, p)),
        lambda u, s, p=None: (
            v := jax.tree.map(lambda g, b: momentum * b + g, u, s.velocity),
            _HiddenState(v),
        ),
    )


def test_last_update_direction_equals_the_buffer_direction_for_sgd_momentum():
    hidden = sharpax.momentum_sam(optax.chain(_unnamed_momentum(0.9), optax.scale(-0.1)), 0.3)
    assert hidden.init(_init()).direction is not None  # the fallback is taken
    held, _ = _run_momentum_sam(hidden)
    np.testing.assert_allclose(held, MSAM["sgd_params"], **TOL["sgd"])


def test_rho_zero_is_the_base_optimizer():
    held, weights = _run_momentum_sam(sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.0))
    want, _ = _msam_transcription("sgd", rho=0.0)
    np.testing.assert_allclose(held, want, **TOL["sgd"])
    np.testing.assert_array_equal(held, weights)


def test_rho_schedule_is_evaluated_at_the_step_count():
    seen = []
    tx = sharpax.momentum_sam(
        sharpax.sgd(0.1, momentum=0.9), lambda t: (jax.debug.callback(seen.append, t), 0.3)[1]
    )
    assert int(tx.init(_init()).count) == 0
    held, weights = _run_momentum_sam(tx)
    jax.effects_barrier()
    assert [int(t) for t in seen] == list(range(eref.STEPS))
    np.testing.assert_allclose(held, MSAM["sgd_params"], **TOL["sgd"])
    np.testing.assert_allclose(weights, MSAM["sgd_weights"], **TOL["sgd"])


def test_leaves_a_masked_base_skips_are_not_perturbed():
    # optax.masked leaves a MaskedNode where its buffer skips a leaf: no direction there.
    params = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([1.0])}
    base = optax.masked(optax.sgd(0.1, momentum=0.9), {"a": True, "b": False})
    tx = sharpax.momentum_sam(base, 1.0)
    u, state = tx.update(params, tx.init(params), params)
    held = optax.apply_updates(params, u)
    np.testing.assert_allclose(held["a"], [2.1, 2.8], rtol=1e-6)  # as the hand case
    np.testing.assert_allclose(held["b"], [2.0])  # optax.masked passes the gradient through
    np.testing.assert_array_equal(sharpax.momentum_sam_params(state, held)["b"], held["b"])


def test_two_momentum_buffers_are_an_error():
    tx = sharpax.momentum_sam(optax.chain(optax.trace(0.5), sharpax.sgd(0.1, momentum=0.9)), 0.3)
    with pytest.raises(ValueError, match=r"^momentum_sam: the base optimizer's state holds 2"):
        tx.init(_init())


def test_lookahead_inside_momentum_sam_steps_the_unperturbed_weights():
    # The reference: lookahead(sgd) stepping w with the gradient taken at w - c v, v its sgd buffer.
    x, y = map(jnp.asarray, ref.make_problem()[:2])
    grad = jax.jit(jax.grad(mlp_loss))
    rho, la = 0.3, sharpax.lookahead(sharpax.sgd(0.1, momentum=0.9), sync_period=3, alpha=0.5)
    tx = sharpax.momentum_sam(la, rho)
    update = jax.jit(tx.update)
    weights = held = _init()
    la_state, state = la.init(weights), tx.init(held)
    perturbation = jax.tree.map(jnp.zeros_like, weights)
    for _ in range(8):
        g = grad(jax.tree.map(jnp.subtract, weights, perturbation), x, y)
        u, la_state = la.update(g, la_state, weights)
        weights = optax.apply_updates(weights, u)
        (buf,) = sharpax.wrappers._lookahead.get_momentum_buffers(la_state)
        scale = rho / (jnp.sqrt(sum(jnp.sum(b**2) for b in jax.tree.leaves(buf))) + 1e-12)
        perturbation = jax.tree.map(functools.partial(jnp.multiply, scale), buf)

        u, state = update(grad(held, x, y), state, held)
        held = optax.apply_updates(held, u)
        unperturbed = sharpax.momentum_sam_params(state, held)
        np.testing.assert_allclose(_flat(unperturbed), _flat(weights), rtol=2e-5, atol=2e-6)
        np.testing.assert_allclose(
            _flat(held),
            _flat(jax.tree.map(jnp.subtract, weights, perturbation)),
            rtol=2e-5,
            atol=2e-6,
        )
        np.testing.assert_allclose(
            _flat(sharpax.lookahead_params(state, unperturbed)),
            _flat(sharpax.lookahead_params(la_state, weights)),
            rtol=2e-5,
            atol=2e-6,
        )
    assert float(state.scale) > 0 and int(la_state.count) == 8  # two syncs happened, perturbed


@pytest.mark.parametrize("where", ["inner", "in a chain"])
def test_lookahead_refuses_momentum_sam_inside_it(where):
    msam = sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.3)
    inner = msam if where == "inner" else optax.chain(optax.clip(1.0), msam)
    tx = sharpax.lookahead(inner)
    with pytest.raises(
        ValueError, match=r"^lookahead: .* MomentumSAMState.*momentum_sam\(sharpax\.lookahead"
    ):
        tx.init(_init())


@pytest.mark.loose_promotion  # optax.MultiSteps mixes its int32 counter with floats
def test_multisteps_around_momentum_sam_accumulates_at_the_held_params():
    # Two microbatches at the same (perturbed) params, then one momentum-SAM step with their mean.
    x, y = map(jnp.asarray, ref.make_problem()[:2])
    half = x.shape[0] // 2
    msam = lambda: sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.3)
    tx, whole = optax.MultiSteps(msam(), every_k_schedule=2), msam()
    params = reference = _init()
    state, whole_state = tx.init(params), whole.init(reference)
    for _ in range(3):
        for part in (slice(None, half), slice(half, None)):
            u, state = tx.update(jax.grad(mlp_loss)(params, x[part], y[part]), state, params)
            params = optax.apply_updates(params, u)
        g = jax.tree.map(
            lambda a, b: (a + b) / 2,
            jax.grad(mlp_loss)(reference, x[:half], y[:half]),
            jax.grad(mlp_loss)(reference, x[half:], y[half:]),
        )
        u, whole_state = whole.update(g, whole_state, reference)
        reference = optax.apply_updates(reference, u)
        np.testing.assert_allclose(_flat(params), _flat(reference), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            _flat(sharpax.momentum_sam_params(state, params)),
            _flat(sharpax.momentum_sam_params(whole_state, reference)),
            rtol=1e-5,
            atol=1e-6,
        )
    assert float(whole_state.scale) > 0


def test_apply_if_finite_around_momentum_sam_keeps_the_params_and_state():
    tx = optax.apply_if_finite(
        sharpax.momentum_sam(sharpax.adamw(0.1), 0.5), max_consecutive_errors=3
    )
    params = _init()
    state = tx.init(params)
    u, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
    params = optax.apply_updates(params, u)
    before = sharpax.momentum_sam_params(state, params)
    bad = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), params)
    u, skipped = tx.update(bad, state, params)
    assert all(not np.any(np.asarray(leaf)) for leaf in jax.tree.leaves(u))
    for a, b in zip(
        jax.tree.leaves(before),
        jax.tree.leaves(sharpax.momentum_sam_params(skipped, params)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(skipped.notfinite_count) == 1


@pytest.mark.parametrize("base", ["adam", "sgd_momentum", "sgd"])
def test_the_second_base_update_costs_nothing_on_cpu(base):
    # momentum_sam runs the base update twice, the second behind an optimization barrier (on a GPU the
    # step then writes the new buffer in place). XLA:CPU expands the barrier before fusing and merges
    # the two: the compiled step must cost what one base update's does (benchmarks/README.md).
    from benchmarks._momentum_sam_forms import momentum_sam_form

    make = {
        "adam": lambda: sharpax.adam(1e-3),
        "sgd_momentum": lambda: sharpax.sgd(1e-2, momentum=0.9),
        "sgd": lambda: sharpax.sgd(1e-2),
    }[base]
    keys = jax.random.split(jax.random.key(0), 2)
    params = {"w": jax.random.normal(keys[0], (64, 32)), "b": jnp.zeros(32)}
    x = jax.random.normal(keys[1], (16, 64))
    loss = lambda p: jnp.mean(jnp.tanh(x @ p["w"] + p["b"][None, :]) ** 2)
    costs = []
    for tx in (sharpax.momentum_sam(make(), 1.0), momentum_sam_form(make(), 1.0, "one update")):

        def step(p, s, tx=tx):
            updates, s = tx.update(jax.grad(loss)(p), s, p)
            return optax.apply_updates(p, updates), s

        compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params)).compile()
        cost, memory = compiled.cost_analysis(), compiled.memory_analysis()
        costs.append((cost["flops"], cost["bytes accessed"], memory.temp_size_in_bytes))
    (flops, accessed, temp), (want_flops, want_accessed, want_temp) = costs
    assert (flops, temp) == (want_flops, want_temp)
    # A few scalars may be read once more; a params-sized array more would be 4% of this step's bytes.
    assert abs(accessed - want_accessed) <= 0.01 * want_accessed


@pytest.mark.torch
def test_msam_goldens_against_live_msam():
    """Re-run MSAM's own optimizers (needs torch and a checkout of MarlonBecker/MSAM in MSAM_REPO)."""
    checkout = os.environ.get("MSAM_REPO")
    if not checkout or not (pathlib.Path(checkout) / "optimizer" / "msam.py").exists():
        pytest.skip("set MSAM_REPO to a checkout of github.com/MarlonBecker/MSAM")
    pytest.importorskip("torch")
    from tests.references import make_sam_efficient_goldens as gen

    classes = gen.load_msam(pathlib.Path(checkout))
    for case in eref.MSAM_CASES:
        held, weights = gen.msam_trajectory(classes, case)
        np.testing.assert_allclose(held, MSAM[f"{case}_params"], **GOLDEN_VS_LIVE)
        np.testing.assert_allclose(weights, MSAM[f"{case}_weights"], **GOLDEN_VS_LIVE)


# --- AE-SAM -------------------------------------------------------------------------------------------


def _ae_tx(**overrides):
    kw = {**eref.AE_SAM, **overrides}
    base = sharpax.sgd(kw.pop("lr"), momentum=kw.pop("momentum"))
    return sharpax.ae_sam(base, kw.pop("rho"), **kw)


def _run_minibatches(tx, *, with_grad_fn=True, on_grad_fn=None):
    """(trajectory, states after each step) over the golden's minibatches, jitted."""
    x, y, batches = (jnp.asarray(AE[k]) for k in ("x", "y", "batches"))
    params = _init()

    @jax.jit
    def step(params, state, idx):
        xb, yb = x[idx], y[idx]

        def grad_fn(p):
            if on_grad_fn is not None:
                jax.debug.callback(on_grad_fn)
            return jax.grad(mlp_loss)(p, xb, yb)

        extra = {"grad_fn": grad_fn} if with_grad_fn else {}
        updates, state = tx.update(jax.grad(mlp_loss)(params, xb, yb), state, params, **extra)
        return optax.apply_updates(params, updates), state

    state, out, states = tx.init(params), [_flat(params)], []
    for idx in batches:
        params, state = step(params, state, idx)
        out.append(_flat(params))
        states.append(state)
    return np.stack(out), states


_AE_GRAD_FN_CALLS: list[int] = []


@functools.cache
def _ae_golden_run():
    out = _run_minibatches(_ae_tx(), on_grad_fn=lambda: _AE_GRAD_FN_CALLS.append(1))
    jax.effects_barrier()
    return out


def test_ae_sam_transcription_matches_golden():
    x, y, batches, init = eref.make_ae_problem()
    trajectory, log = eref.ae_sam_reference(ref.flatten(init), x, y, batches, **eref.AE_SAM)
    np.testing.assert_allclose(trajectory, AE["params"], **GOLDEN_VS_LIVE_F64)
    np.testing.assert_array_equal(log["sam"], AE["sam"])


def test_ae_sam_matches_reference_step_by_step():
    trajectory, states = _ae_golden_run()
    np.testing.assert_allclose(trajectory, AE["params"], rtol=1e-5, atol=1e-6)
    sam_counts = np.array([int(s.sam_count) for s in states])
    np.testing.assert_array_equal(np.diff(sam_counts, prepend=0), AE["sam"].astype(int))
    np.testing.assert_allclose([float(s.mean) for s in states], AE["mean"], rtol=1e-5)
    np.testing.assert_allclose([float(s.variance) for s in states], AE["variance"], rtol=1e-4)


def test_ae_sam_fraction_counts_the_sam_steps():
    _, states = _ae_golden_run()
    fractions = [float(sharpax.ae_sam_fraction(s)) for s in states]
    expected = np.cumsum(AE["sam"]) / np.arange(1, len(AE["sam"]) + 1)
    np.testing.assert_allclose(fractions, expected, rtol=1e-6)
    assert 0 < fractions[-1] < 1  # both kinds of step: 20 of 30
    # Found at any depth of the state.
    wrapped = optax.chain(optax.clip(1.0), _ae_tx()).init(_init())
    assert float(sharpax.ae_sam_fraction(wrapped)) == 0.0


def test_ae_sam_plain_steps_do_not_run_the_second_pass():
    _ae_golden_run()
    assert len(_AE_GRAD_FN_CALLS) == int(AE["sam"].sum())


def test_ae_sam_hand_case():
    # The 2-parameter case of `ae_sam_reference`'s docstring: SAM at t = 0, plain at t = 1.
    tx = sharpax.ae_sam(sharpax.sgd(0.1), 0.05, total_steps=1, lambda1=2.0, lambda2=1.0)
    w = jnp.array([3.0, 4.0])
    state = tx.init(w)
    grad_fn = lambda p: p  # the gradient of 0.5 ||w||^2
    u, state = tx.update(w, state, w, grad_fn=grad_fn)
    w = optax.apply_updates(w, u)
    np.testing.assert_allclose(w, [2.697, 3.596], rtol=1e-6)
    np.testing.assert_allclose([state.mean, state.variance], [2.5, 50.625], rtol=1e-6)
    u, state = tx.update(w, state, w, grad_fn=grad_fn)
    np.testing.assert_allclose(optax.apply_updates(w, u), [2.4273, 3.2364], rtol=1e-6)
    np.testing.assert_allclose(state.mean, 4.2705025, rtol=1e-6)
    assert (int(state.count), int(state.sam_count)) == (2, 1)


# | ||g||^2 - mu_t | <= sigma_t / sqrt(1 - delta) = 3.162 sigma_t for delta = 0.9: a threshold just past
# that bound forces every decision (the bound `ae_sam`'s docstring states).
def test_ae_sam_forced_to_sam_is_sam():
    always = _ae_tx(lambda1=-3.17, lambda2=-3.17)
    got, states = _run_minibatches(always)
    base = sharpax.sgd(eref.AE_SAM["lr"], momentum=eref.AE_SAM["momentum"])
    want, _ = _run_minibatches(sharpax.sam(base, eref.AE_SAM["rho"]))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert float(sharpax.ae_sam_fraction(states[-1])) == 1.0


def test_ae_sam_forced_to_plain_is_the_base_optimizer_in_one_pass():
    calls = []
    got, states = _run_minibatches(
        _ae_tx(lambda1=3.17, lambda2=3.17), on_grad_fn=lambda: calls.append(1)
    )
    jax.effects_barrier()
    base = sharpax.sgd(eref.AE_SAM["lr"], momentum=eref.AE_SAM["momentum"])
    want, _ = _run_minibatches(base, with_grad_fn=False)
    np.testing.assert_array_equal(got, want)
    assert float(sharpax.ae_sam_fraction(states[-1])) == 0.0 and not calls


# --- jit, vmap, 8 devices -----------------------------------------------------------------------------

TRANSFORMS = {
    "momentum_sam(sgd)": lambda: sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.3),
    "momentum_sam(adamw)": lambda: sharpax.momentum_sam(sharpax.adamw(0.01), 0.5),
    "ae_sam(sgd)": lambda: _ae_tx(total_steps=6, lambda1=0.5, lambda2=0.5),
}


@pytest.mark.parametrize("name", ["momentum_sam(adamw)", "ae_sam(sgd)"])
def test_vmap_over_problems_matches_one_by_one(name):
    """Three problems (other inits) stepped under one vmap equal the same steps one at a time (AE-SAM
    runs its second pass for the batch when any problem takes a SAM step; each keeps its own result)."""
    tx = TRANSFORMS[name]()
    x, y, batches = (jnp.asarray(AE[k]) for k in ("x", "y", "batches"))
    inits = [
        jax.tree.map(lambda a, s=s: a * s, _init()) for s in (1.0, 0.5, 2.0)
    ]  # different scales, so the AE-SAM decisions differ between problems

    def step(params, state, idx):
        grad_fn = lambda p: jax.grad(mlp_loss)(p, x[idx], y[idx])
        u, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, u), state

    def run(step_fn, params, state):
        for idx in batches[:6]:
            params, state = step_fn(params, state, idx)
        return params, state

    stacked = jax.tree.map(lambda *a: jnp.stack(a), *inits)
    got = run(jax.jit(jax.vmap(step, in_axes=(0, 0, None))), stacked, jax.vmap(tx.init)(stacked))
    if name.startswith("ae_sam"):
        counts = [int(c) for c in got[1].sam_count]
        assert len(set(counts)) > 1, counts  # the problems took different decisions
    one = jax.jit(step)
    for i, init in enumerate(inits):
        want = run(one, init, tx.init(init))
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(g[i], w, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["momentum_sam(sgd)", "ae_sam(sgd)"])
def test_data_parallel_on_8_devices_matches_one_device(name):
    """The batch split over 8 devices: the global norms (of v, of g) are all-reduced, so the steps (and
    AE-SAM's decisions) equal one device's."""
    tx = TRANSFORMS[name]()
    params, (xs, ys) = rc.make_params(), rc.make_batches()
    want = rc.train_with_grad_fn_eager(tx, params, tx.init(params), xs, ys)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    p = jax.device_put(params, replicated)
    state = jax.device_put(tx.init(params), replicated)
    xs, ys = (jax.device_put(a, NamedSharding(mesh, P(None, "data"))) for a in (xs, ys))
    step = jax.jit(rc.train_with_grad_fn, static_argnums=0)
    step.lower(tx, p, state, xs, ys).compile()
    with jax.transfer_guard("disallow"):  # no host round-trip inside a step
        got = step(tx, p, state, xs, ys)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-6)
    for leaf in jax.tree.leaves(got[0]):
        assert leaf.sharding.is_fully_replicated
    if name.startswith("ae_sam"):
        assert 0 < int(got[1].sam_count) < len(xs)  # both kinds of step were taken


# --- errors -------------------------------------------------------------------------------------------


def test_update_needs_params_and_grad_fn():
    w = jnp.ones(2)
    msam = sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), 0.3)
    with pytest.raises(ValueError, match=r"^momentum_sam: update needs the params"):
        msam.update(w, msam.init(w))
    ae = _ae_tx()
    with pytest.raises(ValueError, match=r"^ae_sam: update needs the second pass"):
        ae.update(w, ae.init(w), w)
