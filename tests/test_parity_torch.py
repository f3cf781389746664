"""Step-by-step parity with torch.optim 2.13 (lion: lion-pytorch) over 50 steps, float32.

Every case of `tests/optimizer_table.py` runs against the committed goldens (written by
`tests/references/make_torch_goldens.py`), with and without `jax.jit`; when torch is installed the same cases
also run live. RAdam's options torch lacks are checked against a numpy port of the original RAdam code.

Tolerance: per leaf, `|sharpax - torch| <= RTOL * |torch| + ATOL * max(1, max |torch|)`. Both sides are
float32; they differ only in rounding: torch forms step scalars (bias corrections, lr * wd, 1 - lr * wd)
in float64 on the host and fuses differently (e.g. `p * (1 - lr wd) - lr u` against `p - lr (u + wd p)`),
a few ulps per step. Over 50 steps the largest error measured is 1.5e-6 of the leaf's scale (AdamW with
AMSGrad, from the decoupled decay's rounding), the median 6e-8: at most 15% of the tolerance. A real change
to a rule (eps placement, a bias correction off by one step, the schedule's first count, float32
cancellation in RAdam's rho_t) moves the trajectory by 1e-5 to 1e-1 and fails.
"""

from __future__ import annotations

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from tests.optimizer_table import (
    ALL_CASES,
    CASES,
    CASES_BY_ID,
    OPTION_CASES,
    SCHEDULE_CASES,
    OptimizerCase,
)
from tests.references.torch_reference import (
    GOLDEN_VS_LIVE,
    PROBLEMS,
    golden_path,
    inputs_path,
    load_golden,
    load_inputs,
    torch_trajectory,
)

RTOL = 1e-5
ATOL = 1e-6


def assert_trajectory_close(got, want, what, rtol=RTOL, atol=ATOL):
    assert sorted(got) == sorted(want)
    for name in want:
        scale = max(1.0, float(np.max(np.abs(want[name]))))
        np.testing.assert_allclose(
            got[name],
            want[name],
            rtol=rtol,
            atol=atol * scale,
            err_msg=f"{what}, leaf {name!r} (axis 0 is the step)",
        )


@functools.cache
def inputs(problem: str = "default"):
    return load_inputs(problem)


def run_trajectory(tx, params, grads, *, jit):
    """Params after every step, `{name: (steps, *shape)}`, with the update step jitted or eager."""
    params = {k: jnp.asarray(v) for k, v in params.items()}

    def step(p, state, g):
        updates, state = tx.update(g, state, p)
        return optax.apply_updates(p, updates), state

    # One compiled step called 50 times compiles faster than a lax.scan over the steps.
    step = jax.jit(step) if jit else step
    state, out = tx.init(params), []
    for t in range(next(iter(grads.values())).shape[0]):
        params, state = step(params, state, {k: jnp.asarray(v[t]) for k, v in grads.items()})
        out.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in out]) for k in params}


def _flat(tree, lead=0):
    return np.concatenate([tree[k].reshape(*tree[k].shape[:lead], -1) for k in sorted(tree)], -1)


def _unflat(flat, like):
    sizes = np.cumsum([like[k].size for k in sorted(like)])[:-1]
    parts = np.split(flat, sizes, axis=-1)
    return {k: v.reshape(-1, *like[k].shape) for k, v in zip(sorted(like), parts, strict=True)}


@functools.cache
def sharpax_trajectory(case_id: str, jit: bool):
    """The case's trajectory on its parity problem.

    An elementwise rule runs the problem as one flat leaf (the three gradient scales side by side): the
    same problem with a third of the compilations (which dominate the run time: jit compiles the step,
    eager mode each primitive per shape). Many leaves, 0-d and bfloat16 ones included, are covered by the
    optax comparisons and the property tests. The others (Adafactor, Muon) run on the tree.
    """
    case = CASES_BY_ID[case_id]
    params, grads = inputs(case.problem)
    tx = case.build()
    if not case.elementwise:
        return run_trajectory(tx, params, grads, jit=jit)
    flat = run_trajectory(tx, {"flat": _flat(params)}, {"flat": _flat(grads, 1)}, jit=jit)
    return _unflat(flat["flat"], params)


def golden_params(case_id: str):
    """The golden's params trajectory, without the recorded torch state."""
    traj, _ = load_golden(case_id)
    return {k: v for k, v in traj.items() if not k.startswith("state/")}


def tolerance(case):
    rtol, atol = case.parity_tolerance or (RTOL, ATOL)
    return dict(rtol=rtol, atol=atol)


def case_params(cases: list[OptimizerCase]):
    return [pytest.param(case, id=case.id) for case in cases]


def test_every_case_has_an_up_to_date_golden():
    """A case added to the table (or edited) without re-running the golden script fails here."""
    expected = {case.id for case in ALL_CASES}
    stored = {p.stem for p in golden_path("x").parent.glob("*.npz")}
    stored -= {inputs_path(problem).stem for problem in PROBLEMS}
    assert stored == expected
    for case in ALL_CASES:
        _, meta = load_golden(case.id)
        assert meta["torch_class"] == case.torch_class
        # json turns tuples into lists
        assert meta["torch_kwargs"] == json.loads(json.dumps(case.torch_kwargs))
        schedule = None if case.lr_schedule is None else case.lr_schedule.__name__
        assert meta["lr_schedule"] == schedule
        assert meta.get("problem", "default") == case.problem
        assert meta.get("torch_scheduler") == case.torch_scheduler
        assert meta["torch"].startswith("2.13.0") and meta["steps"] >= 40


@pytest.mark.parametrize("case", case_params(ALL_CASES))
def test_matches_torch_golden_jit(case):
    got = sharpax_trajectory(case.id, True)
    assert_trajectory_close(
        got, golden_params(case.id), f"{case.id} (jit) vs golden", **tolerance(case)
    )


# Eager runs cost more (every op dispatches on its own), so the option combinations run eagerly only
# with `-m slow`; the core set and the schedules always do.
NOJIT_CASES = case_params(CASES + SCHEDULE_CASES) + [
    pytest.param(case, id=case.id, marks=pytest.mark.slow) for case in OPTION_CASES
]


@pytest.mark.parametrize("case", NOJIT_CASES)
def test_matches_torch_golden_nojit(case):
    got = sharpax_trajectory(case.id, False)
    want = golden_params(case.id)
    assert_trajectory_close(got, want, f"{case.id} (no jit) vs golden", **tolerance(case))


@pytest.mark.torch
@pytest.mark.parametrize("case", case_params(ALL_CASES))
def test_matches_torch_live(case):
    torch = pytest.importorskip("torch")
    if case.torch_class.startswith("lion_pytorch"):
        pytest.importorskip("lion_pytorch")
    params, grads = inputs(case.problem)
    live = torch_trajectory(
        case.torch_class,
        case.torch_kwargs,
        params,
        grads,
        lr_schedule=case.lr_schedule,
        torch_state=case.torch_state,
        scheduler=case.torch_scheduler,
    )
    live_params = {k: v for k, v in live.items() if not k.startswith("state/")}
    got = sharpax_trajectory(case.id, True)
    assert_trajectory_close(got, live_params, f"{case.id} vs live torch", **tolerance(case))
    if torch.__version__.startswith("2.13.0"):
        # The same torch reproduces its goldens up to its per-machine float32 kernels (not stale).
        golden, _ = load_golden(case.id)
        # Muon's bfloat16 Newton-Schulz may round an entry the other way on another machine too.
        between = tolerance(case) if case.parity_tolerance else GOLDEN_VS_LIVE
        assert_trajectory_close(live, golden, f"{case.id} golden vs live", **between)


def test_schedule_sees_count_zero_at_the_first_update():
    """Hand-derived: adam's first step is -lr * factor(0) * sign(g) (up to eps), factor(0) = 0.1."""
    case = CASES_BY_ID["adam_schedule"]
    params, grads = inputs()
    first = sharpax_trajectory(case.id, True)["w"][0]
    g0 = grads["w"][0]
    expected = params["w"] - 1e-2 * 0.1 * np.sign(g0) * (np.abs(g0) / (np.abs(g0) + 1e-8))
    np.testing.assert_allclose(first, expected, rtol=1e-6, atol=1e-7)


# RAdam's options that torch lacks: a numpy port of LiyuanLucasLiu/RAdam radam.py (RAdam.step), float32
# tensors with float64 step scalars like the original. Its `N_sma >= 5` becomes `rho_t > threshold`
# (torch's strict test; the two agree here, rho_t is never exactly on the threshold).
def original_radam(params, grads, lr, b1, b2, eps, threshold, degenerated_to_sgd):
    out = {}
    for name, p in params.items():
        p = p.astype(np.float32).copy()
        m = np.zeros_like(p)
        v = np.zeros_like(p)
        traj = []
        for step, g in enumerate(grads[name], start=1):
            v = v * np.float32(b2) + np.float32(1 - b2) * g * g
            m = m * np.float32(b1) + np.float32(1 - b1) * g
            b2_t = b2**step
            n_sma_max = 2 / (1 - b2) - 1
            n_sma = n_sma_max - 2 * step * b2_t / (1 - b2_t)
            if n_sma > threshold:
                rect = (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma * n_sma_max
                step_size = math.sqrt((1 - b2_t) * rect / (n_sma_max - 2)) / (1 - b1**step)
                p = p - np.float32(step_size * lr) * (m / (np.sqrt(v) + np.float32(eps)))
            elif degenerated_to_sgd:
                p = p - np.float32(lr / (1 - b1**step)) * m
            traj.append(p)
        out[name] = np.stack(traj)
    return out


RADAM_ORIGINAL = [
    pytest.param(5.0, True, id="torch_rule"),  # cross-checks the port itself against torch's golden
    pytest.param(5.0, False, id="skip_below_5"),
    pytest.param(10.0, True, id="threshold_10_sgd"),
    pytest.param(10.0, False, id="threshold_10_skip"),
]


@pytest.mark.parametrize(("threshold", "degenerated_to_sgd"), RADAM_ORIGINAL)
def test_radam_options_match_the_original_code(threshold, degenerated_to_sgd):
    params, grads = inputs()
    want = original_radam(params, grads, 1e-2, 0.9, 0.999, 1e-8, threshold, degenerated_to_sgd)
    tx = sharpax.radam(1e-2, threshold=threshold, degenerated_to_sgd=degenerated_to_sgd)
    got = run_trajectory(tx, params, grads, jit=True)
    assert_trajectory_close(got, want, f"radam({threshold}, {degenerated_to_sgd}) vs original")
    if (threshold, degenerated_to_sgd) == (5.0, True):
        golden, _ = load_golden("radam")
        assert_trajectory_close(want, golden, "original RAdam port vs torch golden")
    if not degenerated_to_sgd:
        # The first steps (rho_t <= threshold) leave the params exactly where they were.
        n_skipped = 5 if threshold == 5.0 else 10
        for name in params:
            np.testing.assert_array_equal(
                got[name][:n_skipped], np.broadcast_to(params[name], got[name][:n_skipped].shape)
            )
            assert not np.array_equal(got[name][n_skipped], params[name])


@pytest.mark.parametrize("threshold", [4.0, 5.0, 7.5, 10.0, 30.0])
@pytest.mark.parametrize("b2", [0.6, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 1 - 1e-6])
def test_radam_rectifies_from_the_step_torch_does(b2, threshold):
    """The first rectified step is the first t where torch's float64 `rho_t > threshold` holds.

    torch evaluates `rho_inf - 2 t b2^t / (1 - b2^t)` in float64 on the host at every step; here the
    step is found once, when the optimizer is built, and the update compares the step count with it.
    """
    from sharpax.transforms._numerics import first_rectified_step

    rho_inf = 2 / (1 - b2) - 1
    torch_rectified = [rho_inf - 2 * t * b2**t / (1 - b2**t) > threshold for t in range(1, 2001)]
    got = first_rectified_step(b2, threshold)
    if not any(torch_rectified):
        assert got is None or got > 2000
        return
    want = torch_rectified.index(True) + 1
    assert got == want
    assert all(torch_rectified[want - 1 :]), "rho_t is increasing: rectified from t* on"
    # The update takes the rectified branch exactly from t*: with degenerated_to_sgd=False the params
    # stay put before it and move at it.
    tx = sharpax.radam(1e-2, b2=b2, threshold=threshold, degenerated_to_sgd=False)
    params = jnp.ones(3)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for t in range(1, want + 1):
        updates, state = step(jnp.full(3, 0.5), state, params)
        moved = bool(jnp.any(updates != 0))
        assert moved == (t == want), f"step {t}: moved={moved}, first rectified step {want}"


# ---- ASGD's averaged weights: torch's state["ax"] after every step, recorded in the goldens ----

ASGD_CASES = [case for case in ALL_CASES if "ax" in case.torch_state]


@pytest.mark.parametrize("case", case_params(ASGD_CASES))
def test_asgd_averaged_params_match_torch_ax(case):
    params, grads = inputs(case.problem)
    tx = case.build()
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    p = {k: jnp.asarray(v) for k, v in params.items()}
    state = tx.init(p)
    golden, _ = load_golden(case.id)
    got = {k: [] for k in params}
    for t in range(next(iter(grads.values())).shape[0]):
        updates, state = step(p, state, {k: jnp.asarray(v[t]) for k, v in grads.items()})
        p = optax.apply_updates(p, updates)
        for k, v in sharpax.asgd_averaged_params(state, p).items():
            got[k].append(np.asarray(v))
    want = {k: golden[f"state/ax/{k}"] for k in params}
    assert_trajectory_close({k: np.stack(v) for k, v in got.items()}, want, f"{case.id} ax")
    # The cases average (torch's mu < 1) for part of the run, or never (t0 = 1e6): both are covered.
    averaging = case.kwargs.get("t0", 1e6) < 48
    assert averaging == (not np.allclose(want["w"][-1], golden["w"][-1], rtol=0, atol=0))
