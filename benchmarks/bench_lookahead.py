"""Per-step time of sharpax.lookahead against optax.lookahead and against the bare inner optimizer.

    python -m benchmarks.bench_lookahead [--width 1024 --depth 4 --rounds 30 --clock process --per-step]

On a shared CPU, less noisy: one core, one XLA thread, process CPU time:

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        taskset -c 0 python -m benchmarks.bench_lookahead --clock process

Each variant is a jitted `(params, state, grads) -> (params, state)` step with the params and the state
donated, on an MLP-shaped param tree, with fixed gradients (the optimizer step alone is timed). Variants
are timed by `_harness.interleaved`: after `--warmup` rounds, every round runs `2 * sync_period`
consecutive steps of each (two syncs included), in an order shuffled every round. A time is the median
per-step time over rounds; a ratio is the median of the per-round ratios with its interquartile range.
`--per-step` also times single steps, split into the step after a sync, the other non-sync steps, and
the sync step. Results go to `benchmarks/results/<device>/bench_lookahead.json` unless `--out` says
otherwise.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax
from benchmarks import _harness as h


def mlp_params(width: int, depth: int, n_in: int = 784, n_out: int = 10) -> dict:
    sizes = [n_in, *([width] * depth), n_out]
    key = jax.random.key(0)
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        key, sub = jax.random.split(key)
        params[f"layer{i}"] = {
            "w": jax.random.normal(sub, (a, b)) / jnp.sqrt(a),
            "b": jnp.zeros(b),
        }
    return params


def make_step(tx: optax.GradientTransformation):
    # optax.lookahead also takes the gradients of the fast params as a plain tree.
    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def variants(sync_period: int, alpha: float, lr: float) -> dict:
    """name -> (transform, params wrapper for the init): optax.lookahead needs LookaheadParams."""
    fast_only = None
    # init_synced would alias fast and slow, and a buffer cannot be donated twice.
    as_pair = lambda p: optax.LookaheadParams(fast=p, slow=jax.tree.map(jnp.copy, p))
    return {
        "sharpax.lookahead(sharpax.adam)": (
            sharpax.lookahead(sharpax.adam(lr), sync_period, alpha),
            fast_only,
        ),
        "sharpax.lookahead(optax.adam)": (
            sharpax.lookahead(optax.adam(lr), sync_period, alpha),
            fast_only,
        ),
        "optax.lookahead(optax.adam)": (
            optax.lookahead(optax.adam(lr), sync_period, alpha),
            as_pair,
        ),
        "sharpax.adam": (sharpax.adam(lr), fast_only),
        "optax.adam": (optax.adam(lr), fast_only),
    }


def main() -> None:
    assert __doc__ is not None, "the --help text is this docstring; only python -OO strips it"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--sync-period", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="rounds of warm-up, untimed")
    parser.add_argument("--per-step", action="store_true", help="also time sync / non-sync steps")
    h.add_clock_argument(parser, default="wall")
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="write the results as JSON here (default: bench_lookahead.json in benchmarks/results/<device>/)",
    )
    args = parser.parse_args()
    h.set_clock(args.clock)
    out = args.out or h.results_dir() / "bench_lookahead.json"

    base = mlp_params(args.width, args.depth)
    n_params = sum(x.size for x in jax.tree.leaves(base))
    grads = jax.tree.map(lambda x: jnp.sin(x) * 1e-2 + 1e-3, base)
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
        f"{jax.devices()[0].device_kind}; {n_params / 1e6:.2f}M float32 params, "
        f"sync_period {args.sync_period}, {args.clock} clock"
    )

    runners = {}
    for name, (tx, wrap) in variants(args.sync_period, args.alpha, 1e-3).items():
        params = jax.tree.map(jnp.copy, base)
        params = wrap(params) if wrap is not None else params
        runners[name] = h.StepRunner(make_step(tx), (params, tx.init(params)), grads)

    # A sample is two sync periods (two syncs included); warm-up and samples keep every runner at the
    # start of a period, which the per-step split relies on.
    block = 2 * args.sync_period
    samples = h.interleaved(runners, args.rounds, 0.0, warmup=args.warmup * block, steps=block)
    medians = {name: h.median(v) for name, v in samples.items()}
    print(f"\nper-step time, median of {args.rounds} rounds of {block} steps (quartiles):")
    for name, m in medians.items():
        lo, hi = np.percentile(samples[name], [25, 75])
        print(f"  {name:34s} {m * 1e3:8.3f} ms   ({lo * 1e3:.3f} .. {hi * 1e3:.3f})")

    ratios = {
        "sharpax.lookahead(sharpax.adam) / optax.lookahead(optax.adam) (target <= 1.05)": (
            "sharpax.lookahead(sharpax.adam)",
            "optax.lookahead(optax.adam)",
        ),
        "sharpax.lookahead(optax.adam) / optax.lookahead(optax.adam) (same inner: the wrappers alone)": (
            "sharpax.lookahead(optax.adam)",
            "optax.lookahead(optax.adam)",
        ),
        "sharpax.lookahead(sharpax.adam) / sharpax.adam (target <= 1.10)": (
            "sharpax.lookahead(sharpax.adam)",
            "sharpax.adam",
        ),
        "sharpax.lookahead(optax.adam) / optax.adam": (
            "sharpax.lookahead(optax.adam)",
            "optax.adam",
        ),
        "optax.lookahead(optax.adam) / optax.adam": ("optax.lookahead(optax.adam)", "optax.adam"),
    }
    ratios = {k: h.paired_ratio(samples[a], samples[b]) for k, (a, b) in ratios.items()}
    print("\nratios (median of per-round ratios [interquartile range]):")
    for name, r in ratios.items():
        print(f"  {name:96s} {r['ratio']:.3f} [{r['p25']:.3f}-{r['p75']:.3f}]")
    results = {
        **h.run_meta("benchmarks.bench_lookahead"),
        "params": int(n_params),
        "sync_period": args.sync_period,
        "rounds": args.rounds,
        "steps": block,
        "median_ms": {k: v * 1e3 for k, v in medians.items()},
        "ratios": ratios,
    }

    if args.per_step:
        results["per_step_ms"] = per_step(runners, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", out)


def per_step(runners: dict, args) -> dict:
    """Median time of single steps (blocking after each) by their place in the period: the step after a
    sync (lookahead copies the params into its state), the other non-sync steps (the inner optimizer's
    cost, plus the slow-weight read if XLA keeps it), the sync step. Round by round, shuffled order."""
    kinds = ("after sync", "other", "sync")
    kind_of = lambda i: "sync" if i == args.sync_period - 1 else "after sync" if i == 0 else "other"
    per: dict[str, dict[str, list[float]]] = {name: {k: [] for k in kinds} for name in runners}
    rng = np.random.default_rng(0)
    names = list(runners)
    for r in range(args.warmup + args.rounds):
        for name in rng.permutation(names):
            for i in range(args.sync_period):
                elapsed = runners[name](1)
                if r >= args.warmup:
                    per[name][kind_of(i)].append(elapsed)
    print("\nsingle steps (blocking after each), median ms: " + " / ".join(kinds))
    out = {}
    for name, d in per.items():
        out[name] = {k: h.median(d[k]) * 1e3 for k in kinds if d[k]}
        cells = " / ".join(f"{out[name][k]:8.3f}" if k in out[name] else "-" for k in kinds)
        print(f"  {name:34s} {cells}")
    return out


if __name__ == "__main__":
    main()
