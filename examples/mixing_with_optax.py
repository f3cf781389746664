"""Mixing with optax: sharpax transforms go inside optax's combinators, and optax's inside sharpax's.

Gradient clipping (optax) in front of Lookahead (sharpax) around AdamW (sharpax), and the learning rate
exposed through `optax.inject_hyperparams` so it can be read and changed in the state between steps.

    python examples/mixing_with_optax.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import sharpax


def make_optimizer(learning_rate: float = 0.1) -> optax.GradientTransformation:
    adamw = optax.inject_hyperparams(sharpax.adamw)(learning_rate=learning_rate, weight_decay=1e-3)
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        sharpax.lookahead(adamw, sync_period=5, alpha=0.5),
    )


def rosenbrock(params):
    x, y = params["x"], params["y"]
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def main(steps: int = 298):
    params = {"x": jnp.array(-1.5), "y": jnp.array(2.0)}
    tx = make_optimizer()
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(rosenbrock)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    for i in range(steps):
        if i == steps // 2:
            # Halve the rate mid-run: the hyperparameter is an array in the (inner) AdamW state.
            adamw_state = _find_injected_state(state)
            adamw_state.hyperparams["learning_rate"] = adamw_state.hyperparams["learning_rate"] / 2
        params, state, loss = step(params, state)
        if i % 50 == 0:
            print(f"step {i:3d}  loss {float(loss):9.5f}  x {float(params['x']):+.4f}")
    slow = sharpax.lookahead_params(state, params)
    print(f"final fast weights x={float(params['x']):.4f}, y={float(params['y']):.4f}")
    print(f"final slow weights x={float(slow['x']):.4f}, y={float(slow['y']):.4f}")
    return params, slow, state


def _find_injected_state(state):
    """The state of `inject_hyperparams` inside the chain (found by its field, not by position)."""
    is_injected = lambda s: hasattr(s, "hyperparams")
    return next(s for s in jax.tree.leaves(state, is_leaf=is_injected) if is_injected(s))


if __name__ == "__main__":
    main()
