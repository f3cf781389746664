"""Independent references for the SAM-family tests: the deterministic problem, and GSAM and LookSAM
written from their papers' pseudo-code in float64 numpy (flat vectors, hand-written backprop).

Used by `make_sam_goldens.py` to write the committed goldens, and by the tests to re-run them live.
"""

from __future__ import annotations

import numpy as np

SHAPES = {"w1": (4, 3), "b1": (3,), "w2": (3, 2), "b2": (2,)}
STEPS = 30


def make_problem() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A fixed regression batch (16 x 4 -> 16 x 2) and the initial params of a 4-3-2 tanh MLP (float32)."""
    data = np.random.RandomState(0)
    x = data.randn(16, 4).astype(np.float32)
    y = data.randn(16, 2).astype(np.float32)
    init = np.random.RandomState(1)
    params = {k: (0.5 * init.randn(*s)).astype(np.float32) for k, s in SHAPES.items()}
    return x, y, params


def flatten(params: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(params[k], np.float64).ravel() for k in SHAPES])


def unflatten(vec: np.ndarray) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for k, s in SHAPES.items():
        n = int(np.prod(s))
        out[k] = vec[i : i + n].reshape(s)
        i += n
    return out


def mlp_loss(vec: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """mean((tanh(x w1 + b1) w2 + b2 - y)^2), the loss of every SAM-family test."""
    p = unflatten(vec)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out = np.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return float(np.mean((out - y) ** 2))


def mlp_grad(vec: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hand-written backprop of `mlp_loss` (checked against jax.grad in the tests)."""
    p = unflatten(vec)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    h = np.tanh(x @ p["w1"] + p["b1"])
    out = h @ p["w2"] + p["b2"]
    d_out = 2.0 * (out - y) / out.size
    d_z = (d_out @ p["w2"].T) * (1.0 - h**2)
    grads = {"w1": x.T @ d_z, "b1": d_z.sum(0), "w2": h.T @ d_out, "b2": d_out.sum(0)}
    return flatten(grads)


def gsam_reference(vec, x, y, *, steps, lr_fn, rho_fn, alpha):
    """GSAM, Zhuang et al. 2022 Algorithm 1, with plain SGD: returns the (steps + 1, n) trajectory.

    for t: g = grad(w); w_adv = w + rho_t g / ||g||; g_p = grad(w_adv);
           g_par = (<g, g_p> / ||g_p||^2) g_p; g_perp = g - g_par; w -= lr_t (g_p - alpha g_perp)

    Tiny hand case (checked in test_sam_family.py): g = (1, 0), g_p = (1, 1), alpha = 0.5:
    g_par = (1/2)(1, 1) = (0.5, 0.5), g_perp = (0.5, -0.5), direction = (1, 1) - 0.5 (0.5, -0.5)
    = (0.75, 1.25).
    """
    w = np.asarray(vec, np.float64).copy()
    out = [w.copy()]
    for t in range(steps):
        g = mlp_grad(w, x, y)
        g_p = mlp_grad(w + rho_fn(t) * g / np.linalg.norm(g), x, y)
        g_perp = g - (g @ g_p) / (g_p @ g_p) * g_p
        w = w - lr_fn(t) * (g_p - alpha * g_perp)
        out.append(w.copy())
    return np.stack(out)


def gsam_direction(g, g_p, alpha):
    g, g_p = np.asarray(g, np.float64), np.asarray(g_p, np.float64)
    return g_p - alpha * (g - (g @ g_p) / (g_p @ g_p) * g_p)


def looksam_reference(vec, x, y, *, steps, lr, rho, k, alpha):
    """LookSAM, Liu et al. 2022 Algorithm 1, with plain SGD: returns the (steps + 1, n) trajectory.

    for t (from 0; SAM on t % k == 0 so that g_v exists from the first step):
      g = grad(w)
      if t % k == 0: g_s = grad(w + rho g / ||g||); g_v = g_s - ||g_s|| cos(theta) g / ||g||; d = g_s
      else:          d = g + alpha (||g|| / ||g_v||) g_v
      w -= lr d

    Tiny hand case: g = (1, 0), g_s = (1, 1): cos = 1/sqrt(2), ||g_s|| = sqrt(2), so g_v = (1, 1) - (1, 0)
    = (0, 1); a later g = (2, 0) with alpha = 0.5 gives d = (2, 0) + 0.5 * 2 * (0, 1) = (2, 1).
    """
    w = np.asarray(vec, np.float64).copy()
    out, g_v = [w.copy()], None
    for t in range(steps):
        g = mlp_grad(w, x, y)
        if t % k == 0:
            g_s = mlp_grad(w + rho * g / np.linalg.norm(g), x, y)
            cos = (g @ g_s) / (np.linalg.norm(g) * np.linalg.norm(g_s))
            g_v = g_s - np.linalg.norm(g_s) * cos * g / np.linalg.norm(g)
            d = g_s
        else:
            d = g + alpha * np.linalg.norm(g) / np.linalg.norm(g_v) * g_v
        w = w - lr * d
        out.append(w.copy())
    return np.stack(out)


# The GSAM and LookSAM settings of the goldens (lr decays linearly; rho follows it, as in GSAM).
GSAM = {"lr_max": 0.2, "lr_min": 0.02, "rho_max": 0.1, "rho_min": 0.02, "alpha": 0.3}
LOOKSAM = {"lr": 0.1, "rho": 0.1, "k": 3, "alpha": 0.7}


def gsam_lr(t):
    return GSAM["lr_max"] + (GSAM["lr_min"] - GSAM["lr_max"]) * min(t, STEPS) / STEPS


def gsam_rho(t):
    fraction = (gsam_lr(t) - GSAM["lr_min"]) / (GSAM["lr_max"] - GSAM["lr_min"])
    return GSAM["rho_min"] + (GSAM["rho_max"] - GSAM["rho_min"]) * fraction
