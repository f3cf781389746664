"""Which SAM to pick: every member of the family on the digits problem, tuned the same way, timed together.

For clean labels and 40% label noise, each method's rho (or its equivalent) is chosen on a small grid by
accuracy on a validation split carved from the training set (never the test set), with seed 0; the chosen
value is then retrained on the whole training set from several seeds. Reported per method: test accuracy
(mean and std over seeds), step time relative to SGD (all methods timed in this process, interleaved),
forward-backward passes per step, and the top Hessian eigenvalue of the training loss at the solution.
Every method is SGD with momentum 0.9, weight decay 5e-4 and the digits demo's warmup-cosine rate; only
the gradient it is fed (or the wrapper around it) changes.

    python examples/sam_family.py                  # the study (a few minutes on 2 CPU cores)
    python examples/sam_family.py --quick          # a smoke run: every method, 2 epochs, 1 seed
    python examples/sam_family.py --methods sgd sam rwp --noise 0.4 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax


def _load_digits():
    """The digits demo's data, model and loss (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "_digits_demo", Path(__file__).with_name("digits.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


digits = _load_digits()
loss_fn, init_params = digits.loss_fn, digits.init_params
grad_fn = jax.grad(loss_fn)


def per_example_loss_fn(params, x, y):
    """ESAM ranks examples by how much their own loss rises under the perturbation."""
    logits = digits.MODEL.apply(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y)


# ------------------------------------------------------------------------------------------- methods

Step = Callable[..., tuple[Any, Any, jax.Array]]


@dataclasses.dataclass(frozen=True)
class Method:
    """One member of the family: how to build its step for a hyperparameter value, and its grid.

    `build(value, lr, total_steps)` returns `(init, step, eval_params)`: `init(params) -> state`,
    `step(params, state, x, y, key) -> (params, state, loss)` and `eval_params(params, state)`, the weights
    to evaluate (momentum-SAM's caller holds perturbed ones). `passes(state)` is the forward-backward passes
    per step so far, for the methods that decide per step (None: the nominal `nominal_passes`).
    """

    build: Callable[[float, optax.Schedule, int], tuple[Callable, Step, Callable]]
    grid: tuple[float, ...]
    hyperparameter: str
    nominal_passes: float
    passes: Callable[[Any], Any] | None = None


def _base(lr: optax.Schedule) -> optax.GradientTransformation:
    return sharpax.sgd(lr, momentum=0.9, weight_decay=5e-4)


def _same(params, state):
    return params


def gradient_form(make_value_and_grad: Callable[[float], Callable], keyed: bool = False):
    """A method that changes the gradient only (the `*_value_and_grad` forms), applied by plain SGD."""

    def build(value, lr, total_steps):
        del total_steps
        tx = _base(lr)
        value_and_grad = make_value_and_grad(value)

        def step(params, state, x, y, key):
            extra = {"key": key} if keyed else {}
            loss, grads = value_and_grad(params, x, y, **extra)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        return tx.init, step, _same

    return build


def transformation_form(make_tx: Callable[..., Any], eval_params=_same):
    """A method that wraps the base optimizer (the transformation forms), fed `grad_fn` on the batch.

    `make_tx(base, value, lr, total_steps)` builds it around the base optimizer.
    """

    def build(value, lr, total_steps):
        tx = make_tx(_base(lr), value, lr, total_steps)

        def step(params, state, x, y, key):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, state = tx.update(grads, state, params, grad_fn=lambda p: grad_fn(p, x, y))
            return optax.apply_updates(params, updates), state, loss

        return tx.init, step, eval_params

    return build


SAM_RHOS = (0.02, 0.05, 0.1)
METHODS: dict[str, Method] = {
    "sgd": Method(gradient_form(lambda _: jax.value_and_grad(loss_fn)), (0.0,), "-", 1),
    "sam": Method(
        gradient_form(lambda rho: sharpax.sam_value_and_grad(loss_fn, rho)), SAM_RHOS, "rho", 2
    ),
    "asam": Method(
        gradient_form(
            lambda rho: sharpax.sam_value_and_grad(loss_fn, rho, adaptive=True, eta=0.01)
        ),
        (0.2, 0.5, 1.0),
        "rho",
        2,
    ),
    "gsam": Method(
        gradient_form(lambda rho: sharpax.gsam_value_and_grad(loss_fn, rho, alpha=0.1)),
        SAM_RHOS,
        "rho",
        2,
    ),
    "looksam": Method(
        transformation_form(lambda base, rho, lr, _: sharpax.looksam(base, rho, k=5, alpha=0.7)),
        SAM_RHOS,
        "rho",
        1.2,
    ),
    "periodic_sam": Method(
        transformation_form(lambda base, rho, lr, _: sharpax.periodic_sam(base, rho, k=5)),
        SAM_RHOS,
        "rho",
        1.2,
    ),
    "friendly_sam": Method(
        transformation_form(
            lambda base, rho, lr, _: sharpax.friendly_sam(base, rho, sigma=1.0, lmbda=0.9)
        ),
        SAM_RHOS,
        "rho",
        2,
    ),
    "wsam": Method(
        transformation_form(lambda base, rho, lr, _: sharpax.wsam(base, lr, rho, gamma=0.9)),
        SAM_RHOS,
        "rho",
        2,
    ),
    # One pass: the ascent direction is the momentum buffer, so rho is on its scale (MSAM's grids).
    "momentum_sam": Method(
        transformation_form(
            lambda base, rho, lr, _: sharpax.momentum_sam(base, rho),
            eval_params=lambda params, state: sharpax.momentum_sam_params(state, params),
        ),
        (0.1, 0.3, 1.0),
        "rho",
        1,
    ),
    # One pass over the batch: the clean gradient on one half, the noisy one on the other, vmapped.
    "rwp": Method(
        gradient_form(lambda gamma: sharpax.rwp_value_and_grad(loss_fn, gamma), keyed=True),
        (0.005, 0.01, 0.02),
        "gamma",
        1,
    ),
    # The second pass on the half of the batch whose loss rose most: 1.5 passes.
    "esam": Method(
        gradient_form(
            lambda rho: sharpax.esam_value_and_grad(per_example_loss_fn, rho, beta=0.5, gamma=0.5),
            keyed=True,
        ),
        SAM_RHOS,
        "rho",
        1.5,
    ),
    "ae_sam": Method(
        transformation_form(
            lambda base, rho, lr, total_steps: sharpax.ae_sam(base, rho, total_steps=total_steps)
        ),
        SAM_RHOS,
        "rho",
        1.5,
        passes=lambda state: 1 + sharpax.ae_sam_fraction(state),
    ),
}


# ---------------------------------------------------------------------------------------------- data


def split_validation(x, y, fraction: float = 0.2):
    """The last `fraction` of the (already shuffled) training set as a validation split."""
    n_val = int(len(y) * fraction)
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


# ------------------------------------------------------------------------------------------ training


@functools.cache
def compiled_epoch(name: str, n_train: int, epochs: int, batch_size: int, peak_lr: float):
    """One jitted epoch of a method (shuffle, then `lax.scan` its step over the minibatches).

    The hyperparameter is an argument of the jitted function, so the grid search and the seeds reuse one
    compilation per method and training-set size.
    """
    method = METHODS[name]
    steps = n_train // batch_size
    lr = digits.warmup_cosine(peak_lr, epochs * steps)

    def epoch(params, state, x, y, key, value):
        _, step, _ = method.build(value, lr, epochs * steps)

        def body(carry, batch):
            params, state = carry
            idx, step_key = batch
            params, state, loss = step(params, state, x[idx], y[idx], step_key)
            return (params, state), loss

        order_key, step_key = jax.random.split(key)
        idx = jax.random.permutation(order_key, x.shape[0])[: steps * batch_size]
        keys = jax.random.split(step_key, steps)
        (params, state), losses = jax.lax.scan(
            body, (params, state), (idx.reshape(steps, batch_size), keys)
        )
        return params, state, jnp.mean(losses)

    return jax.jit(epoch), lr


@dataclasses.dataclass
class Trained:
    params: Any
    state: Any
    eval_params: Callable


def start(name: str, value: float, x, seed: int, config):
    """Fresh params and optimizer state, the method's jitted epoch, and its evaluation accessor."""
    epoch, lr = compiled_epoch(name, len(x), config.epochs, config.batch_size, config.peak_lr)
    total_steps = config.epochs * (len(x) // config.batch_size)
    init, _, eval_params = METHODS[name].build(value, lr, total_steps)
    key, init_key = jax.random.split(jax.random.key(seed))
    params = init_params(init_key, x[:1])
    return epoch, params, init(params), eval_params, key


def train(name: str, value: float, x, y, seed: int, config) -> Trained:
    epoch, params, state, eval_params, key = start(name, value, x, seed, config)
    x, y, value = jnp.asarray(x), jnp.asarray(y), jnp.asarray(value, jnp.float32)
    for _ in range(config.epochs):
        key, epoch_key = jax.random.split(key)
        params, state, _ = epoch(params, state, x, y, epoch_key, value)
    return Trained(params, state, eval_params)


def accuracy(trained: Trained, x, y) -> float:
    return float(digits.accuracy(trained.eval_params(trained.params, trained.state), x, y))


def top_eigenvalue(params, x, y, key, iterations: int) -> float:
    top_eig, _ = digits.sharpness(params, x, y, key, 0.05, iterations)
    return float(top_eig)


def time_methods(chosen: dict[str, float], x, y, config) -> dict[str, dict[str, float]]:
    """Step time of every method relative to SGD, interleaved in shuffled rounds in this process.

    Each sample is one jitted epoch (its compile excluded); the ratio is the median over rounds of the
    method's epoch time over SGD's in the same round. CPU time of this process counts the work of all its
    threads and is not inflated by other jobs on a shared machine.
    """
    runners = {}
    for name, value in chosen.items():
        epoch, params, state, _, _ = start(name, value, x, 0, config)
        runners[name] = functools.partial(
            epoch, params, state, jnp.asarray(x), jnp.asarray(y), value=jnp.float32(value)
        )
        jax.block_until_ready(runners[name](jax.random.key(0)))  # compiled already; warm
    samples: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    rng = random.Random(0)
    for round_ in range(config.timing_rounds):
        rng.shuffle(order)
        for name in order:
            began = time.process_time()
            jax.block_until_ready(runners[name](jax.random.key(round_)))
            samples[name].append(time.process_time() - began)
    steps = len(y) // config.batch_size
    out = {}
    for name, times in samples.items():
        ratios = np.asarray(times) / np.asarray(samples["sgd"])
        out[name] = {
            "ms_per_step": 1e3 * float(np.median(times)) / steps,
            "vs_sgd": float(np.median(ratios)),
            "vs_sgd_p25": float(np.percentile(ratios, 25)),
            "vs_sgd_p75": float(np.percentile(ratios, 75)),
        }
    return out


# ------------------------------------------------------------------------------------------- study


def run_study(config) -> dict[str, Any]:
    (x_train, y_clean), (x_test, y_test) = digits.load_data()
    results: dict[str, Any] = {"config": vars(config).copy(), "noise": {}}
    for noise in config.noise:
        y_train = digits.add_label_noise(y_clean, noise, seed=0)
        (x_fit, y_fit), (x_val, y_val) = split_validation(x_train, y_train)
        chosen, search = {}, {}
        for name in config.methods:
            method = METHODS[name]
            scores = {
                value: accuracy(train(name, value, x_fit, y_fit, 0, config), x_val, y_val)
                for value in method.grid
            }
            chosen[name] = max(scores, key=scores.get)  # ties: the first (smallest) value
            search[name] = scores
            print(f"noise {noise:.0%} {name:14s} validation {scores} -> {chosen[name]}", flush=True)
        rows = {}
        for name in config.methods:
            method, accs, eigs, passes = METHODS[name], [], [], []
            for seed in config.seeds:
                trained = train(name, chosen[name], x_train, y_train, seed, config)
                accs.append(100 * accuracy(trained, x_test, y_test))
                params = trained.eval_params(trained.params, trained.state)
                eigs.append(
                    top_eigenvalue(
                        params, x_train, y_train, jax.random.key(seed), config.lanczos_iterations
                    )
                )
                if method.passes is not None:
                    passes.append(float(method.passes(trained.state)))
            rows[name] = {
                method.hyperparameter: chosen[name],
                "test_acc": float(np.mean(accs)),
                "test_acc_std": float(np.std(accs)),
                "test_accs": accs,
                "top_eig": float(np.mean(eigs)),
                "passes": float(np.mean(passes)) if passes else float(method.nominal_passes),
                "validation": search[name],
            }
            print(
                f"noise {noise:.0%} {name:14s} test {rows[name]['test_acc']:.2f} "
                f"± {rows[name]['test_acc_std']:.2f}",
                flush=True,
            )
        timing = time_methods(chosen, x_train, y_train, config)
        for name in rows:
            rows[name] |= timing[name]
        results["noise"][f"{noise:g}"] = rows
    return results


def format_table(results: dict[str, Any]) -> str:
    lines = [
        "| label noise | method | chosen | test acc % (mean ± std) | step time vs SGD [IQR] "
        "| passes / step | top Hessian eig |",
        "|" + "---|" * 7,
    ]
    for noise, rows in results["noise"].items():
        for name, r in rows.items():
            hp = METHODS[name].hyperparameter
            chosen = "-" if hp == "-" else f"{hp}={r[hp]:g}"
            lines.append(
                f"| {float(noise):.0%} | {name} | {chosen} | {r['test_acc']:.2f} ± "
                f"{r['test_acc_std']:.2f} | {r['vs_sgd']:.2f}x [{r['vs_sgd_p25']:.2f}, "
                f"{r['vs_sgd_p75']:.2f}] | {r['passes']:.2f} | {r['top_eig']:.1f} |"
            )
    return "\n".join(lines)


def side_by_side_table(results: dict[str, Any]) -> str:
    """The README's table: one row per method, the first two noise levels side by side (clean / noisy)."""
    levels = list(results["noise"])[:2]
    noise = [f"{float(n):.0%}" for n in levels]
    accuracy = [f"test acc % {'clean' if n == '0%' else f'{n} noise'}" for n in noise]
    lines = [
        f"| method | hyperparameter ({' / '.join(noise)}) | {' | '.join(accuracy)} "
        "| step time vs SGD (clean / noisy) | passes / step | top Hessian eig (clean / noisy) |",
        "|" + "---|" * 7,
    ]
    tables = [results["noise"][n] for n in levels]
    for name in tables[0]:
        rows = [t[name] for t in tables]
        hp = METHODS[name].hyperparameter
        chosen = "-" if hp == "-" else f"{hp} " + " / ".join(f"{r[hp]:g}" for r in rows)
        accs = " | ".join(f"{r['test_acc']:.2f} ± {r['test_acc_std']:.2f}" for r in rows)
        cost = " / ".join(f"{r['vs_sgd']:.2f}x" for r in rows)
        passes = " / ".join(f"{r['passes']:.2f}" for r in rows)
        eig = " / ".join(f"{r['top_eig']:.1f}" for r in rows)
        lines.append(f"| {name} | {chosen} | {accs} | {cost} | {passes} | {eig} |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: str, dpi: int) -> None:
    """Test accuracy against step time relative to SGD, one point per method, error bars = 1 std."""
    import matplotlib.pyplot as plt

    panels = list(results["noise"].items())
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, (noise, rows) in zip(axes[0], panels, strict=True):
        for i, (name, r) in enumerate(rows.items()):
            color = plt.get_cmap("tab20")(i % 20)
            ax.errorbar(
                r["vs_sgd"],
                r["test_acc"],
                yerr=r["test_acc_std"],
                xerr=[[r["vs_sgd"] - r["vs_sgd_p25"]], [r["vs_sgd_p75"] - r["vs_sgd"]]],
                fmt="o",
                color=color,
                capsize=3,
                label=name,
            )
            ax.annotate(name, (r["vs_sgd"], r["test_acc"]), fontsize=8, xytext=(4, 4),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlabel("step time relative to SGD (same process; bars: IQR)")
        ax.set_ylabel("test accuracy % (bars: ± 1 std over seeds)")
        ax.set_title(f"label noise {float(noise):.0%}")
        ax.grid(alpha=0.3)
    fig.suptitle("The SAM family on digits: accuracy against cost")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--noise", nargs="+", type=float, default=[0.0, 0.4])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--peak-lr", type=float, default=0.1)
    parser.add_argument("--lanczos-iterations", type=int, default=30)
    parser.add_argument("--timing-rounds", type=int, default=7)
    parser.add_argument(
        "--out", default="out/sam_family", help="folder for the PNG and results.json"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 epochs, 1 seed, 2 timing rounds"
    )
    args = parser.parse_args(argv)
    if "sgd" not in args.methods:
        args.methods = ["sgd", *args.methods]  # the reference of the step times
    if args.quick:
        args.epochs, args.seeds, args.timing_rounds, args.lanczos_iterations = (
            2,
            args.seeds[:1],
            2,
            5,
        )
    return args


def main(argv=None) -> dict[str, Any]:
    config = parse_args(argv)
    os.makedirs(config.out, exist_ok=True)
    started = time.perf_counter()
    results = run_study(config)
    table = format_table(results)
    plot(results, os.path.join(config.out, "sam_family.png"), dpi=50 if config.quick else 110)
    with open(os.path.join(config.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)
    print()
    print(table)
    if len(results["noise"]) >= 2:
        print()
        print(side_by_side_table(results))
    print(f"\n{time.perf_counter() - started:.0f} s; results in {config.out}/")
    return results


if __name__ == "__main__":
    main()
