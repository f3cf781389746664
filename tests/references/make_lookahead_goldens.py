"""Reference trajectories of pytorch_optimizer's Lookahead (and Ranger) for tests/test_lookahead.py.

Run `python -m tests.references.make_lookahead_goldens` (needs torch 2.13 and pytorch_optimizer 4.1.0) to
rewrite `tests/references/lookahead_<inner>.npz`. The tests also import this module to run the same
reference live when torch is importable; torch is imported inside the functions only, so the module
imports (and the goldens are checked) without it.

The problem: two float32 leaves, the loss
    L(x) = sum(0.5 * c * (x - target)^2 + 0.1 * cos(3 x)),
gradients from autograd at the current params (torch) / `jax.grad` (sharpax), 48 steps. After every
step we record the params (Lookahead's fast weights: pytorch_optimizer keeps the slow weights in its
state, as sharpax does) and the slow weights (`state[p]["slow_params"]`, or Ranger's "slow_buffer").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

STEPS = 48
GOLDEN_DIR = Path(__file__).resolve().parent

INIT = {
    "w": np.array([0.8, -1.3, 2.1], np.float32),
    "m": np.array([[0.5, -0.4], [1.7, -2.2]], np.float32),
}
TARGET = {
    "w": np.array([0.1, 0.5, -0.3], np.float32),
    "m": np.array([[-1.0, 0.2], [0.3, 0.9]], np.float32),
}
CURVATURE = {
    "w": np.array([1.0, 0.5, 2.0], np.float32),
    "m": np.array([[1.5, 0.7], [0.3, 1.2]], np.float32),
}


def loss(params: dict[str, Any], cos: Any, constant: Any) -> Any:
    """The test loss, written once for torch and jax (`cos` and `constant` come from either)."""
    total = 0.0
    for name, x in params.items():
        c, t = constant(CURVATURE[name]), constant(TARGET[name])
        total = total + (0.5 * c * (x - t) ** 2 + 0.1 * cos(3.0 * x)).sum()
    return total


# The inner optimizers: torch class and kwargs here; tests/test_lookahead.py builds the sharpax twins.
TORCH_INNER = {
    "adam": ("Adam", dict(lr=0.05)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    "radam": ("RAdam", dict(lr=0.05)),
    "rmsprop_momentum": ("RMSprop", dict(lr=0.01, momentum=0.9)),
}
# torch optimizers whose first-moment buffer is not `momentum_buffer`, the only key pytorch_optimizer's
# pullback modes touch (for these they would be silent no-ops). The reference for sharpax's pullback
# on them is pytorch_optimizer's own pullback code pointed at this key instead.
FIRST_MOMENT_KEY = {"adam": "exp_avg", "radam": "exp_avg"}


@dataclasses.dataclass(frozen=True)
class Case:
    """One Lookahead configuration: inner optimizer, k, alpha, pullback mode."""

    inner: str
    k: int
    alpha: float
    pullback: str = "none"

    @property
    def key(self) -> str:
        return f"k{self.k}_a{self.alpha}_{self.pullback}"


CASES: list[Case] = [
    *(
        Case(inner, k, a)
        for inner in ("adam", "sgd_momentum", "radam")
        for k in (3, 5, 6)
        for a in (0.5, 0.8)
    ),
    *(
        Case(inner, k, a, mode)
        for inner, (k, a) in (
            ("adam", (3, 0.8)),
            ("sgd_momentum", (5, 0.5)),
            ("radam", (6, 0.8)),
            ("rmsprop_momentum", (3, 0.5)),
        )
        for mode in ("reset", "pullback")
    ),
    Case("sgd_momentum", 3, 0.8, "pullback"),
    Case("rmsprop_momentum", 6, 0.5),
]

# pytorch_optimizer's Ranger without gradient centralization and with the original Ranger's
# degenerated-to-SGD step: the rule `sharpax.ranger` implements (its `>=` threshold never ties here).
RANGER_KWARGS = dict(lr=0.05, use_gc=False, degenerated_to_sgd=True)
RANGER_KEYS = ("k6_a0.5_none",)


def _torch_params() -> dict[str, Any]:
    import torch

    return {name: torch.tensor(value, requires_grad=True) for name, value in INIT.items()}


def _run(params: dict[str, Any], opt: Any, slow_key: str, state: Any) -> dict[str, np.ndarray]:
    import torch

    record: dict[str, list[np.ndarray]] = {}
    for _ in range(STEPS):
        opt.zero_grad()
        loss(params, torch.cos, torch.tensor).backward()
        opt.step()
        for name, p in params.items():
            record.setdefault(f"params/{name}", []).append(p.detach().numpy().copy())
            record.setdefault(f"slow/{name}", []).append(state[p][slow_key].numpy().copy())
    return {key: np.stack(values) for key, values in record.items()}


def torch_lookahead_trajectory(case: Case) -> dict[str, np.ndarray]:
    """pytorch_optimizer.Lookahead over the torch inner optimizer: params and slow weights per step."""
    import torch
    from pytorch_optimizer import Lookahead

    class FirstMomentLookahead(Lookahead):
        """Lookahead whose pullback modes act on FIRST_MOMENT_KEY instead of `momentum_buffer`."""

        def update(self, group: dict) -> None:
            states = [self.optimizer.state[p] for p in group["params"]]
            key = FIRST_MOMENT_KEY[case.inner]
            for s in states:
                s["momentum_buffer"] = s.pop(key)
            super().update(group)
            for s in states:
                s[key] = s.pop("momentum_buffer")

    params = _torch_params()
    class_name, kwargs = TORCH_INNER[case.inner]
    inner = getattr(torch.optim, class_name)(list(params.values()), **kwargs)
    wrapper = (
        FirstMomentLookahead
        if case.pullback != "none" and case.inner in FIRST_MOMENT_KEY
        else Lookahead
    )
    opt = wrapper(inner, k=case.k, alpha=case.alpha, pullback_momentum=case.pullback)
    return _run(params, opt, "slow_params", opt.state)


def torch_ranger_trajectory() -> dict[str, np.ndarray]:
    """pytorch_optimizer.Ranger (see RANGER_KWARGS): params and slow weights per step."""
    from pytorch_optimizer import Ranger

    params = _torch_params()
    opt = Ranger(list(params.values()), **RANGER_KWARGS)
    return _run(params, opt, "slow_buffer", opt.state)


def main() -> None:
    from importlib.metadata import version

    versions = np.array(
        f"torch {version('torch')}, pytorch_optimizer {version('pytorch_optimizer')}"
    )
    by_inner: dict[str, dict[str, np.ndarray]] = {}
    for case in CASES:
        for key, value in torch_lookahead_trajectory(case).items():
            by_inner.setdefault(case.inner, {})[f"{case.key}/{key}"] = value
    by_inner["ranger"] = {
        f"{RANGER_KEYS[0]}/{key}": value for key, value in torch_ranger_trajectory().items()
    }
    for inner, arrays in by_inner.items():
        path = GOLDEN_DIR / f"lookahead_{inner}.npz"
        np.savez_compressed(path, versions=versions, **arrays)
        print(f"wrote {path.name}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
