"""The parity problem (params and a seeded gradient sequence) and the torch runner that solves it.

Shared by `tests/golden/make_torch_goldens.py` (which writes the goldens) and the live torch tests.
torch is imported lazily, so importing this module never needs it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

# Its own folder: tests/golden/ also holds other batteries' goldens.
GOLDEN_DIR = Path(__file__).parent / "golden" / "optimizers"
STEPS = 50
SEED = 0

# A committed golden checked against a live reference run on this machine. torch's float32 CPU kernels
# are vectorised per instruction set (AVX2, AVX-512, NEON), which reorders reductions: the same pinned
# torch differs between machines by up to 7e-6 relative (6e-7 absolute) on the SAM trajectories. A stale
# golden, made by another rule or hyperparameter, is off by 1e-3 or more (a 1% change of SAM's rho
# already fails the far looser parity tolerance: test_tolerance_detects_a_one_percent_rho_error), so
# this still catches one on any machine.
GOLDEN_VS_LIVE = {"rtol": 5e-5, "atol": 5e-6}
# The same for a float64 numpy reference: BLAS may also reorder float64 sums between machines.
GOLDEN_VS_LIVE_F64 = {"rtol": 1e-9, "atol": 1e-12}


def make_problem(seed: int = SEED, steps: int = STEPS) -> tuple[dict, dict]:
    """Float32 params `{name: array}` and gradients `{name: (steps, *shape) array}`.

    Three leaves of different shapes and gradient scales (1, 1e-3 and 10) so that eps matters on
    one of them; one entry of `w` has zero gradient for the first three steps (0 / (0 + eps) paths).
    """
    rng = np.random.default_rng(seed)
    shapes = {"b": (4,), "s": (), "w": (3, 4)}
    scales = {"b": 1e-3, "s": 10.0, "w": 1.0}
    params = {k: rng.standard_normal(shape).astype(np.float32) for k, shape in shapes.items()}
    grads = {
        k: (scales[k] * rng.standard_normal((steps, *shape))).astype(np.float32)
        for k, shape in shapes.items()
    }
    grads["w"][:3, 0, 0] = 0.0
    return params, grads


def _torch_class(name: str) -> Any:
    module, _, cls = name.rpartition(".")
    return getattr(importlib.import_module(module), cls)


def torch_trajectory(
    torch_class: str,
    torch_kwargs: dict[str, Any],
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    lr_schedule: Any | None = None,
) -> dict[str, np.ndarray]:
    """Params after every step, `{name: (steps, *shape)}`, from the torch optimizer `torch_class`.

    torch.optim classes run their single-tensor path (`foreach=False`); `lr_schedule(epoch)` (a float
    factor) drives a `LambdaLR` stepped after every optimizer step, so step 0 uses `lr_schedule(0)`.
    """
    import torch

    names = sorted(params)
    tensors = [torch.tensor(params[k], dtype=torch.float32, requires_grad=True) for k in names]
    kwargs = dict(torch_kwargs)
    if torch_class.startswith("torch.optim."):
        kwargs["foreach"] = False
    opt = _torch_class(torch_class)(tensors, **kwargs)
    sched = None
    if lr_schedule is not None:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: float(lr_schedule(epoch)))
    steps = next(iter(grads.values())).shape[0]
    out = {k: np.empty((steps, *params[k].shape), np.float32) for k in names}
    for t in range(steps):
        for k, p in zip(names, tensors, strict=True):
            p.grad = torch.tensor(grads[k][t], dtype=torch.float32)
        opt.step()
        if sched is not None:
            sched.step()
        for k, p in zip(names, tensors, strict=True):
            out[k][t] = p.detach().numpy()
    return out


def golden_path(case_id: str) -> Path:
    return GOLDEN_DIR / f"{case_id}.npz"


def load_inputs() -> tuple[dict, dict]:
    """The committed parity problem (so that the goldens do not depend on numpy's RNG)."""
    with np.load(GOLDEN_DIR / "inputs.npz") as f:
        params = {k.removeprefix("params/"): f[k] for k in f.files if k.startswith("params/")}
        grads = {k.removeprefix("grads/"): f[k] for k in f.files if k.startswith("grads/")}
    return params, grads


def load_golden(case_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`({name: (steps, *shape)}, metadata)` of one committed golden trajectory."""
    with np.load(golden_path(case_id)) as f:
        traj = {k.removeprefix("params/"): f[k] for k in f.files if k.startswith("params/")}
        meta = json.loads(str(f["meta"]))
    return traj, meta
