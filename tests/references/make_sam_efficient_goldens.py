"""Write the momentum-SAM and AE-SAM goldens (run from the repo root; needs torch for momentum-SAM):

    git clone https://github.com/MarlonBecker/MSAM /tmp/MSAM   # commit 780fa4f
    python -m tests.references.make_sam_efficient_goldens --msam /tmp/MSAM

- sam_msam.npz: 30-step trajectories of MarlonBecker/MSAM's own `MSAM` and `AdamW_MSAM` (its
  `optimizer/msam.py` and `optimizer/adamW_msam.py`, imported from the checkout, float32 torch) on the
  problem of `sam_references.make_problem`, for the cases of `sam_efficient_references.MSAM_CASES`: the
  params the optimizer holds (perturbed) after each step, and the unperturbed weights its
  `move_back_from_momentumAscent` would give (computed out of place, so the run is not disturbed).
  MSAM's code is GPL-3.0: it is run from the checkout, never copied here.
- sam_ae_sam.npz: AE-SAM from the float64 transcription of the paper's Algorithm 1
  (`sam_efficient_references.ae_sam_reference`; no public reference code was found), with its decisions
  and statistics. Without `--msam`, only this file is written.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib

import numpy as np

from tests.references import sam_efficient_references as eref
from tests.references import sam_references as ref

HERE = pathlib.Path(__file__).resolve().parent
MSAM_COMMIT = "780fa4f623fe0c99760fd7cfb1a94d14f00179ee"


def load_msam(checkout: pathlib.Path) -> dict:
    """MSAM's two optimizer classes, imported from their files (its package __init__ needs its CLI)."""
    classes = {}
    for module, name in (("msam", "MSAM"), ("adamW_msam", "AdamW_MSAM")):
        spec = importlib.util.spec_from_file_location(
            f"msam_reference_{module}", checkout / "optimizer" / f"{module}.py"
        )
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        classes[name] = getattr(mod, name)
    return classes


def msam_trajectory(classes: dict, case: str, steps: int = eref.STEPS):
    """(perturbed (steps + 1, n), unperturbed (steps + 1, n)) of MSAM's optimizer, float32 torch."""
    import torch

    name, kwargs = eref.MSAM_CASES[case]
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    x_np, y_np, init = ref.make_problem()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    optimizer = classes[name](list(params.values()), **kwargs)

    def unperturbed(p):
        # What move_back_from_momentumAscent adds, out of place.
        group, state = optimizer.param_groups[0], optimizer.state[p]
        if name == "MSAM":
            return (
                p.detach()
                .clone()
                .add_(state["momentum_buffer"], alpha=group["rho"] * group["inverse_norm_buffer"])
            )
        if "exp_avg" not in state:
            return p.detach().clone()
        return p.detach().clone().add_(state["exp_avg"], alpha=group["norm_factor"][0])

    def flat(values):
        return np.concatenate([values[k].detach().numpy().ravel() for k in ref.SHAPES])

    perturbed, weights = [flat(params)], [flat({k: unperturbed(p) for k, p in params.items()})]
    for _ in range(steps):
        out = torch.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
        torch.mean((out - y) ** 2).backward()
        optimizer.step()
        optimizer.zero_grad()
        perturbed.append(flat(params))
        weights.append(flat({k: unperturbed(p) for k, p in params.items()}))
    return np.stack(perturbed).astype(np.float32), np.stack(weights).astype(np.float32)


def ae_sam_golden() -> dict:
    x, y, batches, init = eref.make_ae_problem()
    trajectory, log = eref.ae_sam_reference(ref.flatten(init), x, y, batches, **eref.AE_SAM)
    margin = np.abs(log["squared_norm"] - log["threshold"]) / log["squared_norm"]
    # float32 must take the same decisions: no ||g||^2 within rounding of its threshold.
    assert margin.min() > 1e-4, margin.min()
    assert 0 < log["sam"].sum() < len(batches), log["sam"]  # both kinds of step occur
    return {"x": x, "y": y, "batches": batches, "params": trajectory, **log}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--msam", type=pathlib.Path, help="a checkout of MarlonBecker/MSAM")
    args = parser.parse_args()
    golden = ae_sam_golden()
    np.savez_compressed(HERE / "sam_ae_sam.npz", **golden)
    print(f"AE-SAM: {int(golden['sam'].sum())} SAM steps of {len(golden['sam'])}")
    if args.msam:
        classes = load_msam(args.msam)
        out = {"msam_commit": np.asarray(MSAM_COMMIT)}
        for case in eref.MSAM_CASES:
            out[f"{case}_params"], out[f"{case}_weights"] = msam_trajectory(classes, case)
        np.savez_compressed(HERE / "sam_msam.npz", **out)
    print("wrote", *sorted(p.name for p in HERE.glob("sam_*.npz")))


if __name__ == "__main__":
    main()
