"""Write the complex-parameter goldens: `python -m tests.references.make_complex_goldens` (needs torch).

torch.optim treats a complex tensor as its real and imaginary parts (`torch.view_as_real` in every
single-tensor step); sharpax follows it. `tests/references/complex.npz` holds, in complex64:

- `opt/<case>`: every case of `tests/optimizer_table.CASES` (but Adafactor and Muon, which torch and
  sharpax refuse complex params for) on the complex problem of
  `complex_problem()` (fixed gradients, no model), params after every step. lion-pytorch's `sign_` has
  no complex kernel, so Lion runs on `torch.view_as_real` of the params: the rule the others follow.
  For the torch.optim cases the script also runs the real view and checks that it agrees with the
  complex run (to float32 rounding), which is the claim sharpax builds on.
- `lookahead/<inner>`: pytorch_optimizer's Lookahead over Adam and SGD with momentum on `lookahead_loss`,
  a real loss of complex params, autograd gradients.
- `sam/<case>`: davda54/sam's SAM (`make_sam_goldens.davda_sam_class`) over SGD with momentum and Adam on
  `sam_loss`; ASAM on the real view of the params (davda54's `adaptive=True` multiplies by `p ** 2`, a
  complex square for a complex `p`, and by `|p|` in the norm: not one rule; on the real view both are
  the part-by-part rule, the one sharpax applies to complex leaves).
- `grad0/<problem>`: torch's first gradient of each loss, `dL/dx + i dL/dy`, the conjugate of `jax.grad`'s
  (the convention the tests check before anything else).

The problem definitions live here, import without torch, and are shared with `tests/test_complex.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parent / "complex.npz"
# torch.optim's Adafactor and Muon refuse complex params ("does not support complex parameters"), and
# so do sharpax's: no golden, a TypeError checked instead.
REFUSES_COMPLEX = ("torch.optim.Adafactor", "torch.optim.Muon+torch.optim.AdamW")
STEPS = 20
SAM_STEPS = 15
LOOKAHEAD_K = 3


def complex_problem(seed: int = 3) -> tuple[dict, dict]:
    """Complex64 params `{name: array}` and gradients `{name: (STEPS, *shape)}`.

    Three leaves at gradient scales 1, 1e-3 (eps matters) and 10; one entry of `w` has zero gradient
    for the first three steps (0 / (0 + eps) paths), another a zero imaginary part throughout.
    """
    rng = np.random.default_rng(seed)
    shapes = {"b": (4,), "s": (), "w": (3, 4)}
    scales = {"b": 1e-3, "s": 10.0, "w": 1.0}

    def normal(shape):
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)

    params = {k: normal(s).astype(np.complex64) for k, s in shapes.items()}
    grads = {k: (scales[k] * normal((STEPS, *s))).astype(np.complex64) for k, s in shapes.items()}
    grads["w"][:3, 0, 0] = 0.0
    grads["w"][:, 1, 1] = grads["w"][:, 1, 1].real
    return params, grads


# Lookahead: L(x) = sum(0.5 c |x - t|^2 + 0.1 cos(3 Re x) + 0.1 sin(2 Im x)), written once for torch and jax.
LOOKAHEAD_INIT = {
    "w": np.array([0.8 - 0.3j, -1.3 + 0.9j, 2.1 + 0.2j], np.complex64),
    "m": np.array([[0.5 + 1.0j, -0.4 - 0.7j], [1.7 + 0.1j, -2.2 + 1.3j]], np.complex64),
}
LOOKAHEAD_TARGET = {
    "w": np.array([0.1 + 0.4j, 0.5 - 0.2j, -0.3 + 0.6j], np.complex64),
    "m": np.array([[-1.0 + 0.5j, 0.2 - 0.9j], [0.3 + 0.3j, 0.9 - 0.4j]], np.complex64),
}
LOOKAHEAD_STEPS = 12
# inner name -> (torch.optim class, kwargs); tests/test_complex.py builds the sharpax twins.
LOOKAHEAD_INNER = {
    "adam": ("Adam", dict(lr=0.05)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
}


def lookahead_loss(params: dict[str, Any], ops: Any) -> Any:
    """`ops` has `real`, `imag`, `cos`, `sin` and `constant` (torch's or jax's)."""
    total = 0.0
    for name, x in params.items():
        d = x - ops.constant(LOOKAHEAD_TARGET[name])
        sq = ops.real(d) ** 2 + ops.imag(d) ** 2
        total = (
            total
            + (0.5 * sq + 0.1 * ops.cos(3.0 * ops.real(x)) + 0.1 * ops.sin(2.0 * ops.imag(x))).sum()
        )
    return total


def sam_problem(seed: int = 4) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Inputs x (16, 3), complex targets y (16,) and complex initial params of a one-hidden-layer model."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 3)).astype(np.complex64)
    y = (rng.standard_normal(16) + 1j * rng.standard_normal(16)).astype(np.complex64)

    def normal(shape, scale):
        return (scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(
            np.complex64
        )

    init = {
        "w1": normal((3, 4), 0.5),
        "b1": normal((4,), 0.1),
        "w2": normal((4,), 0.5),
        "b2": normal((), 0.1),
    }
    return x, y, init


def sam_loss(params: dict[str, Any], x: Any, y: Any, ops: Any) -> Any:
    """mean |tanh(x W1 + b1) w2 + b2 - y|^2, written once for torch and jax."""
    out = ops.tanh(x @ params["w1"] + params["b1"][None, :]) @ params["w2"] + params["b2"]
    d = out - y
    return (ops.real(d) ** 2 + ops.imag(d) ** 2).mean()


# name -> (torch.optim base, kwargs, rho, adaptive); adaptive cases run on the real view.
SAM_CASES = {
    "sgd_sam": ("SGD", {"lr": 0.05, "momentum": 0.9}, 0.05, False),
    "adam_sam": ("Adam", {"lr": 0.02}, 0.05, False),
    "sgd_asam": ("SGD", {"lr": 0.05, "momentum": 0.9}, 0.5, True),
}


class TorchOps:
    """The torch functions the shared loss definitions use."""

    def __init__(self) -> None:
        import torch

        self.real, self.imag = torch.real, torch.imag
        self.cos, self.sin, self.tanh = torch.cos, torch.sin, torch.tanh
        self.constant = torch.from_numpy


def _torch_optimizer(name: str, tensors: list, kwargs: dict) -> Any:
    import importlib

    module, _, cls = name.rpartition(".")
    kwargs = dict(kwargs)
    if name.startswith("torch.optim."):
        kwargs["foreach"] = False
    return getattr(importlib.import_module(module), cls)(tensors, **kwargs)


def optimizer_trajectory(case: Any, real_view: bool) -> dict[str, np.ndarray]:
    """Params after each step; with `real_view` the optimizer steps `torch.view_as_real` of the params."""
    import torch

    params, grads = complex_problem()
    names = sorted(params)
    tensors = [torch.tensor(params[k]) for k in names]
    stepped = [torch.view_as_real(t) if real_view else t for t in tensors]
    opt = _torch_optimizer(case.torch_class, stepped, case.torch_kwargs)
    out = {k: np.empty((STEPS, *params[k].shape), np.complex64) for k in names}
    for t in range(STEPS):
        for k, p in zip(names, stepped, strict=True):
            g = torch.tensor(grads[k][t])
            p.grad = torch.view_as_real(g) if real_view else g
        opt.step()
        for k, p in zip(names, tensors, strict=True):
            out[k][t] = p.detach().numpy()
    return out


def lookahead_trajectory(inner: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """pytorch_optimizer.Lookahead(k=LOOKAHEAD_K, alpha=0.5) over `inner`: params per step, and grad0."""
    import torch
    from pytorch_optimizer import Lookahead

    params = {k: torch.tensor(v, requires_grad=True) for k, v in LOOKAHEAD_INIT.items()}
    cls, kwargs = LOOKAHEAD_INNER[inner]
    opt = Lookahead(
        getattr(torch.optim, cls)(list(params.values()), **kwargs), k=LOOKAHEAD_K, alpha=0.5
    )
    out: dict[str, list] = {k: [] for k in params}
    grad0 = None
    for _ in range(LOOKAHEAD_STEPS):
        opt.zero_grad()
        lookahead_loss(params, TorchOps()).backward()
        if grad0 is None:
            grad0 = np.concatenate([p.grad.numpy().ravel() for p in params.values()])
        opt.step()
        for k, p in params.items():
            out[k].append(p.detach().numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}, grad0


def sam_trajectory(case: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """davda54/sam over the torch base on `sam_loss`: params after each step (complex), and grad0."""
    import torch

    from tests.references.make_sam_goldens import davda_sam_class

    base, kwargs, rho, adaptive = SAM_CASES[case]
    torch.set_num_threads(1)
    x_np, y_np, init = sam_problem()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    if adaptive:  # the real view: leaves of shape (..., 2), the model sees them as complex
        leaves = {
            k: torch.view_as_real(torch.tensor(v)).clone().requires_grad_() for k, v in init.items()
        }
        as_complex = lambda: {k: torch.view_as_complex(v) for k, v in leaves.items()}
    else:
        leaves = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
        as_complex = lambda: leaves
    opt = davda_sam_class()(
        list(leaves.values()), getattr(torch.optim, base), rho=rho, adaptive=adaptive, **kwargs
    )
    out: dict[str, list] = {k: [] for k in init}
    grad0 = None
    for _ in range(SAM_STEPS):
        sam_loss(as_complex(), x, y, TorchOps()).backward()
        if grad0 is None and not adaptive:
            grad0 = np.concatenate([p.grad.numpy().ravel() for p in leaves.values()])
        opt.first_step(zero_grad=True)
        sam_loss(as_complex(), x, y, TorchOps()).backward()
        opt.second_step(zero_grad=True)
        for k, v in as_complex().items():
            out[k].append(v.detach().numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}, grad0


def main() -> None:
    from importlib.metadata import version

    from tests.optimizer_table import CASES

    arrays: dict[str, np.ndarray] = {}
    worst = 0.0
    for case in CASES:
        if case.torch_class in REFUSES_COMPLEX:
            continue
        lion = case.torch_class.startswith("lion_pytorch")
        traj = optimizer_trajectory(case, real_view=lion)
        if not lion:  # torch's complex step is its real-view step
            real = optimizer_trajectory(case, real_view=True)
            for k in traj:
                scale = max(1.0, float(np.abs(real[k]).max()))
                err = float(np.abs(traj[k] - real[k]).max()) / scale
                worst = max(worst, err)
                assert err < 1e-6, (case.id, k, err)
        arrays.update({f"opt/{case.id}/{k}": v for k, v in traj.items()})
    for inner in LOOKAHEAD_INNER:
        traj, grad0 = lookahead_trajectory(inner)
        arrays.update({f"lookahead/{inner}/{k}": v for k, v in traj.items()})
    arrays["grad0/lookahead"] = grad0
    for case in SAM_CASES:
        traj, grad0 = sam_trajectory(case)
        arrays.update({f"sam/{case}/{k}": v for k, v in traj.items()})
        if grad0 is not None:
            arrays["grad0/sam"] = grad0
    versions = {n: version(n) for n in ("torch", "lion-pytorch", "pytorch_optimizer")}
    np.savez_compressed(GOLDEN, versions=np.array(repr(versions)), **arrays)
    print(
        f"wrote {GOLDEN.name}: {len(arrays)} arrays, {versions}; complex vs real view: {worst:.1e}"
    )


if __name__ == "__main__":
    main()
