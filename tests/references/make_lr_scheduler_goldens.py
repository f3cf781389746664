"""Write the torch goldens that `tests/test_lr_scheduler.py` checks `sharpax.lr_scheduler` against.

For every case of `tests/lr_scheduler_cases.py`: torch 2.13's rate (and momentum or beta_1, for the
cycling schedulers) at each optimizer step, to `tests/references/lr_schedulers.npz`; and for every
ReduceLROnPlateau case, the metric sequence and torch's rate after each `scheduler.step(metric)`, to
`tests/references/lr_plateau.npz`. Values are torch's float64, stored as such. Needs torch==2.13.0:

    python -m tests.references.make_lr_scheduler_goldens            # from the repository root
"""

from __future__ import annotations

import json
from importlib.metadata import version

import numpy as np

from tests.lr_scheduler_cases import (
    CASES,
    PLATEAU_CASES,
    PLATEAU_GOLDEN,
    SCHEDULER_GOLDEN,
    plateau_sequences,
    torch_plateau_rates,
    torch_rates,
)

EXPECTED_TORCH = "2.13.0"


def main() -> None:
    torch_version = version("torch")
    if not torch_version.startswith(EXPECTED_TORCH):
        raise SystemExit(f"goldens are defined by torch=={EXPECTED_TORCH}, found {torch_version}")
    arrays = {}
    for case in CASES:
        rates, momenta = torch_rates(case)
        arrays[f"{case.id}/lr"] = rates
        if momenta is not None:
            arrays[f"{case.id}/momentum"] = momenta
        meta = {"torch": case.torch, "steps": case.steps, "optimizer": case.optimizer}
        arrays[f"{case.id}/meta"] = np.array(json.dumps({**meta, "version": torch_version}))
    np.savez_compressed(SCHEDULER_GOLDEN, **arrays)

    sequences = plateau_sequences()
    arrays = {f"sequence/{name}": values for name, values in sequences.items()}
    for case in PLATEAU_CASES:
        arrays[f"{case.id}/lr"] = torch_plateau_rates(case, sequences[case.sequence])
        meta = {"kwargs": case.kwargs, "sequence": case.sequence, "version": torch_version}
        arrays[f"{case.id}/meta"] = np.array(json.dumps(meta))
    np.savez_compressed(PLATEAU_GOLDEN, **arrays)
    sizes = [p.stat().st_size / 1024 for p in (SCHEDULER_GOLDEN, PLATEAU_GOLDEN)]
    print(
        f"wrote {len(CASES)} scheduler and {len(PLATEAU_CASES)} plateau goldens "
        f"({sizes[0]:.0f} + {sizes[1]:.0f} KiB), torch {torch_version}"
    )


if __name__ == "__main__":
    main()
