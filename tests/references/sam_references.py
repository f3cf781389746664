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


# --- the second generation: Friendly-SAM, WSAM (pytorch_optimizer goldens and numpy references) -------

# The torch.optim bases of the pytorch_optimizer goldens (the davda54 goldens' settings), and the two
# perturbations: SAM (rho 0.05) and ASAM (rho 0.5, davda54's adaptive=True, i.e. eta = 0).
BASES = {
    "sgd": ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}),
    "adam": ("Adam", {"lr": 0.02}),
}
PERTURBATIONS = {"sam": (0.05, False), "asam": (0.5, True)}
FSAM = {"sigma": 1.0, "lmbda": 0.9}
WSAM = {"gamma": 0.9}
MINIBATCHES = 4


def fsam_cases() -> dict[str, tuple[str, str]]:
    """`fsam_<base>_<sam|asam>` -> (base, perturbation)."""
    return {f"fsam_{b}_{v}": (b, v) for b in BASES for v in PERTURBATIONS}


def wsam_cases() -> dict[str, tuple[str, str, bool]]:
    """`wsam_<base>_<coupled|decoupled>_<sam|asam>` -> (base, perturbation, decouple)."""
    return {
        f"wsam_{b}_{'decoupled' if d else 'coupled'}_{v}": (b, v, d)
        for b in BASES
        for d in (False, True)
        for v in PERTURBATIONS
    }


def minibatch(x, y, t):
    """Friendly-SAM's problem: the 16 rows as 4 minibatches of 4, taken in turn (step t uses t % 4).

    Its m estimates the full-batch gradient, so that g - m is the minibatch's own part; on one fixed
    batch g - m would only be the gradient's drift from step to step.
    """
    rows = len(x) // MINIBATCHES
    i = (t % MINIBATCHES) * rows
    return x[i : i + rows], y[i : i + rows]


def friendly_sam_reference(vec, x, y, *, steps, lr, rho, sigma, lmbda):
    """Friendly-SAM, nblt/F-SAM `utils.py` `FriendlySAM.first_step` with plain SGD, on `minibatch`es.

    for t: g = grad(w)
      t = 0: m = g; d = g                     (the reference's "momentum" state is created from g)
      else:  d = g - sigma m; m = lmbda m + (1 - lmbda) g        (d takes the previous m)
      w -= lr grad(w + rho d / (||d|| + 1e-12))

    Hand case (two params, checked in test_sam_second_generation.py): m = (3, 4), g = (3, 0),
    sigma = 1, lmbda = 0.9: d = (0, -4), so e = rho (0, -1), and m becomes (3, 3.6).
    """
    w = np.asarray(vec, np.float64).copy()
    out, m = [w.copy()], None
    for t in range(steps):
        xb, yb = minibatch(x, y, t)
        g = mlp_grad(w, xb, yb)
        if m is None:
            m, d = g.copy(), g
        else:
            d = g - sigma * m
            m = lmbda * m + (1 - lmbda) * g
        w = w - lr * mlp_grad(w + rho * d / (np.linalg.norm(d) + 1e-12), xb, yb)
        out.append(w.copy())
    return np.stack(out)


def wsam_reference(vec, x, y, *, steps, lr, momentum, rho, gamma, decouple):
    """WSAM, the atorch `WeightedSAM` (dlrover) with torch.optim.SGD(lr, momentum) and max_norm=None.

    alpha = gamma / (1 - gamma); for t: g = grad(w); g_s = grad(w + rho g / (||g|| + 1e-12))
      coupled:   b = momentum b + (alpha g_s + (1 - alpha) g) (b = that on the first step); w -= lr b
      decoupled: b = momentum b + g;                                   w -= lr b + lr alpha (g_s - g)

    Hand case (two params): g = (3, 4), g_s = (3.3, 5.6), gamma = 0.8 (alpha = 4): the coupled
    gradient is 4 g_s - 3 g = (4.2, 10.4); the decoupled term is 4 (g_s - g) = (1.2, 6.4).
    """
    alpha = gamma / (1 - gamma)
    w = np.asarray(vec, np.float64).copy()
    out, buf = [w.copy()], None
    for _ in range(steps):
        g = mlp_grad(w, x, y)
        g_s = mlp_grad(w + rho * g / (np.linalg.norm(g) + 1e-12), x, y)
        d = g if decouple else alpha * g_s + (1 - alpha) * g
        buf = d.copy() if buf is None else momentum * buf + d
        w = w - lr * buf
        if decouple:
            w = w - lr * alpha * (g_s - g)
        out.append(w.copy())
    return np.stack(out)


# The numpy references' settings: SGD with momentum for WSAM (so that the two modes differ), plain
# SGD for Friendly-SAM.
FSAM_NUMPY = {"lr": 0.1, "rho": 0.05, "sigma": 1.0, "lmbda": 0.9}
WSAM_NUMPY = {"lr": 0.05, "momentum": 0.9, "rho": 0.05, "gamma": 0.8}
