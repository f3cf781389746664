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
    """A small Flax (linen) pre-LN Transformer LM and its params, ~5.3M floats in 69 leaves."""
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

    model = LM()
    with jax.numpy_dtype_promotion("standard"):
        return model, model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]


def transformer_params(**kwargs) -> dict:
    """The params of `transformer_lm`."""
    return transformer_lm(**kwargs)[1]


def regime_trees(quick: bool, only: str | None = None) -> dict[str, dict]:
    """name -> param tree for the step-time regimes (just `only`'s, when given)."""
    del quick  # the regimes are the same; --quick runs fewer optimizers on the expensive ones
    builders = {
        "large_1x4M": lambda: leaves(1, 4 * 1024 * 1024),
        "small_400x10k": lambda: leaves(400, 10_000),
        "small_2000x1k": lambda: leaves(2000, 1_000),
        "flax_transformer": transformer_params,
    }
    return {name: build() for name, build in builders.items() if only in (None, name)}


def tree_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))
