"""Data-parallel SAM over several devices with `jax.sharding`: shard the batch, replicate the weights.

Under `jit`, the gradient of a mean over a sharded batch is all-reduced by XLA, so both SAM passes see the
global gradient: the step is the single-device step, computed on 8 devices. On a CPU-only machine the 8
devices are simulated with `XLA_FLAGS=--xla_force_host_platform_device_count=8` (set below).

    python examples/data_parallel_sam.py
"""

from __future__ import annotations

import os

# Must be set before jax starts; a no-op when the caller already asked for a device count.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import sharpax  # noqa: E402


def init_params(key, sizes=(16, 64, 4)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": jax.random.normal(k, (m, n)) / jnp.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def loss_fn(params, x, y):
    for layer in params[:-1]:
        x = jax.nn.gelu(x @ layer["w"] + layer["b"])
    logits = x @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


tx = sharpax.sgd(0.1, momentum=0.9)
sam_value_and_grad = sharpax.sam_value_and_grad(loss_fn, rho=0.05)


@jax.jit
def train_step(params, opt_state, x, y):
    loss, grads = sam_value_and_grad(params, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def data(key, n=512):
    x = jax.random.normal(key, (n, 16))
    return x, jnp.argmax(x[:, :4] + 0.5 * x[:, 4:8], axis=1)


def main(steps: int = 50):
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    replicated, batch_sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    params = jax.device_put(init_params(jax.random.key(0)), replicated)
    opt_state = jax.device_put(tx.init(params), replicated)
    x, y = data(jax.random.key(1))
    x, y = jax.device_put(x, batch_sharded), jax.device_put(y, batch_sharded)
    print(
        f"{jax.device_count()} devices; each holds a {x.addressable_shards[0].data.shape} slice of x"
    )
    for i in range(steps):
        params, opt_state, loss = train_step(params, opt_state, x, y)
        if i % 10 == 0 or i == steps - 1:
            print(f"step {i:3d}  loss {float(loss):.4f}")
    print(f"weights stay replicated: {params[0]['w'].sharding.is_fully_replicated}")
    return params


if __name__ == "__main__":
    main()
