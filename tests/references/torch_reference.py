"""The parity problem (params and a seeded gradient sequence) and the torch runner that solves it.

Shared by `tests/references/make_torch_goldens.py` (which writes the goldens) and the live torch tests.
torch is imported lazily, so importing this module never needs it.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

# Its own folder: tests/references/ also holds other batteries' goldens.
GOLDEN_DIR = Path(__file__).resolve().parent / "optimizers"
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


PROBLEMS = {
    # Three leaves of different shapes and gradient scales (1, 1e-3 and 10) so that eps matters on one.
    "default": ({"b": (4,), "s": (), "w": (3, 4)}, {"b": 1e-3, "s": 10.0, "w": 1.0}),
    # Rectangular matrices both ways, a 3-D leaf (Adafactor factors its last two dims; Muon leaves it
    # to AdamW) and a vector, for the rules that are not elementwise.
    "matrices": (
        {"b": (12,), "t": (2, 3, 4), "v": (5, 12), "w": (8, 5)},
        {"b": 1.0, "t": 1.0, "v": 0.1, "w": 1.0},
    ),
}


def make_problem(
    seed: int = SEED, steps: int = STEPS, problem: str = "default"
) -> tuple[dict, dict]:
    """Float32 params `{name: array}` and gradients `{name: (steps, *shape) array}`.

    One entry of `w` has zero gradient for the first three steps (0 / (0 + eps) paths).
    """
    rng = np.random.default_rng(seed)
    shapes, scales = PROBLEMS[problem]
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


def _optimizer(torch_class: str, tensors: list, kwargs: dict[str, Any]) -> Any:
    kwargs = dict(kwargs)
    if torch_class.startswith("torch.optim.") and torch_class != "torch.optim.Muon":
        kwargs["foreach"] = False  # Muon has the single-tensor path only
    return _torch_class(torch_class)(tensors, **kwargs)


def torch_trajectory(
    torch_class: str,
    torch_kwargs: dict[str, Any],
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    lr_schedule: Any | None = None,
    torch_state: tuple[str, ...] = (),
    scheduler: str | None = None,
) -> dict[str, np.ndarray]:
    """Params after every step, `{name: (steps, *shape)}`, from the torch optimizer `torch_class`.

    torch.optim classes run their single-tensor path (`foreach=False`); `lr_schedule(epoch)` (a float
    factor) drives a `LambdaLR` stepped after every optimizer step, so step 0 uses `lr_schedule(0)`.
    `"A+B"` runs optimizer A on the 2-D params (transposed to torch's `(out, in)` layout unless
    `torch_kwargs["transpose"]` is False) with `torch_kwargs["matrices"]`, B on the others with
    `torch_kwargs["others"]`. Each name in `torch_state` adds `state/<name>/<param>` entries: that
    per-param state of the optimizer after every step. `scheduler` is a Python expression building a
    torch scheduler on `opt` (names of torch.optim.lr_scheduler in scope), stepped after every step.
    """
    import torch

    names = sorted(params)
    split = "+" in torch_class
    transpose = split and torch_kwargs.get("transpose", True)
    is_matrix = {k: split and params[k].ndim == 2 for k in names}

    def to_torch(k: str, value: np.ndarray) -> Any:
        return torch.tensor(value.T if transpose and is_matrix[k] else value, dtype=torch.float32)

    def from_torch(k: str, tensor: Any) -> np.ndarray:
        value = tensor.detach().numpy()
        return value.T if transpose and is_matrix[k] else value

    tensors = {k: to_torch(k, params[k]).requires_grad_(True) for k in names}
    if split:
        first, second = torch_class.split("+")
        groups = [
            (first, [tensors[k] for k in names if is_matrix[k]], torch_kwargs["matrices"]),
            (second, [tensors[k] for k in names if not is_matrix[k]], torch_kwargs["others"]),
        ]
        optimizers = [_optimizer(cls, group, kw) for cls, group, kw in groups if group]
    else:
        optimizers = [_optimizer(torch_class, list(tensors.values()), torch_kwargs)]
    schedulers = []
    if lr_schedule is not None:
        schedulers = [
            torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: float(lr_schedule(epoch)))
            for opt in optimizers
        ]
    if scheduler is not None:
        scope = vars(torch.optim.lr_scheduler)
        schedulers += [eval(scheduler, {**scope, "opt": opt}) for opt in optimizers]  # noqa: S307
    steps = next(iter(grads.values())).shape[0]
    out = {k: np.empty((steps, *params[k].shape), np.float32) for k in names}
    for entry in torch_state:
        out |= {f"state/{entry}/{k}": np.empty_like(out[k]) for k in names}
    for t in range(steps):
        for k in names:
            tensors[k].grad = to_torch(k, grads[k][t])
        for opt in optimizers:
            opt.step()
        for sched in schedulers:
            sched.step()
        for k in names:
            out[k][t] = from_torch(k, tensors[k])
            for entry in torch_state:
                state = next(o.state[tensors[k]] for o in optimizers if tensors[k] in o.state)
                out[f"state/{entry}/{k}"][t] = from_torch(k, state[entry])
    return out


def golden_path(case_id: str) -> Path:
    return GOLDEN_DIR / f"{case_id}.npz"


def inputs_path(problem: str = "default") -> Path:
    return GOLDEN_DIR / ("inputs.npz" if problem == "default" else f"inputs_{problem}.npz")


def load_inputs(problem: str = "default") -> tuple[dict, dict]:
    """The committed parity problem (so that the goldens do not depend on numpy's RNG)."""
    with np.load(inputs_path(problem)) as f:
        params = {k.removeprefix("params/"): f[k] for k in f.files if k.startswith("params/")}
        grads = {k.removeprefix("grads/"): f[k] for k in f.files if k.startswith("grads/")}
    return params, grads


def load_golden(case_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`({name: (steps, *shape)}, metadata)` of one committed golden trajectory; recorded torch state
    comes as `state/<entry>/<name>` entries."""
    with np.load(golden_path(case_id)) as f:
        traj = {k.removeprefix("params/"): f[k] for k in f.files if k.startswith("params/")}
        meta = json.loads(str(f["meta"]))
    return traj, meta
