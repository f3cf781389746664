"""SAM-family step times, side by side in one process: ratios against a plain step and optax.contrib.sam.

    PYTHONPATH=. python benchmarks/bench_sam.py [--trees mlp,transformer --rounds 15 --out benchmarks/results/sam.json]

Two trees: an MLP ([256, 512, 512, 10], batch 256) and the Flax Transformer LM of `_trees.py` (5.3M floats,
69 leaves; 4 sequences of 32 tokens, next-token loss). Every variant is a jitted training step (forward,
backward, optimizer, apply) with the params and optimizer state donated. The variants of a tree are timed
in interleaved rounds (a different order each round) after warm-up, and the median per-step time over
rounds is reported, so that load on a shared machine hits all alike; ratios are the median over rounds of
per-round ratios (the two variants ran back to back), and ratios of minima.
Targets (issue 3): sam_value_and_grad+adam <= 2.15x adam; sharpax.sam(adam) <= 1.0x optax.contrib.sam
(opaque mode); looksam and periodic_sam (k=5) <= 1.35x adam. Issue 15: momentum_sam <= 1.15x a plain
step of its base optimizer; ae_sam's average cost reported with its fraction of SAM steps (and, with
thresholds it never reaches, the cost of the policy alone).

Page faults per step are printed too: XLA:CPU allocates a step's temporary buffers on every execution,
and glibc serves blocks above its mmap threshold with fresh pages, so steps with larger temporaries (a
SAM second pass, even one that is skipped) pay page faults a longer-lived heap would not. To time the
steps without them: MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 python ...
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import resource
import statistics
import time

import _trees
import jax
import jax.numpy as jnp
import optax
import optax.contrib

import sharpax

RHO, LR, K = 0.05, 1e-3, 5
MOMENTUM_RHO = 0.5  # momentum-SAM's rho is of order 1 (its perturbation is not scaled by the lr)


def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp_loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def mlp_problem(args):
    sizes = [args.inputs] + [args.hidden] * args.layers + [10]
    x = jax.random.normal(jax.random.key(1), (args.batch, args.inputs))
    y = jax.random.randint(jax.random.key(2), (args.batch,), 0, 10)
    description = f"MLP {sizes}, batch {args.batch}"
    return description, lambda: init_mlp(jax.random.key(0), sizes), mlp_loss, (x, y)


def transformer_problem(args):
    model = _trees.transformer_lm()

    def lm_loss(params, tokens, _):
        logits = model.apply({"params": params}, tokens[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    tokens = jax.random.randint(jax.random.key(3), (args.lm_batch, args.lm_seq + 1), 0, 4096)
    description = (
        f"Flax Transformer LM (5.3M floats, 69 leaves), {args.lm_batch} x {args.lm_seq} tokens"
    )
    return description, _trees.transformer_params, lm_loss, (tokens, None)


def plain_step(tx, loss_fn):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def sam_value_and_grad_step(tx, loss_fn):
    sam_grad = sharpax.sam_value_and_grad(loss_fn, RHO)

    def step(params, state, x, y):
        loss, grads = sam_grad(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def transform_step(tx, loss_fn, grad_fn_takes_index=False):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        if grad_fn_takes_index:  # optax.contrib.sam's opaque mode calls grad_fn(params, i)
            grad_fn = lambda p, _: jax.grad(loss_fn)(p, x, y)
        else:
            grad_fn = lambda p: jax.grad(loss_fn)(p, x, y)
        updates, state = tx.update(grads, state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state, loss

    return step


def variants(loss_fn, total_steps, full=True):
    """name -> (optimizer, step). `full`: also the issue-3 variants (the MLP only, by default)."""
    adam = lambda: sharpax.adam(LR)
    sgd_momentum = lambda: sharpax.sgd(1e-2, momentum=0.9)
    plain = lambda tx: (tx, plain_step(tx, loss_fn))
    transform = lambda tx: (tx, transform_step(tx, loss_fn))
    out = {
        "adam": plain(adam()),
        "sgd_momentum": plain(sgd_momentum()),
        "sharpax.sam(adam)": transform(sharpax.sam(adam(), RHO)),
        "momentum_sam(adam)": plain(sharpax.momentum_sam(adam(), MOMENTUM_RHO)),
        "momentum_sam(sgd_momentum)": plain(sharpax.momentum_sam(sgd_momentum(), MOMENTUM_RHO)),
        "ae_sam(adam)": transform(sharpax.ae_sam(adam(), RHO, total_steps=total_steps)),
        # Thresholds no squared norm reaches: the policy's own cost, on plain steps only.
        "ae_sam(adam, never SAM)": transform(
            sharpax.ae_sam(adam(), RHO, total_steps=total_steps, lambda1=1e6, lambda2=1e6)
        ),
    }
    if full:
        optax_sam = optax.contrib.sam(
            adam(),
            optax.chain(optax.contrib.normalize(), optax.sgd(RHO)),
            sync_period=2,
            opaque_mode=True,
        )
        out.update(
            {
                "sam_value_and_grad+adam": (adam(), sam_value_and_grad_step(adam(), loss_fn)),
                "optax.contrib.sam(adam, opaque)": (
                    optax_sam,
                    transform_step(optax_sam, loss_fn, True),
                ),
                f"looksam(adam, k={K})": transform(sharpax.looksam(adam(), RHO, K)),
                f"periodic_sam(adam, k={K})": transform(sharpax.periodic_sam(adam(), RHO, K)),
            }
        )
    return out


def state_bytes(state) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(state))


def run_tree(problem, args, clock, full):
    description, make_params, loss_fn, (x, y) = problem
    warmup = 2 * K
    total_steps = warmup + args.rounds * args.steps
    runs = {}
    for name, (tx, step) in variants(loss_fn, total_steps, full).items():
        params = make_params()
        state = tx.init(params)
        runs[name] = {
            "step": jax.jit(step, donate_argnums=(0, 1)),
            "carry": (params, state),
            "state_bytes": state_bytes(state),
            "times": [],
            "faults": [],
        }

    def timed(run, steps):
        params, state = run["carry"]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = clock()
        for _ in range(steps):
            params, state, loss = run["step"](params, state, x, y)
        jax.block_until_ready((params, state, loss))
        elapsed = clock() - start
        run["faults"].append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps)
        run["carry"] = (params, state)
        return elapsed / steps

    for run in runs.values():  # compile and warm up
        timed(run, warmup)
    sam_steps = lambda: int(runs["ae_sam(adam)"]["carry"][1].sam_count)
    sam_steps_in_warmup = sam_steps()
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name]["times"].append(timed(runs[name], args.steps))

    median = {name: statistics.median(run["times"]) for name, run in runs.items()}

    def ratio(a, b):
        """Median over rounds of the per-round ratio (a and b ran back to back), and the ratio of minima."""
        per_round = [ta / tb for ta, tb in zip(runs[a]["times"], runs[b]["times"], strict=True)]
        return statistics.median(per_round), min(runs[a]["times"]) / min(runs[b]["times"])

    # The fraction of SAM steps among the timed ones (`sharpax.ae_sam_fraction` counts the warm-up too).
    fraction = (sam_steps() - sam_steps_in_warmup) / (args.rounds * args.steps)
    sam_ratio = ratio("sharpax.sam(adam)", "adam")
    ratios = {
        "sharpax.sam(adam) / adam": sam_ratio,
        "momentum_sam(adam) / adam (target <= 1.15)": ratio("momentum_sam(adam)", "adam"),
        "momentum_sam(sgd_momentum) / sgd_momentum (target <= 1.15)": ratio(
            "momentum_sam(sgd_momentum)", "sgd_momentum"
        ),
        "ae_sam(adam, never SAM) / adam": ratio("ae_sam(adam, never SAM)", "adam"),
    }
    if full:
        sam_tx, optax_sam = "sharpax.sam(adam)", "optax.contrib.sam(adam, opaque)"
        looksam, periodic = f"looksam(adam, k={K})", f"periodic_sam(adam, k={K})"
        ratios = {
            "sam_value_and_grad+adam / adam (target <= 2.15)": ratio(
                "sam_value_and_grad+adam", "adam"
            ),
            "sharpax.sam(adam) / optax.contrib.sam opaque (target <= 1.0)": ratio(
                sam_tx, optax_sam
            ),
            **ratios,
            f"looksam(k={K}) / adam (target <= 1.35)": ratio(looksam, "adam"),
            f"periodic_sam(k={K}) / adam (target <= 1.35)": ratio(periodic, "adam"),
        }
    print(f"{description}, {args.rounds} rounds x {args.steps} steps, {args.clock} clock")
    # Page faults per step: XLA:CPU allocates its temporary buffers on every execution, and glibc serves
    # large blocks with fresh mmaps, so a step with larger temporaries also pays their first touch.
    faults = {name: statistics.median(run["faults"][-args.rounds :]) for name, run in runs.items()}
    for name, run in runs.items():
        spread = (min(run["times"]) * 1e3, max(run["times"]) * 1e3)
        print(
            f"  {name:34s} {median[name] * 1e3:8.3f} ms/step  (min {spread[0]:.3f}, max {spread[1]:.3f})"
            f"  state {run['state_bytes']:>10,d} B  {faults[name]:8.0f} page faults/step"
        )
    # ae_sam's SAM steps cluster where its threshold is low (late in the run, by default), so a round's
    # ratio depends on when the round ran: its average cost is the ratio of mean step times over the run.
    # Against it, what it would cost if its plain steps were adam steps and its SAM steps sam(adam) steps.
    mean = lambda name: statistics.fmean(runs[name]["times"])
    average = mean("ae_sam(adam)") / mean("adam")
    expected = 1 + fraction * (sam_ratio[0] - 1)
    print(
        f"  ae_sam(adam): SAM on {fraction:.1%} of steps; mean step time over the run {average:.3f}x "
        f"adam's; 1 + fraction x (sam/adam - 1) = {expected:.3f}x"
    )
    print(f"  {'ratio':64s} {'median of per-round':>20s} {'of minima':>10s}")
    for name, (paired, of_minima) in ratios.items():
        print(f"  {name:64s} {paired:19.3f}x {of_minima:9.3f}x")
    return {
        "description": description,
        "rounds": args.rounds,
        "steps": args.steps,
        "median_ms": {k: v * 1e3 for k, v in median.items()},
        "state_bytes": {k: run["state_bytes"] for k, run in runs.items()},
        "page_faults_per_step": faults,
        "ae_sam_fraction": fraction,
        "ae_sam_mean_ratio": average,
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trees", default="mlp,transformer", help="comma-separated: mlp, transformer"
    )
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lm-batch", type=int, default=4, help="Transformer: sequences per batch")
    parser.add_argument("--lm-seq", type=int, default=32, help="Transformer: tokens per sequence")
    parser.add_argument("--steps", type=int, default=10, help="steps per timing (a multiple of k)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--clock",
        choices=["wall", "process"],
        default="wall",
        help="wall time, or this process's CPU time (steadier on a CPU shared with other jobs)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write the results as JSON")
    args = parser.parse_args()

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    device = jax.devices()[0]
    print(f"device: {device.platform} {device.device_kind}, jax {jax.__version__}")
    problems = {"mlp": mlp_problem, "transformer": transformer_problem}
    results = {}
    for tree in args.trees.split(","):
        results[tree] = run_tree(problems[tree](args), args, clock, full=tree == "mlp")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "device": f"{device.platform} {device.device_kind}",
                    "host": platform.node(),
                    "jax": jax.__version__,
                    "clock": args.clock,
                    "trees": results,
                },
                indent=2,
            )
            + "\n"
        )
        print("wrote", args.out)


if __name__ == "__main__":
    main()
