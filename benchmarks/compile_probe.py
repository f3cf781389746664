"""Compile time of one jitted training step, sharpax vs optax, each sample in isolation.

`python benchmarks/compile_probe.py --leaves 100 1000 --optimizers adam amsgrad --samples 5`

Lowering (tracing to StableHLO) and XLA compilation are timed separately, alternating which library goes
first, and the medians are printed with the StableHLO size and the number of XLA fusions. A fresh process
that does nothing else gives steadier compile timings than the long-lived `run.py` sweep.
"""

from __future__ import annotations

import argparse
import time

import _harness as h  # benchmarks/ is on sys.path when this script runs
import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax

FACTORIES = {
    "adam": (lambda: sharpax.adam(1e-3), lambda: optax.adam(1e-3)),
    "amsgrad": (lambda: sharpax.adam(1e-3, amsgrad=True), lambda: optax.amsgrad(1e-3)),
    "sgd_momentum": (lambda: sharpax.sgd(0.1, momentum=0.9), lambda: optax.sgd(0.1, momentum=0.9)),
    "lion": (lambda: sharpax.lion(1e-4), lambda: optax.lion(1e-4, weight_decay=0.0)),
}


def _sample(make, params):
    tx = make()
    state = jax.eval_shape(tx.init, params)
    t0 = time.perf_counter()
    lowered = jax.jit(h.make_step(tx), donate_argnums=(0, 1)).lower(params, state, params)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(lowered.as_text()), h.count_fusions(compiled)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--optimizers", nargs="+", default=["adam", "amsgrad"], choices=FACTORIES)
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()
    print(
        "| optimizer | leaves | sharpax lower + compile (s) | optax lower + compile (s) | ratio | StableHLO chars sharpax / optax | fusions |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.optimizers:
        for n in args.leaves:
            params = {f"l{i:05d}": jnp.zeros((256,)) for i in range(n)}
            runs = {"sharpax": [], "optax": []}
            pairs = list(zip(runs, FACTORIES[name], strict=True))
            for r in range(args.samples):
                for label, make in pairs if r % 2 == 0 else pairs[::-1]:
                    runs[label].append(_sample(make, params))
            s, o = np.array(runs["sharpax"]), np.array(runs["optax"])
            ts, to = np.median(s[:, 0] + s[:, 1]), np.median(o[:, 0] + o[:, 1])
            print(
                f"| {name} | {n} | {np.median(s[:, 0]):.2f} + {np.median(s[:, 1]):.2f} | "
                f"{np.median(o[:, 0]):.2f} + {np.median(o[:, 1]):.2f} | {ts / to:.3f} | "
                f"{int(s[0, 2])} / {int(o[0, 2])} | {int(s[0, 3])} / {int(o[0, 3])} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
