"""Per-layer optimizers and learning rates: `optax.partition` routes each parameter to its own transform.

Here a Flax MLP's hidden layers train with SGD + momentum, its head with AdamW at a higher rate, and the
first layer is frozen. Any sharpax optimizer is an `optax.GradientTransformation`, so it slots in as is.

    python examples/per_layer_lr.py
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import sharpax


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(32, name="embed")(x))
        x = nn.relu(nn.Dense(32, name="hidden")(x))
        return nn.Dense(3, name="head")(x)


def layer_labels(params):
    """'frozen' for the first layer, 'head' for the last, 'body' for the rest (by module name)."""

    def label(path, _):
        layer = path[1].key  # path = ("params", layer, "kernel" | "bias")
        return {"embed": "frozen", "head": "head"}.get(layer, "body")

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(steps: int) -> optax.GradientTransformation:
    return optax.partition(
        {
            "body": sharpax.sgd(optax.cosine_decay_schedule(0.05, steps), momentum=0.9),
            "head": sharpax.adamw(1e-2, weight_decay=1e-2),
            "frozen": optax.set_to_zero(),
        },
        layer_labels,
    )


def main(steps: int = 100):
    x = jax.random.normal(jax.random.key(0), (128, 4))
    y = jnp.argmax(x[:, :3], axis=1)  # a learnable 3-class rule
    model = MLP()
    params = model.init(jax.random.key(1), x)
    tx = make_optimizer(steps)
    state = tx.init(params)

    def loss_fn(params):
        logits = model.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    initial = params
    for i in range(steps):
        params, state, loss = step(params, state)
        if i % 25 == 0 or i == steps - 1:
            print(f"step {i:3d}  loss {float(loss):.4f}")
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), initial, params)
    for layer, leaves in moved["params"].items():
        print(f"{layer:6s} moved by at most {max(leaves.values()):.3g}")
    return initial, params, float(loss)


if __name__ == "__main__":
    main()
