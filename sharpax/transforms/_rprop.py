"""Rprop with torch.optim.Rprop's update rule (iRprop-: the current step's update)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._types import Updates
from sharpax._validation import check_non_negative, check_range, check_tree_match
from sharpax.transforms._build import float_leaves_only


class ScaleByRpropState(NamedTuple):
    """State of `scale_by_rprop`: the previous gradient (zeroed where its sign flipped) and the
    per-element step sizes."""

    prev: Updates
    step_size: Updates


class _Leaf(NamedTuple):
    """One leaf's results, unzipped into trees afterwards (a plain tuple could be a params node)."""

    update: Any
    prev: Any
    step_size: Any


def _check(owner: str, learning_rate: Any, etas: Any, step_sizes: Any) -> tuple:
    if callable(learning_rate):
        raise TypeError(
            f"{owner}: learning_rate is the initial step size, which torch reads once: pass a number, "
            "not a schedule (a torch scheduler has no effect on Rprop after its first step)"
        )
    check_non_negative(owner, learning_rate=learning_rate)
    if len(etas) != 2 or len(step_sizes) != 2:
        raise ValueError(f"{owner}: etas and step_sizes must be pairs, got {etas}, {step_sizes}")
    eta_minus, eta_plus = etas
    check_range(owner, "etas[0]", eta_minus, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    check_range(owner, "etas[1]", eta_plus, 1.0, low_inclusive=False)
    low, high = step_sizes
    check_non_negative(owner, **{"step_sizes[0]": low})
    check_range(owner, "step_sizes[1]", high, low)
    return eta_minus, eta_plus, low, high


def scale_by_rprop(
    learning_rate: Any = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
) -> optax.GradientTransformation:
    r"""Rprop's signed steps with per-element adapted step sizes, as torch.optim.Rprop (iRprop-).

    .. math::
        s_t = \mathrm{sign}(g_t \, g'_{t-1}), \quad
        \Delta_t = \mathrm{clip}(\Delta_{t-1} \cdot \{\eta_+, \eta_-, 1\}[s_t], \Delta_{min}, \Delta_{max}),
        \\ g'_t = 0 \text{ where } s_t < 0 \text{ else } g_t, \qquad u_t = \mathrm{sign}(g'_t) \, \Delta_t

    with :math:`\Delta_0` = `learning_rate`. The update is this step's (torch); `optax.scale_by_rprop`
    emits the previous step's update instead.

    Args:
        learning_rate: the initial step size Delta_0 >= 0 (a number: torch reads it once).
        etas: (eta_minus, eta_plus) with 0 < eta_minus < 1 < eta_plus.
        step_sizes: (Delta_min, Delta_max) with 0 <= Delta_min <= Delta_max.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByRpropState`; its updates are steps to
        subtract.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_rprop(0.1)
        >>> state = tx.init(jnp.zeros(2))
        >>> u, state = tx.update(jnp.array([1.0, -3.0]), state)
        >>> u, state = tx.update(jnp.array([2.0, 1.0]), state)  # same sign: x1.2; flipped: x0.5, no step
        >>> u
        Array([0.12, 0.  ], dtype=float32)
    """
    owner = "scale_by_rprop"
    eta_minus, eta_plus, low, high = _check(owner, learning_rate, etas, step_sizes)

    def init_fn(params):
        return ScaleByRpropState(
            prev=jax.tree.map(jnp.zeros_like, params),
            step_size=jax.tree.map(lambda p: jnp.full_like(p, learning_rate), params),
        )

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.prev)

        def step(g, prev, size):
            product = g * prev  # torch takes the sign of the product, which may underflow to 0
            flipped = product < 0
            factor = jnp.where(product > 0, eta_plus, jnp.where(flipped, eta_minus, 1.0))
            size = jnp.clip(size * factor.astype(size.dtype), low, high).astype(size.dtype)
            # torch zeroes where the factor is eta_minus: exactly the flips, as eta_minus < 1 < eta_plus.
            g = jnp.where(flipped, jnp.zeros_like(g), g)
            return _Leaf(jnp.sign(g) * size.astype(g.dtype), g, size)

        out = jax.tree.map(step, updates, state.prev, state.step_size)
        pick = lambda i: jax.tree.map(lambda t: t[i], out, is_leaf=lambda x: isinstance(x, _Leaf))
        return pick(0), ScaleByRpropState(prev=pick(1), step_size=pick(2))

    return optax.GradientTransformation(init_fn, update_fn)


def rprop(
    learning_rate: Any = 1e-2,
    etas: tuple[float, float] = (0.5, 1.2),
    step_sizes: tuple[float, float] = (1e-6, 50.0),
) -> optax.GradientTransformationExtraArgs:
    r"""Rprop (Riedmiller & Braun 1993) with torch.optim.Rprop's rule (iRprop-).

    .. math::
        w_t = w_{t-1} - \mathrm{sign}(g'_t) \, \Delta_t

    with the step sizes of `sharpax.transforms.scale_by_rprop`: each grows by `eta_plus` while its
    gradient keeps its sign, shrinks by `eta_minus` when it flips (and that element does not move, and
    counts as a zero gradient next step), within `step_sizes`. Full-batch methods: the gradient's
    magnitude is ignored. Differs from `optax.rprop`, which applies the previous step's update.
    `learning_rate` is the initial step size only, as in torch (where an lr scheduler has no effect
    after the first step).

    Args:
        learning_rate: the initial step size >= 0 (a number, not a schedule).
        etas: (eta_minus, eta_plus), 0 < eta_minus < 1 < eta_plus.
        step_sizes: (minimum, maximum) step size, 0 <= minimum <= maximum.

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP
        Algorithm", ICNN 1993.
        Igel & Huesken, "Improving the Rprop Learning Algorithm", 2000 (iRprop-).

    Example:
        >>> import jax, jax.numpy as jnp, optax, sharpax
        >>> params = jnp.array([1.0, -2.0])
        >>> tx = sharpax.rprop(0.1)
        >>> updates, _ = tx.update(jax.grad(lambda w: jnp.sum(w**2))(params), tx.init(params))
        >>> optax.apply_updates(params, updates)  # each element moves by the initial step size
        Array([ 0.9, -1.9], dtype=float32)
    """
    owner = "rprop"
    _check(owner, learning_rate, etas, step_sizes)
    chained = optax.chain(scale_by_rprop(learning_rate, etas, step_sizes), optax.scale(-1.0))
    return float_leaves_only(chained, owner)
