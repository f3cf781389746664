"""Mixed precision: dynamic loss scaling with SAM. The scale follows torch's `GradScaler` rule (live
torch and a transcription of the rule); an overflow in either pass skips the step with nothing changed
but the scale; the perturbation is taken from the unscaled gradient; a clean step is SAM's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax

RHO = 0.5
W = jnp.array([3.0, 4.0])


def _bits(tree):
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


# --- the scale ----------------------------------------------------------------------------------------


def reference_scales(flags, scale, period, factor, floor):
    """jmp's `DynamicLossScale` docstring rule (torch's GradScaler with backoff 1 / factor, plus a floor),
    as a Python loop: (scale, counter) after each step."""
    counter, out = 0, []
    for finite in flags:
        if finite:
            counter += 1
            if counter == period:
                counter = 0
                scale = scale * factor if math.isfinite(scale * factor) else scale
        else:
            counter = 0
            scale = max(floor, scale / factor)
        out.append((scale, counter))
    return out


FLAGS = [True, True, True, False, True, False, False, True, True, True, True, True, True, True]


def test_adjust_follows_the_rule():
    scale = sharpax.dynamic_loss_scale(8.0, period=3, factor=2.0, min_loss_scale=2.0)
    adjust = jax.jit(lambda s, f: s.adjust(f))
    got = []
    for finite in FLAGS:
        scale = adjust(scale, jnp.asarray(finite))
        got.append((float(scale.loss_scale), int(scale.counter)))
    assert got == reference_scales(FLAGS, 8.0, 3, 2.0, 2.0)
    assert scale.min_loss_scale == 2.0 and scale.period == 3  # nothing lost through jit
    huge = sharpax.dynamic_loss_scale(2.0**127, period=1)
    assert float(huge.adjust(jnp.array(True)).loss_scale) == 2.0**127  # never grows to inf


@pytest.mark.torch
def test_adjust_matches_torch_grad_scaler():
    torch = pytest.importorskip("torch")
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    ours = sharpax.dynamic_loss_scale(1024.0, period=3, factor=2.0, min_loss_scale=1e-30)
    for finite in FLAGS:
        opt.zero_grad()
        scaler.scale(param.sum() * (1.0 if finite else math.inf)).backward()
        scaler.step(opt)
        scaler.update()
        ours = ours.adjust(jnp.asarray(finite))
        assert scaler.get_scale() == float(ours.loss_scale)


def test_scale_and_unscale_widen_half_precision():
    scale = sharpax.dynamic_loss_scale(2.0**15)
    scaled = scale.scale(jnp.asarray(4.0, jnp.float16))  # 131072 would be inf in float16
    assert scaled.dtype == jnp.float32 and float(scaled) == 4.0 * 2**15
    # The product runs in float32 (1 / 2^15 is fine there), the result is float16 again: a float16
    # gradient below 2^-24 once unscaled is lost, hence float32 master params.
    grads = {"h": jnp.asarray([16.0, 2.0**-10], jnp.float16), "n": jnp.array([3], jnp.int32)}
    unscaled = scale.unscale(grads)
    assert unscaled["h"].dtype == jnp.float16 and unscaled["n"] is grads["n"]
    np.testing.assert_array_equal(unscaled["h"].astype(jnp.float32), [2.0**-11, 0.0])


# --- the gradient form --------------------------------------------------------------------------------


def overflow_loss(threshold):
    """sum(w^2), plus a float16 term switched on when w[0] > threshold: scaled by 2^15, its gradient
    (300 * 2^15 per entry) overflows float16. Pass 1 runs at w[0] = 3, pass 2 at 3 + e[0] = 3.3."""

    def loss_fn(w):
        blow_up = jnp.sum(w.astype(jnp.float16) * jnp.float16(300.0)).astype(jnp.float32)
        return jnp.sum(w**2) + jnp.where(w[0] > threshold, blow_up, jnp.zeros([], jnp.float32))

    return loss_fn


@pytest.mark.parametrize(
    ("threshold", "p"),
    [(3.1, 2), (2.9, 2), (2.9, math.inf)],
    ids=["pass-2", "pass-1", "pass-1-p-inf"],
)
def test_value_and_grad_overflow_in_either_pass_gives_nan(threshold, p):
    # With p = inf an infinite first-pass gradient still gives a finite e = rho sign(g): only the
    # explicit check of pass 1 catches it.
    loss_fn = overflow_loss(threshold)
    sam_grad = jax.jit(sharpax.sam_value_and_grad(loss_fn, RHO, p=p))
    loss, grads = sam_grad(W, loss_scale=sharpax.dynamic_loss_scale(2.0**15))
    assert np.isnan(np.asarray(grads)).all()
    assert not sharpax.all_finite(grads)
    loss, grads = sam_grad(W, loss_scale=sharpax.dynamic_loss_scale(1.0))  # no overflow unscaled
    assert sharpax.all_finite(grads)


def test_value_and_grad_clean_step_is_sam_with_the_unscaled_loss():
    loss_fn = lambda w, x: jnp.mean(x) * jnp.sum(w**2)
    x = jnp.ones((4, 1))
    mesh = jax.make_mesh((2,), ("data",), devices=jax.devices()[:2])
    for kwargs in ({}, {"microbatches": 2}, {"m": 2}, {"mesh_axis": "data", "mesh": mesh}):
        sam_grad = jax.jit(sharpax.gsam_value_and_grad(loss_fn, RHO, 0.2, **kwargs))
        loss, grads = sam_grad(W, x, loss_scale=sharpax.dynamic_loss_scale(2.0**10))
        want_loss, want = sam_grad(W, x)
        np.testing.assert_allclose(grads, want, rtol=1e-6)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-6)


def test_value_and_grad_with_apply_if_finite_skips_and_adjusts():
    loss_fn = overflow_loss(3.1)
    sam_grad = sharpax.sam_value_and_grad(loss_fn, RHO)
    tx = optax.apply_if_finite(sharpax.adam(0.1), max_consecutive_errors=100)

    @jax.jit
    def step(params, state, loss_scale):
        loss, grads = sam_grad(params, loss_scale=loss_scale)
        updates, state = tx.update(grads, state, params)
        return (
            optax.apply_updates(params, updates),
            state,
            loss_scale.adjust(sharpax.all_finite(grads)),
        )

    state, scale = tx.init(W), sharpax.dynamic_loss_scale(2.0**15)
    params, new_state, new_scale = step(W, state, scale)
    assert _bits(params) == _bits(W) and _bits(new_state.inner_state) == _bits(state.inner_state)
    assert float(new_scale.loss_scale) == 2.0**14


# --- the transformation forms -------------------------------------------------------------------------

TRANSFORMS = {
    "sam": lambda ls: sharpax.sam(sharpax.adam(0.1), RHO, loss_scale=ls),
    "gsam": lambda ls: sharpax.gsam(sharpax.adam(0.1), RHO, 0.2, loss_scale=ls),
    "looksam": lambda ls: sharpax.looksam(sharpax.adam(0.1), RHO, k=2, loss_scale=ls),
    "periodic_sam": lambda ls: sharpax.periodic_sam(sharpax.adam(0.1), RHO, k=2, loss_scale=ls),
    "friendly_sam": lambda ls: sharpax.friendly_sam(sharpax.adam(0.1), RHO, loss_scale=ls),
    "wsam": lambda ls: sharpax.wsam(sharpax.adam(0.1), 0.1, RHO, loss_scale=ls),
    # Thresholds below -1 / sqrt(1 - delta): a SAM step every time, as the test below expects.
    "ae_sam": lambda ls: sharpax.ae_sam(
        sharpax.adam(0.1), RHO, total_steps=10, lambda1=-4.0, lambda2=-4.0, loss_scale=ls
    ),
}


def _scaled_step(tx):
    """A training step as a user writes it: the loss of both passes scaled by the state's scale."""

    @jax.jit
    def step(params, state, poison_first, poison_second):
        scale = sharpax.current_loss_scale(state)
        grad = jax.grad(lambda w: scale.scale(jnp.sum(w**2)))
        poison = lambda g, bad: jnp.where(bad, jnp.inf, g)
        grads = poison(grad(params), poison_first)
        updates, state = tx.update(
            grads, state, params, grad_fn=lambda p: poison(grad(p), poison_second)
        )
        return optax.apply_updates(params, updates), state

    return step


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transformation_skips_an_overflow_in_either_pass(name):
    tx = TRANSFORMS[name](sharpax.dynamic_loss_scale(2.0**8, period=3))
    step = _scaled_step(tx)
    params, state = step(W, tx.init(W), False, False)  # count 0: a SAM step in all
    params, state = step(params, state, False, False)  # count 1: looksam/periodic_sam take one pass
    for first, second in [(False, True), (True, False), (True, True)]:  # count 2: SAM steps
        new_params, new_state = step(params, state, first, second)
        assert _bits((new_params, new_state.inner_state)) == _bits((params, state.inner_state))
        assert float(new_state.loss_scale.loss_scale) == float(state.loss_scale.loss_scale) / 2
        assert int(new_state.loss_scale.counter) == 0
        params, state = new_params, new_state
    # A clean step moves on, with the count of finite steps.
    new_params, new_state = step(params, state, False, False)
    assert not np.array_equal(new_params, params) and int(new_state.loss_scale.counter) == 1
    if name in (
        "looksam",
        "periodic_sam",
    ):  # count 3: one pass, grad_fn not called, nothing skipped
        after, after_state = step(new_params, new_state, False, True)
        assert not np.array_equal(after, new_params) and int(after_state.loss_scale.counter) == 2


def test_transformation_clean_steps_are_sam_and_perturb_with_the_unscaled_gradient():
    # Gradients of norm 6e-11: rho g / (||g|| + 1e-12) differs by 1.6% between the unscaled g and
    # the scaled one (2^20 g), so the points grad_fn is called at tell which one e came from.
    loss_fn = lambda w: 1e-11 * jnp.sum(w * jnp.array([3.0, 4.0])) + 1e-12 * jnp.sum(w**2)
    seen = {}

    def run(tx, scaled):
        state, params = tx.init(W), W
        for i in range(3):
            factor = float(sharpax.current_loss_scale(state).loss_scale) if scaled else 1.0
            grad = jax.grad(lambda w, f=factor: f * loss_fn(w))

            def grad_fn(p, grad=grad, i=i):
                seen[scaled, i] = np.asarray(p)
                return grad(p)

            updates, state = tx.update(grad(params), state, params, grad_fn=grad_fn)
            params = optax.apply_updates(params, updates)
        return params

    plain = run(sharpax.sam(sharpax.sgd(1e9), RHO), False)
    scaled = run(
        sharpax.sam(sharpax.sgd(1e9), RHO, loss_scale=sharpax.dynamic_loss_scale(2.0**20)), True
    )
    np.testing.assert_allclose(scaled, plain, rtol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(seen[True, i], seen[False, i], rtol=1e-7)
    g = np.array([3e-11, 4e-11]) + 2e-12 * np.asarray(W)
    from_scaled = RHO * g * 2.0**20 / (np.linalg.norm(g * 2.0**20) + 1e-12)
    assert np.abs((seen[True, 0] - W) / from_scaled - 1).min() > 1e-2  # it would have shown


def test_loss_scale_state_and_errors():
    tx = sharpax.sam(sharpax.sgd(0.1), loss_scale=sharpax.dynamic_loss_scale(4.0))
    state = optax.chain(optax.clip(1.0), tx).init(W)
    assert float(sharpax.current_loss_scale(state).loss_scale) == 4.0
    with pytest.raises(ValueError, match="found 0"):
        sharpax.current_loss_scale(sharpax.sam(sharpax.sgd(0.1)).init(W))
    with pytest.raises(TypeError, match=r"^gsam: loss_scale must be None or a DynamicLossScale"):
        sharpax.gsam(sharpax.sgd(0.1), loss_scale=2.0**15)
    with pytest.raises(TypeError, match=r"^sam_value_and_grad: loss_scale must be None or a"):
        sharpax.sam_value_and_grad(jnp.sum)(W, loss_scale=1024.0)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"initial_scale": 0.0}, r"initial_scale must be in \(0.0, inf\)"),
        ({"initial_scale": math.inf}, r"initial_scale must be in \(0.0, inf\)"),
        ({"period": 0}, r"period must be an integer >= 1"),
        ({"factor": 0.5}, r"factor must be in \[1.0, inf\)"),
        ({"min_loss_scale": -1.0}, r"min_loss_scale must be in \(0.0, inf\)"),
        ({"initial_scale": 0.5}, r"initial_scale must be >= min_loss_scale \(1.0\)"),
    ],
)
def test_bad_loss_scale_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=rf"^dynamic_loss_scale: {argument}"):
        sharpax.dynamic_loss_scale(**kwargs)
