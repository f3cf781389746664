"""`sharpax.lr_scheduler` against torch 2.13's schedulers, step by step over >= 1000 steps.

Every case of `tests/lr_scheduler_cases.py` runs against the committed goldens (written by
`tests/references/make_lr_scheduler_goldens.py`), and live when torch is installed. The contract: the value
at count c is torch's learning rate (and momentum / beta_1) at its (c + 1)-th `optimizer.step()`, with
`scheduler.step()` after each.

Tolerance: `|ours - torch| <= 1e-6 |torch| + 1e-16`. torch steps its rates recursively in float64; the
twins evaluate the closed forms those recursions telescope to, in float32, from integer counts (a sine,
a power, a few products: each rounds once). The largest error measured over all cases is 4.6e-7
relative (7 float32 ulps, a cosine near its minimum), the median below 1 ulp. A wrong rule (a count off
by one, a cosine that stops at T_max, a restart at the wrong step, torch's recursive quirks missed)
moves the rate by 1e-3 or more. The absolute term covers torch's float64 residues where the rate is 0
(LinearLR to `end_factor=0` ends at -2e-18 in torch, exactly 0 here).
"""

from __future__ import annotations

import functools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax import lr_scheduler as ls
from tests.lr_scheduler_cases import (
    CASES,
    CASES_BY_ID,
    PLATEAU_CASES,
    PLATEAU_GOLDEN,
    SCHEDULER_GOLDEN,
    plateau_sequences,
    torch_plateau_rates,
    torch_rates,
)

RTOL, ATOL = 1e-6, 1e-16


@functools.cache
def goldens() -> dict[str, np.ndarray]:
    with np.load(SCHEDULER_GOLDEN) as f:
        return {k: f[k] for k in f.files}


@functools.cache
def plateau_goldens() -> dict[str, np.ndarray]:
    with np.load(PLATEAU_GOLDEN) as f:
        return {k: f[k] for k in f.files}


FAR = np.array([10**5, 10**7, 2**31 - 2, 2**31 - 1], np.int32)


@functools.cache
def run_schedule(case_id: str, jit: bool = True):
    """`(rates, momenta, far rates, far momenta)` at counts 0..steps and at `FAR` (one program)."""
    case = CASES_BY_ID[case_id]
    schedule = case.make()
    counts = jnp.concatenate([jnp.arange(case.steps + 1, dtype=jnp.int32), jnp.asarray(FAR)])

    def both(c):
        return schedule(c), (schedule.momentum(c) if case.momentum else None)

    rates, momenta = (jax.jit(both) if jit else both)(counts)
    rates = np.asarray(rates, np.float64)
    momenta = None if momenta is None else np.asarray(momenta, np.float64)
    n = case.steps + 1
    if momenta is None:
        return rates[:n], None, rates[n:], None
    return rates[:n], momenta[:n], rates[n:], momenta[n:]


def ours(case_id: str, jit: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    return run_schedule(case_id, jit)[:2]


def assert_close(got, want, what):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{what} (axis 0: count)")


def case_params(cases):
    return [pytest.param(case, id=case.id) for case in cases]


def test_every_case_has_an_up_to_date_golden():
    """A case added or edited without re-running the golden script fails here."""
    stored = goldens()
    assert {k.split("/")[0] for k in stored} == {case.id for case in CASES}
    for case in CASES:
        meta = json.loads(str(stored[f"{case.id}/meta"]))
        assert meta["torch"] == case.torch and meta["steps"] == case.steps >= 1000
        assert meta["optimizer"] == case.optimizer and meta["version"].startswith("2.13.0")
        assert (f"{case.id}/momentum" in stored) == case.momentum
        assert stored[f"{case.id}/lr"].shape == (case.steps + 1,)


@pytest.mark.parametrize("case", case_params(CASES))
def test_matches_torch_golden(case):
    rates, momenta = ours(case.id)
    assert_close(rates, goldens()[f"{case.id}/lr"], f"{case.id} rate")
    if case.momentum:
        assert_close(momenta, goldens()[f"{case.id}/momentum"], f"{case.id} momentum")


# Op by op (no jit) the float32 roundings differ by an ulp or two from the fused program: the same
# tolerance against torch holds; a few representative cases (each eager run dispatches every op).
NOJIT = ("step", "cosine_past_t_max", "cyclic_triangular", "one_cycle_three_phase_cos")


@pytest.mark.parametrize("case_id", NOJIT)
def test_matches_torch_golden_eagerly(case_id):
    rates, momenta = ours(case_id, jit=False)
    assert_close(rates, goldens()[f"{case_id}/lr"], f"{case_id} rate (no jit)")
    if momenta is not None:
        assert_close(momenta, goldens()[f"{case_id}/momentum"], f"{case_id} momentum (no jit)")


@pytest.mark.torch
@pytest.mark.parametrize("case", case_params(CASES))
def test_matches_torch_live(case):
    torch = pytest.importorskip("torch")
    rates, momenta = torch_rates(case)
    got_rates, got_momenta = ours(case.id)
    assert_close(got_rates, rates, f"{case.id} rate vs live torch")
    if case.momentum:
        assert_close(got_momenta, momenta, f"{case.id} momentum vs live torch")
    if torch.__version__.startswith("2.13.0"):
        # Python float64 arithmetic: the same up to the platform's libm (cos, pow) in the last bits.
        np.testing.assert_allclose(rates, goldens()[f"{case.id}/lr"], rtol=1e-12, atol=1e-300)


def test_the_recursive_forms_are_torch_s():
    """Hand-checked values of torch's recursions that a closed form written from the docs would miss."""
    # CosineAnnealingLR past T_max rises back (period 2 T_max): 1 at 0, eta_min at T, 1 at 2T, ...
    cos = jax.jit(ls.cosine_annealing_lr(1.0, T_max=10, eta_min=0.1))
    np.testing.assert_allclose(
        cos(jnp.array([0, 10, 15, 20, 30])), [1.0, 0.1, 0.55, 1.0, 0.1], 1e-6
    )
    # MultiplicativeLR's first multiplication is by lr_lambda(1), at count 1.
    mult = ls.multiplicative_lr(1.0, lambda k: k + 2.0, total_steps=3)
    np.testing.assert_allclose(mult(jnp.arange(4)), [1.0, 3.0, 12.0, 60.0])
    # MultiStepLR's milestone 0 applies from the start; a repeated milestone decays twice.
    multi = ls.multi_step_lr(1.0, [0, 2, 2], gamma=0.5)
    np.testing.assert_allclose(multi(jnp.arange(4)), [0.5, 0.5, 0.125, 0.125])
    # OneCycleLR peaks at count pct_start * total - 1 (optax one step later).
    one = jax.jit(ls.one_cycle_lr(max_lr=1.0, total_steps=100, pct_start=0.3))
    assert int(jnp.argmax(one(jnp.arange(100)))) == 29


def test_past_the_end_of_tabulated_and_one_cycle_schedules():
    """torch raises past OneCycleLR's total_steps: ours keeps the final rate and momentum. The host
    tables (multiplicative_lr, lambda_lr with total_steps) keep their last value."""
    one = CASES_BY_ID["one_cycle_cos"].make()
    total = 1200
    rate, momentum = jax.jit(lambda c: (one(c), one.momentum(c)))(
        jnp.array([total - 1, total + 1, 10**6, 2**31 - 1])
    )
    np.testing.assert_allclose(rate[1:], [float(rate[0])] * 3)
    np.testing.assert_allclose(momentum[1:], [0.95] * 3)
    mult = ls.multiplicative_lr(1.0, lambda k: 0.5, total_steps=3)
    np.testing.assert_allclose(mult(jnp.array([3, 4, 10**9])), [0.125] * 3)
    lam = ls.lambda_lr(2.0, lambda k: 1.0 / (k + 1), total_steps=1)
    np.testing.assert_allclose(lam(jnp.array([0, 1, 5])), [2.0, 1.0, 1.0])


@pytest.mark.parametrize("case", case_params(CASES))
def test_far_counts_have_no_nan(case):
    """Up to the int32 limit of the count: no NaN (a growing rate may overflow to inf, as it would in
    float32 anyway)."""
    _, _, far, far_momenta = run_schedule(case.id)
    assert not np.any(np.isnan(far))
    if case.id != "exponential_growth":
        assert np.all(np.isfinite(far))
    if case.momentum:
        assert np.all(np.isfinite(far_momenta))


@pytest.mark.parametrize("case_id", ["warm_restarts_t_mult_2", "one_cycle_cos", "chained_four"])
def test_vmap_and_scalar_counts(case_id):
    schedule = CASES_BY_ID[case_id].make()
    counts = jnp.array([0, 1, 77, 1000], jnp.int32)
    scalar = jax.jit(schedule)
    np.testing.assert_array_equal(jax.jit(jax.vmap(schedule))(counts), jax.jit(schedule)(counts))
    assert scalar(jnp.int32(7)).shape == () and scalar(7).dtype == jnp.float32
    np.testing.assert_allclose(scalar(7.9), scalar(7))  # float counts are floored


def test_schedules_drive_optimizers_and_inject_hyperparams():
    """An LRSchedule is a schedule: inside sharpax optimizers, optax's, and inject_hyperparams."""
    sched = ls.step_lr(0.1, step_size=2, gamma=0.5)
    for tx in (
        sharpax.sgd(sched),
        optax.sgd(sched),
        sharpax.inject_hyperparams(sharpax.sgd)(sched),
    ):
        state = tx.init(jnp.zeros(1))
        got = []
        for _ in range(5):
            updates, state = jax.jit(tx.update)(jnp.ones(1), state)
            got.append(-float(updates[0]))
        np.testing.assert_allclose(got, [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)


# ------------------------------------------------------------------------------- bad arguments

BAD = [
    (lambda: ls.step_lr(0.1, step_size=0), "step_lr: step_size must be an integer >= 1"),
    (lambda: ls.step_lr(-0.1, step_size=3), r"step_lr: lr must be in \[0.0, inf\)"),
    (lambda: ls.step_lr(0.1, 3, gamma=-0.5), r"step_lr: gamma must be in \[0.0, inf\)"),
    (lambda: ls.multi_step_lr(0.1, [-1]), "each milestone must be an integer >= 0"),
    (lambda: ls.constant_lr(0.1, factor=0.0), r"constant_lr: factor must be in \(0.0, 1.0\]"),
    (lambda: ls.constant_lr(0.1, total_iters=0), "total_iters must be an integer >= 1"),
    (lambda: ls.linear_lr(0.1, start_factor=1.5), r"start_factor must be in \(0.0, 1.0\]"),
    (lambda: ls.linear_lr(0.1, end_factor=-0.1), r"end_factor must be in \[0.0, 1.0\]"),
    (lambda: ls.polynomial_lr(0.1, power=-1.0), r"power must be in \[0.0, inf\)"),
    (lambda: ls.cosine_annealing_lr(0.1, T_max=0), "T_max must be an integer >= 1"),
    (lambda: ls.cosine_annealing_warm_restarts(0.1, T_0=5, T_mult=0), "T_mult must be"),
    (lambda: ls.cyclic_lr(base_lr=0.1, max_lr=1.0, mode="sine"), "mode must be one of"),
    (lambda: ls.cyclic_lr(base_lr=0.1, max_lr=1.0, step_size_down=0), "step_size_down"),
    (lambda: ls.one_cycle_lr(max_lr=1.0), "give total_steps, or both epochs"),
    (lambda: ls.one_cycle_lr(max_lr=1.0, total_steps=10, pct_start=0.1), "has length 0"),
    (lambda: ls.one_cycle_lr(max_lr=1.0, total_steps=10, anneal_strategy="cosine"), "one of"),
    (lambda: ls.one_cycle_lr(max_lr=1.0, total_steps=10, pct_start=1.5), r"\[0.0, 1.0\]"),
    (lambda: ls.multiplicative_lr(0.1, lambda k: float("nan"), total_steps=2), "not a finite"),
    (lambda: ls.sequential_lr([ls.step_lr(0.1, 2)] * 2, [3, 4]), "milestones must hold"),
    (lambda: ls.sequential_lr([ls.step_lr(0.1, 2)] * 3, [4, 3]), "strictly increasing"),
    (lambda: ls.sequential_lr([], []), "at least one"),
    (
        lambda: ls.chained_scheduler([ls.step_lr(0.1, 2), ls.lambda_lr(0.1, lambda c: 1.0)]),
        r"schedulers\[1\] \(lambda_lr\) is not chainable",
    ),
    (
        lambda: ls.chained_scheduler([ls.cosine_annealing_lr(0.1, 10, eta_min=0.01)]),
        "not chainable",
    ),
    (
        lambda: ls.chained_scheduler([ls.step_lr(0.1, 2), ls.exponential_lr(0.2, 0.9)]),
        "the same base rate",
    ),
    (lambda: ls.reduce_lr_on_plateau(0.1, factor=1.0), r"factor must be in \[0.0, 1.0\)"),
    (lambda: ls.reduce_lr_on_plateau(0.1, mode="up"), "mode must be one of"),
    (lambda: ls.reduce_lr_on_plateau(0.1, threshold_mode="x"), "threshold_mode must be one of"),
    (lambda: ls.reduce_lr_on_plateau(0.1, patience=-1), "patience must be an integer >= 0"),
    (lambda: ls.reduce_lr_on_plateau(0.1, accumulation_size=0), "accumulation_size"),
    (lambda: ls.ReduceLROnPlateau(0.1, min_lr=-1.0), r"min_lr must be in \[0.0, inf\)"),
]


@pytest.mark.parametrize("build,match", BAD)
def test_bad_arguments_raise_readable_value_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_non_numbers_raise_type_errors():
    with pytest.raises(TypeError, match="step_lr: lr must be a real number"):
        ls.step_lr("0.1", 3)
    with pytest.raises(TypeError, match="lambda_lr: lr_lambda must be a function"):
        ls.lambda_lr(0.1, 0.5)


# --------------------------------------------------------------------------- ReduceLROnPlateau

# The in-graph form compares in float32 (torch in float64): the sequences keep every comparison away
# from float32 rounding, and the rates (products of a few factors) agree to a few ulps.
PLATEAU_RTOL = 1e-6


def test_every_plateau_case_has_an_up_to_date_golden():
    stored = plateau_goldens()
    for name, values in plateau_sequences().items():
        np.testing.assert_array_equal(stored[f"sequence/{name}"], values)
    for case in PLATEAU_CASES:
        meta = json.loads(str(stored[f"{case.id}/meta"]))
        assert meta["kwargs"] == case.kwargs and meta["sequence"] == case.sequence
        assert meta["version"].startswith("2.13.0")
    # Every rule is exercised: each case reduces at least once, and the interesting ones as intended.
    reductions = {
        case.id: int(np.sum(np.diff(stored[f"{case.id}/lr"]) != 0)) for case in PLATEAU_CASES
    }
    assert all(n >= 1 for k, n in reductions.items() if k != "eps_skips"), reductions
    assert reductions["eps_skips"] == 0
    assert np.min(stored["min_lr_reached/lr"]) == 0.004


def _sequence(case):
    return plateau_goldens()[f"sequence/{case.sequence}"]


@pytest.mark.parametrize("case", case_params(PLATEAU_CASES))
def test_host_object_is_torch_exactly(case):
    plateau = ls.ReduceLROnPlateau(**case.kwargs)
    got = [plateau.step(v) for v in _sequence(case)]
    np.testing.assert_array_equal(got, plateau_goldens()[f"{case.id}/lr"])


@functools.cache
def _in_graph_run(case_id: str):
    case = next(c for c in PLATEAU_CASES if c.id == case_id)
    tx = optax.chain(sharpax.sgd(1.0), ls.reduce_lr_on_plateau(**case.kwargs))
    params = {"w": jnp.ones(3)}

    def step(state, value):
        updates, state = tx.update({"w": jnp.ones(3)}, state, params, value=value)
        return state, (-updates["w"][0], sharpax.current_learning_rate(state))

    _, (applied, after) = jax.jit(lambda s, v: jax.lax.scan(step, s, v))(
        tx.init(params), jnp.asarray(_sequence(case))
    )
    return np.asarray(applied, np.float64), np.asarray(after, np.float64)


@pytest.mark.parametrize("case", case_params(PLATEAU_CASES))
def test_in_graph_per_update_matches_torch(case):
    """`value=` at every update: the update uses the rate in effect, then the plateau step runs."""
    applied, after = _in_graph_run(case.id)
    want = plateau_goldens()[f"{case.id}/lr"]
    np.testing.assert_allclose(after, want, rtol=PLATEAU_RTOL, err_msg="rate after each step")
    before = np.concatenate([[case.kwargs["lr"]], want[:-1]])
    np.testing.assert_allclose(applied, before, rtol=PLATEAU_RTOL, err_msg="rate each update used")


@pytest.mark.torch
@pytest.mark.parametrize("case", case_params(PLATEAU_CASES))
def test_plateau_matches_torch_live(case):
    pytest.importorskip("torch")
    live = torch_plateau_rates(case, _sequence(case))
    np.testing.assert_array_equal(live, plateau_goldens()[f"{case.id}/lr"])
    np.testing.assert_allclose(_in_graph_run(case.id)[1], live, rtol=PLATEAU_RTOL)


def test_validation_metric_once_per_epoch_with_plateau_step():
    """torch's recipe: train an epoch, evaluate, `scheduler.step(val_loss)`. Here: updates without
    `value`, then `plateau_step` after each evaluation (jitted, no recompilation)."""
    case = next(c for c in PLATEAU_CASES if c.id == "plateaus_cooldown")
    tx = optax.chain(sharpax.adam(1.0), ls.reduce_lr_on_plateau(**case.kwargs))
    params = jnp.zeros(2)
    state = tx.init(params)
    update = jax.jit(tx.update)
    # A jit of its own: jax shares one cache per function, and the example jits plateau_step too.
    step_plateau = jax.jit(chex.assert_max_traces(lambda s, v: ls.plateau_step(s, v), n=1))
    rates = []
    for val_loss in _sequence(case)[:120]:
        for _ in range(3):  # an epoch of three updates, the rate fixed
            _, state = update(jnp.ones(2), state, params)
        state = step_plateau(state, val_loss)
        rates.append(float(sharpax.current_learning_rate(state)))
    want = plateau_goldens()[f"{case.id}/lr"][:120]
    np.testing.assert_allclose(rates, want, rtol=PLATEAU_RTOL)


def test_accumulation_averages_the_values_of_an_epoch():
    """`accumulation_size=k`: the mean of k values takes one plateau step at every k-th update, as the
    host object (torch's rule) fed those means. Values on a 1/8 grid: sums and means are exact."""
    rng = np.random.default_rng(0)
    values = np.round(rng.uniform(0, 4, size=(60, 4)) * 8) / 8
    values[20:] = values[20:] * 0 + 2.0  # a plateau, to trigger reductions
    tx = optax.chain(
        sharpax.sgd(1.0), ls.reduce_lr_on_plateau(0.1, patience=2, accumulation_size=4)
    )
    state = tx.init(jnp.zeros(1))
    host = ls.ReduceLROnPlateau(0.1, patience=2)
    update = jax.jit(lambda s, v: tx.update(jnp.ones(1), s, value=v))
    for epoch in values:
        for i, v in enumerate(epoch):
            updates, state = update(state, np.float32(v))
            np.testing.assert_allclose(-updates[0], host.lr, rtol=1e-6)
            if i < 3:
                assert int(state[1].count) == i + 1
        host.step(float(np.mean(epoch)))
        np.testing.assert_allclose(sharpax.current_learning_rate(state), host.lr, rtol=1e-6)
    assert host.lr < 0.1 / 50


def test_current_learning_rate_and_set_hyperparams_with_the_host_object():
    params = jnp.zeros(2)
    tx = optax.chain(
        sharpax.inject_hyperparams(sharpax.adam)(learning_rate=0.5),
        ls.reduce_lr_on_plateau(1e-2, patience=0),
    )
    state = tx.init(params)
    np.testing.assert_allclose(sharpax.current_learning_rate(state), 5e-3, rtol=1e-6)
    state = ls.plateau_step(state, 1.0)
    state = ls.plateau_step(state, 2.0)
    np.testing.assert_allclose(sharpax.current_learning_rate(state), 5e-4, rtol=1e-6)

    # Host form: the rate set between steps of a jitted update, one compilation.
    tx = sharpax.inject_hyperparams(sharpax.sgd)(learning_rate=0.1)
    host = ls.ReduceLROnPlateau(0.1, patience=0, factor=0.5)
    state = tx.init(params)
    update = jax.jit(chex.assert_max_traces(tx.update, n=1))
    for metric in [3.0, 2.0, 2.5, 2.5]:
        updates, state = update(jnp.ones(2), state)
        state = sharpax.set_hyperparams(state, learning_rate=host.step(metric))
    assert host.lr == 0.025
    np.testing.assert_allclose(sharpax.current_learning_rate(state), 0.025)
    saved = host.state_dict()
    other = ls.ReduceLROnPlateau(0.1, patience=0, factor=0.5)
    other.load_state_dict(saved)
    assert other.step(9.0) == host.step(9.0) == 0.0125


def test_plateau_transformation_edges():
    tx = ls.reduce_lr_on_plateau(0.1)
    params = {"w": jnp.ones(2), "n": jnp.array(3, jnp.int32)}
    state = tx.init(params)
    grads = {"w": jnp.ones(2, jnp.bfloat16), "n": np.zeros((), jax.dtypes.float0)}
    updates, state = tx.update(grads, state, params, value=jnp.array(1.0, jnp.bfloat16))
    assert updates["w"].dtype == jnp.bfloat16 and updates["n"].dtype == jax.dtypes.float0
    with pytest.raises(ValueError, match="reduce_lr_on_plateau: value must be a real scalar"):
        tx.update(grads, state, params, value=jnp.ones(2))
    with pytest.raises(ValueError, match="exactly one ReduceLROnPlateauState"):
        ls.plateau_step(sharpax.adam(1e-3).init(params), 1.0)
    # The static config rides in the state: jit, eval_shape and tree_map see only the arrays.
    assert len(jax.tree.leaves(state)) == 7
    abstract = jax.eval_shape(tx.init, params)
    assert jax.tree.structure(abstract) == jax.tree.structure(state)


# ------------------------------------------------------------- momentum / beta_1 as schedules


def test_momentum_schedules_keep_dtypes_and_states():
    """A scheduled momentum (SGD) or beta_1 (Adam family) is cast to each buffer's dtype, and SGD gets
    the step counter it needs (the static-momentum state is unchanged: see the checkpoint snapshot)."""
    sched = ls.one_cycle_lr(max_lr=0.1, total_steps=20)
    params = {"w": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.float32)}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    for tx in (
        sharpax.sgd(sched, momentum=sched.momentum, nesterov=True),
        sharpax.adam(sched, b1=sched.momentum, mu_dtype=jnp.float32),
        sharpax.nadam(sched, b1=sched.momentum),
        sharpax.radam(sched, b1=sched.momentum),
        sharpax.adamax(sched, b1=sched.momentum),
    ):
        state = tx.init(params)
        dtypes = [x.dtype for x in jax.tree.leaves(state)]
        update = jax.jit(tx.update)
        for _ in range(3):
            updates, state = update(grads, state, params)
        assert [x.dtype for x in jax.tree.leaves(state)] == dtypes
        assert updates["w"].dtype == jnp.bfloat16 and updates["b"].dtype == jnp.float32
    assert sharpax.sgd(0.1, momentum=0.9).init(params)[0].count is None
    assert int(sharpax.sgd(0.1, momentum=sched.momentum).init(params)[0].count) == 0


def test_momentum_schedule_values_are_used_step_by_step():
    """Hand-derived: SGD's buffer with momentum m_c at update c is b_c = m_c b_{c-1} + g."""
    momenta = jnp.array([0.0, 0.5, 0.25, 1.0])
    tx = sharpax.sgd(1.0, momentum=lambda c: momenta[c])
    state = tx.init(jnp.zeros(1))
    buffers = []
    for _ in range(4):
        updates, state = tx.update(jnp.ones(1), state)
        buffers.append(-float(updates[0]))
    np.testing.assert_allclose(buffers, [1.0, 1.5, 1.375, 2.375])
    with pytest.raises(ValueError, match="the momentum schedule must return a scalar, got shape"):
        tx = sharpax.sgd(0.1, momentum=lambda c: jnp.ones(2))
        tx.update(jnp.ones(1), tx.init(jnp.zeros(1)))
    injected = optax.inject_hyperparams(sharpax.adam)(learning_rate=1e-2, b1=lambda c: 0.9)
    plain = sharpax.adam(1e-2, b1=0.9)
    p = jnp.linspace(-1.0, 1.0, 4)
    np.testing.assert_allclose(
        injected.update(p, injected.init(p), p)[0], plain.update(p, plain.init(p), p)[0], rtol=1e-6
    )


def test_a_traced_base_rate_works_under_vmap():
    """A sweep over learning rates with `jax.vmap`: the base rate is a tracer, not checked, not copied
    into host tables."""
    counts = jnp.arange(0, 40, 7)
    makers = [
        lambda lr: ls.step_lr(lr, 10, 0.5),
        lambda lr: ls.multi_step_lr(lr, [5, 20]),
        lambda lr: ls.multiplicative_lr(lr, lambda k: 0.9, total_steps=50),
        lambda lr: ls.lambda_lr(lr, lambda k: 1.0 / (k + 1), total_steps=50),
        lambda lr: ls.linear_lr(lr, 0.5),
        lambda lr: ls.cosine_annealing_lr(lr, 25, eta_min=1e-3),
        lambda lr: ls.cosine_annealing_warm_restarts(lr, 7, 2),
        lambda lr: ls.chained_scheduler([ls.step_lr(lr, 10), ls.exponential_lr(lr, 0.99)]),
    ]
    lrs = jnp.array([0.1, 0.5])
    for make in makers:
        swept = jax.jit(jax.vmap(lambda lr, make=make: make(lr)(counts)))(lrs)
        for i, lr in enumerate([0.1, 0.5]):
            np.testing.assert_allclose(swept[i], make(lr)(counts), rtol=2e-6)
