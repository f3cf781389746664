"""Friendly-SAM, WSAM and Bayesian SAM against their references, step by step, jitted, in float32.

- Friendly-SAM and WSAM against pytorch_optimizer 4.1's `FriendlySAM` and `WSAM` over torch.optim.SGD
  (momentum, weight decay) and Adam, SAM and ASAM, both WSAM modes, 30 steps: `references/sam_pytorch_optimizer.npz`
  (always checked), and the generator re-run live when torch is importable.
- Both against numpy transcriptions of their papers' reference code (nblt/F-SAM, atorch `WeightedSAM`):
  `references/sam_fsam_wsam_numpy.npz`, re-run live; and on hand-worked two-parameter cases.
- Bayesian SAM against a transcription of its authors' JAX code with the noise drawn from the same key:
  `references/sam_bsam.npz` (`references/bsam_reference.py`), re-run live; hand-worked cases; pytorch_optimizer's
  `BSAM` departures, checked live.

Regenerate the goldens with `python -m tests.references.make_sam_goldens` (needs torch).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax.wrappers._sam_geometry import friendly_direction
from tests.references import GOLDEN_DIR, bsam_reference
from tests.references import sam_references as ref
from tests.references.torch_reference import GOLDEN_VS_LIVE, GOLDEN_VS_LIVE_F64

TORCH = np.load(GOLDEN_DIR / "sam_pytorch_optimizer.npz")
NUMPY = np.load(GOLDEN_DIR / "sam_fsam_wsam_numpy.npz")
BSAM = np.load(GOLDEN_DIR / "sam_bsam.npz")

# float32 against float32 torch, 30 steps: the tolerances of the davda54 SAM parity (test_sam_parity.py),
# where the Adam drift was traced to the base optimizer alone. WSAM's alpha = 9 multiplies the rounding
# of g_s - g by 9, hence its wider ones; each test below also shows a small change of a
# hyperparameter moving the trajectory well past them.
TOL = {
    "fsam_sgd": dict(rtol=2e-5, atol=2e-6),
    "fsam_adam": dict(rtol=2e-5, atol=1e-5),
    "wsam_sgd": dict(rtol=5e-5, atol=1e-5),
    "wsam_adam": dict(rtol=5e-5, atol=2e-5),
}
# float32 JAX against float64 numpy, 30 steps (the GSAM/LookSAM references' tolerance).
TOL_F64 = dict(rtol=1e-5, atol=1e-5)


def mlp_loss(params, x, y):
    out = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]
    return jnp.mean((out - y) ** 2)


def _flat(params):
    return np.concatenate([np.asarray(params[k], np.float64).ravel() for k in ref.SHAPES])


def _base(name):
    _, kwargs = ref.BASES[name]
    if name == "sgd":
        return sharpax.sgd(
            kwargs["lr"], momentum=kwargs["momentum"], weight_decay=kwargs["weight_decay"]
        )
    return sharpax.adam(kwargs["lr"])


def _batches(minibatches: bool, steps: int = ref.STEPS):
    x, y, _ = ref.make_problem()
    if minibatches:
        pairs = [ref.minibatch(x, y, t) for t in range(steps)]
        return jnp.asarray(np.stack([p[0] for p in pairs])), jnp.asarray(
            np.stack([p[1] for p in pairs])
        )
    return jnp.asarray(np.stack([x] * steps)), jnp.asarray(np.stack([y] * steps))


def run(tx, minibatches=False, steps=ref.STEPS):
    """`steps` jitted transformation-form steps (a `lax.scan`): trajectory (steps + 1, n), first-pass losses."""
    _, _, init = ref.make_problem()
    params = jax.tree.map(jnp.asarray, init)
    xs, ys = _batches(minibatches, steps)

    @jax.jit
    def roll(params, state):
        def step(carry, batch):
            params, state = carry
            loss, grads = jax.value_and_grad(mlp_loss)(params, *batch)
            grad_fn = lambda p: jax.grad(mlp_loss)(p, *batch)
            updates, state = tx.update(grads, state, params, grad_fn=grad_fn)
            params = optax.apply_updates(params, updates)
            return (params, state), (params, loss)

        _, (trajectory, losses) = jax.lax.scan(step, (params, state), (xs, ys))
        return trajectory, losses

    trajectory, losses = roll(params, tx.init(params))
    flat = np.stack([_flat(jax.tree.map(lambda a, i=i: a[i], trajectory)) for i in range(steps)])
    return np.concatenate([_flat(params)[None], flat]), np.asarray(losses, np.float64)


def fsam_tx(case, **overrides):
    base, variant = ref.fsam_cases()[case]
    rho, adaptive = ref.PERTURBATIONS[variant]
    kwargs = {**ref.FSAM, "rho": rho, **overrides}
    return sharpax.friendly_sam(_base(base), adaptive=adaptive, **kwargs)


def wsam_tx(case, **overrides):
    base, variant, decouple = ref.wsam_cases()[case]
    rho, adaptive = ref.PERTURBATIONS[variant]
    kwargs = {**ref.WSAM, "rho": rho, "decouple": decouple, **overrides}
    return sharpax.wsam(_base(base), ref.BASES[base][1]["lr"], adaptive=adaptive, **kwargs)


@functools.cache
def run_case(case):
    if case.startswith("fsam"):
        return run(fsam_tx(case), minibatches=True)
    return run(wsam_tx(case))


def _tol(case):
    return TOL["_".join(case.split("_")[:2])]


# --- against pytorch_optimizer 4.1 --------------------------------------------------------------------


@pytest.mark.parametrize("case", [*ref.fsam_cases(), *ref.wsam_cases()])
def test_matches_pytorch_optimizer_golden(case):
    trajectory, losses = run_case(case)
    np.testing.assert_allclose(trajectory, TORCH[f"{case}_params"], **_tol(case))
    np.testing.assert_allclose(losses, TORCH[f"{case}_loss"], **_tol(case))


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("fsam_adam_sam", lambda: fsam_tx("fsam_adam_sam", sigma=0.99)),
        pytest.param(
            "wsam_sgd_coupled_sam",
            lambda: wsam_tx("wsam_sgd_coupled_sam", gamma=0.899),
            marks=pytest.mark.slow,
        ),
    ],
)
def test_tolerances_detect_a_small_hyperparameter_error(case, make):
    trajectory, _ = run(make(), minibatches=case.startswith("fsam"))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(trajectory, TORCH[f"{case}_params"], **_tol(case))


def test_goldens_move_and_the_variants_differ():
    # Guards the goldens themselves: each trajectory trains, and the options change it.
    for case in [*ref.fsam_cases(), *ref.wsam_cases()]:
        assert np.abs(TORCH[f"{case}_params"][-1] - TORCH[f"{case}_params"][0]).max() > 0.05
        assert TORCH[f"{case}_loss"][-1] < TORCH[f"{case}_loss"][0]
    differs = lambda a, b: np.abs(TORCH[f"{a}_params"][-1] - TORCH[f"{b}_params"][-1]).max() > 1e-3
    assert differs("wsam_adam_coupled_sam", "wsam_adam_decoupled_sam")
    assert differs("wsam_sgd_coupled_sam", "wsam_sgd_decoupled_sam")
    assert differs("fsam_sgd_sam", "fsam_sgd_asam")


@pytest.mark.torch
@pytest.mark.parametrize("case", [*ref.fsam_cases(), *ref.wsam_cases()])
def test_matches_pytorch_optimizer_live(case):
    pytest.importorskip("pytorch_optimizer")
    from tests.references import make_sam_goldens

    torch_trajectory, torch_losses = make_sam_goldens.pytorch_optimizer_trajectory(case)
    np.testing.assert_allclose(torch_trajectory, TORCH[f"{case}_params"], **GOLDEN_VS_LIVE)
    trajectory, losses = run_case(case)
    np.testing.assert_allclose(trajectory, torch_trajectory, **_tol(case))
    np.testing.assert_allclose(losses, torch_losses, **_tol(case))


# --- against the papers' reference code (numpy transcriptions) ----------------------------------------


def test_friendly_sam_matches_the_f_sam_reference():
    settings = ref.FSAM_NUMPY
    tx = sharpax.friendly_sam(
        sharpax.sgd(settings["lr"]), settings["rho"], settings["sigma"], settings["lmbda"]
    )
    trajectory, _ = run(tx, minibatches=True)
    np.testing.assert_allclose(trajectory, NUMPY["fsam"], **TOL_F64)
    x, y, init = ref.make_problem()
    live = ref.friendly_sam_reference(ref.flatten(init), x, y, steps=ref.STEPS, **settings)
    np.testing.assert_allclose(live, NUMPY["fsam"], **GOLDEN_VS_LIVE_F64)


@pytest.mark.parametrize("decouple", [False, True], ids=["coupled", "decoupled"])
def test_wsam_matches_the_atorch_reference(decouple):
    s = ref.WSAM_NUMPY
    base = sharpax.sgd(s["lr"], momentum=s["momentum"])
    key = f"wsam_{'decoupled' if decouple else 'coupled'}"
    trajectory, _ = run(sharpax.wsam(base, s["lr"], s["rho"], s["gamma"], decouple=decouple))
    np.testing.assert_allclose(trajectory, NUMPY[key], **TOL_F64)
    x, y, init = ref.make_problem()
    live = ref.wsam_reference(ref.flatten(init), x, y, steps=ref.STEPS, decouple=decouple, **s)
    np.testing.assert_allclose(live, NUMPY[key], **GOLDEN_VS_LIVE_F64)
    if not decouple:  # the gradient form is the coupled rule
        wsam_grad = sharpax.wsam_value_and_grad(mlp_loss, s["rho"], s["gamma"])
        base = sharpax.sgd(s["lr"], momentum=s["momentum"])
        _, _, params = ref.make_problem()
        params, state = jax.tree.map(jnp.asarray, params), base.init(params)
        x, y = jnp.asarray(x), jnp.asarray(y)

        @jax.jit
        def step(params, state):
            _, grads = wsam_grad(params, x, y)
            updates, state = base.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        for _ in range(ref.STEPS):
            params, state = step(params, state)
        np.testing.assert_allclose(_flat(params), NUMPY[key][-1], **TOL_F64)


def test_friendly_direction_hand_case():
    # Two params; m_1 = (3, 4) after a first step with g = (3, 4), then g = (3, 0), sigma = 1,
    # lmbda = 0.9: d = g - sigma m_1 = (0, -4) and m_2 = 0.9 (3, 4) + 0.1 (3, 0) = (3, 3.6).
    # On the first step d = g and m = g (the reference creates m from g).
    g1, g2, zero = jnp.array([3.0, 4.0]), jnp.array([3.0, 0.0]), jnp.zeros(2)
    d1, m1 = friendly_direction(g1, zero, jnp.array(True), 1.0, 0.9)
    d2, m2 = friendly_direction(g2, m1, jnp.array(False), 1.0, 0.9)
    np.testing.assert_allclose(
        np.stack([d1, m1, d2, m2]), [[3, 4], [3, 4], [0, -4], [3, 3.6]], rtol=1e-6
    )


def test_friendly_sam_first_step_is_sam_and_sigma_zero_is_sam():
    # Step 1 is SAM exactly (d = g), with m = g; with sigma = 0 every step is SAM's.
    loss = lambda w, c: jnp.sum(c * w**2) + jnp.sum(jnp.sin(3 * w))
    w0 = jnp.linspace(-1.0, 1.0, 4)
    batches = jnp.array([1.0, 2.0, 0.5, 1.5])

    def three_steps(tx):
        w, state, updates = w0, tx.init(w0), []
        for c in batches[:3]:
            grad_fn = lambda p, c=c: jax.grad(loss)(p, c)
            u, state = tx.update(grad_fn(w), state, w, grad_fn=grad_fn)
            w, updates = w + u, [*updates, u]
        return jnp.stack(updates), state

    @jax.jit
    def both():
        return [three_steps(sharpax.sam(sharpax.sgd(0.1), 0.05))[0]] + [
            three_steps(sharpax.friendly_sam(sharpax.sgd(0.1), 0.05, sigma=s)) for s in (0.0, 1.0)
        ]

    sam, (no_sigma, _), (friendly, state) = both()
    np.testing.assert_array_equal(friendly[0], sam[0])
    np.testing.assert_allclose(no_sigma, sam, rtol=1e-6, atol=1e-7)
    assert np.abs(np.asarray(friendly[1:] - sam[1:])).max() > 1e-4
    assert int(state.count) == 3


def test_wsam_modes_hand_case_over_adam():
    # L = (w0^2 + 4 w1^2) / 2 at w = (3, 1): g = (3, 4); rho = 0.5 gives e = (0.3, 0.4) and
    # g_s = (3.3, 5.6); gamma = 0.8, alpha = 4. Adam's first step is -lr g / (|g| + eps) = -lr sign(g).
    #   coupled:   Adam gets g + 4 (g_s - g) = (4.2, 10.4): u = -0.1 (1, 1)
    #   decoupled: Adam gets g: -0.1 (1, 1), then - 0.1 * 4 (0.3, 1.6): u = (-0.22, -0.74)
    loss = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
    w = jnp.array([3.0, 1.0])
    expected = {False: [-0.1, -0.1], True: [-0.22, -0.74]}
    for decouple, want in expected.items():
        tx = sharpax.wsam(sharpax.adam(0.1), 0.1, rho=0.5, gamma=0.8, decouple=decouple)
        u, _ = jax.jit(lambda s, tx=tx: tx.update(jax.grad(loss)(w), s, w, grad_fn=jax.grad(loss)))(
            tx.init(w)
        )
        np.testing.assert_allclose(u, want, rtol=1e-6)


def test_wsam_learning_rate_schedule_counts_steps():
    # The decoupled term takes the schedule's value at the step count (0 at the first update);
    # a constant rate and rho keep no count.
    loss = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
    w = jnp.array([3.0, 1.0])
    schedule = lambda count: 0.1 * (jnp.asarray(count, jnp.float32) + 1)
    tx = sharpax.wsam(sharpax.sgd(0.0), schedule, rho=0.5, gamma=0.8)
    state = tx.init(w)
    step = jax.jit(lambda s: tx.update(jax.grad(loss)(w), s, w, grad_fn=jax.grad(loss)))
    for count in range(3):
        u, state = step(state)
        np.testing.assert_allclose(u, -0.1 * (count + 1) * 4 * np.array([0.3, 1.6]), rtol=1e-5)
    assert int(state.count) == 3
    assert sharpax.wsam(sharpax.sgd(0.1), 0.1).init(w).count is None
    assert sharpax.wsam(sharpax.sgd(0.1), schedule, decouple=False).init(w).count is None


# --- Bayesian SAM -------------------------------------------------------------------------------------


def bsam_tx(**overrides):
    s = {**bsam_reference.BSAM, **overrides}
    return sharpax.bsam(
        s["learningrate"],
        s["Ndata"],
        rho=s["rho"],
        b1=s["beta1"],
        b2=s["beta2"],
        weight_decay=s["wdecay"],
        damping=s["damping"],
        s_init=s["s_init"],
        seed=s["seed"],
    )


def run_bsam(tx, steps=ref.STEPS):
    trajectory, _ = run(tx, steps=steps)
    return trajectory


@functools.cache
def bsam_golden_run():
    tx = bsam_tx()
    _, _, init = ref.make_problem()
    params = jax.tree.map(jnp.asarray, init)
    x, y, _ = ref.make_problem()

    @jax.jit
    def step(params, state):
        grad_fn = lambda p: jax.grad(mlp_loss)(p, x, y)
        updates, state = tx.update(None, state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    state, trajectory, precisions = (
        tx.init(params),
        [_flat(params)],
        [_flat(tx.init(params)[0].precision)],
    )
    for _ in range(ref.STEPS):
        params, state = step(params, state)
        trajectory.append(_flat(params))
        precisions.append(_flat(state[0].precision))
    return np.stack(trajectory), np.stack(precisions), state


# The same float32 operations in the same order as the transcription, fused differently by XLA.
TOL_BSAM = dict(rtol=1e-5, atol=1e-6)


def test_bsam_matches_the_reference_golden():
    trajectory, precisions, state = bsam_golden_run()
    np.testing.assert_allclose(trajectory, BSAM["params"], **TOL_BSAM)
    np.testing.assert_allclose(precisions, BSAM["precision"], **TOL_BSAM)
    variance = sharpax.bsam_variance(state, bsam_reference.BSAM["Ndata"])
    np.testing.assert_allclose(
        _flat(variance), 1.0 / (bsam_reference.BSAM["Ndata"] * BSAM["precision"][-1]), rtol=1e-5
    )


def test_bsam_reference_live_matches_its_golden():
    params, precisions = bsam_reference.bsam_trajectory()
    np.testing.assert_allclose(params, BSAM["params"], **GOLDEN_VS_LIVE)
    np.testing.assert_allclose(precisions, BSAM["precision"], **GOLDEN_VS_LIVE)


def test_bsam_hand_case_linear_loss():
    # L = 3 w0 - 4 w1: g = (3, -4) wherever the noise and the perturbation put w, so one step is
    # exact by hand. w = (1, 2), s = 1, lr = 0.5, b1 = 0.9, b2 = 0.999, delta = 0.1, gamma = 0.1:
    #   g_m = 0.1 (g + 0.1 w) = 0.1 (3.1, -3.8) = (0.31, -0.38)
    #   w  <- w - 0.5 g_m / 1 = (0.845, 2.19)
    #   s  <- 0.999 + 0.001 (sqrt(1 * g^2) + 0.1 + 0.1) = 0.999 + 0.001 (3.2, 4.2) = (1.0022, 1.0032)
    # (pytorch_optimizer's squared s would give 0.999 + 0.001 (3.2^2, 4.2^2) = (1.00924, 1.01664).)
    loss = lambda w: jnp.sum(jnp.array([3.0, -4.0]) * w)
    w = jnp.array([1.0, 2.0])
    tx = sharpax.bsam(0.5, num_data=100, weight_decay=0.1, damping=0.1)
    u, state = jax.jit(lambda s: tx.update(None, s, w, grad_fn=jax.grad(loss)))(tx.init(w))
    np.testing.assert_allclose(w + u, [0.845, 2.19], rtol=1e-6)
    np.testing.assert_allclose(state[0].momentum, [0.31, -0.38], rtol=1e-6)
    np.testing.assert_allclose(state[0].precision, [1.0022, 1.0032], rtol=1e-6)


def test_bsam_hand_case_quadratic_with_the_keys_noise():
    # L = (h0 w0^2 + h1 w1^2) / 2, h = (1, 4), so grad(w) = h w; w = (3, 1), s = 1, N = 4, rho = 0.5,
    # seed 0: the noise eps is the reference's: key -> split(key, 2)[0] -> split(., 2)[1] for the one
    # leaf (normal_like_tree). Then, by hand:
    #   pass 1 at w + eps / sqrt(4 * 1) = w + eps / 2:    g = h (w + eps / 2)
    #   pass 2 at w + 0.5 g / 1:                          g_s = h (w + g / 2)
    #   g_m = 0.1 (g_s + 0.01 w); u = -0.2 g_m; s = 0.999 + 0.001 (|g| + 0.1 + 0.01)
    h, w = np.array([1.0, 4.0]), np.array([3.0, 1.0])
    noise_key = jax.random.split(jax.random.PRNGKey(0), 2)[0]
    eps = np.asarray(jax.random.normal(jax.random.split(noise_key, 2)[1], (2,)), np.float64)
    g = h * (w + eps / 2)
    g_s = h * (w + g / 2)
    g_m = 0.1 * (g_s + 0.01 * w)
    loss = lambda v: 0.5 * jnp.sum(jnp.asarray(h, jnp.float32) * v**2)
    tx = sharpax.bsam(0.2, num_data=4, rho=0.5, weight_decay=0.01, damping=0.1, seed=0)
    wj = jnp.asarray(w, jnp.float32)
    u, state = tx.update(None, tx.init(wj), wj, grad_fn=jax.grad(loss))
    np.testing.assert_allclose(u, -0.2 * g_m, rtol=1e-5)
    np.testing.assert_allclose(state[0].precision, 0.999 + 0.001 * (np.abs(g) + 0.11), rtol=1e-6)
    np.testing.assert_array_equal(state[0].key, jax.random.split(jax.random.PRNGKey(0), 2)[1])


def test_bsam_grads_are_only_a_template_and_the_seed_is_in_the_state():
    loss = lambda w: 0.5 * jnp.sum(w**2) + jnp.sum(jnp.sin(w))
    w = jnp.linspace(-1.0, 1.0, 5)
    tx = sharpax.bsam(0.1, num_data=10, rho=0.1, seed=7)
    step = jax.jit(lambda g, s: tx.update(g, s, w, grad_fn=jax.grad(loss)))
    with_none, state_none = step(None, tx.init(w))
    with_grads, state_grads = step(jax.grad(loss)(w), tx.init(w))
    np.testing.assert_array_equal(with_none, with_grads)
    jax.tree.map(np.testing.assert_array_equal, state_none, state_grads)
    # The seed only sets the initial key: another seed's state, stepped by the same update, draws
    # other noise.
    other, _ = step(None, sharpax.bsam(0.1, num_data=10, rho=0.1, seed=8).init(w))
    assert np.abs(np.asarray(other) - np.asarray(with_none)).max() > 1e-4


def test_bsam_variance_and_samples():
    params = {"w": jnp.zeros((4, 500)), "step": jnp.zeros((), jnp.int32)}
    tx = optax.chain(optax.identity(), sharpax.bsam(0.1, num_data=25, s_init=4.0))
    state = tx.init(params)
    variance = sharpax.bsam_variance(state, 25)
    np.testing.assert_allclose(variance["w"], 0.01, rtol=1e-6)
    assert int(variance["step"]) == 0
    sample = jax.jit(sharpax.bsam_sample, static_argnums=3)(
        jax.random.PRNGKey(1), state, params, 25
    )
    assert sample["step"].dtype == jnp.int32
    np.testing.assert_allclose(np.std(sample["w"]), 0.1, rtol=0.05)
    np.testing.assert_allclose(np.mean(sample["w"]), 0.0, atol=0.01)
    # An integer leaf is never trained: a float0 update with grads=None, its state untouched.
    grad_fn = lambda p: {"w": p["w"], "step": np.zeros((), jax.dtypes.float0)}
    u, state = jax.jit(lambda s: tx.update(None, s, params, grad_fn=grad_fn))(state)
    assert u["step"].dtype == jax.dtypes.float0
    assert int(sharpax.apply_updates(params, u)["step"]) == 0
    with pytest.raises(ValueError, match="bsam_variance: expected exactly one BSAMState"):
        sharpax.bsam_variance(sharpax.adam(0.1).init(params), 25)


def test_bsam_state_is_float32_over_bfloat16_params():
    # s moves by (1 - b2) = 0.1% per step: below bfloat16's resolution near 1 (0.4%).
    w = jnp.ones(3, jnp.bfloat16)
    tx = sharpax.bsam(0.1, num_data=10)
    u, state = tx.update(None, tx.init(w), w, grad_fn=lambda p: jnp.ones_like(p))
    assert u.dtype == jnp.bfloat16
    assert state[0].precision.dtype == state[0].momentum.dtype == jnp.float32
    assert float(state[0].precision[0]) > 1.0


@pytest.mark.torch
def test_pytorch_optimizer_bsam_departures():
    # The departures the docstring lists, read from pytorch_optimizer 4.1's BSAM on a linear loss
    # with zero gradient (so no perturbation and no step: only the noise moves w), and with
    # g = (3, -4) (the hand case above).
    torch = pytest.importorskip("torch")
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.zeros(40000))
    optimizer = pytorch_optimizer.BSAM([p], num_data=4, lr=0.5, weight_decay=0.0, damping=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (0.0 * p).sum()
        loss.backward()
        return loss

    closure()  # its state is created for params that already have a gradient
    optimizer.step(closure)
    # The noise stays in the weights (never restored), with std 1/(N s) = 0.25, not sqrt(1/(N s)) = 0.5.
    np.testing.assert_allclose(p.detach().std().item(), 0.25, rtol=0.02)

    c = torch.tensor([3.0, -4.0])
    q = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = pytorch_optimizer.BSAM([q], num_data=10**12, lr=0.5, weight_decay=0.1, damping=0.1)

    def linear():
        optimizer.zero_grad()
        loss = (c * q).sum()
        loss.backward()
        return loss

    linear()
    optimizer.step(linear)
    state = optimizer.state[q]
    # s squared: 0.999 + 0.001 (sqrt(1) |g| + 0.1 + 0.1)^2; the reference gives (1.0022, 1.0032).
    np.testing.assert_allclose(state["s"].numpy(), [1.00924, 1.01664], rtol=1e-6)
    # Momentum of delta * g_s (no delta w term): 0.1 * 0.1 (3, -4); the reference gives (0.31, -0.38).
    np.testing.assert_allclose(state["momentum"].numpy(), [0.03, -0.04], rtol=1e-5)


# --- jit, vmap, errors --------------------------------------------------------------------------------


VARIANTS = {
    "friendly_sam": lambda: sharpax.friendly_sam(sharpax.adam(0.05), 0.1),
    "wsam": lambda: sharpax.wsam(sharpax.sgd(0.05, momentum=0.9), 0.05, 0.1),
    "wsam_coupled": lambda: sharpax.wsam(sharpax.adam(0.05), 0.05, 0.1, decouple=False),
    "bsam": lambda: sharpax.bsam(0.05, num_data=32, rho=0.05),
}
VMAP_FAST = ("bsam",)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in VMAP_FAST else pytest.mark.slow) for n in VARIANTS]
)
def test_vmap_over_an_ensemble_equals_a_loop(name):
    # Three members with their own params and state (BSAM: their own keys): two steps of the jitted,
    # vmapped step equal each member stepped alone.
    tx = VARIANTS[name]()
    loss = lambda w, c: jnp.sum(c * w**2) + jnp.sum(jnp.sin(3 * w))
    scales = jnp.array([[1.0], [2.0], [0.5]])
    members = jnp.stack([jnp.linspace(-1.0, 1.0, 4) * (1 + 0.3 * k) for k in range(3)])
    states = jax.vmap(tx.init)(members)
    if name == "bsam":
        states = (states[0]._replace(key=jax.vmap(jax.random.PRNGKey)(jnp.arange(3))), *states[1:])

    def step(params, state, c):
        grad_fn = lambda p: jax.grad(loss)(p, c)
        updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    two_steps = lambda p, s, c: step(*step(p, s, c), c)
    got, _ = jax.jit(jax.vmap(two_steps))(members, states, scales)
    one = jax.jit(two_steps)
    for k in range(3):
        want, _ = one(members[k], jax.tree.map(lambda a, k=k: a[k], states), scales[k])
        np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-6)
    if name == "bsam":  # each member drew its own noise
        shifted = [
            one(members[0], jax.tree.map(lambda a, k=k: a[k], states), scales[0])[0] for k in (0, 1)
        ]
        assert np.abs(np.asarray(shifted[0]) - np.asarray(shifted[1])).max() > 1e-6


@pytest.mark.parametrize("name", VARIANTS)
def test_update_without_grad_fn_says_what_to_pass(name):
    tx = VARIANTS[name]()
    w = jnp.ones(3)
    owner = name.removesuffix("_coupled")
    with pytest.raises(ValueError, match=rf"^{owner}: .*grad_fn=grad_fn"):
        tx.update(w, tx.init(w), w)
    with pytest.raises(ValueError, match=rf"^{owner}: update needs the params"):
        tx.update(w, tx.init(w), grad_fn=lambda p: p)
    with pytest.raises(ValueError, match=rf"^{owner}: .*what grad_fn returns"):
        tx.update({"a": w}, tx.init({"a": w}), {"a": w}, grad_fn=lambda p: {"b": w})
