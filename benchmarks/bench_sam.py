"""SAM-family step times, side by side in one process: ratios against a plain step and optax.contrib.sam.

    PYTHONPATH=. python benchmarks/bench_sam.py [--hidden 512 --batch 256 --rounds 15 --out benchmarks/results/sam.json]

Every variant is a jitted training step (forward, backward, optimizer, apply) with the params and optimizer
state donated. Variants are timed in interleaved rounds (a different order each round) after warm-up, and
the median per-step time over rounds is reported, so that load on a shared machine hits all alike; ratios
are the median over rounds of per-round ratios (the two variants ran back to back), and ratios of minima.
Targets (issue 3): sam_value_and_grad+adam <= 2.15x adam; sharpax.sam(adam) <= 1.0x optax.contrib.sam
(opaque mode); looksam and periodic_sam (k=5) <= 1.35x adam.

The cheap members (issue 15), on the MLP and on the Flax Transformer LM of `_trees.py` (`--trees`):
rwp_value_and_grad's vmapped step <= 1.3x a plain full-batch step; ESAM's cost reported with its
selection fraction gamma (its step is a full forward-backward, a forward, and gamma of a forward-backward).
`--suites family,efficient` picks the sections.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import optax
import optax.contrib

import sharpax
from sharpax.wrappers._sam_geometry import filter_noise_perturb

RHO, LR, K = 0.05, 1e-3, 5
RWP_GAMMA, RWP_ALPHA = 0.01, 0.5  # nblt/RWP's CIFAR defaults
ESAM_BETA, ESAM_GAMMA = 0.5, 0.5  # dydjw9/Efficient_SAM's run.sh


def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def loss_fn(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def per_example_loss_fn(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def plain_step(tx):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def sam_value_and_grad_step(tx):
    sam_grad = sharpax.sam_value_and_grad(loss_fn, RHO)

    def step(params, state, x, y):
        loss, grads = sam_grad(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def transform_step(tx, grad_fn_takes_index=False):
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        if grad_fn_takes_index:  # optax.contrib.sam's opaque mode calls grad_fn(params, i)
            grad_fn = lambda p, _: jax.grad(loss_fn)(p, x, y)
        else:
            grad_fn = lambda p: jax.grad(loss_fn)(p, x, y)
        updates, state = tx.update(grads, state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state, loss

    return step


def variants():
    adam = lambda: sharpax.adam(LR)
    optax_sam = optax.contrib.sam(
        adam(),
        optax.chain(optax.contrib.normalize(), optax.sgd(RHO)),
        sync_period=2,
        opaque_mode=True,
    )
    return {
        "adam": (adam(), plain_step(adam())),
        "sam_value_and_grad+adam": (adam(), sam_value_and_grad_step(adam())),
        "sharpax.sam(adam)": (sharpax.sam(adam(), RHO), transform_step(sharpax.sam(adam(), RHO))),
        "optax.contrib.sam(adam, opaque)": (optax_sam, transform_step(optax_sam, True)),
        f"looksam(adam, k={K})": (
            sharpax.looksam(adam(), RHO, K),
            transform_step(sharpax.looksam(adam(), RHO, K)),
        ),
        f"periodic_sam(adam, k={K})": (
            sharpax.periodic_sam(adam(), RHO, K),
            transform_step(sharpax.periodic_sam(adam(), RHO, K)),
        ),
    }


# The cheap members (issue 15). A step is `step(params, state, *batch, key)`; the plain ones ignore the key.


def keyed(step):
    return lambda params, state, *batch_and_key: step(params, state, *batch_and_key[:-1])


def grad_step(tx, grad_fn, takes_key=True):
    def step(params, state, *batch_and_key):
        *batch, key = batch_and_key
        loss, grads = grad_fn(params, *batch, key=key) if takes_key else grad_fn(params, *batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def rwp_two_passes(loss, gamma, alpha):
    """RWP's gradient as two separate half-batch passes (what the one vmapped pass replaces)."""

    def grad_fn(params, *batch, key):
        halves = [jax.tree.map(lambda x, i=i: jnp.split(x, 2)[i], batch) for i in (0, 1)]
        noisy = filter_noise_perturb("bench", params, key, gamma, -1, None)
        value, g0 = jax.value_and_grad(loss)(params, *halves[0])
        g1 = jax.grad(loss)(noisy, *halves[1])
        return value, jax.tree.map(lambda a, b: (1 - alpha) * a + alpha * b, g0, g1)

    return grad_fn


def efficient_variants(loss, per_example_loss):
    """name -> (optimizer, step, key impl) for the cheap members on one tree, against adam."""
    adam = lambda: sharpax.adam(LR)
    esam = lambda beta, gamma: sharpax.esam_value_and_grad(per_example_loss, RHO, beta, gamma)
    rwp = sharpax.rwp_value_and_grad(loss, RWP_GAMMA, RWP_ALPHA)
    return {
        "adam": (adam(), keyed(plain_step_of(loss, adam())), "threefry2x32"),
        "rwp+adam": (adam(), grad_step(adam(), rwp), "threefry2x32"),
        "rwp+adam (rbg key)": (adam(), grad_step(adam(), rwp), "rbg"),
        "rwp two half passes+adam": (
            adam(),
            grad_step(adam(), rwp_two_passes(loss, RWP_GAMMA, RWP_ALPHA)),
            "threefry2x32",
        ),
        f"esam(b={ESAM_BETA},g={ESAM_GAMMA})+adam": (
            adam(),
            grad_step(adam(), esam(ESAM_BETA, ESAM_GAMMA)),
            "threefry2x32",
        ),
        "esam(b=1,g=1)+adam": (adam(), grad_step(adam(), esam(1.0, 1.0), False), "threefry2x32"),
        "sam_value_and_grad+adam": (
            adam(),
            grad_step(adam(), sharpax.sam_value_and_grad(loss, RHO), False),
            "threefry2x32",
        ),
    }


def plain_step_of(loss, tx):
    def step(params, state, *batch):
        value, grads = jax.value_and_grad(loss)(params, *batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    return step


def lm_problem(batch, seq):
    """The Flax Transformer LM of `_trees.py`, next-token cross-entropy, random tokens."""
    import _trees

    model, params = _trees.transformer_lm()
    tokens = jax.random.randint(jax.random.key(3), (batch, seq + 1), 0, 4096)

    def per_example(params, tokens):
        logits = model.apply({"params": params}, tokens[:, :-1])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:])
        return ce.mean(axis=1)

    return params, (tokens,), lambda p, t: per_example(p, t).mean(), per_example


def state_bytes(state) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(state))


def run_interleaved(variants_by_name, params_fn, batch, *, steps, rounds, warmup, clock):
    """Build, warm up and time every variant in interleaved rounds (a different order each round)."""
    runs = {}
    for name, (tx, step, impl) in variants_by_name.items():
        params = params_fn()
        state = tx.init(params)
        keys = list(jax.random.split(jax.random.key(0, impl=impl), steps))
        runs[name] = {
            "step": jax.jit(step, donate_argnums=(0, 1)),
            "carry": (params, state),
            "state_bytes": state_bytes(state),
            "keys": keys,
            "times": [],
        }

    def timed(run, n):
        params, state = run["carry"]
        start = clock()
        for i in range(n):
            params, state, loss = run["step"](params, state, *batch, run["keys"][i % steps])
        jax.block_until_ready((params, state, loss))
        run["carry"] = (params, state)
        return (clock() - start) / n

    for run in runs.values():  # compile and warm up
        timed(run, warmup)
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name]["times"].append(timed(runs[name], steps))
    return runs


def ratio(runs, a, b):
    """Median over rounds of the per-round ratio (a and b ran back to back), and the ratio of minima."""
    per_round = [ta / tb for ta, tb in zip(runs[a]["times"], runs[b]["times"], strict=True)]
    return statistics.median(per_round), min(runs[a]["times"]) / min(runs[b]["times"])


def print_runs(runs, ratios):
    for name, run in runs.items():
        spread = (min(run["times"]) * 1e3, max(run["times"]) * 1e3)
        median = statistics.median(run["times"])
        print(
            f"  {name:34s} {median * 1e3:8.3f} ms/step  (min {spread[0]:.3f}, max {spread[1]:.3f})"
            f"  state {run['state_bytes']:>10,d} B"
        )
    print(f"  {'ratio':64s} {'median of per-round':>20s} {'of minima':>10s}")
    for name, (paired, of_minima) in ratios.items():
        print(f"  {name:64s} {paired:19.3f}x {of_minima:9.3f}x")


def efficient_ratios(runs, batch_size):
    k = int(ESAM_GAMMA * batch_size)
    esam = f"esam(b={ESAM_BETA},g={ESAM_GAMMA})+adam"
    return {
        "rwp+adam / adam (target <= 1.3)": ratio(runs, "rwp+adam", "adam"),
        "rwp+adam (rbg key) / adam": ratio(runs, "rwp+adam (rbg key)", "adam"),
        "rwp two half passes / rwp one vmapped pass": ratio(
            runs, "rwp two half passes+adam", "rwp+adam"
        ),
        f"{esam} / adam (selects {k} of {batch_size})": ratio(runs, esam, "adam"),
        "esam(b=1,g=1)+adam / adam (= SAM's two passes)": ratio(runs, "esam(b=1,g=1)+adam", "adam"),
        "sam_value_and_grad+adam / adam": ratio(runs, "sam_value_and_grad+adam", "adam"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps per timing (a multiple of k)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--suites", default="family,efficient", help="family, efficient, or both")
    parser.add_argument("--trees", default="mlp,transformer", help="trees of the efficient suite")
    parser.add_argument("--lm-batch", type=int, default=8, help="sequences per LM batch")
    parser.add_argument("--lm-seq", type=int, default=32, help="tokens per LM sequence")
    parser.add_argument("--lm-steps", type=int, default=2, help="LM steps per timing")
    parser.add_argument(
        "--clock",
        choices=["wall", "process"],
        default="wall",
        help="wall time, or this process's CPU time (steadier on a CPU shared with other jobs)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    suites, trees = args.suites.split(","), args.trees.split(",")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    device = jax.devices()[0]
    results = {
        "device": f"{device.platform} {device.device_kind}",
        "host": platform.node(),
        "jax": jax.__version__,
        "rounds": args.rounds,
        "clock": args.clock,
    }

    sizes = [args.inputs] + [args.hidden] * args.layers + [10]
    x = jax.random.normal(jax.random.key(1), (args.batch, args.inputs))
    y = jax.random.randint(jax.random.key(2), (args.batch,), 0, 10)
    mlp_params = lambda: init_mlp(jax.random.key(0), sizes)

    if "family" in suites:
        family = {
            name: (tx, keyed(step), "threefry2x32") for name, (tx, step) in variants().items()
        }
        runs = run_interleaved(
            family,
            mlp_params,
            (x, y),
            steps=args.steps,
            rounds=args.rounds,
            warmup=2 * K,
            clock=clock,
        )
        sam_tx, optax_sam = "sharpax.sam(adam)", "optax.contrib.sam(adam, opaque)"
        looksam, periodic = f"looksam(adam, k={K})", f"periodic_sam(adam, k={K})"
        ratios = {
            "sam_value_and_grad+adam / adam (target <= 2.15)": ratio(
                runs, "sam_value_and_grad+adam", "adam"
            ),
            "sharpax.sam(adam) / optax.contrib.sam opaque (target <= 1.0)": ratio(
                runs, sam_tx, optax_sam
            ),
            "sharpax.sam(adam) / adam": ratio(runs, sam_tx, "adam"),
            f"looksam(k={K}) / adam (target <= 1.35)": ratio(runs, looksam, "adam"),
            f"periodic_sam(k={K}) / adam (target <= 1.35)": ratio(runs, periodic, "adam"),
        }
        print(
            f"device: {device.platform} {device.device_kind}, MLP {sizes}, batch {args.batch}, "
            f"{args.rounds} rounds x {args.steps} steps, {args.clock} clock"
        )
        print_runs(runs, ratios)
        results.update(
            sizes=sizes,
            batch=args.batch,
            steps=args.steps,
            median_ms={k: statistics.median(r["times"]) * 1e3 for k, r in runs.items()},
            state_bytes={k: r["state_bytes"] for k, r in runs.items()},
            ratios=ratios,
        )

    if "efficient" in suites:
        results["efficient"] = {}
        for tree in trees:
            if tree == "mlp":
                params_fn, batch, steps = mlp_params, (x, y), args.steps
                loss, per_example, batch_size = loss_fn, per_example_loss_fn, args.batch
                title = f"MLP {sizes}, batch {args.batch}"
            else:
                lm_params, batch, loss, per_example = lm_problem(args.lm_batch, args.lm_seq)
                params_fn = lambda p=lm_params: jax.tree.map(
                    jnp.copy, p
                )  # steps donate their params
                steps, batch_size = args.lm_steps, args.lm_batch
                title = f"Flax Transformer LM (69 leaves, 5.3M floats), {args.lm_batch} x {args.lm_seq} tokens"
            runs = run_interleaved(
                efficient_variants(loss, per_example),
                params_fn,
                batch,
                steps=steps,
                rounds=args.rounds,
                warmup=2,
                clock=clock,
            )
            ratios = efficient_ratios(runs, batch_size)
            print(
                f"cheap SAM members on {device.platform}: {title}, {args.rounds} rounds x {steps} steps, {args.clock} clock"
            )
            print_runs(runs, ratios)
            results["efficient"][tree] = {
                "title": title,
                "steps": steps,
                "median_ms": {k: statistics.median(r["times"]) * 1e3 for k, r in runs.items()},
                "ratios": ratios,
                "esam_selected": [int(ESAM_GAMMA * batch_size), batch_size],
            }

    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
