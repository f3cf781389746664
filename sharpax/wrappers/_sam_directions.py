"""Update directions built from the two SAM gradients: GSAM's and LookSAM's orthogonal decompositions.

Each works on the floating leaves of the gradient trees, with global inner products; other leaves pass through.
"""

from __future__ import annotations

import jax.numpy as jnp

from sharpax._types import Updates
from sharpax.wrappers._sam_perturbation import (
    accumulation_dtype,
    float_leaves,
    global_dot,
    global_norm,
    unit,
)


def _orthogonal_part(leaves, onto, dtype):
    """`leaves` minus their projection on the line of `onto` (nothing removed when `onto` is zero)."""
    u = unit(onto, dtype)
    coef = global_dot(leaves, u, dtype)
    return [x.astype(dtype) - coef * ui for x, ui in zip(leaves, u, strict=True)]


def gsam_direction(grads: Updates, sam_grads: Updates, alpha) -> Updates:
    """GSAM's update direction `g_p - alpha * g_perp`, g_perp the part of `grads` orthogonal to `g_p`.

    `grads` is the first-pass gradient g at w, `sam_grads` the SAM gradient g_p at w + e(w)
    (Zhuang et al. 2022, Algorithm 1; juntang-zhuang/GSAM `gradient_decompose`).
    """
    g, _ = float_leaves(grads)
    gp, rebuild = float_leaves(sam_grads)
    dtype = accumulation_dtype(g + gp)
    perp = _orthogonal_part(g, gp, dtype)
    a = jnp.asarray(alpha, dtype)
    return rebuild([x.astype(dtype) - a * v for x, v in zip(gp, perp, strict=True)])


def looksam_vertical_direction(grads: Updates, sam_grads: Updates) -> Updates:
    """LookSAM's g_v / ||g_v||: the unit part of the SAM gradient g_s orthogonal to g (zero if none).

    Liu et al. 2022, Algorithm 1: g_v = g_s - ||g_s|| cos(theta) g / ||g||; only its direction is reused.
    """
    g, _ = float_leaves(grads)
    gs, rebuild = float_leaves(sam_grads)
    dtype = accumulation_dtype(g + gs)
    return rebuild(unit(_orthogonal_part(gs, g, dtype), dtype))


def looksam_direction(grads: Updates, vertical_direction: Updates, alpha) -> Updates:
    """LookSAM's cheap step `g + alpha * ||g|| * g_v / ||g_v||`, from one gradient and the stored direction."""
    g, rebuild = float_leaves(grads)
    v, _ = float_leaves(vertical_direction)
    dtype = accumulation_dtype(g + v)
    scale = jnp.asarray(alpha, dtype) * global_norm(g, dtype)
    return rebuild([x.astype(dtype) + scale * y.astype(dtype) for x, y in zip(g, v, strict=True)])
