"""Write the RWP and ESAM goldens: `python -m tests.references.make_sam_efficient_gradient_goldens`
(needs torch; run from the repo root). `--esam-checkout DIR` also runs dydjw9/Efficient_SAM's own `utils/Esam.py` from a
checkout DIR and checks that it agrees with the transcription below before anything is written.

- sam_rwp_nblt.npz: 10 steps of nblt/RWP's training step (`train_rwp_parallel.py`, `train()`) with SGD
  (momentum, weight decay), float32 torch, on the problem of `sam_references.make_problem`.
- sam_esam_dydjw9.npz: 10 steps of dydjw9/Efficient_SAM's `ESAM.step` (`utils/Esam.py`) with SGD, on
  the same problem with per-example losses.

Neither reference has a licence file, so their code is not copied here: the functions below are
transcriptions, step for step, written in torch's layout (a `Linear` weight is (out, in); sharpax's
params are Flax's (in, out)). The random draws come from the JAX keys, by the scheme sharpax documents:

- RWP, step t: `k = fold_in(key(RWP_SEED), t)`; leaf j's standard normals are the Box-Muller draw of
  `jax.random.split(k, 4)[j]` over flax_shape (`box_muller.box_muller_normal`, numpy float64 from JAX's
  threefry words, rounded to float32); the reference's `torch.normal(0, std)` is replaced by `std * z`
  (z transposed to torch's layout).
- ESAM, step t: tensor j is perturbed when `jax.random.uniform(fold_in(key(ESAM_SEED), t), (4,))[j] <
  beta`. The reference draws step t's subset with Python's `random` at the end of step t - 1 (and
  perturbs every tensor at step 0); the transcription sets `requires_grad` from the JAX draw instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib

import jax
import numpy as np

from tests.references import sam_references as ref
from tests.references.box_muller import box_muller_normal

HERE = pathlib.Path(__file__).resolve().parent
STEPS = 10
ORDER = ("w1", "b1", "w2", "b2")  # named_parameters() order of Linear(4, 3), Tanh, Linear(3, 2)

RWP_SEED = 7
# name -> (gamma, alpha); SGD as the reference's recipe (momentum 0.9, weight decay), a larger lr.
RWP_CASES = {"rwp": (0.3, 0.5), "rwp_alpha": (0.5, 0.8)}
RWP_SGD = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}

ESAM_SEED = 3  # its first draw keeps every tensor at beta = 0.6, as the reference's step 0
# name -> (rho, beta, gamma, adaptive); the reference's run.sh uses beta 0.5-0.6, gamma 0.5.
ESAM_CASES = {
    "esam": (0.2, 0.6, 0.5, False),
    "esam_asam": (0.5, 0.6, 0.5, True),
    "esam_full": (0.2, 1.0, 1.0, False),
}
ESAM_SGD = {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}


def to_torch_layout(name: str, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.T) if array.ndim == 2 else array


def rwp_normals(t: int) -> dict[str, np.ndarray]:
    """Step t's standard normals per leaf, in Flax layout, by sharpax's documented key scheme."""
    keys = jax.random.split(jax.random.fold_in(jax.random.key(RWP_SEED), t), len(ORDER))
    # jax.tree.flatten orders dict keys by sorting: b1, b2, w1, w2.
    flat = sorted(ORDER)
    return {
        name: box_muller_normal(k, ref.SHAPES[name]).astype(np.float32)
        for k, name in zip(keys, flat, strict=True)
    }


def esam_kept(t: int, beta: float) -> dict[str, bool]:
    """Step t's perturbed tensors, by sharpax's documented key scheme (tree-flatten order)."""
    u = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.key(ESAM_SEED), t), (4,)))
    return {name: bool(u[j] < beta) for j, name in enumerate(sorted(ORDER))}


def _torch_model(init):
    import torch

    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        for (_, p), name in zip(model.named_parameters(), ORDER, strict=True):
            p.copy_(torch.from_numpy(to_torch_layout(name, init[name])))
    return model


def _flat(model) -> np.ndarray:
    """The params in sharpax's layout and `sam_references.SHAPES` order (w1, b1, w2, b2)."""
    values = {
        n: p.detach().numpy() for n, (_, p) in zip(ORDER, model.named_parameters(), strict=True)
    }
    return np.concatenate([to_torch_layout(n, values[n]).ravel() for n in ref.SHAPES])


def rwp_trajectory(case: str, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nblt/RWP's step on two DDP ranks, simulated in one process: params (steps + 1, n), the plain
    rank's loss (steps,), and the first step's averaged gradient (n,).

    Rank 0 (even) computes the gradient of `criterion(model(x_0), y_0) * 2 (1 - alpha)` at w; rank 1
    (odd) adds filter-wise noise (a weight of two or more axes: std gamma times the norm of each row
    `mp.view(sh[0], -1)`, i.e. of each output unit; otherwise gamma (||mp|| + 1e-16)), computes the
    gradient of `criterion(model(x_1), y_1) * 2 alpha` there and subtracts the noise; DDP averages the
    two ranks' gradients before `optimizer.step()`. x_0 and x_1 are the two halves of the batch.
    """
    import torch

    gamma, alpha = RWP_CASES[case]
    x_np, y_np, init = ref.make_problem()
    half = len(x_np) // 2
    x = torch.from_numpy(x_np).split(half)
    y = torch.from_numpy(y_np).split(half)
    model = _torch_model(init)
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), **RWP_SGD)
    trajectory, losses, first_grad = [_flat(model)], [], None
    for t in range(steps):
        z = rwp_normals(t)
        rank_grads = []
        for rank in (0, 1):
            if rank % 2 == 1:
                weight = alpha * 2
                noise = []
                with torch.no_grad():
                    for name, mp in zip(ORDER, model.parameters(), strict=True):
                        draw = torch.from_numpy(to_torch_layout(name, z[name]))
                        if mp.dim() > 1:
                            rows = mp.reshape(mp.shape[0], -1).norm(dim=1, keepdim=True)
                            std = gamma * rows.expand(-1, int(np.prod(mp.shape[1:]))).reshape(
                                mp.shape
                            )
                        else:
                            std = gamma * (mp.reshape(-1).norm().item() + 1e-16)
                        noise.append(std * draw)  # torch.normal(0, std), drawn from the JAX key
                        mp.add_(noise[-1])
            else:
                weight = (1 - alpha) * 2
            loss = criterion(model(x[rank]), y[rank]) * weight
            optimizer.zero_grad()
            loss.backward()
            if rank % 2 == 1:
                with torch.no_grad():
                    for mp, n in zip(model.parameters(), noise, strict=True):
                        mp.sub_(n)
            else:
                losses.append(loss.item() / weight)
            rank_grads.append([p.grad.clone() for p in model.parameters()])
        for p, g0, g1 in zip(model.parameters(), *rank_grads, strict=True):
            p.grad = (g0 + g1) / 2  # DDP's all-reduce mean over the two ranks
        if first_grad is None:
            grads = {n: p.grad.numpy() for n, p in zip(ORDER, model.parameters(), strict=True)}
            first_grad = np.concatenate([to_torch_layout(n, grads[n]).ravel() for n in ref.SHAPES])
        optimizer.step()
        trajectory.append(_flat(model))
    return np.stack(trajectory), np.asarray(losses, np.float32), first_grad


def esam_loss_fct(logits, targets):
    """Per-example losses (the reference's `reduction="none"`): the mean squared error of each row."""
    return ((logits - targets) ** 2).mean(dim=1)


def esam_step_transcribed(model, inputs, targets, rho, beta, gamma, adaptive):
    """One `ESAM.step` of dydjw9/Efficient_SAM (the base SGD step excluded), on `model` in place.

    Returns the first pass's per-example losses. Tensors with `requires_grad=False` get no first-pass
    gradient: neither perturbed nor counted in the norm.
    """
    import torch

    params = list(model.parameters())
    l_before = esam_loss_fct(model(inputs), targets)
    for p in params:
        p.grad = None
    l_before.mean().backward()
    l_before = l_before.detach()
    with torch.no_grad():
        # first_step: scale = rho / (||T g|| + 1e-7) / beta, e = T^2 g scale (T = |p| or 1).
        live = [p for p in params if p.grad is not None]
        norm = torch.norm(
            torch.stack([((p.abs() if adaptive else 1.0) * p.grad).norm(p=2) for p in live]), p=2
        )
        scale = rho / (norm + 1e-7) / beta
        e_ws = {}
        for p in params:
            p.requires_grad = True
            if p.grad is None:
                continue
            e_ws[p] = (p.pow(2) if adaptive else 1.0) * p.grad * scale
            p.add_(e_ws[p])
        for p in params:
            p.grad = None
        # Selection: keep the losses that rose strictly more than the k-th largest rise.
        sharpness = esam_loss_fct(model(inputs), targets) - l_before
        if gamma >= 0.99:
            chosen = torch.ones_like(sharpness, dtype=torch.bool)
        else:
            cutoff = torch.topk(sharpness, int(len(targets) * gamma))[0][-1]
            chosen = sharpness > cutoff
    esam_loss_fct(model(inputs[chosen]), targets[chosen]).mean().backward()
    with torch.no_grad():
        for p, e_w in e_ws.items():
            p.sub_(e_w)
    return l_before


def esam_trajectory(case: str, steps: int = STEPS, step_fn=None) -> tuple[np.ndarray, np.ndarray]:
    """Params (steps + 1, n) and the first pass's mean loss (steps,) of ESAM + SGD, float32 torch.

    `step_fn(model, optimizer, inputs, targets, kept_next)` replaces the transcribed step (the live
    check of the reference's own class uses it).
    """
    import torch

    rho, beta, gamma, adaptive = ESAM_CASES[case]
    x_np, y_np, init = ref.make_problem()
    inputs, targets = torch.from_numpy(x_np), torch.from_numpy(y_np)
    model = _torch_model(init)
    optimizer = torch.optim.SGD(model.parameters(), **ESAM_SGD)
    trajectory, losses = [_flat(model)], []
    for t in range(steps):
        kept = esam_kept(t, beta)
        if step_fn is None:
            for name, p in zip(ORDER, model.parameters(), strict=True):
                p.requires_grad = kept[name]
            l_before = esam_step_transcribed(model, inputs, targets, rho, beta, gamma, adaptive)
            optimizer.step()
        else:
            kept_next = esam_kept(t + 1, beta)
            l_before = step_fn(model, optimizer, inputs, targets, kept, kept_next)
        losses.append(l_before.mean().item())
        trajectory.append(_flat(model))
    return np.stack(trajectory), np.asarray(losses, np.float32)


def reference_esam_trajectory(case: str, checkout: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """The same run through the reference's own `ESAM` class, imported from a checkout.

    Its `second_step` draws the next step's tensors with `random.random() > beta`; the module's
    `random` is replaced by a feed of 0.0 (kept) and 1.0 (dropped) following the JAX draw. Its first
    step perturbs every tensor, which ESAM_SEED's first draw does too.
    """
    spec = importlib.util.spec_from_file_location("esam_reference", checkout / "utils" / "Esam.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rho, beta, gamma, adaptive = ESAM_CASES[case]
    feed: list[float] = []
    module.random = type("Feed", (), {"random": staticmethod(lambda: feed.pop(0))})
    holder = {}

    def step_fn(model, base, inputs, targets, kept, kept_next):
        assert holder or all(kept.values()), "the reference perturbs every tensor at its first step"
        esam = holder.setdefault(
            "esam",
            module.ESAM(
                model.parameters(), base, rho=rho, beta=beta, gamma=gamma, adaptive=adaptive
            ),
        )
        feed[:] = [0.0 if kept_next[name] else 1.0 for name in ORDER]
        esam.paras = [inputs, targets, esam_loss_fct, model, lambda loss: loss.backward()]
        esam.step()
        assert not feed
        return esam.returnthings[1]

    return esam_trajectory(case, step_fn=step_fn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--esam-checkout", type=pathlib.Path, default=None)
    args = parser.parse_args()
    x, y, init = ref.make_problem()
    rwp = {"x": x, "y": y, **{f"init_{k}": v for k, v in init.items()}}
    for case in RWP_CASES:
        rwp[f"{case}_params"], rwp[f"{case}_loss"], rwp[f"{case}_grad0"] = rwp_trajectory(case)
    esam = {}
    for case in ESAM_CASES:
        esam[f"{case}_params"], esam[f"{case}_loss"] = esam_trajectory(case)
        if args.esam_checkout is not None:
            theirs = reference_esam_trajectory(case, args.esam_checkout)
            for ours, own in zip(
                (esam[f"{case}_params"], esam[f"{case}_loss"]), theirs, strict=True
            ):
                np.testing.assert_array_equal(ours, own)
            print(f"{case}: the transcription equals the reference's own ESAM class bit for bit")
    np.savez_compressed(HERE / "sam_rwp_nblt.npz", **rwp)
    np.savez_compressed(HERE / "sam_esam_dydjw9.npz", **esam)
    print("wrote sam_rwp_nblt.npz sam_esam_dydjw9.npz")


if __name__ == "__main__":
    main()
