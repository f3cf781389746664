"""Compile time of one jitted training step, sharpax vs optax, measured in a process that does only that.

    python -m benchmarks.compile_probe --regime flax_transformer --optimizers adam radam --samples 5
    python -m benchmarks.compile_probe --regime leaves:1000 --optimizers adam

`run.py` runs this script in a fresh subprocess per regime and reads its `--json` output. A long-lived
benchmark process is a poor place to time compiles: its heap (every runner's arrays and executables)
makes the garbage collector's passes during tracing slow and uneven, and one compile there varied by
20-30% from run to run. Here every sample starts from a collected heap, lowering (tracing to StableHLO)
and XLA compilation are timed separately, the two libraries alternate which goes first, and the
StableHLO size and XLA fusion count of each compiled step come with the times.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import _cases, _trees
from benchmarks import _harness as h

ROOT = Path(__file__).resolve().parents[1]


def regime_params(regime: str) -> dict:
    """A regime of `_trees.regime_trees`, or `leaves:N` (N vectors of 256 floats: the compile sweep)."""
    if regime.startswith("leaves:"):
        return _trees.leaves(int(regime.split(":")[1]), 256, seed=1)
    return _trees.regime_trees(quick=False, wanted={regime})[regime]


def _sample(make, params) -> tuple[float, float, int, int, int]:
    tx = make()
    state = jax.eval_shape(tx.init, params)
    gc.collect()
    t0 = h.now()
    lowered = h.lower_step(tx, params, state, params)
    t1 = h.now()
    compiled = lowered.compile()
    t2 = h.now()
    return (
        t1 - t0,
        t2 - t1,
        len(lowered.as_text()),
        h.count_fusions(compiled),
        h.count_distinct_kernels(compiled),
    )


def measure(regime: str, ids: list[str], samples: int, clock_name: str) -> dict:
    """case id -> lower/compile seconds per sample for each library, paired ratios, HLO size, fusions."""
    h.set_clock(clock_name)
    params = regime_params(regime)
    _sample(lambda: optax.sgd(0.1), {"w": jnp.ones(8)})  # the process's first-compile costs
    out = {}
    for i, cid in enumerate(ids):
        case = _cases.CASES_BY_ID[cid]
        pairs = [("sharpax", case.sharpax), ("optax", case.optax)]
        runs: dict[str, list] = {"sharpax": [], "optax": []}
        for r in range(samples):
            for label, make in pairs if (r + i) % 2 == 0 else pairs[::-1]:
                runs[label].append(_sample(make, params))
        total = {k: [s[0] + s[1] for s in v] for k, v in runs.items()}
        out[cid] = {
            "lower_s": {k: float(np.median([s[0] for s in v])) for k, v in runs.items()},
            "xla_s": {k: float(np.median([s[1] for s in v])) for k, v in runs.items()},
            "compile_s": {k: float(np.median(v)) for k, v in total.items()},
            "samples": total,
            "vs_optax": h.paired_ratio(total["sharpax"], total["optax"]),
            "stablehlo_chars": {k: v[0][2] for k, v in runs.items()},
            "fusions": {k: v[0][3] for k, v in runs.items()},
            "kernels": {k: v[0][4] for k, v in runs.items()},
        }
    return out


def run_isolated(regime: str, ids: list[str], samples: int, clock: str) -> dict:
    """`measure` in a fresh Python process (what `run.py` calls)."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.compile_probe",
        "--regime",
        regime,
        "--optimizers",
        *ids,
    ]
    cmd += ["--samples", str(samples), "--clock", clock, "--json", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(proc.stdout)


def main() -> None:
    assert __doc__ is not None, "the --help text is this docstring; only python -OO strips it"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regime", default="leaves:100", help="a run.py regime, or leaves:N")
    ap.add_argument("--optimizers", nargs="+", default=["adam"], choices=list(_cases.CASES_BY_ID))
    ap.add_argument("--samples", type=int, default=5)
    h.add_clock_argument(ap, default="process")
    ap.add_argument("--json", help="write the results as JSON to this path ('-' for stdout)")
    args = ap.parse_args()
    res = measure(args.regime, args.optimizers, args.samples, args.clock)
    if args.json == "-":
        json.dump(res, sys.stdout)
        return
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    print(f"{args.regime}, {args.samples} samples each, {args.clock} clock")
    print(
        "| optimizer | sharpax lower + XLA (s) | optax lower + XLA (s) | sharpax/optax | StableHLO chars "
        "| fusions | distinct kernels |"
    )
    print("|---|---|---|---|---|---|---|")
    for cid, r in res.items():
        lo, xla, v = r["lower_s"], r["xla_s"], r["vs_optax"]
        print(
            f"| {cid} | {lo['sharpax']:.2f} + {xla['sharpax']:.2f} | {lo['optax']:.2f} + {xla['optax']:.2f} "
            f"| {v['ratio']:.3f} [{v['p25']:.2f}-{v['p75']:.2f}] | "
            f"{r['stablehlo_chars']['sharpax']} / {r['stablehlo_chars']['optax']} | "
            f"{r['fusions']['sharpax']} / {r['fusions']['optax']} | "
            f"{r['kernels']['sharpax']} / {r['kernels']['optax']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
