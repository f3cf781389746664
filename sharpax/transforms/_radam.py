"""RAdam with torch.optim.RAdam's update rule and the options of the original RAdam code."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import zeros_like_tree
from sharpax._types import Array, Mask, ScalarOrSchedule, Schedule, Updates
from sharpax._validation import (
    check_beta,
    check_float_dtype,
    check_non_negative,
    check_range,
    check_tree_match,
    is_static_number,
)
from sharpax.transforms._build import optimizer, weight_decay_block
from sharpax.transforms._moments import update_first_moment, update_second_moment
from sharpax.transforms._numerics import (
    first_rectified_step,
    increment,
    one_minus_power,
    radam_rho,
    safe_sqrt,
)
from sharpax.transforms._scheduled import scheduled, value_at


class ScaleByRadamState(NamedTuple):
    """State of `scale_by_radam`: step count and the two moments."""

    count: Array
    mu: Updates
    nu: Updates


def scale_by_radam(
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    threshold: float = 5.0,
    degenerated_to_sgd: bool = True,
    *,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformation:
    r"""Rectified Adam: the variance-rectified adaptive step once rho_t exceeds the threshold.

    .. math::
        \rho_\infty = \tfrac{2}{1 - \beta_2} - 1, \quad
        \rho_t = \rho_\infty - \tfrac{2 t \beta_2^t}{1 - \beta_2^t}, \quad
        r_t = \sqrt{\tfrac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}} \\
        u_t = \frac{m_t}{1 - \beta_1^t} \cdot
        \begin{cases} r_t \dfrac{\sqrt{1 - \beta_2^t}}{\sqrt{v_t} + \epsilon} & \rho_t > \text{threshold} \\
        1 \text{ (degenerated\_to\_sgd) or } 0 & \text{otherwise} \end{cases}

    eps is added to the *uncorrected* root (torch and the original code); optax adds it to the corrected
    root, and its threshold is 5 with `>=`, not `>`.
    The test `rho_t > threshold` is decided as torch decides it, in float64: for a static beta_2 and
    threshold the first rectified step is found when the transform is built, and the update compares the
    step count with it (a traced one, e.g. under `optax.inject_hyperparams`, compares a float32 rho_t).

    Args:
        b1: beta_1 in [0, 1), or a schedule (torch's cycled beta_1).
        b2: beta_2 in [0, 1).
        eps: >= 0.
        threshold: rectify only when rho_t > threshold (torch: 5); >= 4, where the rectifier is real.
        degenerated_to_sgd: below the threshold, take the un-adapted momentum step (torch) rather than
            no step at all (the original code's other option).
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the second moment (default: the param's).

    Returns:
        An `optax.GradientTransformation` with state `ScaleByRadamState`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_radam()
        >>> u, _ = tx.update(jnp.array([0.5]), tx.init(jnp.zeros(1)))
        >>> u  # rho_1 = 1 <= 5: the bias-corrected momentum, i.e. the gradient
        Array([0.5], dtype=float32)
    """
    owner = "scale_by_radam"
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    # The rectifier is a square root of (rho_t - 4)(...): real only for rho_t > 4.
    check_range(owner, "threshold", threshold, 4.0)
    check_beta(owner, b1=b1, b2=b2)
    check_non_negative(owner, eps=eps)

    def init_fn(params):
        return ScaleByRadamState(
            count=jnp.zeros([], jnp.int32),
            mu=zeros_like_tree(params, mu_dtype),
            nu=zeros_like_tree(params, nu_dtype),
        )

    b1 = scheduled(owner, "b1", b1)
    static_threshold = is_static_number(b2) and is_static_number(threshold)
    first_step = first_rectified_step(b2, threshold) if static_threshold else None

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.mu)
        b1_t = value_at(b1, state.count)
        count = increment(state.count)
        t = count.astype(jnp.float32)
        bc1 = one_minus_power(b1_t, t)
        bc2 = one_minus_power(b2, t)
        rho_t, rho_inf = radam_rho(b2, t)
        if static_threshold:
            rectified = jnp.asarray(False) if first_step is None else count >= first_step
        else:
            rectified = rho_t > threshold
        # Evaluate the rectifier only where it is defined (rho_t > 4), so no NaN enters either branch.
        safe_rho = jnp.where(rectified, rho_t, rho_inf)
        rect = jnp.sqrt(
            (safe_rho - 4) * (safe_rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * safe_rho)
        )
        fallback = 1.0 if degenerated_to_sgd else 0.0
        mu = update_first_moment(updates, state.mu, b1_t)
        nu = update_second_moment(updates, state.nu, b2)

        # torch multiplies sqrt(1 - b2^t) / (sqrt(v) + eps) by r_t per element; one scalar product first is
        # the same to an ulp, and the per-leaf kernel then has one parameter order for every leaf of a shape,
        # so XLA:CPU compiles it once per shape, as optax's (counts in benchmarks/README.md).
        adaptive_scale = jnp.sqrt(bc2) * rect

        def step(g, m, v):
            corrected = m / jnp.asarray(bc1, m.dtype)
            adaptive = jnp.asarray(adaptive_scale, v.dtype) / (safe_sqrt(v) + eps)
            scale = jnp.where(rectified, adaptive, jnp.asarray(fallback, v.dtype))
            return (corrected * scale.astype(m.dtype)).astype(g.dtype)

        new_updates = jax.tree.map(step, updates, mu, nu)
        return new_updates, ScaleByRadamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)


def radam(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float | Schedule = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: ScalarOrSchedule = 0.0,
    decoupled_weight_decay: bool = False,
    *,
    threshold: float = 5.0,
    degenerated_to_sgd: bool = True,
    mask: Mask = None,
    mu_dtype: Any | None = None,
    nu_dtype: Any | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""RAdam (Liu et al. 2020) with torch.optim.RAdam's update rule.

    .. math::
        w_t = w_{t-1} - \eta_t \, u_t \quad (+ \text{ L2 or decoupled decay as in } \texttt{nadam})

    with u_t from `sharpax.transforms.scale_by_radam`. Differs from `optax.radam`: eps placement, the
    strict threshold `rho_t > 5`, and the choice of what to do below it.

    Args:
        learning_rate: eta >= 0, or a schedule.
        b1: beta_1 in [0, 1), or a schedule (torch's cycled beta_1).
        b2: beta_2 in [0, 1).
        eps: >= 0.
        weight_decay: lambda >= 0, or a schedule.
        decoupled_weight_decay: AdamW-style decay instead of the L2 term.
        threshold: rectify only when rho_t > threshold (torch: 5); >= 4, where the rectifier is real.
        degenerated_to_sgd: below the threshold take an un-adapted momentum step (torch), else no step.
        mask: pytree of bools (or a callable on params) choosing which leaves decay, L2 or decoupled (optax's convention);
            everything decays when `None`, as in torch.
        mu_dtype: dtype of the first moment (default: the param's).
        nu_dtype: dtype of the second moment (default: the param's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.radam(0.1, degenerated_to_sgd=False)
        >>> p = jnp.ones(1)
        >>> u, _ = tx.update(jnp.ones(1), tx.init(p), p)
        >>> u  # no step until rho_t > 5
        Array([-0.], dtype=float32)
    """
    owner = "radam"
    check_range(owner, "threshold", threshold, 4.0)
    check_float_dtype(owner, mu_dtype=mu_dtype, nu_dtype=nu_dtype)
    check_non_negative(owner, weight_decay=weight_decay, eps=eps)
    check_beta(owner, b1=b1, b2=b2)
    decay = weight_decay_block(weight_decay, owner, mask)
    scale = scale_by_radam(
        b1, b2, eps, threshold, degenerated_to_sgd, mu_dtype=mu_dtype, nu_dtype=nu_dtype
    )
    blocks = (scale, decay) if decoupled_weight_decay else (decay, scale)
    return optimizer(owner, *blocks, learning_rate=learning_rate)
