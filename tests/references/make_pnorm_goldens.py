"""Write `sam_p2_perturbations.npz`: SAM's p = 2 perturbation as main computed it before any p-norm existed.

    python -m tests.references.make_pnorm_goldens

Run once on main at commit 371cbe4 (before the p-norm work), under `jax.jit`, on this machine's CPU. The test
(`tests/test_sam_perturbation.py`) checks that the p = 2 path still gives these values, so that adding the
other p-norms did not touch it. Each case is a params/gradient pair and the options of the perturbation.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "sam_p2_perturbations.npz"


def cases() -> dict[str, tuple[dict, dict, dict]]:
    """name -> (params, grads, Perturbation kwargs). Sizes that are not multiples of a SIMD width."""
    rng = np.random.default_rng(0)
    tree = lambda scale, dtype=np.float32: {
        "a": (scale * rng.standard_normal((37,))).astype(dtype),
        "b": (scale * rng.standard_normal((5, 3))).astype(dtype),
        "c": (scale * rng.standard_normal((1,))).astype(dtype),
    }
    w, g = tree(1.0), tree(1.0)
    bf16 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), t)
    return {
        "sam": (w, g, {"rho": 0.05}),
        "asam": (w, g, {"rho": 0.5, "adaptive": True, "eta": 0.01}),
        "mask": (w, g, {"rho": 0.1, "mask": {"a": True, "b": False, "c": True}}),
        "bfloat16": (bf16(w), bf16(g), {"rho": 0.05}),
        "huge": (w, tree(1e30), {"rho": 0.05}),
        "tiny": (w, tree(1e-30), {"rho": 0.05}),
    }


def perturbations() -> dict[str, np.ndarray]:
    from sharpax.wrappers._sam_geometry import Perturbation

    out = {}
    for name, (params, grads, kwargs) in cases().items():
        perturb = jax.jit(lambda p, g, kw=kwargs: Perturbation("golden", p=2, **kw).perturb(p, g))
        for key, leaf in perturb(params, grads).items():
            out[f"{name}/{key}"] = np.asarray(leaf.astype(jnp.float32))
    return out


if __name__ == "__main__":
    np.savez(OUT, **perturbations())
    print("wrote", OUT)
