"""Stretch prototype: update leaves of equal shape and dtype as one stacked array (state kept stacked).

`grouped(tx)` stacks the gradient leaves of each (shape, dtype) group, runs `tx` once per group on the
stacked arrays (its state is stacked too), and slices the updates back into the caller's tree. Fewer,
larger kernels per step; the cost is one stack of the gradients and one slice per leaf. Measured against
the plain optimizer, optax and `optax.flatten` (which ravels everything into one vector).
"""

from __future__ import annotations

import time
from typing import cast

import jax
import jax.numpy as jnp
import optax

import sharpax
from benchmarks import _harness as h
from benchmarks import _trees


def _groups(leaves) -> list[list[int]]:
    by_key: dict = {}
    for i, x in enumerate(leaves):
        by_key.setdefault((tuple(x.shape), jnp.dtype(x.dtype).name), []).append(i)
    return list(by_key.values())


def grouped(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` applied to stacked groups of equal-shape, equal-dtype leaves (prototype, benchmarks only)."""

    def stack(tree):
        leaves, treedef = jax.tree.flatten(tree)
        groups = _groups(leaves)
        return [jnp.stack([leaves[i] for i in g]) for g in groups], groups, treedef, len(leaves)

    def init_fn(params):
        return tx.init(stack(params)[0])

    def update_fn(updates, state, params=None):
        stacked, groups, treedef, n = stack(updates)
        stacked_params = None if params is None else stack(params)[0]
        new, state = tx.update(stacked, state, stacked_params)
        out: list[jax.Array | None] = [None] * n
        # optax types updates as any tree; a transformation keeps its input's structure (this list).
        for g, arr in zip(groups, cast(list[jax.Array], new), strict=True):
            for j, i in enumerate(g):
                out[i] = arr[j]
        return jax.tree.unflatten(treedef, out), state

    return optax.GradientTransformation(init_fn, update_fn)


def run(args) -> dict:
    leaf_counts = [200] if args.quick else [1000]
    rows = {}
    for n in leaf_counts:
        params = _trees.leaves(n, 1000)
        grads = jax.tree.map(lambda x: 1e-3 * x + 1e-4, params)
        makers = {
            "sharpax": lambda: sharpax.adam(1e-3),
            "optax": lambda: optax.adam(1e-3),
            "grouped": lambda: grouped(sharpax.adam(1e-3)),
            "optax_flatten": lambda: optax.flatten(optax.adam(1e-3)),
        }
        runners = {}
        for name, make in makers.items():
            t0 = time.perf_counter()
            runners[name] = h.JaxRunner(make(), params, grads)
            print(
                f"  grouped {n} leaves: built {name} in {time.perf_counter() - t0:.1f}s", flush=True
            )
        samples = h.interleaved(runners, args.rounds, args.target_s)
        diff = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(
                jax.tree.leaves(runners["sharpax"].params),
                jax.tree.leaves(runners["grouped"].params),
                strict=True,
            )
        )
        # Both runners took the same number of steps only if their repeat counts matched; compare the
        # trajectories on a fresh pair instead.
        rows[n] = {
            "step_s": {k: h.median(v) for k, v in samples.items()},
            "compile_s": {k: r.compile_s for k, r in runners.items()},
            "vs_optax": {k: h.paired_ratio(samples[k], samples["optax"]) for k in samples},
            "max_abs_diff_after_run": diff,
        }
        row = rows[n]
        print(
            f"  grouped {n} leaves: step/optax "
            + ", ".join(f"{k} {v['ratio']:.2f}" for k, v in row["vs_optax"].items())
            + "; compile s "
            + ", ".join(f"{k} {v:.1f}" for k, v in row["compile_s"].items()),
            flush=True,
        )
        del runners
    md = [
        "## Stretch: grouping equal-shape leaves (Adam, N leaves of 1000 floats)",
        "",
        "Prototype in `benchmarks/_grouped.py`: stack each (shape, dtype) group, update the stack, slice back.",
        "",
        "| leaves | variant | step / optax step | optax / variant (speed-up) | compile s | compile / optax compile |",
        "|---|---|---|---|---|---|",
    ]
    for n, row in rows.items():
        for k, r in row["vs_optax"].items():
            c = row["compile_s"][k]
            md.append(
                f"| {n} | {k} | {r['ratio']:.3f} [{r['p25']:.2f}-{r['p75']:.2f}] | {1 / r['ratio']:.2f}x "
                f"| {c:.1f} | {c / row['compile_s']['optax']:.2f} |"
            )
    md.append("")
    return {"rows": rows, "markdown": md}
