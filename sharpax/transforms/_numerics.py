"""Step-dependent scalars (bias corrections, RAdam's rho_t) computed without float32 cancellation.

torch evaluates `1 - beta ** t` in float64 on the host. Rounding beta to float32 first (0.999 becomes
0.99900001) moves `1 - beta` by 1.3e-5 relative, which moves Adam's early steps by ~6e-6; computing
`-expm1(t * log(beta))` from a float64 `log(beta)` keeps the error at a few float32 ulps.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from sharpax._types import Array
from sharpax._validation import is_static_number


def log_decay(decay: Any) -> Any:
    """`log(decay)`: a float64 Python float for a static decay (-inf for 0), else float32."""
    if is_static_number(decay):
        value = float(decay)
        return math.log(value) if value > 0 else -math.inf
    return jnp.log(jnp.asarray(decay, jnp.float32))


def power(decay: Any, t: Array) -> Array:
    """`decay ** t` for a float32 step `t >= 1`."""
    return jnp.exp(t * log_decay(decay))


def one_minus_power(decay: Any, t: Array) -> Array:
    """`1 - decay ** t` (a bias correction) for a float32 step `t >= 1`, accurate for decay near 1."""
    return -jnp.expm1(t * log_decay(decay))


def _one_over_x_minus_one_over_expm1(x: Array) -> Array:
    """`1/x - 1/expm1(x)` for `x > 0`: its Bernoulli series below 1, where the difference cancels."""
    small = jnp.minimum(x, 1.0)
    x2 = small * small
    series = 0.5 - small / 12 * (1 - x2 / 60 * (1 - x2 / 42 * (1 - x2 / 40 * (1 - x2 * 5 / 198))))
    large = jnp.maximum(x, 1.0)
    return jnp.where(x < 1.0, series, 1 / large - 1 / jnp.expm1(large))


def radam_rho(b2: Any, t: Array) -> tuple[Array, Any]:
    r"""RAdam's `(rho_t, rho_inf)` for a float32 step `t >= 1`.

    .. math::
        \rho_t = \rho_\infty - \frac{2 t \beta^t}{1 - \beta^t}
               = \Big(\rho_\infty - \frac{2}{L}\Big) + 2t \Big(\frac{1}{tL} - \frac{1}{e^{tL} - 1}\Big),
        \quad L = -\log\beta

    The second form has no difference of two ~2/(1-beta) sized numbers in float32; its constant is
    evaluated in float64 for a static beta.
    """
    log_b2 = log_decay(b2)
    if is_static_number(b2):
        rho_inf = 2.0 / (1.0 - float(b2)) - 1.0
        offset = rho_inf + 2.0 / log_b2  # 2 / -inf == 0.0 for b2 == 0
    else:
        b2 = jnp.asarray(b2, jnp.float32)
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        offset = rho_inf + 2.0 / log_b2
    x = -t * log_b2
    return offset + 2 * t * _one_over_x_minus_one_over_expm1(x), rho_inf
