"""Write the torch golden trajectories that `tests/test_parity_torch.py` checks sharpax against.

For every case of `tests/optimizer_table.py` (`ALL_CASES`), run the torch twin (torch.optim's
single-tensor path, or lion_pytorch.Lion) on its seeded problem of `tests/references/torch_reference.py` and save
the params (and the torch state the case records, ASGD's averaged weights) after every step, in
float32, to `tests/references/optimizers/<case id>.npz`; the problems themselves go to
`tests/references/optimizers/inputs*.npz`. Needs torch==2.13.0 and lion-pytorch==0.2.5 (the `torch` extra):

    python -m tests.references.make_torch_goldens            # from the repository root
    python -m tests.references.make_torch_goldens rprop asgd # only these cases (and the inputs)

torch's float32 CPU kernels round differently from machine to machine (the live tests allow for it),
so rewrite only the cases you add or change.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version

import numpy as np

from tests.optimizer_table import ALL_CASES
from tests.references.torch_reference import (
    GOLDEN_DIR,
    PROBLEMS,
    STEPS,
    golden_path,
    inputs_path,
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
    problems = {}
    for problem in PROBLEMS:
        problems[problem] = params, grads = make_problem(problem=problem)
        arrays = {f"params/{k}": v for k, v in params.items()}
        arrays |= {f"grads/{k}": v for k, v in grads.items()}
        path = inputs_path(problem)
        if path.exists():
            with np.load(path) as f:
                if set(f.files) == set(arrays) and all(
                    np.array_equal(f[k], arrays[k]) for k in f.files
                ):
                    continue  # unchanged (rewriting would only change the zip's timestamps)
        np.savez_compressed(path, **arrays)
    inputs = {inputs_path(problem).name for problem in PROBLEMS}
    for stale in GOLDEN_DIR.glob("*.npz"):
        if stale.name not in inputs and stale.stem not in {c.id for c in ALL_CASES}:
            stale.unlink()
    only = set(sys.argv[1:])
    unknown = only - {c.id for c in ALL_CASES}
    if unknown:
        raise SystemExit(f"unknown case ids: {sorted(unknown)}")
    for case in ALL_CASES:
        if only and case.id not in only:
            continue
        params, grads = problems[case.problem]
        traj = torch_trajectory(
            case.torch_class,
            case.torch_kwargs,
            params,
            grads,
            lr_schedule=case.lr_schedule,
            torch_state=case.torch_state,
            scheduler=case.torch_scheduler,
        )
        meta = {
            "case": case.id,
            "torch_class": case.torch_class,
            "torch_kwargs": case.torch_kwargs,
            "lr_schedule": None if case.lr_schedule is None else case.lr_schedule.__name__,
            "problem": case.problem,
            "torch_scheduler": case.torch_scheduler,
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
        f"wrote {len(only) or len(ALL_CASES)} goldens + {len(PROBLEMS)} inputs, {total / 1024:.0f} KiB, "
        f"versions {versions}"
    )


if __name__ == "__main__":
    main()
