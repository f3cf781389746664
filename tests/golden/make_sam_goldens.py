"""Write the SAM-family goldens: `python tests/golden/make_sam_goldens.py` (needs torch; run from the repo root).

- sam_davda54.npz: 30-step trajectories of davda54/sam's PyTorch `SAM` (SGD+momentum+L2 and Adam bases,
  SAM and ASAM) on the problem of `sam_references.make_problem`, in float32.
- sam_gsam.npz, sam_looksam.npz: the numpy references of `sam_references.py` (float64).

`davda_sam_class()` below reproduces davda54/sam's `sam.py` (https://github.com/davda54/sam, MIT License,
Copyright (c) 2021 David Samuel), operation for operation: the same global norm of per-tensor norms,
the same `rho / (norm + 1e-12)` scale, `p^2` for `adaptive=True`, weights restored before the base step.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import sam_references as ref  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent

# name -> (torch.optim base optimizer, its kwargs, rho, adaptive)
DAVDA_CASES = {
    "sgd_sam": ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}, 0.05, False),
    "sgd_asam": ("SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}, 0.5, True),
    "adam_sam": ("Adam", {"lr": 0.02}, 0.05, False),
    "adam_asam": ("Adam", {"lr": 0.02}, 0.5, True),
}


def davda_sam_class():
    """davda54/sam's `SAM` class; built on demand so that importing this file (pytest collects it for
    doctests) does not need torch."""
    import torch

    class DavdaSAM(torch.optim.Optimizer):
        """davda54/sam's SAM (MIT License, Copyright (c) 2021 David Samuel), same steps, same order."""

        def __init__(self, params, base_optimizer, rho=0.05, adaptive=False, **kwargs):
            assert rho >= 0.0, f"Invalid rho, should be non-negative: {rho}"
            defaults = dict(rho=rho, adaptive=adaptive, **kwargs)
            super().__init__(params, defaults)
            self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
            self.param_groups = self.base_optimizer.param_groups
            self.defaults.update(self.base_optimizer.defaults)

        @torch.no_grad()
        def first_step(self, zero_grad=False):
            grad_norm = self._grad_norm()
            for group in self.param_groups:
                scale = group["rho"] / (grad_norm + 1e-12)
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    self.state[p]["old_p"] = p.data.clone()
                    e_w = (torch.pow(p, 2) if group["adaptive"] else 1.0) * p.grad * scale.to(p)
                    p.add_(e_w)  # to the local maximum w + e(w)
            if zero_grad:
                self.zero_grad()

        @torch.no_grad()
        def second_step(self, zero_grad=False):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    p.data = self.state[p]["old_p"]  # back to w
            self.base_optimizer.step()  # the sharpness-aware update
            if zero_grad:
                self.zero_grad()

        def _grad_norm(self):
            shared_device = self.param_groups[0]["params"][0].device
            return torch.norm(
                torch.stack(
                    [
                        ((torch.abs(p) if group["adaptive"] else 1.0) * p.grad)
                        .norm(p=2)
                        .to(shared_device)
                        for group in self.param_groups
                        for p in group["params"]
                        if p.grad is not None
                    ]
                ),
                p=2,
            )

    return DavdaSAM


def davda_trajectory(case: str, steps: int = ref.STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Params after each step (steps + 1, n) and the first-pass loss of each step (steps,), float32 torch."""
    import torch

    base, kwargs, rho, adaptive = DAVDA_CASES[case]
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    x_np, y_np, init = ref.make_problem()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    base = getattr(torch.optim, base)
    optimizer = davda_sam_class()(list(params.values()), base, rho=rho, adaptive=adaptive, **kwargs)

    def loss_fn():
        out = torch.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
        return torch.mean((out - y) ** 2)

    flat = lambda: np.concatenate([params[k].detach().numpy().ravel() for k in ref.SHAPES])
    trajectory, losses = [flat()], []
    for _ in range(steps):
        loss = loss_fn()
        loss.backward()
        optimizer.first_step(zero_grad=True)
        loss_fn().backward()
        optimizer.second_step(zero_grad=True)
        losses.append(loss.item())
        trajectory.append(flat())
    return np.stack(trajectory).astype(np.float32), np.asarray(losses, np.float32)


def main() -> None:
    x, y, init = ref.make_problem()
    davda = {"x": x, "y": y, **{f"init_{k}": v for k, v in init.items()}}
    for case in DAVDA_CASES:
        davda[f"{case}_params"], davda[f"{case}_loss"] = davda_trajectory(case)
    np.savez_compressed(HERE / "sam_davda54.npz", **davda)

    vec = ref.flatten(init)
    gsam = ref.gsam_reference(
        vec, x, y, steps=ref.STEPS, lr_fn=ref.gsam_lr, rho_fn=ref.gsam_rho, alpha=ref.GSAM["alpha"]
    )
    np.savez_compressed(HERE / "sam_gsam.npz", params=gsam)
    looksam = ref.looksam_reference(vec, x, y, steps=ref.STEPS, **ref.LOOKSAM)
    np.savez_compressed(HERE / "sam_looksam.npz", params=looksam)
    print("wrote", *sorted(p.name for p in HERE.glob("sam_*.npz")))


if __name__ == "__main__":
    main()
