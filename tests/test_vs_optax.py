"""sharpax against optax: equal where the update rules coincide, and each documented difference pinned.

Runs the 50-step problem of the torch goldens. Where the rules coincide the trajectories agree to the
parity tolerance; the betas are of the form 1 - 2^-k so that optax's float32 `1 - beta ** t` is exact
(with 0.999 optax's bias correction is off by 1.3e-5 relative, sharpax's by ~1e-7: see
`sharpax/transforms/_numerics.py`). Where they differ, a float64 numpy transcription of optax's
documented formula reproduces optax, and sharpax is away from it by far more than the tolerance.
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import sharpax
from tests.test_parity_torch import assert_trajectory_close, inputs, run_trajectory

B1, B2 = 0.875, 0.998046875  # 1 - 2**-3, 1 - 2**-9: exact in float32

COINCIDE = {
    "sgd": (sharpax.sgd(0.1), optax.sgd(0.1)),
    # optax's trace starts at zero: b_1 = 0 * mu + g = g, torch's seed (without dampening).
    "sgd_momentum": (sharpax.sgd(0.05, momentum=0.9), optax.sgd(0.05, momentum=0.9)),
    "sgd_nesterov": (
        sharpax.sgd(0.05, momentum=0.9, nesterov=True),
        optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    "adam": (sharpax.adam(1e-2, B1, B2, eps=1e-6), optax.adam(1e-2, B1, B2, eps=1e-6)),
    "adamw": (
        sharpax.adamw(1e-2, B1, B2, weight_decay=0.1),
        optax.adamw(1e-2, B1, B2, weight_decay=0.1),
    ),
    "adamw_mask": (
        sharpax.adamw(1e-2, B1, B2, weight_decay=0.1, mask={"b": False, "s": True, "w": True}),
        optax.adamw(1e-2, B1, B2, weight_decay=0.1, mask={"b": False, "s": True, "w": True}),
    ),
    "lion_mask": (
        sharpax.lion(1e-2, weight_decay=0.1, mask={"b": False, "s": True, "w": True}),
        optax.lion(1e-2, weight_decay=0.1, mask={"b": False, "s": True, "w": True}),
    ),
    # optax.nadamw: no momentum schedule (psi -> infinity), decoupled decay, a mask.
    "nadamw_mask": (
        sharpax.nadam(
            1e-2,
            B1,
            B2,
            weight_decay=0.1,
            momentum_decay=1e9,
            decoupled_weight_decay=True,
            mask=lambda p: {k: k != "b" for k in p},
        ),
        optax.nadamw(1e-2, B1, B2, weight_decay=0.1, mask=lambda p: {k: k != "b" for k in p}),
    ),
    "adamax": (sharpax.adamax(1e-2, B1, B2), optax.adamax(1e-2, B1, B2)),
    "adadelta": (
        sharpax.adadelta(0.5, weight_decay=0.1),
        optax.adadelta(0.5, weight_decay=0.1),
    ),
    "lion": (sharpax.lion(1e-2, weight_decay=0.1), optax.lion(1e-2, weight_decay=0.1)),
    # optax's rmsprop with eps outside the root and torch's decay.
    "rmsprop": (sharpax.rmsprop(1e-2), optax.rmsprop(1e-2, decay=0.99, eps_in_sqrt=False)),
    "rmsprop_centered_momentum": (
        sharpax.rmsprop(1e-2, momentum=0.5, centered=True),
        optax.rmsprop(1e-2, decay=0.99, eps_in_sqrt=False, centered=True, momentum=0.5),
    ),
    # optax.nadam is the psi -> infinity limit of torch's momentum schedule (mu_t = b1 for all t).
    "nadam_without_schedule": (
        sharpax.nadam(1e-2, B1, B2, momentum_decay=1e9),
        optax.nadam(1e-2, B1, B2),
    ),
    # Same accumulator start, no eps: only the eps placement differs, and it is gone.
    "adagrad_eps0": (
        sharpax.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
        optax.adagrad(0.1, initial_accumulator_value=0.1, eps=0.0),
    ),
}


def optax_trajectory(tx, params, grads):
    # optax's `decay ** count` mixes float and int32, which strict promotion (conftest) rejects.
    with jax.numpy_dtype_promotion("standard"):
        return run_trajectory(tx, params, grads, jit=True)


@pytest.mark.parametrize("name", list(COINCIDE))
def test_coincides_with_optax(name):
    ours, theirs = COINCIDE[name]
    params, grads = inputs()
    got = run_trajectory(ours, params, grads, jit=True)
    want = optax_trajectory(theirs, params, grads)
    assert_trajectory_close(got, want, f"sharpax.{name} vs optax")


# float64 transcriptions of optax's documented rules (optax/_src/transform.py, alias.py, 0.2.8).
def optax_rmsprop_formula(g, state, t, lr=1e-2, decay=0.9, eps=1e-8):
    v = state.get("v", 0.0) * decay + (1 - decay) * g * g
    return -lr * g / np.sqrt(v + eps), {"v": v}  # eps inside the root


def optax_adagrad_formula(g, state, t, lr=0.1, init=0.1, eps=1e-7):
    s = state.get("s", init) + g * g
    return -lr * g / np.sqrt(s + eps), {"s": s}  # starts at 0.1, eps inside the root


def optax_amsgrad_formula(g, state, t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    m = state.get("m", 0.0) * b1 + (1 - b1) * g
    v = state.get("v", 0.0) * b2 + (1 - b2) * g * g
    v_max = np.maximum(state.get("v_max", 0.0), v / (1 - b2**t))  # max of the *corrected* moment
    return -lr * (m / (1 - b1**t)) / (np.sqrt(v_max) + eps), {"m": m, "v": v, "v_max": v_max}


def optax_nadam_formula(g, state, t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    m = state.get("m", 0.0) * b1 + (1 - b1) * g
    v = state.get("v", 0.0) * b2 + (1 - b2) * g * g
    m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)  # constant mu_t = b1
    return -lr * m_hat / (np.sqrt(v / (1 - b2**t)) + eps), {"m": m, "v": v}


def optax_radam_formula(g, state, t, lr=1e-2, b1=0.9, b2=0.999, eps=1e-3):
    m = state.get("m", 0.0) * b1 + (1 - b1) * g
    v = state.get("v", 0.0) * b2 + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho >= 5:  # `>=`, eps added to the corrected root
        r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        return -lr * r * m_hat / (np.sqrt(v_hat) + eps), {"m": m, "v": v}
    return -lr * m_hat, {"m": m, "v": v}


def run_formula(formula, params, grads):
    out = {}
    for name, p in params.items():
        p, state, traj = p.astype(np.float64), {}, []
        for t, g in enumerate(grads[name].astype(np.float64), start=1):
            update, state = formula(g, state, t)
            p = p + update
            traj.append(p)
        out[name] = np.stack(traj)
    return out


DIFFER = {
    # name: (sharpax, optax, optax's formula). Same arguments on both sides unless noted.
    "rmsprop_eps_in_sqrt": (
        sharpax.rmsprop(1e-2, decay=0.9),
        optax.rmsprop(1e-2),
        optax_rmsprop_formula,
    ),
    "adagrad_defaults": (sharpax.adagrad(0.1), optax.adagrad(0.1), optax_adagrad_formula),
    "amsgrad": (sharpax.adam(1e-2, amsgrad=True), optax.amsgrad(1e-2), optax_amsgrad_formula),
    "nadam_momentum_schedule": (sharpax.nadam(1e-2), optax.nadam(1e-2), optax_nadam_formula),
    "radam_eps_placement": (
        sharpax.radam(1e-2, eps=1e-3),
        optax.radam(1e-2, eps=1e-3),
        optax_radam_formula,
    ),
}


@pytest.mark.parametrize("name", list(DIFFER))
def test_documented_difference_from_optax(name):
    ours, theirs, formula = DIFFER[name]
    params, grads = inputs()
    got = run_trajectory(ours, params, grads, jit=True)
    want = optax_trajectory(theirs, params, grads)
    # optax rounds beta to float32 in 1 - beta ** t (up to 4e-6 here against the float64 formula).
    formula_traj = run_formula(formula, params, grads)
    assert_trajectory_close(want, formula_traj, f"optax.{name} vs formula", 1e-5, 1e-5)
    gap = max(np.max(np.abs(got[k] - want[k])) / max(1.0, np.max(np.abs(want[k]))) for k in want)
    assert gap > 100 * 1e-5, (
        f"sharpax and optax agree on {name} (gap {gap:.1e}): is the difference gone?"
    )


@pytest.mark.parametrize("decoupled", [True, False], ids=["decoupled", "l2"])
def test_radam_mask_leaves_the_masked_out_leaves_undecayed(decoupled):
    """optax.radam has no weight decay: a masked-out leaf follows the undecayed run, the others the
    decayed one (every rule is elementwise, so leaves do not interact)."""
    params, grads = inputs()
    mask = {"b": False, "s": True, "w": True}
    kwargs = dict(weight_decay=0.1, decoupled_weight_decay=decoupled)
    got = run_trajectory(sharpax.radam(1e-2, mask=mask, **kwargs), params, grads, jit=True)
    decayed = run_trajectory(sharpax.radam(1e-2, **kwargs), params, grads, jit=True)
    undecayed = run_trajectory(sharpax.radam(1e-2), params, grads, jit=True)
    np.testing.assert_array_equal(got["b"], undecayed["b"])
    for k in ("s", "w"):
        np.testing.assert_array_equal(got[k], decayed[k])
    assert not np.allclose(decayed["w"], undecayed["w"], rtol=1e-4)
