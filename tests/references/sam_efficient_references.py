"""Independent float64 numpy transcriptions of momentum-SAM (MarlonBecker/MSAM's two optimizers) and of
AE-SAM (Jiang et al. 2023, Algorithm 1), on the MLP of `sam_references.py` (hand-written backprop).

Written from the rules, not copied: MSAM's code is GPL-3.0, so `make_sam_efficient_goldens.py` runs it
from a checkout given at generation time and only its trajectories are committed. These transcriptions
are checked against those trajectories in `tests/test_sam_efficient.py`, and re-run live there.
"""

from __future__ import annotations

import numpy as np

from tests.references import sam_references as ref

STEPS = 30
NORM_EPS = 1e-12  # MSAM's `1 / (norm + 1e-12)`, SAM's `rho / (norm + 1e-12)`

# momentum-SAM golden cases: (MSAM class, its keyword arguments).
MSAM_CASES = {
    "sgd": ("MSAM", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "rho": 0.3}),
    "sgd_wd": ("MSAM", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05, "rho": 0.3}),
    "adamw": ("AdamW_MSAM", {"lr": 0.01, "weight_decay": 0.0, "rho": 0.5}),
    "adamw_wd": ("AdamW_MSAM", {"lr": 0.02, "weight_decay": 0.1, "rho": 0.5}),
}
ADAMW_DEFAULTS = {"betas": (0.9, 0.999), "eps": 1e-8}


def msam_sgd_reference(vec, x, y, *, steps, lr, momentum, weight_decay, rho, l2_at_perturbed=True):
    """MSAM's SGD (`optimizer/msam.py`): returns the perturbed and the unperturbed trajectories.

    The params held are w~ = w - rho v / ||v||; each step, with g the gradient at w~:

        d = g + weight_decay * w~              (the L2 term at the perturbed point)
        w = w~ + rho * inv * v                 (back to w; inv = 0 before the first step)
        v = momentum * v + d                   (v starts at 0, so v_1 = d_1)
        w = w - lr * v
        inv = 1 / (||v|| + 1e-12);  w~ = w - rho * inv * v

    2-parameter hand case (checked in the tests): loss 0.5 ||w||^2 (g = w), w = (3, 4), lr 0.1, momentum
    0.9, rho 1. Step 1: v = (3, 4), w = (2.7, 3.6), ||v|| = 5, w~ = (2.1, 2.8). Step 2: g = (2.1, 2.8),
    w = (2.7, 3.6), v = 0.9 (3, 4) + (2.1, 2.8) = (4.8, 6.4), w = (2.22, 2.96), ||v|| = 8,
    w~ = (2.22, 2.96) - (0.6, 0.8) = (1.62, 2.16).

    `l2_at_perturbed=False` adds the L2 term at w instead (`d = g + weight_decay * w`), as an SGD base
    with its own weight decay does inside `sharpax.momentum_sam`, which hands it the unperturbed weights.
    """
    w_tilde = np.asarray(vec, np.float64).copy()
    v, inv = np.zeros_like(w_tilde), 0.0
    perturbed, unperturbed = [w_tilde.copy()], [w_tilde.copy()]
    for _ in range(steps):
        w = w_tilde + rho * inv * v
        d = ref.mlp_grad(w_tilde, x, y) + weight_decay * (w_tilde if l2_at_perturbed else w)
        v = momentum * v + d
        w = w - lr * v
        inv = 1.0 / (np.linalg.norm(v) + NORM_EPS)
        w_tilde = w - rho * inv * v
        perturbed.append(w_tilde.copy())
        unperturbed.append(w.copy())
    return np.stack(perturbed), np.stack(unperturbed)


def msam_adamw_reference(
    vec, x, y, *, steps, lr, weight_decay, rho, betas, eps, decay_after_step=True
):
    """MSAM's AdamW (`optimizer/adamW_msam.py`): returns the perturbed and the unperturbed trajectories.

    With g the gradient at the held w~ and t = 1, 2, ...:

        w = w~ + f * m                                  (f = 0 before the first step)
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        s = lr / (1 - b1^t);  den = sqrt(v) / sqrt(1 - b2^t) + eps
        w = (w - s m / den) * (1 - lr wd)               (MSAM: the decay after the Adam step)
        f = rho / (||m|| + 1e-12);  w~ = w - f * m

    `decay_after_step=False` decays first, as torch.optim.AdamW and optax do:
    w = w (1 - lr wd) - s m / den. The two differ by lr wd s m / den.
    """
    b1, b2 = betas
    w_tilde = np.asarray(vec, np.float64).copy()
    m, v, f = np.zeros_like(w_tilde), np.zeros_like(w_tilde), 0.0
    perturbed, unperturbed = [w_tilde.copy()], [w_tilde.copy()]
    for t in range(1, steps + 1):
        g = ref.mlp_grad(w_tilde, x, y)
        w = w_tilde + f * m
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = lr / (1 - b1**t)
        adam = step * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
        if decay_after_step:
            w = (w - adam) * (1 - lr * weight_decay)
        else:
            w = w * (1 - lr * weight_decay) - adam
        f = rho / (np.linalg.norm(m) + NORM_EPS)
        w_tilde = w - f * m
        perturbed.append(w_tilde.copy())
        unperturbed.append(w.copy())
    return np.stack(perturbed), np.stack(unperturbed)


# AE-SAM: minibatches of a larger regression set, so that ||g||^2 varies from step to step.
AE_SAM = {
    "lr": 0.1,
    "momentum": 0.9,
    "rho": 0.05,
    "total_steps": STEPS,
    "delta": 0.9,
    "lambda1": -1.0,
    "lambda2": 1.0,
}
AE_BATCH, AE_EXAMPLES = 8, 64


def make_ae_problem():
    """x (64, 4), y (64, 2) float32, the batch indices of each step (STEPS, 8), the initial params."""
    rng = np.random.RandomState(2)
    x = rng.randn(AE_EXAMPLES, 4).astype(np.float32)
    y = rng.randn(AE_EXAMPLES, 2).astype(np.float32)
    batches = np.stack(
        [rng.choice(AE_EXAMPLES, AE_BATCH, replace=False) for _ in range(STEPS)]
    ).astype(np.int32)
    _, _, params = ref.make_problem()
    return x, y, batches, params


def ae_sam_reference(
    vec, x, y, batches, *, lr, momentum, rho, total_steps, delta, lambda1, lambda2
):
    """AE-SAM with SGD + momentum (torch's rule), float64. Returns the trajectory (steps + 1, n) and,
    per step, the decision, ||g||^2, mu, sigma^2 and the threshold mu + c sigma.

    For t = 0, 1, ... with g the gradient of batch t at w:

        mu = delta mu + (1 - delta) ||g||^2;  sigma^2 = delta sigma^2 + (1 - delta) (||g||^2 - mu)^2
        c = min(t / T, 1) lambda1 + (1 - min(t / T, 1)) lambda2
        d = grad(w + rho g / (||g|| + 1e-12)) if ||g||^2 >= mu + c sigma else g
        b = momentum b + d;  w = w - lr b

    2-parameter hand case (checked in the tests): loss 0.5 ||w||^2, w = (3, 4), lr 0.1, no momentum,
    rho 0.05, T = 1, delta 0.9, lambda1 = 2, lambda2 = 1. t = 0: ||g||^2 = 25, mu = 2.5,
    sigma^2 = 0.1 * 22.5^2 = 50.625, c = 1, threshold 2.5 + 7.115 = 9.615 <= 25: SAM, e = 0.05 g / 5
    = (0.03, 0.04), d = (3.03, 4.04), w = (2.697, 3.596). t = 1: ||g||^2 = 7.273809 + 12.931216 =
    20.205025, mu = 2.25 + 2.0205025 = 4.2705025, sigma^2 = 45.5625 + 0.1 * 15.9345225^2 = 70.9534...,
    c = lambda1 = 2, threshold 4.2705 + 2 * 8.4234 = 21.117 > 20.205: plain, w = 0.9 w = (2.4273, 3.2364).
    """
    w = np.asarray(vec, np.float64).copy()
    b = np.zeros_like(w)
    mu = var = 0.0
    out, log = [w.copy()], {k: [] for k in ("sam", "squared_norm", "mean", "variance", "threshold")}
    for t, idx in enumerate(batches):
        xb, yb = x[idx], y[idx]
        g = ref.mlp_grad(w, xb, yb)
        sq = float(g @ g)
        mu = delta * mu + (1 - delta) * sq
        var = delta * var + (1 - delta) * (sq - mu) ** 2
        progress = min(t / total_steps, 1.0)
        c = progress * lambda1 + (1 - progress) * lambda2
        threshold = mu + c * np.sqrt(var)
        sam = sq >= threshold
        d = ref.mlp_grad(w + rho * g / (np.sqrt(sq) + NORM_EPS), xb, yb) if sam else g
        b = momentum * b + d
        w = w - lr * b
        out.append(w.copy())
        for k, value in zip(log, (sam, sq, mu, var, threshold), strict=True):
            log[k].append(value)
    return np.stack(out), {k: np.asarray(v) for k, v in log.items()}
