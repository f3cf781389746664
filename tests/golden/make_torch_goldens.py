"""Write the torch golden trajectories that `tests/test_parity_torch.py` checks sharpax against.

For every case of `tests/optimizer_table.py` (`ALL_CASES`), run the torch twin (torch.optim's
single-tensor path, or lion_pytorch.Lion) on the seeded problem of `tests/torch_reference.py` and save
the params after every step, in float32, to `tests/golden/optimizers/<case id>.npz`; the problem itself
goes to `tests/golden/optimizers/inputs.npz`. Needs torch==2.13.0 and lion-pytorch==0.2.5 (the `torch` extra):

    python tests/golden/make_torch_goldens.py            # from the repository root
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.optimizer_table import ALL_CASES  # noqa: E402
from tests.torch_reference import (  # noqa: E402
    GOLDEN_DIR,
    STEPS,
    golden_path,
    make_problem,
    torch_trajectory,
)

EXPECTED = {"torch": "2.13.0", "lion-pytorch": "0.2.5"}


def main() -> None:
    versions = {name: version(name) for name in ("torch", "lion-pytorch", "numpy")}
    for name, want in EXPECTED.items():
        if not versions[name].startswith(want):
            raise SystemExit(f"goldens are defined by {name}=={want}, found {versions[name]}")
    GOLDEN_DIR.mkdir(exist_ok=True)
    params, grads = make_problem()
    np.savez_compressed(
        GOLDEN_DIR / "inputs.npz",
        **{f"params/{k}": v for k, v in params.items()},
        **{f"grads/{k}": v for k, v in grads.items()},
    )
    for stale in GOLDEN_DIR.glob("*.npz"):
        if stale.name != "inputs.npz" and stale.stem not in {c.id for c in ALL_CASES}:
            stale.unlink()
    for case in ALL_CASES:
        traj = torch_trajectory(
            case.torch_class, case.torch_kwargs, params, grads, lr_schedule=case.lr_schedule
        )
        meta = {
            "case": case.id,
            "torch_class": case.torch_class,
            "torch_kwargs": case.torch_kwargs,
            "lr_schedule": None if case.lr_schedule is None else case.lr_schedule.__name__,
            "steps": STEPS,
            **versions,
        }
        np.savez_compressed(
            golden_path(case.id),
            meta=np.array(json.dumps(meta)),
            **{f"params/{k}": v for k, v in traj.items()},
        )
    total = sum(f.stat().st_size for f in GOLDEN_DIR.glob("*.npz"))
    print(
        f"wrote {len(ALL_CASES)} goldens + inputs.npz, {total / 1024:.0f} KiB, versions {versions}"
    )


if __name__ == "__main__":
    main()
