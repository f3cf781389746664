"""Per-step time of sharpax.lookahead against optax.lookahead and against the bare inner optimizer.

    PYTHONPATH=$PWD python benchmarks/bench_lookahead.py [--width 1024 --depth 4 --rounds 30]

On a shared CPU, less noisy: one core, one XLA thread, process CPU time:

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" PYTHONPATH=$PWD \
        taskset -c 0 python benchmarks/bench_lookahead.py --clock cpu

Each variant is a jitted `(params, state, grads) -> (params, state)` step with the params and the state
donated, on an MLP-shaped param tree, with fixed gradients (the optimizer step alone is timed). Variants
run interleaved, round after round, so that load on a shared machine hits them alike; a round times
`2 * sync_period` consecutive steps of each (two syncs included), and we report the median per-step time
over the rounds after warm-up, and the ratios. `--per-step` also times single steps, split into
the step after a sync, the other non-sync steps, and the sync step.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import sharpax


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--sync-period", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--per-step", action="store_true", help="also time sync / non-sync steps")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time, less disturbed by other processes on a shared machine",
    )
    args = parser.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    base = mlp_params(args.width, args.depth)
    n_params = sum(x.size for x in jax.tree.leaves(base))
    grads = jax.tree.map(lambda x: jnp.sin(x) * 1e-2 + 1e-3, base)
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
        f"{jax.devices()[0].device_kind}; {n_params / 1e6:.2f}M float32 params, "
        f"sync_period {args.sync_period}, {args.clock} clock"
    )

    runs = {}
    for name, (tx, wrap) in variants(args.sync_period, args.alpha, 1e-3).items():
        params = jax.tree.map(jnp.copy, base)
        params = wrap(params) if wrap is not None else params
        step = make_step(tx)
        state = tx.init(params)
        runs[name] = [step, params, state]

    block = 2 * args.sync_period
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.warmup + args.rounds):
        for name, run in runs.items():
            step, params, state = run
            jax.block_until_ready((params, state))
            t0 = clock()
            for _ in range(block):
                params, state = step(params, state, grads)
            jax.block_until_ready((params, state))
            elapsed = (clock() - t0) / block
            run[1], run[2] = params, state
            if r >= args.warmup:
                samples[name].append(elapsed)

    medians = {name: statistics.median(v) for name, v in samples.items()}
    spread = {
        name: (statistics.quantiles(v, n=4)[0], statistics.quantiles(v, n=4)[2])
        for name, v in samples.items()
    }
    print(f"\nper-step time, median of {args.rounds} rounds of {block} steps (quartiles):")
    for name, m in medians.items():
        lo, hi = spread[name]
        print(f"  {name:34s} {m * 1e3:8.3f} ms   ({lo * 1e3:.3f} .. {hi * 1e3:.3f})")

    ours = medians["sharpax.lookahead(sharpax.adam)"]
    print("\nratios (target in brackets):")
    print(
        f"  sharpax.lookahead(sharpax.adam) / optax.lookahead(optax.adam): "
        f"{ours / medians['optax.lookahead(optax.adam)']:.3f}  [<= 1.05]"
    )
    print(
        f"  sharpax.lookahead(optax.adam)   / optax.lookahead(optax.adam): "
        f"{medians['sharpax.lookahead(optax.adam)'] / medians['optax.lookahead(optax.adam)']:.3f}"
        "  (same inner: the wrappers alone)"
    )
    print(
        f"  sharpax.lookahead(sharpax.adam) / sharpax.adam: {ours / medians['sharpax.adam']:.3f}  [<= 1.10]"
    )
    print(
        f"  sharpax.lookahead(optax.adam)   / optax.adam:   "
        f"{medians['sharpax.lookahead(optax.adam)'] / medians['optax.adam']:.3f}"
    )

    if args.per_step:
        # Steps of a period: the one after a sync (lookahead copies the params into its state), the other
        # non-sync steps (the inner optimizer's cost, plus the slow-weight read if XLA keeps it), the sync.
        kinds = ("after sync", "other", "sync")
        per: dict[str, dict[str, list[float]]] = {}
        for r in range(args.warmup + args.rounds):
            for name, run in runs.items():
                step, params, state = run
                for i in range(args.sync_period):
                    jax.block_until_ready((params, state))
                    t0 = clock()
                    params, state = step(params, state, grads)
                    jax.block_until_ready((params, state))
                    if r >= args.warmup:
                        kind = (
                            "sync"
                            if i == args.sync_period - 1
                            else "after sync"
                            if i == 0
                            else "other"
                        )
                        per.setdefault(name, {k: [] for k in kinds})[kind].append(clock() - t0)
                run[1], run[2] = params, state
        print("\nsingle steps (blocking after each), median ms: " + " / ".join(kinds))
        for name, d in per.items():
            cells = " / ".join(
                f"{statistics.median(d[k]) * 1e3:8.3f}" if d[k] else "-" for k in kinds
            )
            print(f"  {name:34s} {cells}")


if __name__ == "__main__":
    main()
