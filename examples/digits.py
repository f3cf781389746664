"""The sharpax demo: SGD, Adam, SAM, ASAM and Lookahead train a small Flax MLP on scikit-learn's digits.

Every recipe warms up linearly then decays with a cosine; each runs on clean and on noisy training labels,
over a few seeds. At the end a table (test accuracy, final train loss, sharpness, time per step) is
printed, and learning curves and loss-landscape slices (Li et al. 2018) are saved as PNGs.

    python examples/digits.py                      # the full demo, about a minute on 2 CPU cores
    python examples/digits.py --quick              # a smoke run (2 epochs, 1 seed), ~20-30 s
    python examples/digits.py --recipes sgd sam --seeds 0 1 --noise 0.0 0.2 --epochs 20 --out out/mine
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from sklearn.datasets import load_digits
from tqdm.auto import tqdm

import sharpax


def warmup_cosine(peak_value: float, total_steps: int) -> optax.Schedule:
    """Linear warmup over the first 10% of the steps, then cosine decay to zero."""
    return sharpax.warmup_cosine_decay(peak_value, total_steps // 10, total_steps)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """An optimizer built from a learning-rate schedule, its peak rate, and how to take gradients."""

    optimizer: Callable[[optax.Schedule], optax.GradientTransformation]
    peak_lr: float
    sam: dict[str, Any] | None = None  # keyword arguments of sharpax.sam_value_and_grad
    # The weights to evaluate: Lookahead's slow weights live in its state.
    eval_params: Callable[[Any, Any], Any] = lambda params, opt_state: params


def _sgd(lr: optax.Schedule) -> optax.GradientTransformation:
    return sharpax.sgd(lr, momentum=0.9, weight_decay=5e-4)


RECIPES: dict[str, Recipe] = {
    "sgd": Recipe(_sgd, peak_lr=0.1),
    "adam": Recipe(lambda lr: sharpax.adam(lr), peak_lr=3e-3),
    "sam": Recipe(_sgd, peak_lr=0.1, sam=dict(rho=0.05)),
    "asam": Recipe(_sgd, peak_lr=0.1, sam=dict(rho=0.5, adaptive=True, eta=0.01)),
    "lookahead-radam": Recipe(
        lambda lr: sharpax.lookahead(sharpax.radam(lr), sync_period=5, alpha=0.5),
        peak_lr=1e-2,
        eval_params=lambda params, opt_state: sharpax.lookahead_params(opt_state, params),
    ),
}


class MLP(nn.Module):
    hidden: tuple[int, ...] = (128, 128)

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(10)(x)


MODEL = MLP()
init_params = jax.jit(MODEL.init)


def loss_fn(params, x, y):
    logits = MODEL.apply(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(MODEL.apply(params, x), -1) == y)


# ----------------------------------------------------------------------------------------------- data


def load_data(test_fraction: float = 0.25):
    """The 1797 bundled 8x8 digits, pixels scaled to [0, 1]; one fixed train/test split for every run."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
    n_test = int(len(y) * test_fraction)
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def add_label_noise(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Symmetric noise: each label is, with probability `fraction`, replaced by a different class."""
    rng = np.random.default_rng(10_000 + seed)
    flip = rng.random(len(y)) < fraction
    return np.where(flip, (y + rng.integers(1, 10, len(y))) % 10, y).astype(np.int32)


# ------------------------------------------------------------------------------------------- training


def make_train_epoch(recipe: Recipe, tx: optax.GradientTransformation, batch_size: int):
    """One jitted epoch: shuffle, then `lax.scan` the optimizer step over the minibatches."""
    if recipe.sam is None:
        value_and_grad = jax.value_and_grad(loss_fn)
    else:
        value_and_grad = sharpax.sam_value_and_grad(loss_fn, **recipe.sam)

    def step(carry, idx):
        params, opt_state, x, y = carry
        loss, grads = value_and_grad(params, x[idx], y[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, x, y), loss

    @jax.jit
    def train_epoch(params, opt_state, x, y, key):
        steps = x.shape[0] // batch_size
        batches = jax.random.permutation(key, x.shape[0])[: steps * batch_size]
        (params, opt_state, _, _), losses = jax.lax.scan(
            step, (params, opt_state, x, y), batches.reshape(steps, batch_size)
        )
        return params, opt_state, jnp.mean(losses)

    return train_epoch


@jax.jit
def evaluate(params, x_test, y_test):
    return accuracy(params, x_test, y_test), loss_fn(params, x_test, y_test)


@dataclasses.dataclass
class Run:
    recipe: str
    noise: float
    seed: int
    train_loss: list[float]  # per epoch, mean over its minibatches (first SAM pass)
    test_acc: list[float]  # per epoch
    seconds_per_step: float
    params: Any  # the weights evaluated (Lookahead: slow weights)
    sharpness: dict[str, float] = dataclasses.field(default_factory=dict)


def train(name, recipe, noise, seed, data, config, compiled) -> Run:
    """Train one recipe on one noise level from one seed; `compiled` caches each recipe's epoch."""
    (x_train, y_clean), (x_test, y_test) = data
    y_train = jnp.asarray(add_label_noise(y_clean, noise, seed))
    steps_per_epoch = len(y_clean) // config.batch_size
    key, init_key = jax.random.split(jax.random.key(seed))
    params = init_params(init_key, x_train[:1])
    tx = recipe.optimizer(warmup_cosine(recipe.peak_lr, config.epochs * steps_per_epoch))
    opt_state = tx.init(params)
    if name not in compiled:
        # Ahead of time, once per recipe (shapes do not change with the seed or the labels), so that
        # the timings below are steps only.
        epoch_fn = make_train_epoch(recipe, tx, config.batch_size)
        compiled[name] = epoch_fn.lower(params, opt_state, x_train, y_train, key).compile()
    train_epoch = compiled[name]

    run = Run(name, noise, seed, [], [], 0.0, None)
    epoch_seconds = []
    desc = f"{name:<15} noise {noise:<4.0%} seed {seed}"
    with tqdm(range(config.epochs), desc=desc, ncols=100, disable=config.no_progress) as bar:
        for _ in bar:
            key, epoch_key = jax.random.split(key)
            start = time.perf_counter()
            params, opt_state, loss = train_epoch(params, opt_state, x_train, y_train, epoch_key)
            loss = float(loss)  # waits for the epoch to finish
            epoch_seconds.append(time.perf_counter() - start)
            acc, _ = evaluate(recipe.eval_params(params, opt_state), x_test, y_test)
            run.train_loss.append(loss)
            run.test_acc.append(float(acc))
            bar.set_postfix(loss=f"{loss:.3f}", test_acc=f"{float(acc):.3f}")
    # The median epoch: the machine may be shared, and a first call pays one-off setup costs.
    run.seconds_per_step = float(np.median(epoch_seconds)) / steps_per_epoch
    run.params = recipe.eval_params(params, opt_state)
    top_eig, rise = sharpness(
        run.params, x_train, y_train, jax.random.key(seed), config.rho, config.lanczos_iterations
    )
    run.sharpness = {"top_eig": float(top_eig), "rise": float(rise)}
    return run


# ------------------------------------------------------------------------------ sharpness, landscapes


@functools.partial(jax.jit, static_argnames=("iterations",))
def sharpness(params, x, y, key, rho, iterations):
    """The top Hessian eigenvalue of the training loss (Lanczos on Hessian-vector products), and the
    largest loss rise found within the rho-ball: at SAM's first-order worst case w + rho g / |g|, and at
    w +- rho v along the top eigenvector v (the second-order one, where the gradient is small)."""
    eigs, vecs = sharpax.sharpness.hessian_eigenvalues(
        loss_fn, params, x, y, k=1, num_iterations=iterations, key=key
    )
    top = jax.tree.map(lambda v: v[0], vecs)
    along = sharpax.sharpness.loss_landscape(
        loss_fn, params, x, y, directions=(top,), alphas=jnp.stack([-rho, rho])
    )
    first_order = sharpax.sharpness.sam_sharpness(loss_fn, params, x, y, rho=rho)
    return eigs[0], jnp.maximum(first_order, jnp.max(along) - loss_fn(params, x, y))


@jax.jit
def landscape(params, x, y, key, alphas):
    """Training loss along one and over two filter-normalized random directions around `params`
    (Li et al. 2018); the surface's first axis runs along the first direction."""
    key1, key2 = jax.random.split(key)
    d1 = sharpax.sharpness.filter_normalized_direction(key1, params)
    d2 = sharpax.sharpness.filter_normalized_direction(key2, params)
    line = sharpax.sharpness.loss_landscape(loss_fn, params, x, y, directions=(d1,), alphas=alphas)
    surface = sharpax.sharpness.loss_landscape(
        loss_fn, params, x, y, directions=(d1, d2), alphas=alphas, batch_size=64
    )
    return line, surface


# ------------------------------------------------------------------------------------ table and plots


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std())


def summarize(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (noise, recipe): means over seeds (and the std of the test accuracy)."""
    rows = []
    for noise in dict.fromkeys(r.noise for r in runs):
        for name in dict.fromkeys(r.recipe for r in runs):
            group = [r for r in runs if r.noise == noise and r.recipe == name]
            acc_mean, acc_std = _mean_std([100 * r.test_acc[-1] for r in group])
            rows.append(
                dict(
                    noise=noise,
                    recipe=name,
                    seeds=len(group),
                    test_acc=acc_mean,
                    test_acc_std=acc_std,
                    train_loss=_mean_std([r.train_loss[-1] for r in group])[0],
                    top_eig=_mean_std([r.sharpness["top_eig"] for r in group])[0],
                    rise=_mean_std([r.sharpness["rise"] for r in group])[0],
                    ms_per_step=1e3 * _mean_std([r.seconds_per_step for r in group])[0],
                )
            )
    return rows


def format_table(rows: list[dict[str, Any]], rho: float) -> str:
    header = (
        "| label noise | recipe | test acc % (mean ± std) | final train loss "
        f"| top Hessian eig | loss rise, rho={rho:g} | ms / step |"
    )
    lines = [header, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['noise']:.0%} | {r['recipe']} | {r['test_acc']:.2f} ± {r['test_acc_std']:.2f} "
            f"| {r['train_loss']:.3f} | {r['top_eig']:.1f} | {r['rise']:.4f} | {r['ms_per_step']:.2f} |"
        )
    return "\n".join(lines)


def plot_learning_curves(runs: list[Run], path: str, dpi: int) -> None:
    import matplotlib.pyplot as plt

    noises = list(dict.fromkeys(r.noise for r in runs))
    names = list(dict.fromkeys(r.recipe for r in runs))
    fig, axes = plt.subplots(len(noises), 2, figsize=(11, 3.6 * len(noises)), squeeze=False)
    for row, noise in enumerate(noises):
        for name, color in zip(names, _colors(len(names)), strict=True):
            group = [r for r in runs if r.noise == noise and r.recipe == name]
            for col, field in enumerate(("train_loss", "test_acc")):
                curves = np.array([getattr(r, field) for r in group])
                if field == "test_acc":
                    curves = 100 * curves
                epochs = np.arange(1, curves.shape[1] + 1)
                mean, std = curves.mean(0), curves.std(0)
                ax = axes[row, col]
                ax.plot(epochs, mean, color=color, label=name, lw=1.8)
                ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, lw=0)
        _loss_scale(axes[row, 0], [r.train_loss for r in runs if r.noise == noise])
        axes[row, 0].set_ylabel("train loss (on the labels trained on)")
        axes[row, 1].set_ylabel("test accuracy %")
        top = max(100 * max(r.test_acc) for r in runs if r.noise == noise)
        axes[row, 1].set_ylim(max(0.0, top - 15), min(100.0, top + 1.5))
        for ax in axes[row]:
            ax.set_title(f"label noise {noise:.0%}")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    axes[0, 1].legend(loc="lower right")
    fig.suptitle("Digits MLP: mean over seeds, band = ± 1 std")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_landscapes(slices: dict, alphas: np.ndarray, out: str, dpi: int) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    noises = list(dict.fromkeys(noise for noise, _ in slices))
    names = list(dict.fromkeys(name for _, name in slices))
    colors = dict(zip(names, _colors(len(names)), strict=True))

    fig, axes = plt.subplots(1, len(noises), figsize=(5.5 * len(noises), 4), squeeze=False)
    for ax, noise in zip(axes[0], noises, strict=True):
        for name in names:
            ax.plot(alphas, slices[noise, name][0], color=colors[name], label=name, lw=1.8)
        _loss_scale(ax, [slices[noise, name][0] for name in names])
        ax.set_xlabel("step along a filter-normalized random direction")
        ax.set_ylabel("train loss")
        ax.set_title(f"1-D loss slice, label noise {noise:.0%}")
        ax.grid(alpha=0.3)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "landscape_1d.png"), dpi=dpi)
    plt.close(fig)

    # One colour scale per noise level: noisy labels raise the whole surface.
    fig, axes = plt.subplots(
        len(noises),
        len(names),
        figsize=(2.9 * len(names) + 1.2, 2.9 * len(noises) + 0.6),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    for row, noise in enumerate(noises):
        surfaces = np.array([slices[noise, name][1] for name in names])
        norm = LogNorm(vmin=surfaces.min(), vmax=surfaces.max())
        levels = np.geomspace(norm.vmin, norm.vmax, 25)
        for col, name in enumerate(names):
            ax = axes[row, col]
            surface = slices[noise, name][1].T  # contourf's rows are y: the second direction
            cs = ax.contourf(alphas, alphas, surface, levels=levels, norm=norm, cmap="viridis")
            ax.contour(alphas, alphas, surface, levels=levels[::3], colors="white", linewidths=0.5)
            ax.plot(0, 0, "r+", ms=8)
            ax.set_title(f"{name}, noise {noise:.0%}", fontsize=10)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=8)
        fig.colorbar(cs, ax=axes[row], label="train loss", format="%.2g", shrink=0.9)
    fig.suptitle(
        "Train loss over two filter-normalized random directions (same directions for all)"
    )
    fig.savefig(os.path.join(out, "landscape_2d.png"), dpi=dpi)
    plt.close(fig)


def _loss_scale(ax, curves) -> None:
    """Log scale when the losses span more than a decade, else linear (readable tick labels)."""
    values = np.concatenate([np.ravel(c) for c in curves])
    if values.max() > 10 * values.min():
        ax.set_yscale("log")


def _colors(n: int) -> list:
    import matplotlib.pyplot as plt

    return [plt.get_cmap("tab10")(i) for i in range(n)]


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--noise",
        nargs="+",
        type=float,
        default=[0.0, 0.4],
        help="fractions of training labels replaced by a random other class; 0 = clean",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rho", type=float, default=0.05, help="radius of the sharpness ball")
    parser.add_argument(
        "--lanczos-iterations",
        type=int,
        default=30,
        help="the most Hessian-vector products for the top eigenvalue",
    )
    parser.add_argument(
        "--grid", type=int, default=25, help="points per axis of the landscape slices"
    )
    parser.add_argument("--out", default="out/digits", help="folder for the PNGs and results.json")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 2 epochs, 1 seed, coarse landscapes"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.seeds, args.grid, args.lanczos_iterations = 2, args.seeds[:1], 5, 5
    return args


def main(argv=None) -> list[dict[str, Any]]:
    config = parse_args(argv)
    os.makedirs(config.out, exist_ok=True)
    data = load_data()
    n_params = ravel_pytree(init_params(jax.random.key(0), data[0][0][:1]))[0].size
    print(
        f"digits: {len(data[0][1])} train / {len(data[1][1])} test images; MLP 64-128-128-10 "
        f"({n_params} weights); {config.epochs} epochs of batch {config.batch_size}; "
        f"seeds {config.seeds}; label noise {config.noise}; {jax.devices()[0].platform} "
        f"({os.cpu_count()} cores)"
    )
    started = time.perf_counter()
    runs, compiled = [], {}
    for noise in config.noise:
        for name in config.recipes:
            for seed in config.seeds:
                runs.append(train(name, RECIPES[name], noise, seed, data, config, compiled))

    # Landscapes around the first seed's solutions, on the labels each was trained on.
    alphas = jnp.linspace(-1.0, 1.0, config.grid)
    (x_train, y_clean), _ = data
    slices = {}
    for run in runs:
        if run.seed == config.seeds[0]:
            y_train = add_label_noise(y_clean, run.noise, run.seed)
            line, surface = landscape(run.params, x_train, y_train, jax.random.key(1234), alphas)
            slices[run.noise, run.recipe] = (np.asarray(line), np.asarray(surface))

    rows = summarize(runs)
    table = format_table(rows, config.rho)
    dpi = 50 if config.quick else 110
    plot_learning_curves(runs, os.path.join(config.out, "learning_curves.png"), dpi)
    plot_landscapes(slices, np.asarray(alphas), config.out, dpi)
    with open(os.path.join(config.out, "results.json"), "w") as f:
        json.dump(
            dict(
                config={k: v for k, v in vars(config).items()},
                rows=rows,
                runs=[
                    {k: v for k, v in dataclasses.asdict(r).items() if k != "params"} for r in runs
                ],
            ),
            f,
            indent=1,
        )
    print()
    print(table)
    print(f"\n{len(runs)} runs in {time.perf_counter() - started:.0f} s; plots in {config.out}/")
    return rows


if __name__ == "__main__":
    main()
