"""SAM-family step times, side by side in one process: ratios against a plain step and optax.contrib.sam.

    python -m benchmarks.bench_sam [--tree mlp --hidden 512 --batch 256 --rounds 15 --clock process]
    python -m benchmarks.bench_sam --tree transformer --batch 8 --seq 64 --rounds 5 --steps 3
    python -m benchmarks.bench_sam --suite efficient [--tree transformer ...]
    python -m benchmarks.bench_sam --sections memory   # microbatches=4 vs 1 only
    python -m benchmarks.bench_sam --only "adam,momentum_sam(adam)"   # a subset of the variants

Results go to `benchmarks/results/<device>/bench_sam[_efficient]_<tree>.json` unless `--out` says
otherwise.

Trees: `mlp` (a ReLU MLP on random inputs, 10 classes) and `transformer` (the Flax Transformer LM of
`_trees.py`, next-token loss on random tokens).

Every variant is a jitted training step (forward, backward, optimizer, apply) with the params and optimizer
state donated. Variants are timed by `_harness.interleaved` after a warm-up of 2k steps: every round runs
`--steps` steps of each variant (a multiple of k, so every sample holds the same number of SAM steps), in
an order shuffled every round, so that load on a shared machine hits all alike. A time is the median
per-step time over rounds; a ratio is the median of the per-round ratios with its interquartile range.
Targets (issue 3): sam_value_and_grad+adam <= 2.15x adam; sharpax.sam(adam) <= 1.0x optax.contrib.sam
(opaque mode); looksam and periodic_sam (k=5) <= 1.35x adam. The second generation (issue 14) is reported
against adam and against sharpax.sam(adam): friendly_sam and wsam (both modes) around adam, and bsam (a
whole optimizer; its step computes no first-pass loss, as its two passes run inside `update`). Issue 15:
momentum_sam <= 1.15x a plain step of its base optimizer (adam, sgd with momentum); ae_sam's average cost
(the ratio of mean step times over the run: its SAM steps cluster late, so per-round ratios depend on
when a round ran) with its fraction of SAM steps, and, with thresholds it never reaches, the policy alone.
`momentum_sam(base, <form>)` are other programs for momentum_sam's numbers (`_momentum_sam_forms.py`),
timed beside it.

Page faults per step are printed too: XLA:CPU allocates a step's temporary buffers on every execution,
and glibc serves blocks above its mmap threshold with fresh pages, so steps with larger temporaries (a
SAM second pass, even a skipped one) pay page faults a longer-lived heap would not. To time the steps
without them: MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 python ...

`--suite efficient` (issue 15) times the cheap members against adam instead: rwp_value_and_grad's one
vmapped pass (target <= 1.3x a plain full-batch step; also with an `rbg` key, and as two separate
half-batch passes; both forms again without the noise draw, to split its extra cost), and ESAM with
its selection fraction gamma (a forward-backward, a forward at w + e and gamma of a forward-backward),
next to ESAM at beta = gamma = 1 and SAM. Named in `--only`, other programs for RWP's gradient too:
its pass with a paired Box-Muller draw (`bench_normal.paired_box_muller`, one threefry call per two
elements), the two half passes with it, and the vmapped pass with the mix folded into the cotangents.

The memory section (`_sam_memory.py`) compiles a SAM + Adam step with `microbatches=4` and 1 on the MLP
and the Transformer LM of `_trees.py` and reports XLA's compiled memory analysis (issue 14: the peak must
drop).
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import re
import statistics

import jax
import jax.numpy as jnp
import optax
import optax.contrib

import sharpax
from benchmarks import _harness as h
from benchmarks import _trees
from benchmarks._momentum_sam_forms import FORMS, check_same_numbers, momentum_sam_form
from benchmarks.bench_normal import paired_box_muller
from sharpax._random import box_muller_normal
from sharpax.wrappers._sam_geometry import filter_noise_perturb

RHO, LR, K = 0.05, 1e-3, 5
RWP_GAMMA, RWP_ALPHA = 0.01, 0.5  # nblt/RWP's CIFAR defaults
ESAM_BETA, ESAM_GAMMA = 0.5, 0.5  # dydjw9/Efficient_SAM's run.sh
MOMENTUM_RHO = 0.5  # momentum-SAM's rho is of order 1 (its perturbation is not scaled by the lr)


def init_mlp(key, sizes):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp_per_example_loss(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    logits = h @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


def mlp_loss(params, x, y):
    return mlp_per_example_loss(params, x, y).mean()


def mlp_problem(args):
    """(params, loss_fn, x, y, description, per-example loss) of the MLP tree."""
    sizes = [args.inputs] + [args.hidden] * args.layers + [10]
    x = jax.random.normal(jax.random.key(1), (args.batch, args.inputs))
    y = jax.random.randint(jax.random.key(2), (args.batch,), 0, 10)
    make_params = lambda: init_mlp(jax.random.key(0), sizes)
    return make_params, mlp_loss, x, y, f"MLP {sizes}", mlp_per_example_loss


def transformer_problem(args):
    """(params, loss_fn, x, y, description, per-example loss) of the Transformer LM tree, next-token
    cross-entropy (an example is a sequence)."""
    model = _trees.transformer_lm()

    def per_sequence(params, tokens, targets):
        logits = model.apply({"params": params}, tokens)
        assert isinstance(logits, jax.Array), "without mutable=, apply returns the output alone"
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(axis=1)

    loss = lambda params, tokens, targets: per_sequence(params, tokens, targets).mean()
    tokens = jax.random.randint(jax.random.key(1), (args.batch, args.seq), 0, 4096)
    targets = jnp.roll(tokens, -1, axis=1)
    n = sum(x.size for x in jax.tree.leaves(_trees.transformer_params()))
    description = f"Transformer LM ({n:,} floats), {args.seq} tokens per sequence"
    return _trees.transformer_params, loss, tokens, targets, description, per_sequence


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


def bsam_step(tx, loss_fn):
    def step(params, state, x, y):
        grad_fn = lambda p: jax.grad(loss_fn)(p, x, y)
        updates, state = tx.update(None, state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state, jnp.zeros([])

    return step


# Momentum-SAM's two bases, each timed plain too.
MOMENTUM_BASES = {
    "adam": lambda: sharpax.adam(LR),
    "sgd_momentum": lambda: sharpax.sgd(1e-2, momentum=0.9),
}


def variants(loss_fn, total_steps):
    adam, sgd_momentum = MOMENTUM_BASES["adam"], MOMENTUM_BASES["sgd_momentum"]
    optax_sam = optax.contrib.sam(
        adam(),
        optax.chain(optax.contrib.normalize(), optax.sgd(RHO)),
        sync_period=2,
        opaque_mode=True,
    )
    transformed = {
        "sharpax.sam(adam)": sharpax.sam(adam(), RHO),
        f"looksam(adam, k={K})": sharpax.looksam(adam(), RHO, K),
        f"periodic_sam(adam, k={K})": sharpax.periodic_sam(adam(), RHO, K),
        "friendly_sam(adam)": sharpax.friendly_sam(adam(), RHO),
        "wsam(adam)": sharpax.wsam(adam(), LR, RHO),
        "wsam(adam, coupled)": sharpax.wsam(adam(), LR, RHO, decouple=False),
        "ae_sam(adam)": sharpax.ae_sam(adam(), RHO, total_steps=total_steps),
        # Thresholds no squared norm reaches: the policy's own cost, on plain steps only.
        "ae_sam(adam, never SAM)": sharpax.ae_sam(
            adam(), RHO, total_steps=total_steps, lambda1=1e6, lambda2=1e6
        ),
    }
    one_pass = {
        "sgd_momentum": sgd_momentum(),
        "momentum_sam(adam)": sharpax.momentum_sam(adam(), MOMENTUM_RHO),
        "momentum_sam(sgd_momentum)": sharpax.momentum_sam(sgd_momentum(), MOMENTUM_RHO),
        # Other programs for the same numbers (_momentum_sam_forms.py).
        **{
            f"momentum_sam({name}, {form})": momentum_sam_form(make(), MOMENTUM_RHO, form)
            for name, make in MOMENTUM_BASES.items()
            for form in FORMS
        },
    }
    bsam = sharpax.bsam(LR, num_data=50_000, rho=RHO)
    return {
        "adam": (adam(), plain_step(adam(), loss_fn)),
        "sam_value_and_grad+adam": (adam(), sam_value_and_grad_step(adam(), loss_fn)),
        **{name: (tx, transform_step(tx, loss_fn)) for name, tx in transformed.items()},
        "optax.contrib.sam(adam, opaque)": (optax_sam, transform_step(optax_sam, loss_fn, True)),
        "bsam": (bsam, bsam_step(bsam, loss_fn)),
        **{name: (tx, plain_step(tx, loss_fn)) for name, tx in one_pass.items()},
    }


# The cheap members (issue 15): a step is `step(params, state, x, y, key)`.


def keyed_step(tx, grad_fn, takes_key=True):
    def step(params, state, x, y, key):
        loss, grads = grad_fn(params, x, y, key=key) if takes_key else grad_fn(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def rwp_two_passes(loss_fn, gamma, alpha, noise=True, draw=box_muller_normal):
    """RWP's gradient as two separate half-batch passes (what the one vmapped pass replaces); without
    `noise`, both halves at w: the half-batch passes and the mix alone, so that the differences of the
    timings split RWP's extra cost into the noise, the halving of the batch and the vmap."""

    def grad_fn(params, x, y, key):
        (x0, x1), (y0, y1) = jnp.split(x, 2), jnp.split(y, 2)
        noisy = (
            filter_noise_perturb("bench", params, key, gamma, -1, None, draw) if noise else params
        )
        value, g0 = jax.value_and_grad(loss_fn)(params, x0, y0)
        g1 = jax.grad(loss_fn)(noisy, x1, y1)
        return value, jax.tree.map(lambda a, b: (1 - alpha) * a + alpha * b, g0, g1)

    return grad_fn


def rwp_one_pass(loss_fn, gamma, alpha, draw=box_muller_normal, mix_in_cotangents=False):
    """rwp_value_and_grad's vmapped pass written out, with another normal draw, or with the mix folded
    into the two losses' cotangents and a sum over the stacked gradients (a form XLA could compile to
    one weight-gradient matmul over both halves instead of two and a mix): other programs for the
    same gradient, timed against the library's."""

    def grad_fn(params, x, y, key):
        noisy = filter_noise_perturb("bench", params, key, gamma, -1, None, draw)
        both = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, noisy)
        halves = (x.reshape(2, -1, *x.shape[1:]), y.reshape(2, -1, *y.shape[1:]))
        if mix_in_cotangents:
            values, vjp = jax.vjp(lambda p: jax.vmap(loss_fn)(p, *halves), both)
            (grads,) = vjp(jnp.array([1 - alpha, alpha], values.dtype))
            return values[0], jax.tree.map(lambda g: jnp.sum(g, axis=0), grads)
        values, grads = jax.vmap(jax.value_and_grad(loss_fn))(both, *halves)
        return values[0], jax.tree.map(lambda g: (1 - alpha) * g[0] + alpha * g[1], grads)

    return grad_fn


RWP_OTHER_PROGRAMS = (  # timed only when --only names them
    "rwp paired draw+adam",
    "rwp two half passes paired draw+adam",
    "rwp mix in cotangents+adam",
)
ESAM_NAME = f"esam(b={ESAM_BETA},g={ESAM_GAMMA})+adam"
RWP_BREAKDOWN = (
    "rwp two half passes without noise+adam",
    "rwp one vmapped pass without noise+adam",
)


def efficient_variants(loss_fn, per_example_loss):
    """name -> (optimizer, step, key implementation), against a plain adam step."""
    adam = lambda: sharpax.adam(LR)
    plain = plain_step(adam(), loss_fn)
    rwp = sharpax.rwp_value_and_grad(loss_fn, RWP_GAMMA, RWP_ALPHA)
    esam = lambda beta, gamma: sharpax.esam_value_and_grad(per_example_loss, RHO, beta, gamma)
    sam = sharpax.sam_value_and_grad(loss_fn, RHO)
    threefry = "threefry2x32"
    return {
        "adam": (adam(), lambda p, s, x, y, key: plain(p, s, x, y), threefry),
        "rwp+adam": (adam(), keyed_step(adam(), rwp), threefry),
        "rwp+adam (rbg key)": (adam(), keyed_step(adam(), rwp), "rbg"),
        "rwp two half passes+adam": (
            adam(),
            keyed_step(adam(), rwp_two_passes(loss_fn, RWP_GAMMA, RWP_ALPHA)),
            threefry,
        ),
        RWP_BREAKDOWN[0]: (
            adam(),
            keyed_step(adam(), rwp_two_passes(loss_fn, RWP_GAMMA, RWP_ALPHA, noise=False)),
            threefry,
        ),
        # A mask that perturbs no leaf: the library's vmapped pass over (w, w), no draw compiled in.
        RWP_BREAKDOWN[1]: (
            adam(),
            keyed_step(
                adam(),
                sharpax.rwp_value_and_grad(
                    loss_fn, RWP_GAMMA, RWP_ALPHA, mask=lambda p: jax.tree.map(lambda _: False, p)
                ),
            ),
            threefry,
        ),
        # Other programs for RWP's gradient (results/gpu_h200: none is cheaper there).
        "rwp paired draw+adam": (
            adam(),
            keyed_step(adam(), rwp_one_pass(loss_fn, RWP_GAMMA, RWP_ALPHA, paired_box_muller)),
            threefry,
        ),
        "rwp two half passes paired draw+adam": (
            adam(),
            keyed_step(
                adam(), rwp_two_passes(loss_fn, RWP_GAMMA, RWP_ALPHA, draw=paired_box_muller)
            ),
            threefry,
        ),
        "rwp mix in cotangents+adam": (
            adam(),
            keyed_step(adam(), rwp_one_pass(loss_fn, RWP_GAMMA, RWP_ALPHA, mix_in_cotangents=True)),
            threefry,
        ),
        ESAM_NAME: (adam(), keyed_step(adam(), esam(ESAM_BETA, ESAM_GAMMA)), threefry),
        "esam(b=1,g=1)+adam": (adam(), keyed_step(adam(), esam(1.0, 1.0), False), threefry),
        "sam_value_and_grad+adam": (adam(), keyed_step(adam(), sam, False), threefry),
    }


def state_bytes(state) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(state))


def main() -> None:
    assert __doc__ is not None, "the --help text is this docstring; only python -OO strips it"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", choices=["mlp", "transformer"], default="mlp")
    parser.add_argument(
        "--suite",
        choices=["family", "efficient"],
        default="family",
        help="the SAM family, or the cheap members (RWP, ESAM)",
    )
    parser.add_argument("--seq", type=int, default=64, help="transformer: tokens per sequence")
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps per timing (a multiple of k)")
    parser.add_argument("--rounds", type=int, default=15)
    h.add_clock_argument(parser, default="wall")
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="write the results as JSON here (default: bench_sam_<tree>.json, or "
        "bench_sam_efficient_<tree>.json, in benchmarks/results/<device>/)",
    )
    parser.add_argument(
        "--dump-hlo",
        type=pathlib.Path,
        default=None,
        help="write each timed variant's optimised HLO (the compiled step, after fusion) to this "
        "folder, one text file per variant: the kernels of a GPU run, to read after the lease",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated variant names to time (default: all of the suite; a comma inside a "
        "name's parentheses is part of it); ratios whose two sides are not both timed are left out",
    )
    parser.add_argument(
        "--sections",
        default=None,
        help="comma-separated: timing, memory (microbatches); default both, timing for --suite efficient",
    )
    args = parser.parse_args()
    h.set_clock(args.clock)
    suite = "" if args.suite == "family" else f"_{args.suite}"
    args.out = args.out or h.results_dir() / f"bench_sam{suite}_{args.tree}.json"
    default_sections = "timing" if args.suite == "efficient" else "timing,memory"
    sections = set((args.sections or default_sections).split(","))
    results = {}
    if "timing" in sections:
        results.update(timing(args))
    if "memory" in sections:
        from benchmarks import _sam_memory

        print("peak memory of a SAM + Adam step, microbatches=4 vs 1 (compiled memory analysis):")
        results["memory"] = _sam_memory.run()
    if results:
        meta = h.run_meta("benchmarks.bench_sam")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**meta, **results}, indent=2) + "\n")
        print("wrote", args.out)


def timing(args) -> dict:
    """The step-time comparison: every variant in interleaved rounds; returns what --out records."""
    problem = mlp_problem if args.tree == "mlp" else transformer_problem
    make_params, loss_fn, x, y, description, per_example_loss = problem(args)
    total_steps = 2 * K + args.rounds * args.steps
    if args.suite == "family":
        chosen = {
            name: (tx, step, None) for name, (tx, step) in variants(loss_fn, total_steps).items()
        }
    else:
        chosen = efficient_variants(loss_fn, per_example_loss)
    if args.only:
        # Commas inside parentheses belong to a name: "esam(b=0.5,g=0.5)+adam".
        wanted = [name.strip() for name in re.split(r",(?![^()]*\))", args.only)]
        unknown = sorted(set(wanted) - set(chosen))
        if unknown:
            raise SystemExit(f"--only: unknown variants {unknown}; the suite has {sorted(chosen)}")
        chosen = {name: chosen[name] for name in wanted}
    else:
        chosen = {name: v for name, v in chosen.items() if name not in RWP_OTHER_PROGRAMS}
    for (base, make), form in itertools.product(MOMENTUM_BASES.items(), FORMS):
        name = f"momentum_sam({base}, {form})"
        if name in chosen:  # the same numbers, or it is not timed (the rest of the run goes on)
            try:
                check_same_numbers(
                    chosen[name][0], make(), MOMENTUM_RHO, loss_fn, make_params(), x, y
                )
            except AssertionError as error:
                print(f"{name}: left out, its numbers differ from momentum_sam's:\n{error}")
                del chosen[name]
    runners, faults, state_sizes, temp_sizes, ae_sam = {}, {}, {}, {}, None
    for name, (tx, step, key_impl) in chosen.items():
        params = make_params()
        state = tx.init(params)
        state_sizes[name] = state_bytes(state)
        faults[name] = []
        # A fresh key per step, made before timing (a step's key costs no host work).
        keys = None
        if key_impl is not None:
            keys = list(jax.random.split(jax.random.key(0, impl=key_impl), max(args.steps, 2 * K)))
        key_arg = () if keys is None else (keys[0],)
        compiled = (
            jax.jit(step, donate_argnums=(0, 1)).lower(params, state, x, y, *key_arg).compile()
        )
        # XLA:CPU allocates a step's temporaries on every execution (the page faults above glibc's
        # mmap threshold): their size is part of the explanation of a CPU ratio.
        m = compiled.memory_analysis()
        assert m is not None, "XLA's CPU, GPU and TPU compilers all report a memory analysis"
        temp_sizes[name] = int(m.temp_size_in_bytes)
        if args.dump_hlo is not None:
            args.dump_hlo.mkdir(parents=True, exist_ok=True)
            file_name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") + ".hlo.txt"
            (args.dump_hlo / file_name).write_text(compiled.as_text() or "")
        runner = h.StepRunner(compiled, (params, state), x, y, cycle=keys)
        runners[name] = h.with_page_faults(runner, faults[name])
        if name == "ae_sam(adam)":
            ae_sam = runner

    for run in runners.values():  # compile and warm up, a whole number of periods
        run(2 * K)
    sam_steps = lambda: 0 if ae_sam is None else int(ae_sam.carry[1].sam_count)
    sam_steps_in_warmup = sam_steps()
    samples = h.interleaved(runners, args.rounds, 0.0, warmup=0, steps=args.steps)

    median = {name: h.median(v) for name, v in samples.items()}
    ratio = lambda a, b: (
        h.paired_ratio(samples[a], samples[b]) if {a, b} <= samples.keys() else None
    )
    faults_per_step = {name: h.median(f[-args.rounds :]) for name, f in faults.items()}
    extra = {}
    if args.suite == "efficient":
        selected = int(ESAM_GAMMA * args.batch)
        ratios = {
            "rwp+adam / adam (target <= 1.3)": ratio("rwp+adam", "adam"),
            "rwp+adam (rbg key) / adam": ratio("rwp+adam (rbg key)", "adam"),
            "rwp two half passes / rwp one vmapped pass": ratio(
                "rwp two half passes+adam", "rwp+adam"
            ),
            "rwp two half passes without noise / adam (the halves and the mix)": ratio(
                RWP_BREAKDOWN[0], "adam"
            ),
            "rwp two half passes / the same without noise (the draw)": ratio(
                "rwp two half passes+adam", RWP_BREAKDOWN[0]
            ),
            "rwp one vmapped pass without noise / adam": ratio(RWP_BREAKDOWN[1], "adam"),
            "rwp paired draw / rwp": ratio(RWP_OTHER_PROGRAMS[0], "rwp+adam"),
            "rwp two half passes paired draw / rwp two half passes": ratio(
                RWP_OTHER_PROGRAMS[1], "rwp two half passes+adam"
            ),
            "rwp mix in cotangents / rwp": ratio(RWP_OTHER_PROGRAMS[2], "rwp+adam"),
            f"{ESAM_NAME} / adam (selects {selected} of {args.batch})": ratio(ESAM_NAME, "adam"),
            "esam(b=1,g=1)+adam / adam (SAM's two passes)": ratio("esam(b=1,g=1)+adam", "adam"),
            "sam_value_and_grad+adam / adam": ratio("sam_value_and_grad+adam", "adam"),
        }
    else:
        sam_tx, optax_sam = "sharpax.sam(adam)", "optax.contrib.sam(adam, opaque)"
        looksam, periodic = f"looksam(adam, k={K})", f"periodic_sam(adam, k={K})"
        ratios = {
            "sam_value_and_grad+adam / adam (target <= 2.15)": ratio(
                "sam_value_and_grad+adam", "adam"
            ),
            "sharpax.sam(adam) / optax.contrib.sam opaque (target <= 1.0)": ratio(
                sam_tx, optax_sam
            ),
            "sharpax.sam(adam) / adam": ratio(sam_tx, "adam"),
            f"looksam(k={K}) / adam (target <= 1.35)": ratio(looksam, "adam"),
            f"periodic_sam(k={K}) / adam (target <= 1.35)": ratio(periodic, "adam"),
        }
        for name in ("friendly_sam(adam)", "wsam(adam)", "wsam(adam, coupled)", "bsam"):
            ratios[f"{name} / adam"] = ratio(name, "adam")
            ratios[f"{name} / sharpax.sam(adam)"] = ratio(name, sam_tx)
        ratios["momentum_sam(adam) / adam (target <= 1.15)"] = ratio("momentum_sam(adam)", "adam")
        ratios["momentum_sam(sgd_momentum) / sgd_momentum (target <= 1.15)"] = ratio(
            "momentum_sam(sgd_momentum)", "sgd_momentum"
        )
        for base, form in itertools.product(MOMENTUM_BASES, FORMS):
            name = f"momentum_sam({base}, {form})"
            ratios[f"{name} / {base}"] = ratio(name, base)
            ratios[f"{name} / momentum_sam({base})"] = ratio(name, f"momentum_sam({base})")
        ratios["ae_sam(adam, never SAM) / adam"] = ratio("ae_sam(adam, never SAM)", "adam")
    ratios = {name: r for name, r in ratios.items() if r is not None}
    if ae_sam is not None and "adam" in samples and "sharpax.sam(adam) / adam" in ratios:
        # The fraction of SAM steps among the timed ones (`sharpax.ae_sam_fraction` counts the warm-up too),
        # and the average cost: mean step times over the run (see the module docstring).
        fraction = (sam_steps() - sam_steps_in_warmup) / (args.rounds * args.steps)
        mean = lambda name: statistics.fmean(samples[name])
        ae_average = mean("ae_sam(adam)") / mean("adam")
        ae_expected = 1 + fraction * (ratios["sharpax.sam(adam) / adam"]["ratio"] - 1)
        extra = {"ae_sam_fraction": fraction, "ae_sam_mean_ratio": ae_average}
    device = jax.devices()[0]
    print(
        f"device: {device.platform} {device.device_kind}, {description}, batch {args.batch}, "
        f"{args.rounds} rounds x {args.steps} steps, {args.clock} clock"
    )
    for name, times in samples.items():
        spread = (min(times) * 1e3, max(times) * 1e3)
        print(
            f"  {name:34s} {median[name] * 1e3:8.3f} ms/step  (min {spread[0]:.3f}, max {spread[1]:.3f})"
            f"  state {state_sizes[name]:>10,d} B  temp {temp_sizes[name] / 1e6:6.1f} MB"
            f"  {faults_per_step[name]:8.0f} page faults/step"
        )
    if extra:
        print(
            f"  ae_sam(adam): SAM on {fraction:.1%} of steps; mean step time over the run "
            f"{ae_average:.3f}x adam's; 1 + fraction x (sam/adam - 1) = {ae_expected:.3f}x"
        )
    print(f"  {'ratio (median of per-round ratios [interquartile range])':64s}")
    for name, r in ratios.items():
        print(f"  {name:64s} {r['ratio']:7.3f}x [{r['p25']:.3f}-{r['p75']:.3f}]")
    return {
        "tree": description,
        "suite": args.suite,
        "batch": args.batch,
        "rounds": args.rounds,
        "steps": args.steps,
        "median_ms": {k: v * 1e3 for k, v in median.items()},
        "state_bytes": state_sizes,
        "temp_bytes": temp_sizes,
        "page_faults_per_step": faults_per_step,
        **extra,
        "ratios": ratios,
    }


if __name__ == "__main__":
    main()
