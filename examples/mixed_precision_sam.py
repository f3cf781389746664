"""Mixed-precision SAM: float16 compute, float32 weights and a dynamic loss scale, on the digits MLP.

The model (the MLP of `digits.py`) computes in float16 (Flax's `dtype=`) and keeps float32 params
(`param_dtype=`); the loss is reduced in float32. Gradients that come back through float16 activations
underflow unless the loss is scaled up first, and a scale too large overflows: dynamic loss scaling
(`sharpax.DynamicLossScale`) shrinks the scale and skips the step on an overflow, and grows it again
after a run of clean steps. SAM takes two gradients per step, and either can overflow; a check of the
first alone (what `optax.apply_if_finite` around the SAM transformation would see) lets an overflow of
the second through. Both SAM forms here skip on either:

- the gradient form: `sam_value_and_grad(...)(params, x, y, loss_scale=scale)` returns NaN gradients
  when either pass overflowed, so `optax.apply_if_finite` around the optimizer skips the step;
- the transformation form: `sam(base, rho, loss_scale=...)` keeps the scale in its state and skips by
  itself.

    python examples/mixed_precision_sam.py            # ~20 s on 2 CPU cores
    python examples/mixed_precision_sam.py --steps 300 --rho 0.05
"""

from __future__ import annotations

import argparse
import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import sharpax


class MLP(nn.Module):
    """`digits.py`'s MLP, computing in `dtype` with float32 params."""

    hidden: tuple[int, ...] = (128, 128)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width, dtype=self.dtype, param_dtype=jnp.float32)(x))
        return nn.Dense(10, dtype=self.dtype, param_dtype=jnp.float32)(x)


def load_data(test_fraction: float = 0.25):
    """The 1797 bundled 8x8 digits, pixels in [0, 1]; the train/test split of `digits.py`."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = (x[order] / 16.0).astype(np.float32), y[order].astype(np.int32)
    n_test = int(len(y) * test_fraction)
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def make_loss(model: MLP):
    def loss_fn(params, x, y):
        logits = model.apply(params, x.astype(model.dtype)).astype(jnp.float32)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss_fn


def gradient_form_step(model: MLP, rho: float, base: optax.GradientTransformation):
    """`(tx, step)`: SAM as a gradient, optax.apply_if_finite skipping the steps it returns NaN for."""
    sam_grad = sharpax.sam_value_and_grad(make_loss(model), rho)
    tx = optax.apply_if_finite(base, max_consecutive_errors=100)

    @jax.jit
    def step(params, opt_state, loss_scale, x, y):
        loss, grads = sam_grad(params, x, y, loss_scale=loss_scale)
        updates, opt_state = tx.update(grads, opt_state, params)  # zero updates on a skipped step
        loss_scale = loss_scale.adjust(sharpax.all_finite(grads))
        return optax.apply_updates(params, updates), opt_state, loss_scale, loss

    return tx, step


def transformation_form_step(model: MLP, rho: float, base: optax.GradientTransformation, scale):
    """`(tx, step)`: `sharpax.sam` with `loss_scale=`, the scale read from (and kept in) its state."""
    loss_fn = make_loss(model)
    tx = sharpax.sam(base, rho, loss_scale=scale)

    @jax.jit
    def step(params, opt_state, x, y):
        loss_scale = sharpax.current_loss_scale(opt_state)
        scaled = lambda p: loss_scale.scale(loss_fn(p, x, y))
        loss, grads = jax.value_and_grad(scaled)(params)
        updates, opt_state = tx.update(grads, opt_state, params, grad_fn=jax.grad(scaled))
        return optax.apply_updates(params, updates), opt_state, loss / loss_scale.loss_scale

    return tx, step


def init_params(compute_dtype, seed: int = 0):
    return _init(compute_dtype)(jax.random.key(seed), jnp.zeros((1, 64), jnp.float32))


# Built once per setting, so that every run of one setting reuses one compiled step.
@functools.cache
def _init(compute_dtype):
    return jax.jit(MLP(dtype=compute_dtype).init)


@functools.cache
def _gradient_form(compute_dtype, rho: float):
    return gradient_form_step(MLP(dtype=compute_dtype), rho, sharpax.sgd(0.1, momentum=0.9))


@functools.cache
def _transformation_form(rho: float):
    scale = sharpax.dynamic_loss_scale(2.0**24, period=50)
    base = sharpax.sgd(0.1, momentum=0.9)
    return transformation_form_step(MLP(dtype=jnp.float16), rho, base, scale)


def train(
    steps: int,
    compute_dtype,
    rho: float = 0.05,
    batch: int = 64,
    seed: int = 0,
    initial_scale: float = 2.0**24,
):
    """SAM over SGD with momentum, the gradient form with a dynamic loss scale (1 in float32).

    The scale starts too large on purpose (torch's GradScaler starts at 2^16): the first steps
    overflow in float16, are skipped, and halve the scale until the gradients fit.
    """
    (x_train, y_train), _ = load_data()
    params = init_params(compute_dtype, seed)
    tx, step = _gradient_form(compute_dtype, rho)
    opt_state, loss_scale = tx.init(params), sharpax.dynamic_loss_scale(initial_scale, period=50)
    if compute_dtype == jnp.float32:
        loss_scale = sharpax.dynamic_loss_scale(1.0)  # scaling by 1 changes no bit of float32 SAM
    order = np.random.default_rng(seed).permutation(len(y_train))
    losses, skipped, scales = [], 0, []
    for i in range(steps):
        idx = np.take(order, np.arange(i * batch, (i + 1) * batch), mode="wrap")
        params, opt_state, loss_scale, loss = step(
            params, opt_state, loss_scale, x_train[idx], y_train[idx]
        )
        losses.append(float(loss))
        scales.append(float(loss_scale.loss_scale))
    skipped = int(opt_state.total_notfinite)
    return params, np.array(losses), skipped, np.array(scales)


def accuracy(params, compute_dtype=jnp.float32) -> float:
    _, (x_test, y_test) = load_data()
    logits = MLP(dtype=compute_dtype).apply(params, jnp.asarray(x_test, compute_dtype))
    return float(jnp.mean(jnp.argmax(logits, -1) == y_test))


def train_transformation_form(steps: int, rho: float = 0.05, batch: int = 64, seed: int = 0):
    """The same float16 training with `sharpax.sam(..., loss_scale=)`: the scale lives in its state."""
    (x_train, y_train), _ = load_data()
    params = init_params(jnp.float16, seed)
    tx, step = _transformation_form(rho)
    opt_state = tx.init(params)
    order = np.random.default_rng(seed).permutation(len(y_train))
    losses, scales = [], []
    for i in range(steps):
        idx = np.take(order, np.arange(i * batch, (i + 1) * batch), mode="wrap")
        params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx])
        losses.append(float(loss))
        scales.append(float(sharpax.current_loss_scale(opt_state).loss_scale))
    return params, np.array(losses), np.array(scales)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rho", type=float, default=0.05)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = {}
    for name, dtype in [("float32", jnp.float32), ("float16", jnp.float16)]:
        params, losses, skipped, scales = train(args.steps, dtype, args.rho)
        results[name] = params
        print(
            f"gradient form, {name} compute: last-10 loss {losses[-10:].mean():.4f}, test accuracy "
            f"{accuracy(params, dtype):.3f}, {skipped} steps skipped, final scale {scales[-1]:g}"
        )
    params, losses, scales = train_transformation_form(args.steps, args.rho)
    print(
        f"transformation form, float16 compute: last-10 loss {losses[-10:].mean():.4f}, test "
        f"accuracy {accuracy(params, jnp.float16):.3f}, final scale {scales[-1]:g}"
    )
    print(f"{time.perf_counter() - started:.0f} s")
    return results


if __name__ == "__main__":
    main()
