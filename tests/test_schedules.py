"""Every schedule against a closed form written independently in numpy (float64), over counts from 0
through the boundaries to far past the end; jit/vmap; no NaN at edge arguments; ValueErrors."""

from __future__ import annotations

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax

INT32_MAX = 2**31 - 1


def counts_for(*marks: int) -> np.ndarray:
    """0..20, each mark and its neighbours, and counts far past the end (up to int32 max)."""
    c = set(range(21)) | {10**5, 10**7, INT32_MAX - 1, INT32_MAX}
    for m in marks:
        c |= {m - 1, m, m + 1}
    return np.array(sorted(x for x in c if 0 <= x <= INT32_MAX), dtype=np.int64)


# ---- numpy references (float64), one per schedule, written from the formulas in the docstrings ----


def ref_linear_warmup(c, peak, w, init=0.0):
    if w == 0:
        return np.full(c.shape, peak)
    return init + (peak - init) * np.minimum(c, w) / w


def ref_exponential_warmup(c, peak, w, init):
    if w == 0:
        return np.full(c.shape, peak)
    return init * (peak / init) ** (np.minimum(c, w) / w)


def ref_noam(c, d_model, w, factor=1.0):
    s = c + 1.0
    return factor * d_model**-0.5 * np.minimum(s**-0.5, s * w**-1.5)


def _progress(c, w, length):
    if length == 0:
        return np.ones(c.shape)
    return np.clip(c - w, 0, length) / length


def _with_warmup(c, peak, w, init, after):
    return np.where(c < w, ref_linear_warmup(c, peak, w, init), after)


def ref_cosine(c, peak, w, d, init=0.0, end=0.0, exponent=1.0):
    p = _progress(c, w, d - w)
    return _with_warmup(
        c, peak, w, init, end + (peak - end) * (0.5 * (1 + np.cos(np.pi * p))) ** exponent
    )


def ref_linear_decay(c, peak, w, d, init=0.0, end=0.0):
    p = _progress(c, w, d - w)
    return _with_warmup(c, peak, w, init, end + (peak - end) * (1 - p))


def ref_poly(c, peak, w, d, power=1.0, init=0.0, end=0.0):
    p = _progress(c, w, d - w)
    return _with_warmup(c, peak, w, init, end + (peak - end) * (1 - p) ** power)


def ref_exp_decay(c, peak, w, rate, t=1, init=0.0, end=0.0, staircase=False):
    k = np.maximum(c - w, 0)
    e = np.floor(k / t) if staircase else k / t
    return _with_warmup(c, peak, w, init, np.maximum(peak * rate**e, end))


def ref_inv_sqrt(c, peak, w, init=0.0, timescale=None):
    tau = max(w, 1) if timescale is None else timescale
    return _with_warmup(c, peak, w, init, peak / np.sqrt(1 + np.maximum(c - w, 0) / tau))


SHAPES = {
    "linear": lambda p: 1 - p,
    "cosine": lambda p: 0.5 * (1 + np.cos(np.pi * p)),
    "1-sqrt": lambda p: 1 - np.sqrt(p),
    "1-square": lambda p: 1 - p**2,
}


def ref_wsd(c, peak, total, w, cool, init=0.0, end=0.0, shape="1-sqrt"):
    start = total - cool
    p = np.ones(c.shape) if cool == 0 else np.clip(c - start, 0, cool) / cool
    after = np.where(c < start, peak, end + (peak - end) * SHAPES[shape](p))
    return _with_warmup(c, peak, w, init, after)


def ref_one_cycle(c, peak, total, pct=0.3, div=25.0, final_div=1e4, anneal="cosine", three=False):
    """torch.optim.lr_scheduler.OneCycleLR.get_lr, transcribed per count (clamped at total - 1)."""
    initial = peak / div
    minimum = initial / final_div
    if three:
        phases = [
            (pct * total - 1, initial, peak),
            (2 * pct * total - 2, peak, initial),
            (total - 1, initial, minimum),
        ]
    else:
        phases = [(pct * total - 1, initial, peak), (total - 1, peak, minimum)]

    def ann(a, b, p):
        if anneal == "cosine":
            return b + (a - b) / 2.0 * (math.cos(math.pi * p) + 1)
        return (b - a) * p + a

    out = []
    for step in np.minimum(c, total - 1):
        start = 0.0
        for i, (end_step, a, b) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                out.append(ann(a, b, (step - start) / (end_step - start)))
                break
            start = end_step
    return np.array(out)


def ref_untuned_linear(c, b2, peak=1.0):
    return peak * np.minimum(1.0, (1 - b2) / 2 * (c + 1.0))


def ref_untuned_exp(c, b2, peak=1.0):
    return peak * (1 - np.exp(-(1 - b2) * (c + 1.0)))


# ---- the table: (id, schedule, reference, marks) ----

CASES = [
    (
        "linear_warmup",
        sharpax.linear_warmup(1e-3, 10),
        lambda c: ref_linear_warmup(c, 1e-3, 10),
        (10,),
    ),
    (
        "linear_warmup_init",
        sharpax.linear_warmup(2.0, 7, init_value=0.5),
        lambda c: ref_linear_warmup(c, 2.0, 7, 0.5),
        (7,),
    ),
    (
        "linear_warmup_w1",
        sharpax.linear_warmup(1.0, 1),
        lambda c: ref_linear_warmup(c, 1.0, 1),
        (1,),
    ),
    (
        "linear_warmup_w0",
        sharpax.linear_warmup(1.0, 0, init_value=0.3),
        lambda c: ref_linear_warmup(c, 1.0, 0, 0.3),
        (),
    ),
    (
        "linear_warmup_down",
        sharpax.linear_warmup(0.1, 5, init_value=1.0),
        lambda c: ref_linear_warmup(c, 0.1, 5, 1.0),
        (5,),
    ),
    (
        "exponential_warmup",
        sharpax.exponential_warmup(1e-2, 8, 1e-6),
        lambda c: ref_exponential_warmup(c, 1e-2, 8, 1e-6),
        (8,),
    ),
    (
        "exponential_warmup_w1",
        sharpax.exponential_warmup(1.0, 1, 0.5),
        lambda c: ref_exponential_warmup(c, 1.0, 1, 0.5),
        (1,),
    ),
    (
        "exponential_warmup_w0",
        sharpax.exponential_warmup(1.0, 0, 0.5),
        lambda c: ref_exponential_warmup(c, 1.0, 0, 0.5),
        (),
    ),
    ("noam", sharpax.noam_schedule(512, 4000), lambda c: ref_noam(c, 512, 4000), (3999, 4000)),
    (
        "noam_w1_factor",
        sharpax.noam_schedule(64, 1, factor=2.0),
        lambda c: ref_noam(c, 64, 1, 2.0),
        (1,),
    ),
    (
        "cosine",
        sharpax.warmup_cosine_decay(1e-3, 5, 15, init_value=1e-5, end_value=1e-6),
        lambda c: ref_cosine(c, 1e-3, 5, 15, 1e-5, 1e-6),
        (5, 15),
    ),
    (
        "cosine_exponent",
        sharpax.warmup_cosine_decay(1.0, 3, 13, exponent=2.0),
        lambda c: ref_cosine(c, 1.0, 3, 13, exponent=2.0),
        (3, 13),
    ),
    (
        "cosine_w0",
        sharpax.warmup_cosine_decay(1.0, 0, 10),
        lambda c: ref_cosine(c, 1.0, 0, 10),
        (10,),
    ),
    (
        "cosine_d_eq_w",
        sharpax.warmup_cosine_decay(1.0, 5, 5, end_value=0.1),
        lambda c: ref_cosine(c, 1.0, 5, 5, end=0.1),
        (5,),
    ),
    (
        "cosine_w1_d2",
        sharpax.warmup_cosine_decay(1.0, 1, 2),
        lambda c: ref_cosine(c, 1.0, 1, 2),
        (1, 2),
    ),
    (
        "linear_decay",
        sharpax.warmup_linear_decay(3e-4, 4, 12, end_value=3e-5),
        lambda c: ref_linear_decay(c, 3e-4, 4, 12, end=3e-5),
        (4, 12),
    ),
    (
        "linear_decay_d_eq_w",
        sharpax.warmup_linear_decay(1.0, 2, 2),
        lambda c: ref_linear_decay(c, 1.0, 2, 2),
        (2,),
    ),
    (
        "poly",
        sharpax.warmup_polynomial_decay(1.0, 2, 12, power=0.5, end_value=0.01),
        lambda c: ref_poly(c, 1.0, 2, 12, 0.5, end=0.01),
        (2, 12),
    ),
    (
        "poly_square",
        sharpax.warmup_polynomial_decay(1.0, 0, 10, power=2.0),
        lambda c: ref_poly(c, 1.0, 0, 10, 2.0),
        (10,),
    ),
    (
        "exp_decay",
        sharpax.warmup_exponential_decay(1.0, 3, 0.9),
        lambda c: ref_exp_decay(c, 1.0, 3, 0.9),
        (3,),
    ),
    (
        "exp_decay_floor_t",
        sharpax.warmup_exponential_decay(1e-2, 2, 0.5, transition_steps=3, end_value=1e-4),
        lambda c: ref_exp_decay(c, 1e-2, 2, 0.5, 3, end=1e-4),
        (2,),
    ),
    (
        "exp_decay_staircase",
        sharpax.warmup_exponential_decay(1.0, 0, 0.5, transition_steps=4, staircase=True),
        lambda c: ref_exp_decay(c, 1.0, 0, 0.5, 4, staircase=True),
        (4, 8),
    ),
    (
        "exp_decay_rate1",
        sharpax.warmup_exponential_decay(1.0, 2, 1.0),
        lambda c: ref_exp_decay(c, 1.0, 2, 1.0),
        (2,),
    ),
    (
        "inv_sqrt",
        sharpax.warmup_inverse_sqrt_decay(1.0, 4),
        lambda c: ref_inv_sqrt(c, 1.0, 4),
        (4,),
    ),
    (
        "inv_sqrt_w0",
        sharpax.warmup_inverse_sqrt_decay(1.0, 0),
        lambda c: ref_inv_sqrt(c, 1.0, 0),
        (),
    ),
    (
        "inv_sqrt_timescale",
        sharpax.warmup_inverse_sqrt_decay(5e-4, 3, init_value=1e-5, timescale=100.0),
        lambda c: ref_inv_sqrt(c, 5e-4, 3, 1e-5, 100.0),
        (3, 103),
    ),
    *[
        (
            f"wsd_{shape}",
            sharpax.warmup_stable_decay(1.0, 20, 4, 8, end_value=0.1, cooldown_shape=shape),
            (lambda s: lambda c: ref_wsd(c, 1.0, 20, 4, 8, end=0.1, shape=s))(shape),
            (4, 12, 20),
        )
        for shape in SHAPES
    ],
    (
        "wsd_no_stable",
        sharpax.warmup_stable_decay(1.0, 10, 5, 5, cooldown_shape="linear"),
        lambda c: ref_wsd(c, 1.0, 10, 5, 5, shape="linear"),
        (5, 10),
    ),
    (
        "wsd_no_cooldown",
        sharpax.warmup_stable_decay(1.0, 10, 2, 0, end_value=0.5),
        lambda c: ref_wsd(c, 1.0, 10, 2, 0, end=0.5),
        (2, 10),
    ),
    (
        "wsd_all_zero",
        sharpax.warmup_stable_decay(1.0, 0, 0, 0, end_value=0.2),
        lambda c: ref_wsd(c, 1.0, 0, 0, 0, end=0.2),
        (),
    ),
    (
        "one_cycle",
        sharpax.one_cycle(1e-2, 100),
        lambda c: ref_one_cycle(c, 1e-2, 100),
        (29, 30, 99, 100),
    ),
    (
        "one_cycle_linear",
        sharpax.one_cycle(1.0, 50, pct_start=0.25, anneal="linear"),
        lambda c: ref_one_cycle(c, 1.0, 50, 0.25, anneal="linear"),
        (11, 12, 49),
    ),
    (
        "one_cycle_three",
        sharpax.one_cycle(1.0, 40, pct_start=0.3, three_phase=True),
        lambda c: ref_one_cycle(c, 1.0, 40, 0.3, three=True),
        (11, 22, 39),
    ),
    (
        "one_cycle_tiny",
        sharpax.one_cycle(1.0, 2, pct_start=0.9),
        lambda c: ref_one_cycle(c, 1.0, 2, 0.9),
        (1,),
    ),
    (
        "untuned_linear",
        sharpax.untuned_linear_warmup(0.999),
        lambda c: ref_untuned_linear(c, 0.999),
        (1999, 2000),
    ),
    (
        "untuned_linear_peak",
        sharpax.untuned_linear_warmup(0.98, peak_value=3e-4),
        lambda c: ref_untuned_linear(c, 0.98, 3e-4),
        (99, 100),
    ),
    (
        "untuned_linear_b2_0",
        sharpax.untuned_linear_warmup(0.0),
        lambda c: ref_untuned_linear(c, 0.0),
        (1,),
    ),
    (
        "untuned_exp",
        sharpax.untuned_exponential_warmup(0.999),
        lambda c: ref_untuned_exp(c, 0.999),
        (999, 1000),
    ),
    (
        "untuned_exp_peak",
        sharpax.untuned_exponential_warmup(0.9, peak_value=2.0),
        lambda c: ref_untuned_exp(c, 0.9, 2.0),
        (10,),
    ),
    (
        "cyclic_triangle",
        sharpax.cyclic(sharpax.warmup_linear_decay(1.0, 3, 6, init_value=0.1, end_value=0.1), 6),
        lambda c: ref_linear_decay(c % 6, 1.0, 3, 6, 0.1, 0.1),
        (6, 12),
    ),
    (
        "cyclic_sgdr",
        sharpax.cyclic(sharpax.warmup_cosine_decay(1.0, 0, 10, end_value=0.1), 10),
        lambda c: ref_cosine(c % 10, 1.0, 0, 10, end=0.1),
        (10, 20),
    ),
    (
        "cyclic_period1",
        sharpax.cyclic(lambda c: c.astype(jnp.float32) + 2.0, 1),
        lambda c: np.full(c.shape, 2.0),
        (),
    ),
    (
        "join",
        sharpax.join_schedules(
            [
                sharpax.linear_warmup(1.0, 4),
                lambda c: 1.0 / (1.0 + c.astype(jnp.float32)),
                sharpax.linear_warmup(0.5, 0),
            ],
            [4, 10],
        ),
        lambda c: np.where(c < 4, c / 4, np.where(c < 10, 1 / (1.0 + np.maximum(c - 4, 0)), 0.5)),
        (4, 10),
    ),
    (
        "join_empty_piece",
        sharpax.join_schedules(
            [
                lambda c: jnp.full(c.shape, 1.0),
                lambda c: jnp.full(c.shape, 2.0),
                lambda c: jnp.full(c.shape, 3.0),
            ],
            [5, 5],
        ),
        lambda c: np.where(c < 5, 1.0, 3.0),
        (5,),
    ),
    (
        "untuned_warmup_times_lr",
        sharpax.multiply_schedules(sharpax.untuned_linear_warmup(0.9), 1e-3),
        lambda c: 1e-3 * ref_untuned_linear(c, 0.9),
        (19, 20),
    ),
    (
        "multiply",
        sharpax.multiply_schedules(
            sharpax.linear_warmup(1.0, 5), sharpax.warmup_cosine_decay(2.0, 0, 20), 0.5
        ),
        lambda c: ref_linear_warmup(c, 1.0, 5) * ref_cosine(c, 2.0, 0, 20) * 0.5,
        (5, 20),
    ),
]
IDS = [case[0] for case in CASES]


def _scale(ref_values):
    return float(np.max(np.abs(ref_values)))


@pytest.mark.parametrize("name,schedule,ref,marks", CASES, ids=IDS)
def test_matches_numpy_closed_form(name, schedule, ref, marks):
    c = counts_for(*marks)
    got = np.asarray(schedule(jnp.asarray(c, jnp.int32)))
    want = ref(c.astype(np.float64))
    assert got.dtype == np.float32 and got.shape == c.shape
    assert np.all(np.isfinite(got)), name
    np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-6 * _scale(want))


@pytest.mark.parametrize("name,schedule,ref,marks", CASES, ids=IDS)
def test_scalar_jit_and_vmap_agree(name, schedule, ref, marks):
    c = jnp.asarray(counts_for(*marks)[:30], jnp.int32)
    batched = np.asarray(schedule(c))
    jit_vmapped = np.asarray(jax.jit(jax.vmap(schedule))(c))
    np.testing.assert_allclose(jit_vmapped, batched, rtol=1e-6, atol=1e-7 * _scale(batched))
    scalar = schedule(int(c[3]))
    assert jnp.shape(scalar) == () and scalar.dtype == jnp.float32
    np.testing.assert_allclose(scalar, batched[3], rtol=1e-6)


def test_exact_values_at_boundaries():
    """The warmup ends exactly at the peak and decays end exactly at end_value (no rounding)."""
    peak, init, end = 3e-4, 1e-7, 1e-6
    lin = sharpax.linear_warmup(peak, 7, init)
    cos = sharpax.warmup_cosine_decay(peak, 7, 20, init_value=init, end_value=end)
    wsd = sharpax.warmup_stable_decay(peak, 20, 7, 5, init_value=init, end_value=end)
    f32 = np.float32
    assert lin(0) == f32(init) and lin(7) == f32(peak) and lin(INT32_MAX) == f32(peak)
    assert cos(7) == f32(peak) and cos(20) == f32(end) and cos(INT32_MAX) == f32(end)
    assert wsd(7) == f32(peak) and wsd(14) == f32(peak) and wsd(20) == f32(end)


def test_adam_warmup_recipes_are_one_line():
    """labml's AdamWarmup: lr = 1e-8 + t * peak / W for t < W (t = count + 1), else peak.
    Ours without the 1e-8: linear_warmup(peak, W - 1, init_value=peak / W)."""
    peak, w = 1e-3, 10
    c = np.arange(30)
    t = c + 1
    labml = np.where(t < w, t * peak / w, peak)
    ours = sharpax.linear_warmup(peak, w - 1, init_value=peak / w)(c)
    np.testing.assert_allclose(ours, labml, rtol=1e-6)
    # and the optimizer: count 0 -> lr 0 -> no step; then steps grow
    tx = sharpax.adam(sharpax.linear_warmup(1e-3, 1000))
    p = jnp.ones(2)
    u, s = tx.update(jnp.ones(2), tx.init(p), p)
    np.testing.assert_array_equal(u, np.zeros(2, np.float32))
    u, s = tx.update(jnp.ones(2), s, p)
    # lr 1e-6 at count 1; Adam's direction is 1 up to float32 bias-correction rounding
    np.testing.assert_allclose(u, -1e-6 * np.ones(2), rtol=1e-4)


def test_join_does_not_leak_nan_from_inactive_pieces():
    # sqrt(9 - c) is NaN past c = 9, 1/(10 - c) infinite at c = 10: neither is used there.
    def joined(a, count):
        first = lambda c: a * jnp.sqrt(9.0 - c.astype(jnp.float32))
        second = lambda c: a / (10.0 - c.astype(jnp.float32))
        third = lambda c: a * jnp.ones_like(c, jnp.float32)
        return sharpax.join_schedules([first, second, third], [10, 20])(count)

    for count in (0, 9, 10, 19, 20, 10**6, INT32_MAX):
        value = joined(2.0, count)
        grad = jax.grad(joined)(2.0, count)
        assert np.isfinite(value) and np.isfinite(grad), count
    np.testing.assert_allclose(joined(2.0, 25), 2.0)
    np.testing.assert_allclose(jax.grad(joined)(2.0, 25), 1.0)
    np.testing.assert_allclose(joined(2.0, 11), 2.0 / 9.0, rtol=1e-6)
    # optax's join evaluates every piece at every count; its gradient is NaN here
    # (documented contrast, not a requirement on optax).
    optax_joined = lambda a: optax.join_schedules(
        [lambda c: a * jnp.sqrt(9.0 - jnp.float32(c)), lambda c: a * 1.0], [10]
    )(25)
    assert np.isnan(jax.grad(optax_joined)(2.0))


def test_schedules_drive_any_hyperparameter_under_jit():
    tx = sharpax.adamw(
        sharpax.warmup_cosine_decay(1e-2, 2, 10), weight_decay=sharpax.linear_warmup(0.1, 3)
    )
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for _ in range(12):
        u, state = step(params, state, params)
        assert np.all(np.isfinite(u["w"]))


def test_weight_decay_schedule_advances_with_the_step():
    # optax 0.2.6 (the floor) keeps add_decayed_weights' schedule at its count 0; sharpax's own block
    # must see count t at step t in every supported optax.
    tx = sharpax.sgd(learning_rate=1.0, weight_decay=lambda count: count.astype(jnp.float32) + 1.0)
    params = {"w": jnp.full(2, 3.0)}
    state = tx.init(params)
    step = jax.jit(tx.update)
    for t in range(4):
        u, state = step({"w": jnp.zeros(2)}, state, params)
        np.testing.assert_allclose(u["w"], -(t + 1.0) * 3.0)


BAD_ARGUMENTS = [
    (sharpax.linear_warmup, dict(peak_value=1.0, warmup_steps=-1), "linear_warmup: warmup_steps"),
    (
        sharpax.linear_warmup,
        dict(peak_value=1.0, warmup_steps=2.5),
        "warmup_steps must be an integer",
    ),
    (sharpax.linear_warmup, dict(peak_value=math.nan, warmup_steps=2), "peak_value must be finite"),
    (
        sharpax.linear_warmup,
        dict(peak_value=1.0, warmup_steps=2, init_value=math.inf),
        "init_value",
    ),
    (
        sharpax.exponential_warmup,
        dict(peak_value=1.0, warmup_steps=2, init_value=0.0),
        "init_value must be in",
    ),
    (
        sharpax.exponential_warmup,
        dict(peak_value=-1.0, warmup_steps=2, init_value=0.1),
        "peak_value",
    ),
    (sharpax.noam_schedule, dict(d_model=512, warmup_steps=0), "noam_schedule: warmup_steps"),
    (sharpax.noam_schedule, dict(d_model=0, warmup_steps=10), "d_model"),
    (sharpax.noam_schedule, dict(d_model=8, warmup_steps=10, factor=-1.0), "factor"),
    (
        sharpax.warmup_cosine_decay,
        dict(peak_value=1.0, warmup_steps=10, decay_steps=5),
        "decay_steps must be an integer >= 10",
    ),
    (
        sharpax.warmup_cosine_decay,
        dict(peak_value=1.0, warmup_steps=1, decay_steps=5, exponent=0.0),
        "exponent",
    ),
    (
        sharpax.warmup_cosine_decay,
        dict(peak_value=1.0, warmup_steps=1, decay_steps=5, end_value=math.nan),
        "end_value",
    ),
    (
        sharpax.warmup_linear_decay,
        dict(peak_value=1.0, warmup_steps=-2, decay_steps=5),
        "warmup_steps",
    ),
    (
        sharpax.warmup_polynomial_decay,
        dict(peak_value=1.0, warmup_steps=1, decay_steps=5, power=-1.0),
        "power",
    ),
    (
        sharpax.warmup_exponential_decay,
        dict(peak_value=1.0, warmup_steps=1, decay_rate=1.5),
        "decay_rate must be in",
    ),
    (
        sharpax.warmup_exponential_decay,
        dict(peak_value=1.0, warmup_steps=1, decay_rate=0.0),
        "decay_rate",
    ),
    (
        sharpax.warmup_exponential_decay,
        dict(peak_value=1.0, warmup_steps=1, decay_rate=0.5, transition_steps=0),
        "transition_steps",
    ),
    (
        sharpax.warmup_inverse_sqrt_decay,
        dict(peak_value=1.0, warmup_steps=1, timescale=0.0),
        "timescale",
    ),
    (
        sharpax.warmup_stable_decay,
        dict(peak_value=1.0, total_steps=10, warmup_steps=6, cooldown_steps=6),
        "total_steps must be an integer >= 12",
    ),
    (
        sharpax.warmup_stable_decay,
        dict(
            peak_value=1.0, total_steps=10, warmup_steps=1, cooldown_steps=2, cooldown_shape="sqrt"
        ),
        "cooldown_shape must be one of",
    ),
    (sharpax.one_cycle, dict(peak_value=1.0, total_steps=1), "total_steps"),
    (
        sharpax.one_cycle,
        dict(peak_value=1.0, total_steps=10, pct_start=1.0),
        "pct_start must be in",
    ),
    (
        sharpax.one_cycle,
        dict(peak_value=1.0, total_steps=10, pct_start=0.1),
        "pct_start \\* total_steps must be > 1",
    ),
    (
        sharpax.one_cycle,
        dict(peak_value=1.0, total_steps=10, pct_start=0.6, three_phase=True),
        "three_phase",
    ),
    (
        sharpax.one_cycle,
        dict(peak_value=1.0, total_steps=10, anneal="cos"),
        "anneal must be one of",
    ),
    (sharpax.one_cycle, dict(peak_value=0.0, total_steps=10), "peak_value"),
    (
        sharpax.untuned_linear_warmup,
        dict(b2=1.0),
        "untuned_linear_warmup: b2 must be in \\[0.0, 1.0\\)",
    ),
    (sharpax.untuned_exponential_warmup, dict(b2=-0.1), "b2"),
    (sharpax.cyclic, dict(schedule=lambda c: c, period=0), "cyclic: period"),
    (sharpax.join_schedules, dict(schedules=[lambda c: c], boundaries=[3]), "boundaries must hold"),
    (
        sharpax.join_schedules,
        dict(schedules=[lambda c: c] * 3, boundaries=[5, 3]),
        "non-decreasing",
    ),
    (sharpax.join_schedules, dict(schedules=[lambda c: c] * 2, boundaries=[-1]), "boundary"),
    (sharpax.join_schedules, dict(schedules=[], boundaries=[]), "at least one"),
    (
        sharpax.with_untuned_warmup,
        dict(tx=optax.identity(), shape="cosine"),
        "shape must be one of",
    ),
]


@pytest.mark.parametrize("factory,kwargs,match", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def test_one_cycle_matches_torch():
    torch = pytest.importorskip("torch")
    configs = [
        dict(peak=1e-2, total=100),
        dict(peak=1.0, total=50, pct=0.25, anneal="linear"),
        dict(peak=1.0, total=40, pct=0.3, three=True),
        dict(peak=0.5, total=7, pct=0.5, div=10.0, final_div=100.0),
    ]
    for cfg in configs:
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=cfg["peak"])
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=cfg["peak"],
            total_steps=cfg["total"],
            pct_start=cfg.get("pct", 0.3),
            anneal_strategy=cfg.get("anneal", "cos")[:3]
            if cfg.get("anneal") == "cosine"
            else cfg.get("anneal", "cos"),
            div_factor=cfg.get("div", 25.0),
            final_div_factor=cfg.get("final_div", 1e4),
            three_phase=cfg.get("three", False),
            cycle_momentum=False,
        )
        torch_lrs = []
        for _ in range(cfg["total"]):
            torch_lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        ours = sharpax.one_cycle(
            cfg["peak"],
            cfg["total"],
            pct_start=cfg.get("pct", 0.3),
            div_factor=cfg.get("div", 25.0),
            final_div_factor=cfg.get("final_div", 1e4),
            anneal=cfg.get("anneal", "cosine"),
            three_phase=cfg.get("three", False),
        )(jnp.arange(cfg["total"]))
        np.testing.assert_allclose(ours, np.array(torch_lrs), rtol=2e-6, atol=1e-9)


def test_plot_example_writes_a_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import runpy
    import sys

    out = tmp_path / "schedules.png"
    monkeypatch.setattr(sys, "argv", ["plot_schedules.py", str(out), "--steps", "40"])
    script = pathlib.Path(__file__).resolve().parents[1] / "examples" / "plot_schedules.py"
    runpy.run_path(str(script), run_name="__main__")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
