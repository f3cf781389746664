"""SAM in a Flax linen `TrainState` loop: `sharpax.sam_value_and_grad` replaces `jax.value_and_grad`.

The loss and its auxiliary outputs come from the first pass (at the weights), the gradient from the second
(at the SAM-perturbed weights); `TrainState.apply_gradients` is unchanged. Dropout gets the same key in
both passes, so both see the same mask.

    python examples/flax_linen_sam.py
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from sklearn.datasets import load_digits

import sharpax


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(128)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(10)(x)


MODEL = MLP()


def loss_fn(params, x, y, key):
    logits = MODEL.apply(params, x, train=True, rngs={"dropout": key})
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == y)  # (loss, aux)


# Returns ((loss, accuracy), grads), like jax.value_and_grad(loss_fn, has_aux=True).
sam_value_and_grad = sharpax.sam_value_and_grad(loss_fn, rho=0.05, has_aux=True)


@jax.jit
def train_step(state, x, y, key):
    dropout_key = jax.random.fold_in(
        key, state.step
    )  # a fresh mask each step, the same in both passes
    (loss, acc), grads = sam_value_and_grad(state.params, x, y, dropout_key)
    return state.apply_gradients(grads=grads), loss, acc


@jax.jit
def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(MODEL.apply(params, x), -1) == y)


def main(epochs: int = 4, batch_size: int = 64):
    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype(np.float32), y.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))  # the writers differ along the file
    (x_train, y_train), (x_test, y_test) = (
        (x[order[:1400]], y[order[:1400]]),
        (x[order[1400:]], y[order[1400:]]),
    )
    init_key, dropout_key = jax.random.split(jax.random.key(0))
    steps = epochs * (len(y_train) // batch_size)
    state = train_state.TrainState.create(
        apply_fn=MODEL.apply,
        params=jax.jit(MODEL.init)(init_key, x_train[:1]),
        tx=sharpax.sgd(optax.cosine_decay_schedule(0.05, steps), momentum=0.9),
    )
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        order = rng.permutation(len(y_train))
        for i in range(len(y_train) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            state, loss, acc = train_step(state, x_train[idx], y_train[idx], dropout_key)
        test_acc = float(accuracy(state.params, x_test, y_test))
        print(f"epoch {epoch}  train loss {float(loss):.3f}  test accuracy {test_acc:.3f}")
    return state, test_acc


if __name__ == "__main__":
    main()
