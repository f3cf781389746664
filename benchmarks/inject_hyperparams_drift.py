"""How far `optax.inject_hyperparams` and `sharpax.inject_hyperparams` drift from the static optimizer.

For each optimizer of the test table: train a small tanh regression for N jitted steps (update and
apply_updates fused) with the static optimizer and with each injected form, and print the largest
absolute parameter difference. 0 means bit-identical.

    python -m benchmarks.inject_hyperparams_drift [--steps 500]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import sharpax
from tests.optimizer_table import CASES


def train(tx, steps):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(k1, (64, 8))
    y = jax.random.normal(k2, (64,))
    params = {
        "w": jax.random.normal(k3, (8, 16)) * 0.3,
        "b": jnp.zeros(16),
        "v": jnp.ones(16) * 0.1,
    }

    def loss(p):
        return jnp.mean((jnp.tanh(x @ p["w"] + p["b"]) @ p["v"] - y) ** 2)

    @jax.jit
    def step(p, s):
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, updates), s

    state = tx.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params


def max_diff(a, b):
    return max(float(jnp.max(jnp.abs(a[k] - b[k]))) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    print(f"{'optimizer':30s} {'optax (all injected)':>22s} {'sharpax (lr injected)':>22s}")
    for case in CASES:
        static = train(case.build(), args.steps)
        optax_injected = train(optax.inject_hyperparams(case.make)(**case.kwargs), args.steps)
        ours = train(sharpax.inject_hyperparams(case.make)(**case.kwargs), args.steps)
        print(
            f"{case.id:30s} {max_diff(optax_injected, static):22.3g} {max_diff(ours, static):22.3g}"
        )


if __name__ == "__main__":
    main()
