"""The Gaussian draws of RWP, BSAM and the sharpness directions: sharpax's against `jax.random.normal`.

    python -m benchmarks.bench_normal [--rounds 15 --clock process --out FILE]

`sharpax._random.normal` returns `jax.random.normal`'s numbers bit for bit; on XLA:CPU, JAX runs
threefry's rounds as a loop over whole arrays, sharpax as straight-line code XLA fuses. For each tree
(the efficient suite's MLP 256-512-512-10, or `--mlp` widths, and the Flax Transformer LM of
`_trees.py`; `--trees` picks them), one jitted function draws a standard normal array shaped like every
leaf, from `jax.random.split(key, n)`, as RWP does. Timed: `jax.random.normal`, sharpax's `normal`, the two halves of sharpax's (the bits alone,
and the uniform-to-normal map alone on uniforms already drawn), and `box_muller_normal` (RWP's draw:
the same threefry words, mapped by Box-Muller instead of `erf_inv`), and a candidate not in the
library, `paired_box_muller` (one threefry call per two elements), interleaved by `_harness.interleaved`;
per-float times, the ratio to `jax.random.normal` (median of per-round ratios, interquartile range) and
each draw's compile time. Results go to `benchmarks/results/<device>/bench_normal.json` unless `--out`
says otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import _harness as h
from benchmarks import _trees
from sharpax import _random


def _bits(key, shape, dtype):
    del dtype  # the bits are uint32
    return _random._threefry_bits(jax.random.key_data(key), shape)


def paired_box_muller(key, shape, dtype):
    """A candidate, not in the library: one threefry call per two elements, as torch pairs them.

    Element i < m = ceil(n / 2) takes r cos(2 pi u2) of call i, element m + i its r sin(2 pi u2) (the
    cosine a quarter turn back, exactly in the integer angle): half of the threefry work, if the
    compiler keeps the two halves in one pass instead of recomputing each call for each half.
    """
    del dtype  # float32
    n = math.prod(shape)
    first, second = _random._threefry_words_per_element(jax.random.key_data(key), ((n + 1) // 2,))
    radius = _random._box_muller_radius(first)
    cosine = _random._cos_two_pi(second)
    sine = _random._cos_two_pi(second - np.uint32(2**30))  # cos(2 pi (u - 1/4)) = sin(2 pi u)
    return jnp.concatenate([radius * cosine, radius * sine])[:n].reshape(shape)


def draws(shapes: list[tuple[int, ...]]) -> dict:
    """name -> a jitted draw of one array per shape, and its argument."""
    n = len(shapes)
    low = np.nextafter(np.float32(-1.0), np.float32(0.0))
    uniforms = [
        jax.random.uniform(k, s, jnp.float32, low, 1.0)
        for k, s in zip(jax.random.split(jax.random.key(1), n), shapes, strict=True)
    ]

    def each(sample):
        return jax.jit(
            lambda key: [
                sample(k, s, jnp.float32)
                for k, s in zip(jax.random.split(key, n), shapes, strict=True)
            ]
        )

    return {
        "jax.random.normal": (each(jax.random.normal), jax.random.key(0)),
        "sharpax normal": (each(_random.normal), jax.random.key(0)),
        "sharpax bits alone": (each(_bits), jax.random.key(0)),
        "sharpax box_muller_normal": (each(_random.box_muller_normal), jax.random.key(0)),
        "paired box-muller (candidate)": (each(paired_box_muller), jax.random.key(0)),
        "uniform to normal alone": (
            jax.jit(lambda us: [np.float32(math.sqrt(2)) * lax.erf_inv(u) for u in us]),
            uniforms,
        ),
    }


class DrawRunner:
    def __init__(self, fn, arg):
        t0 = time.perf_counter()
        self.compiled = fn.lower(arg).compile()
        self.compile_s = time.perf_counter() - t0
        self.arg = arg

    def __call__(self, k: int) -> float:
        t0 = h.now()
        for _ in range(k):
            out = self.compiled(self.arg)
        jax.block_until_ready(out)
        return h.now() - t0


def trees(mlp_widths: tuple[int, ...]) -> dict:
    return {
        "mlp": lambda: _trees.mlp_model(mlp_widths)[1],
        "transformer": _trees.transformer_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--target-ms", type=float, default=20.0, help="length of one sample")
    parser.add_argument("--out", default=None)
    parser.add_argument("--trees", default="mlp,transformer", help="which trees, comma-separated")
    parser.add_argument(
        "--mlp",
        default="256,512,512,10",
        help="the MLP's layer widths (the GPU suite's: 1024,4096,4096,4096,4096,10)",
    )
    h.add_clock_argument(parser, "process")
    args = parser.parse_args()
    h.set_clock(args.clock)
    results = {**h.run_meta("benchmarks.bench_normal"), "trees": {}}
    widths = tuple(int(w) for w in args.mlp.split(","))
    known = trees(widths)
    chosen = args.trees.split(",")
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise SystemExit(f"--trees: unknown trees {unknown}; the choices are {sorted(known)}")
    for tree_name, build in known.items():
        if tree_name not in chosen:
            continue
        shapes = [tuple(x.shape) for x in jax.tree.leaves(build())]
        floats = sum(math.prod(s) for s in shapes)
        runners = {name: DrawRunner(fn, arg) for name, (fn, arg) in draws(shapes).items()}
        samples = h.interleaved(runners, args.rounds, args.target_ms / 1e3)
        base = "jax.random.normal"
        rows = {
            name: {
                "ns_per_float": h.median(samples[name]) / floats * 1e9,
                "ms_per_draw": h.median(samples[name]) * 1e3,
                "vs_jax_random_normal": h.paired_ratio(samples[name], samples[base]),
                "compile_s": runners[name].compile_s,
            }
            for name in runners
        }
        results["trees"][tree_name] = {"leaves": len(shapes), "floats": floats, "draws": rows}
        print(
            f"{tree_name}: {len(shapes)} leaves, {floats:,} floats, {h.clock_name(args.clock)} clock"
        )
        for name, row in rows.items():
            r = row["vs_jax_random_normal"]
            print(
                f"  {name:30s} {row['ns_per_float']:7.3f} ns/float {row['ms_per_draw']:8.3f} ms  "
                f"{r['ratio']:.3f}x "
                f"[{r['p25']:.3f}-{r['p75']:.3f}]  compile {row['compile_s']:.2f} s"
            )
    out = args.out or h.results_dir() / "bench_normal.json"
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
