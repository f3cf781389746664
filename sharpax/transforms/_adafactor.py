"""Adafactor with torch.optim.Adafactor's update rule (relative step, factored second moment)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._types import Array, ArrayLike, ScalarOrSchedule, Updates
from sharpax._validation import (
    check_non_negative,
    check_range,
    check_tree_match,
    checked_schedule,
)
from sharpax.transforms._build import float_leaves_only, is_static_zero, weight_decay_block
from sharpax.transforms._numerics import increment


class ScaleByAdafactorState(NamedTuple):
    """State of `scale_by_adafactor`.

    Attributes:
        count: updates done (int32).
        row_var: per leaf of 2 or more dims, the row factor of the second moment, shape
            `(..., n, 1)`; a 0-d placeholder for the other leaves.
        col_var: likewise the column factor, shape `(..., 1, m)`.
        variance: per leaf of 0 or 1 dim, the second moment; a 0-d placeholder for the others.
    """

    count: Array
    row_var: Updates
    col_var: Updates
    variance: Updates


def _lerp(start: Array, end: Array, weight: Array) -> Array:
    """torch's `lerp`: each form exact at its own end (`weight` 0 or 1)."""
    weight = weight.astype(start.dtype)
    return jnp.where(
        weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
    )


def _rms(x: Array) -> Array:
    """`||x|| / sqrt(numel)`, torch's `x.norm(2) / x.numel() ** 0.5`, in float32."""
    x = x.astype(jnp.float32)
    return jnp.sqrt(jnp.sum(x * x)) / math.sqrt(x.size)


def _placeholder(p: Any) -> Array:
    # A reduction of the param's zeros (folded away by XLA) rather than `zeros([])`: it is placed on
    # the param's devices, as every other buffer, also when init is jitted under explicit sharding.
    return jnp.zeros_like(p).sum()


def _factored(p: Any) -> bool:
    return p.ndim >= 2


def _sum_sq(g: Array, axis: int) -> Array:
    # torch: norm(g, dim).square_(): the root of the sum of squares, squared.
    return jnp.square(jnp.sqrt(jnp.sum(jnp.square(g), axis=axis, keepdims=True)))


def scale_by_adafactor(
    learning_rate: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
) -> optax.GradientTransformation:
    r"""Adafactor's relative, RMS-scaled step with a factored second moment, as torch.optim.Adafactor.

    .. math::
        \hat\beta_{2,t} = 1 - t^{\tau}, \quad \rho_t = \min(\gamma, 1/\sqrt t), \quad
        \alpha_t = \max(\epsilon_2, \mathrm{RMS}(w_{t-1})) \, \rho_t \\
        R_t = \mathrm{lerp}(R_{t-1}, \overline{g^2}^{\,row}, 1 - \hat\beta_{2,t}), \;
        C_t = \mathrm{lerp}(C_{t-1}, \overline{g^2}^{\,col}, 1 - \hat\beta_{2,t}), \;
        \hat V_t = \frac{R_t C_t}{\max(\overline{R_t}, \epsilon_1)} \\
        U_t = \frac{g_t}{\sqrt{\max(\hat V_t, \epsilon_1^2)}}, \qquad
        u_t = \frac{\alpha_t \, U_t}{\max(1, \mathrm{RMS}(U_t) / d)}

    over the last two dims of leaves with 2 or more dims (row and column means of :math:`g^2`), a
    plain moving average :math:`\hat V_t` for scalars and vectors. Emits :math:`u_t` (a step to
    subtract). The factoring is symmetric in the two dims, so Flax's `(in, out)` and torch's
    `(out, in)` layouts give transposed, equal results. `optax.scale_by_factored_rms` factors the two
    largest dims, puts epsilon elsewhere and has no relative step.

    Args:
        learning_rate: gamma >= 0, the cap of the relative step rho_t (and decay's rate), or a schedule.
        beta2_decay: tau <= 0.
        eps: (epsilon_1, epsilon_2): epsilon_1 >= 0, or `None` for the param dtype's machine epsilon
            (torch's default); epsilon_2 >= 0.
        d: the update-clipping threshold, >= 1.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByAdafactorState`; `update` needs `params`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_adafactor()
        >>> w = jnp.ones((2, 3))
        >>> u, _ = tx.update(jnp.full((2, 3), 5.0), tx.init(w), w)
        >>> u  # alpha_1 = max(1e-3, RMS(w)) * min(1e-2, 1) and U = g / |g|
        Array([[0.01, 0.01, 0.01],
               [0.01, 0.01, 0.01]], dtype=float32)
    """
    owner = "scale_by_adafactor"
    eps1, eps2 = _check(owner, learning_rate, beta2_decay, eps, d)
    learning_rate = checked_schedule(owner, "learning_rate", learning_rate)

    def init_fn(params):
        def row(p):
            return (
                jnp.zeros_like(p).sum(axis=-1, keepdims=True) if _factored(p) else _placeholder(p)
            )

        def col(p):
            return (
                jnp.zeros_like(p).sum(axis=-2, keepdims=True) if _factored(p) else _placeholder(p)
            )

        return ScaleByAdafactorState(
            count=jnp.zeros([], jnp.int32),
            row_var=jax.tree.map(row, params),
            col_var=jax.tree.map(col, params),
            variance=jax.tree.map(
                lambda p: _placeholder(p) if _factored(p) else jnp.zeros_like(p), params
            ),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"{owner}: update needs params (the step is relative to their RMS)")
        check_tree_match(owner, updates, params, what="params")
        count = increment(state.count)
        t = count.astype(jnp.float32)
        weight = t**beta2_decay  # torch's one_minus_beta2_t
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        rho = jnp.minimum(jnp.asarray(lr, jnp.float32), 1.0 / jnp.sqrt(t))

        def step(g, p, row, col, var):
            if g.size == 0:  # nothing to scale; torch's column mean would be 0 / 0
                return _Leaf(g, row, col, var)
            e1 = float(jnp.finfo(p.dtype).eps) if eps1 is None else eps1
            alpha = jnp.maximum(eps2, _rms(p)) * rho
            if _factored(g):
                row = _lerp(row, _sum_sq(g, -1) / g.shape[-1], weight)
                col = _lerp(col, _sum_sq(g, -2) / g.shape[-2], weight)
                estimate = (row * col) / jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), e1)
            else:
                var = _lerp(var, g * g, weight)
                estimate = var
            u = jax.lax.rsqrt(jnp.maximum(estimate, e1 * e1)) * g
            denom = jnp.maximum(1.0, _rms(u) / d)
            return _Leaf((alpha / denom).astype(u.dtype) * u, row, col, var)

        out = jax.tree.map(step, updates, params, state.row_var, state.col_var, state.variance)
        pick = lambda i: jax.tree.map(lambda x: x[i], out, is_leaf=lambda x: isinstance(x, _Leaf))
        return pick(0), ScaleByAdafactorState(count, pick(1), pick(2), pick(3))

    return optax.GradientTransformation(init_fn, update_fn)


class _Leaf(NamedTuple):
    step: Any
    row: Any
    col: Any
    var: Any


def _check(owner: str, learning_rate, beta2_decay, eps, d) -> tuple[float | None, float]:
    check_non_negative(owner, learning_rate=learning_rate)
    check_range(owner, "beta2_decay", beta2_decay, high=0.0)
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise ValueError(f"{owner}: eps must be a pair (epsilon_1 or None, epsilon_2), got {eps!r}")
    eps1, eps2 = eps
    if eps1 is not None:
        check_non_negative(owner, **{"eps[0]": eps1})
    check_non_negative(owner, **{"eps[1]": eps2})
    check_range(owner, "d", d, 1.0)
    return eps1, eps2


def adafactor(
    learning_rate: ScalarOrSchedule = 1e-2,
    beta2_decay: float = -0.8,
    eps: tuple[float | None, float] = (None, 1e-3),
    d: float = 1.0,
    weight_decay: ScalarOrSchedule = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Adafactor (Shazeer & Stern 2018) with torch.optim.Adafactor's update rule.

    .. math::
        w_t = w_{t-1} - \gamma \lambda w_{t-1}
              - \frac{\max(\epsilon_2, \mathrm{RMS}(w_{t-1})) \min(\gamma, t^{-1/2}) \, U_t}
                     {\max(1, \mathrm{RMS}(U_t) / d)}

    with :math:`U_t` the gradient over the root of the factored second moment of
    `sharpax.transforms.scale_by_adafactor`. As torch: the learning rate caps the relative step and
    scales the decoupled weight decay, epsilon_1 defaults to the dtype's machine epsilon and is applied
    to the estimate rather than the factors, the second moment is factored over the last two dims.
    `optax.adafactor` factors the two largest dims, has no relative step by default (it multiplies by
    the learning rate) and clips differently.

    Args:
        learning_rate: gamma >= 0 (the relative step's cap), or a schedule.
        beta2_decay: tau <= 0, the second moment's decay `1 - t^tau`.
        eps: (epsilon_1 >= 0 or None for the dtype's epsilon, epsilon_2 >= 0).
        d: the update-clipping threshold, >= 1.
        weight_decay: decoupled decay lambda >= 0 (multiplied by the learning rate), or a schedule.

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018.

    Example:
        >>> import jax, jax.numpy as jnp, optax, sharpax
        >>> params = {"w": jnp.ones((4, 3)), "b": jnp.zeros(3)}
        >>> tx = sharpax.adafactor(weight_decay=0.1)
        >>> state = tx.init(params)
        >>> jax.tree.map(jnp.shape, state[0].row_var)  # (4, 1) for the matrix, a placeholder for b
        {'b': (), 'w': (4, 1)}
    """
    owner = "adafactor"
    _check(owner, learning_rate, beta2_decay, eps, d)
    check_non_negative(owner, weight_decay=weight_decay)
    learning_rate = checked_schedule(owner, "learning_rate", learning_rate)
    decay = None
    if not is_static_zero(weight_decay):
        decay = weight_decay_block(_times(learning_rate, weight_decay), owner)
    chained = optax.chain(
        scale_by_adafactor(learning_rate, beta2_decay, eps, d),
        *(b for b in (decay,) if b is not None),
        optax.scale(-1.0),
    )
    return float_leaves_only(chained, owner, complex_params=False)  # as torch.optim.Adafactor


def _times(a: ScalarOrSchedule, b: ScalarOrSchedule) -> ScalarOrSchedule:
    """`a * b` for numbers or schedules of the count (torch decays by `lr * weight_decay`)."""
    if not callable(a) and not callable(b):
        return a * b
    return lambda count: _value(a, count) * _value(b, count)


def _value(x: ScalarOrSchedule, count: ArrayLike) -> ArrayLike:
    return x(count) if callable(x) else x
