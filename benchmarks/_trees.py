"""The parameter trees of the benchmark regimes: one large leaf, many small leaves, a Flax model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def leaves(count: int, size: int, seed: int = 0) -> dict[str, jax.Array]:
    """`count` float32 vectors of `size` elements each (distinct values, so nothing is constant-folded)."""
    rng = np.random.default_rng(seed)
    return {
        f"w{i:05d}": jnp.asarray(rng.standard_normal(size, dtype=np.float32)) for i in range(count)
    }


def transformer_lm(
    vocab: int = 4096, dim: int = 256, depth: int = 4, heads: int = 4, mlp: int = 1024
):
    """A small Flax (linen) pre-LN Transformer LM: `apply({"params": p}, tokens) -> logits`."""
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(num_heads=heads)(h, h)
            h = nn.LayerNorm()(x)
            return x + nn.Dense(dim)(nn.gelu(nn.Dense(mlp)(h)))

    class LM(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(vocab, dim)(tokens)
            for _ in range(depth):
                x = Block()(x)
            return nn.Dense(vocab)(nn.LayerNorm()(x))

    return LM()


def transformer_params(
    vocab: int = 4096, dim: int = 256, depth: int = 4, heads: int = 4, mlp: int = 1024
) -> dict:
    """The params of `transformer_lm`, ~4.2M floats in ~70 leaves."""
    with jax.numpy_dtype_promotion("standard"):
        model = transformer_lm(vocab, dim, depth, heads, mlp)
        params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
    assert isinstance(params, dict), "flax returns plain dicts (flax_return_frozendict is off)"
    return params


def transformer_model(**sizes) -> tuple:
    """`(apply, params)` of `transformer_lm`: apply(params, tokens) -> logits, params those of
    `transformer_params` (the same init)."""
    with jax.numpy_dtype_promotion("standard"):
        model = transformer_lm(**sizes)
    return (lambda p, tokens: model.apply({"params": p}, tokens)), transformer_params(**sizes)


def mlp_model(sizes: tuple[int, ...] = (784, 1024, 1024, 10), seed: int = 0) -> tuple:
    """`(apply, params)` of a ReLU MLP with Dense-style {"kernel", "bias"} layers (~1.9M floats)."""
    rng = np.random.default_rng(seed)
    params = {
        f"dense{i}": {
            "kernel": jnp.asarray(rng.standard_normal((m, n), dtype=np.float32) / np.sqrt(m)),
            "bias": jnp.zeros(n, jnp.float32),
        }
        for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    }

    def apply(p, x):
        for i in range(len(sizes) - 1):
            x = x @ p[f"dense{i}"]["kernel"] + p[f"dense{i}"]["bias"]
            if i < len(sizes) - 2:
                x = jax.nn.relu(x)
        return x

    return apply, params


BUILDERS = {
    "large_1x4M": lambda: leaves(1, 4 * 1024 * 1024),
    "small_400x10k": lambda: leaves(400, 10_000),
    "small_2000x1k": lambda: leaves(2000, 1_000),
    "flax_transformer": transformer_params,
    # Opt-in (--regimes): a leaf large enough that a GPU step is bound by memory bandwidth, not launches.
    "large_1x64M": lambda: leaves(1, 64 * 1024 * 1024),
}
OPT_IN = {"large_1x64M"}


def regime_trees(quick: bool, wanted: set[str] | None = None) -> dict[str, dict]:
    """name -> param tree for the step-time regimes: `wanted`, or every regime that is not opt-in."""
    del quick  # the regimes are the same; --quick runs fewer optimizers on the expensive ones
    names = wanted if wanted is not None else set(BUILDERS) - OPT_IN
    return {name: build() for name, build in BUILDERS.items() if name in names}


def tree_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))
