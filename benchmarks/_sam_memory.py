"""Peak memory of a SAM training step with gradient accumulation (`microbatches=k`) against k = 1.

Each step is `sam_value_and_grad(loss_fn, rho, microbatches=k)` + Adam + `apply_updates`, jitted with the
params and optimizer state donated, lowered from shapes only and compiled; XLA's compiled memory analysis
gives the buffers it assigned: arguments, outputs, and the temporaries (activations, gradients, scan
carries). Peak = arguments + outputs - aliased (donated) + temporaries. Nothing runs, so the numbers are
the compiler's, on whatever backend this process has. Two models: the MLP of `bench_sam.py` on a large
batch, and the Flax Transformer LM of `_trees.py` (next-token cross-entropy on a batch of sequences).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import sharpax

RHO, LR = 0.05, 1e-3


def mlp_case(inputs=256, hidden=512, layers=2, batch=4096):
    sizes = [inputs] + [hidden] * layers + [10]
    params = [
        {
            "w": jax.ShapeDtypeStruct((m, n), jnp.float32),
            "b": jax.ShapeDtypeStruct((n,), jnp.float32),
        }
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]

    def loss_fn(params, x, y):
        h = x
        for layer in params[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logits = h @ params[-1]["w"] + params[-1]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    batch_args = (
        jax.ShapeDtypeStruct((batch, inputs), jnp.float32),
        jax.ShapeDtypeStruct((batch,), jnp.int32),
    )
    return f"MLP {sizes}, batch {batch}", loss_fn, params, batch_args


def transformer_case(batch=32, length=128):
    from benchmarks._trees import transformer_lm

    model = transformer_lm()
    with jax.numpy_dtype_promotion("standard"):
        params = jax.eval_shape(
            lambda: model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
        )

    def loss_fn(params, tokens):
        logits = model.apply({"params": params}, tokens[:, :-1])
        assert isinstance(logits, jax.Array), "without mutable=, apply returns the output alone"
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    n = sum(x.size for x in jax.tree.leaves(params))
    batch_args = (jax.ShapeDtypeStruct((batch, length + 1), jnp.int32),)
    return (
        f"Transformer LM ({n / 1e6:.1f}M params), batch {batch} x {length} tokens",
        loss_fn,
        params,
        batch_args,
    )


def step_memory(loss_fn, params, batch_args, microbatches: int) -> dict[str, int]:
    """The compiled memory analysis of one SAM + Adam step, in bytes."""
    tx = sharpax.adam(LR)
    sam_grad = sharpax.sam_value_and_grad(loss_fn, RHO, microbatches=microbatches)

    def step(params, state, *batch):
        loss, grads = sam_grad(params, *batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    state = jax.eval_shape(tx.init, params)
    with jax.numpy_dtype_promotion("standard"):
        compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, *batch_args).compile()
    m = compiled.memory_analysis()
    assert m is not None, "XLA's CPU, GPU and TPU compilers all report a memory analysis"
    out = {
        "arguments": m.argument_size_in_bytes,
        "outputs": m.output_size_in_bytes,
        "aliased": m.alias_size_in_bytes,
        "temporaries": m.temp_size_in_bytes,
    }
    out["peak"] = out["arguments"] + out["outputs"] - out["aliased"] + out["temporaries"]
    return out


def run(microbatches=(1, 4), cases=None) -> dict:
    """name -> {k: memory analysis}; prints one table."""
    # The MLP at bench_sam's timing batch too: there the activations weigh less than the float32
    # accumulator the scan carries, and the peak goes up.
    cases = cases or [mlp_case(batch=256), mlp_case(), transformer_case()]
    results = {}
    print(f"  {'model':58s} {'k':>3s} {'temporaries MB':>15s} {'peak MB':>9s} {'peak / k=1':>11s}")
    for name, loss_fn, params, batch_args in cases:
        rows = {k: step_memory(loss_fn, params, batch_args, k) for k in microbatches}
        results[name] = rows
        for k, row in rows.items():
            ratio = row["peak"] / rows[microbatches[0]]["peak"]
            print(
                f"  {name:58s} {k:3d} {row['temporaries'] / 2**20:15.1f} "
                f"{row['peak'] / 2**20:9.1f} {ratio:10.2f}x"
            )
    return results
