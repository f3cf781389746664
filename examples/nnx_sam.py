"""SAM with `flax.nnx`: `nnx.Optimizer` over `sharpax.sam(...)`, given a `grad_fn` for the second pass.

`sharpax.sam` wraps a base optimizer; its `update` takes the first-pass gradient and a `grad_fn` mapping
weights to gradients, which it calls at the perturbed weights. `nnx.Optimizer.update` forwards keyword
arguments to the transformation, so `grad_fn` goes through it.

    python examples/nnx_sam.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

import sharpax


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 128, rngs=rngs)
        self.out = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def loss_fn(model, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


@nnx.jit
def train_step(model, optimizer, x, y):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_at(params):  # the loss as a function of the weights alone
        return loss_fn(nnx.merge(graphdef, params, rest), x, y)

    loss, grads = jax.value_and_grad(loss_at)(params)
    optimizer.update(model, grads, grad_fn=jax.grad(loss_at))
    return loss


def main(epochs: int = 5, batch_size: int = 64):
    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype(np.float32), y.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(y))  # the writers differ along the file
    (x_train, y_train), (x_test, y_test) = (
        (x[order[:1400]], y[order[:1400]]),
        (x[order[1400:]], y[order[1400:]]),
    )
    model = MLP(nnx.Rngs(0))
    steps = epochs * (len(y_train) // batch_size)
    tx = sharpax.sam(sharpax.sgd(optax.cosine_decay_schedule(0.1, steps), momentum=0.9), rho=0.05)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    rng = np.random.default_rng(0)
    for epoch in range(epochs):
        order = rng.permutation(len(y_train))
        for i in range(len(y_train) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = train_step(model, optimizer, x_train[idx], y_train[idx])
        test_acc = float(jnp.mean(jnp.argmax(model(x_test), -1) == y_test))
        print(f"epoch {epoch}  train loss {float(loss):.3f}  test accuracy {test_acc:.3f}")
    return model, test_acc


if __name__ == "__main__":
    main()
