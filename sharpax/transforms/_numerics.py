"""Step-dependent scalars (bias corrections, RAdam's rho_t) computed without float32 cancellation.

torch evaluates `1 - beta ** t` in float64 on the host. Rounding beta to float32 first (0.999 becomes
0.99900001) moves `1 - beta` by 1.3e-5 relative, which moves Adam's early steps by ~6e-6; computing
`-expm1(t * log(beta))` from a float64 `log(beta)` keeps the error at a few float32 ulps.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from sharpax._types import Array
from sharpax._validation import is_static_number


def increment(count: Array) -> Array:
    """`count + 1`, saturating at the int32 maximum instead of wrapping (`optax.safe_increment`)."""
    return jnp.asarray(optax.safe_increment(count))


def log_decay(decay: Any) -> Any:
    """`log(decay)`: a float64 Python float for a static decay (-inf for 0), else float32."""
    if is_static_number(decay):
        value = float(decay)
        return math.log(value) if value > 0 else -math.inf
    return jnp.log(jnp.asarray(decay, jnp.float32))


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


def first_rectified_step(b2: float, threshold: float) -> int | None:
    """The first step t with `rho_t > threshold` for a static beta_2, decided as torch decides it.

    rho_t increases with t towards rho_inf, so RAdam's rectified steps are exactly `t >= t*`. torch (and
    the original code) evaluate rho_t on the host in float64 with the expression below; using the same
    expression gives the same decision, also for beta_2 so close to 1 that rho_t sits within rounding of
    an integer threshold. An integer comparison in the update also keeps the rho_t arithmetic out of the
    per-leaf kernels: XLA copies cheap scalar ops into every consumer, and a float32
    `rho_t > threshold` put all of them into each leaf's fused update (compile time).

    Returns:
        t* >= 1, or None when rho_inf <= threshold (never rectified) or t* is past the int32 step count.
    """
    b2, threshold = float(b2), float(threshold)
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    if b2 <= 0.0 or rho_inf <= threshold:
        return None

    def rectified(t: int) -> bool:
        return rho_inf - 2 * t * (b2**t) / (1 - b2**t) > threshold

    lo, hi = 1, 1
    while not rectified(hi):  # exponential search, then bisection
        lo, hi = hi + 1, 2 * hi
        if hi > 2**31 - 1:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if rectified(mid) else (mid + 1, hi)
    return lo


@jax.custom_jvp
def safe_sqrt(x: Array) -> Array:
    """`jnp.sqrt(x)`, bit for bit, whose derivative at 0 is 0 instead of infinity.

    The second-moment roots of Adam, RMSprop, Adagrad, ... are 0 wherever a gradient coordinate has
    always been 0 (a dead ReLU unit, padding). Differentiating through `update` (meta-learning, a
    learned learning rate) then multiplies sqrt's infinite slope by the zero slope of `g^2` at `g = 0`:
    NaN, where the true derivative of the whole step is finite. The forward computation is plain
    `jnp.sqrt` (a custom JVP changes only derivatives), so trajectories, and torch parity, are unchanged;
    optax's alternative, `eps_root` inside the root, changes the values.
    """
    return jnp.sqrt(x)


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    root = jnp.sqrt(x)
    zero = root == 0
    # The double `where` keeps 1 / 0 out of both branches (its cotangent would be NaN as well); a NaN
    # root keeps a NaN slope.
    slope = jnp.where(zero, 0, 0.5 / jnp.where(zero, 1, root)).astype(root.dtype)
    return root, slope * t
