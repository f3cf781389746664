"""Write the PyHessian goldens of `sharpax.sharpness`: `python -m tests.references.make_sharpness_goldens
--pyhessian PATH` (needs torch and a checkout of github.com/amirgholami/PyHessian; run from the repo root).

PyHessian is GPL-3.0: its code is imported from the checkout given, never copied here.

sharpness_pyhessian.npz holds
- `slq_*`: PyHessian's `hessian(model, criterion, data).density(iter, n_v)` (stochastic Lanczos
  quadrature) on a float64 torch MLP 3-6-4 (tanh, mean cross-entropy on 16 points), its Rademacher start
  vectors fixed by patching `torch.randint_like` (recorded, flat, in `model.parameters()` order), so that
  the port can be compared run by run from the same starts;
- `density_*`: PyHessian's `density_plot.density_generate(eigenvalues, weights, num_bins, sigma_squared)`
  on fixed nodes and per-run weights, for two kernel widths.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SIZES = (3, 6, 4)
NUM_POINTS = 16
SLQ_STEPS, SLQ_RUNS = 12, 3


def problem(seed: int = 0) -> dict[str, np.ndarray]:
    """float64 weights in torch's layout (out, in), inputs and integer targets."""
    rng = np.random.default_rng(seed)
    out = {"x": rng.standard_normal((NUM_POINTS, SIZES[0])), "y": np.arange(NUM_POINTS) % SIZES[-1]}
    for i, (m, n) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        out[f"w{i}"] = rng.standard_normal((n, m)) / np.sqrt(m)
        out[f"b{i}"] = 0.1 * rng.standard_normal(n)
    return out


def slq_golden(pyhessian: pathlib.Path) -> dict[str, np.ndarray]:
    import torch

    sys.path.insert(0, str(pyhessian))
    from pyhessian import hessian

    data = problem()
    model = torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.Tanh(), torch.nn.Linear(SIZES[1], SIZES[2])
    ).double()
    with torch.no_grad():
        for layer, i in ((model[0], 0), (model[2], 1)):
            layer.weight.copy_(torch.from_numpy(data[f"w{i}"]))
            layer.bias.copy_(torch.from_numpy(data[f"b{i}"]))
    inputs, targets = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
    h = hessian(model, torch.nn.CrossEntropyLoss(), data=(inputs, targets), cuda=False)

    rng = np.random.default_rng(1)
    starts = []

    def randint_like(p, high, device=None):  # PyHessian's Rademacher draw: 0/1, then 0 -> -1
        bits = rng.integers(0, high, size=tuple(p.shape))
        starts.append(np.where(bits == 0, -1.0, 1.0).ravel())
        return torch.from_numpy(bits).to(p.dtype)

    original = torch.randint_like
    torch.randint_like = randint_like
    try:
        nodes, weights = h.density(iter=SLQ_STEPS, n_v=SLQ_RUNS)
    finally:
        torch.randint_like = original
    # PyHessian squares the first components of torch.linalg.eig's (complex) eigenvectors; for this
    # symmetric T they come back real, which is checked before the imaginary parts are dropped.
    weights = np.array(weights, np.complex128)
    assert np.max(np.abs(weights.imag)) < 1e-6, np.max(np.abs(weights.imag))
    per_run = len(list(model.parameters()))
    starts = [np.concatenate(starts[r * per_run : (r + 1) * per_run]) for r in range(SLQ_RUNS)]
    return {
        **{f"slq_{k}": v for k, v in data.items()},
        "slq_starts": np.stack(starts),
        "slq_nodes": np.array(nodes, np.float64),
        "slq_weights": weights.real,
    }


def density_golden(pyhessian: pathlib.Path) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(pyhessian))
    from density_plot import density_generate

    rng = np.random.default_rng(2)
    # Three runs of 12 nodes: a bulk near 0 and a few outliers, as a network's Hessian has.
    nodes = np.sort(
        np.concatenate([rng.normal(0, 0.3, (3, 9)), rng.uniform(2, 30, (3, 3))], axis=1), axis=1
    )
    weights = rng.dirichlet(np.ones(12), size=3)  # each run's weights sum to 1, as PyHessian's
    out = {"density_nodes": nodes, "density_weights": weights}
    for name, num_bins, sigma_squared in (("fine", 2000, 1e-5), ("wide", 500, 1e-3)):
        density, grids = density_generate(
            nodes, weights, num_bins=num_bins, sigma_squared=sigma_squared
        )
        out[f"density_{name}"] = density
        out[f"density_{name}_grid"] = grids
        out[f"density_{name}_params"] = np.array([num_bins, sigma_squared])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pyhessian", type=pathlib.Path, required=True, help="a PyHessian checkout"
    )
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", str(args.pyhessian), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    out = {**slq_golden(args.pyhessian), **density_golden(args.pyhessian)}
    out["pyhessian_commit"] = np.array(commit or "unknown")
    np.savez(HERE / "sharpness_pyhessian.npz", **out)
    print(
        f"wrote {HERE / 'sharpness_pyhessian.npz'} from PyHessian {commit or '(not a git checkout)'}"
    )


if __name__ == "__main__":
    main()
