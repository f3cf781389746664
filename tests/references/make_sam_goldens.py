"""Write the SAM-family goldens: `python -m tests.references.make_sam_goldens` (needs torch; run from the repo root).

- sam_davda54.npz: 30-step trajectories of davda54/sam's PyTorch `SAM` (SGD+momentum+L2 and Adam bases,
  SAM and ASAM) on the problem of `sam_references.make_problem`, in float32.
- sam_gsam.npz, sam_looksam.npz: the numpy references of `sam_references.py` (float64).
- sam_pytorch_optimizer.npz: 30-step trajectories of pytorch_optimizer 4.1's `FriendlySAM` and `WSAM`
  over torch.optim.SGD (momentum, weight decay) and Adam, SAM and ASAM, both WSAM modes, float32.
- sam_fsam_wsam_numpy.npz: the numpy references of Friendly-SAM and WSAM (`sam_references.py`, float64).
- sam_bsam.npz: Bayesian SAM as the authors' JAX code runs it (`bsam_reference.py`, float32).

`davda_sam_class()` below reproduces davda54/sam's `sam.py` (https://github.com/davda54/sam, MIT License,
Copyright (c) 2021 David Samuel), operation for operation: the same global norm of per-tensor norms,
the same `rho / (norm + 1e-12)` scale, `p^2` for `adaptive=True`, weights restored before the base step.
"""

from __future__ import annotations

import pathlib

import numpy as np

from tests.references import sam_references as ref

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


def _torch_problem(init):
    """The MLP's params as an `nn.Module` (pytorch_optimizer's WSAM takes the model) and its loss."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
            )

    net = Net()

    def loss_fn(x, y):
        p = net.p
        out = torch.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return torch.mean((out - y) ** 2)

    return net, loss_fn


def pytorch_optimizer_trajectory(
    case: str, steps: int = ref.STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Params after each step (steps + 1, n) and the first-pass losses (steps,) of a `fsam_*` or
    `wsam_*` case, pytorch_optimizer 4.1 over torch.optim, float32."""
    import pytorch_optimizer
    import torch

    torch.set_num_threads(1)
    x_np, y_np, init = ref.make_problem()
    net, loss_fn = _torch_problem(init)
    params = [net.p[k] for k in ref.SHAPES]
    if case.startswith("fsam"):
        base, variant = ref.fsam_cases()[case]
        batch = lambda t: ref.minibatch(x_np, y_np, t)
        torch_base, kwargs = ref.BASES[base]
        rho, adaptive = ref.PERTURBATIONS[variant]
        optimizer = pytorch_optimizer.FriendlySAM(
            params,
            getattr(torch.optim, torch_base),
            rho=rho,
            adaptive=adaptive,
            **ref.FSAM,
            **kwargs,
        )
    else:
        base, variant, decouple = ref.wsam_cases()[case]
        batch = lambda t: (x_np, y_np)
        torch_base, kwargs = ref.BASES[base]
        rho, adaptive = ref.PERTURBATIONS[variant]
        optimizer = pytorch_optimizer.WSAM(
            net,
            params,
            getattr(torch.optim, torch_base),
            rho=rho,
            adaptive=adaptive,
            decouple=decouple,
            **ref.WSAM,
            **kwargs,
        )

    flat = lambda: np.concatenate([net.p[k].detach().numpy().ravel() for k in ref.SHAPES])
    trajectory, losses = [flat()], []
    for t in range(steps):
        x, y = (torch.from_numpy(a) for a in batch(t))

        def closure(x=x, y=y):
            optimizer.zero_grad()
            loss = loss_fn(x, y)
            loss.backward()
            return loss

        if case.startswith("fsam"):  # FriendlySAM wants the first pass done before `step`
            loss = closure()
            optimizer.step(closure)
        else:  # WSAM runs both passes through the closure and returns the first loss
            loss = optimizer.step(closure)
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

    second = {}
    for case in [*ref.fsam_cases(), *ref.wsam_cases()]:
        second[f"{case}_params"], second[f"{case}_loss"] = pytorch_optimizer_trajectory(case)
    np.savez_compressed(HERE / "sam_pytorch_optimizer.npz", **second)

    numpy_refs = {"fsam": ref.friendly_sam_reference(vec, x, y, steps=ref.STEPS, **ref.FSAM_NUMPY)}
    for decouple in (False, True):
        numpy_refs[f"wsam_{'decoupled' if decouple else 'coupled'}"] = ref.wsam_reference(
            vec, x, y, steps=ref.STEPS, decouple=decouple, **ref.WSAM_NUMPY
        )
    np.savez_compressed(HERE / "sam_fsam_wsam_numpy.npz", **numpy_refs)

    from tests.references import bsam_reference

    params, precisions = bsam_reference.bsam_trajectory()
    np.savez_compressed(HERE / "sam_bsam.npz", params=params, precision=precisions)
    print("wrote", *sorted(p.name for p in HERE.glob("sam_*.npz")))


if __name__ == "__main__":
    main()
