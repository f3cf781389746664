"""The exponential moving averages of the Adam family, written once, in torch's operation order.

torch updates the first moment with `lerp_` (m + (1 - b1)(g - m)) and the second with `mul_` then
`addcmul_` (b2 v + (1 - b2) g^2); keeping the same order keeps float32 rounding close to torch's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from sharpax._types import Updates


def update_first_moment(updates: Updates, mu: Updates, b1: Any) -> Updates:
    r""":math:`m_t = m_{t-1} + (1 - \beta_1)(g_t - m_{t-1})`, in each moment's own dtype.

    A traced `b1` (a schedule's value) is cast to the moment's dtype, as a Python float is.
    """
    weight = lambda m: (1 - b1) if isinstance(b1, (int, float)) else (1 - b1).astype(m.dtype)
    return jax.tree.map(lambda g, m: m + weight(m) * (g.astype(m.dtype) - m), updates, mu)


def update_second_moment(updates: Updates, nu: Updates, b2: Any) -> Updates:
    r""":math:`v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2`, in each moment's own dtype."""
    return jax.tree.map(lambda g, v: b2 * v + (1 - b2) * jnp.square(g.astype(v.dtype)), updates, nu)
