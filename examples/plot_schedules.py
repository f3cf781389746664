"""Draw every sharpax schedule into one PNG (for the README).

python examples/plot_schedules.py [out/schedules.png] [--steps 1000]
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import sharpax  # noqa: E402


def schedules(total: int) -> dict[str, dict[str, sharpax.schedules.Schedule]]:
    """Panels of schedules over `total` updates, peak 1 unless stated."""
    w = total // 10
    return {
        "Warmups": {
            f"linear_warmup(1, {w})": sharpax.linear_warmup(1.0, w),
            f"exponential_warmup(1, {w}, 1e-3)": sharpax.exponential_warmup(1.0, w, 1e-3),
            "untuned_linear_warmup(b2=0.99)": sharpax.untuned_linear_warmup(0.99),
            "untuned_exponential_warmup(b2=0.99)": sharpax.untuned_exponential_warmup(0.99),
        },
        "Warmup then decay": {
            "warmup_cosine_decay": sharpax.warmup_cosine_decay(1.0, w, total, end_value=0.05),
            "warmup_linear_decay": sharpax.warmup_linear_decay(1.0, w, total),
            "warmup_polynomial_decay(power=2)": sharpax.warmup_polynomial_decay(1.0, w, total, 2.0),
            "warmup_exponential_decay(0.995)": sharpax.warmup_exponential_decay(1.0, w, 0.995),
            "warmup_inverse_sqrt_decay": sharpax.warmup_inverse_sqrt_decay(1.0, w),
        },
        "Warmup-stable-decay (cooldown shapes)": {
            f"WSD {shape}": sharpax.warmup_stable_decay(
                1.0, total, w, total // 4, cooldown_shape=shape
            )
            for shape in ("linear", "cosine", "1-sqrt", "1-square")
        },
        "Cycles and the Transformer": {
            "one_cycle (torch OneCycleLR)": sharpax.one_cycle(1.0, total),
            "one_cycle three_phase, linear": sharpax.one_cycle(
                1.0, total, anneal="linear", three_phase=True
            ),
            "cyclic SGDR (period total/4)": sharpax.cyclic(
                sharpax.warmup_cosine_decay(1.0, 0, total // 4, end_value=0.1), total // 4
            ),
            "noam_schedule(64, W), peak scaled to 1": sharpax.noam_schedule(
                64, w, factor=(64 * w) ** 0.5
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default="out/schedules.png", help="PNG path")
    parser.add_argument("--steps", type=int, default=1000, help="updates on the x axis")
    args = parser.parse_args()

    counts = jnp.arange(args.steps)
    panels = schedules(args.steps)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    for ax, (title, curves) in zip(axes.flat, panels.items(), strict=True):
        for label, schedule in curves.items():
            ax.plot(counts, schedule(counts), label=label)
        ax.set_title(title)
        ax.set_xlabel("update count")
        ax.set_ylabel("value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
