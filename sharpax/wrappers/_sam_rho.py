"""A rho schedule that follows the learning rate, as GSAM ties the two (its `ProportionScheduler`)."""

from __future__ import annotations

import jax.numpy as jnp

from sharpax._types import Schedule
from sharpax._validation import check_non_negative, check_range


def lr_proportional_rho(
    learning_rate: Schedule,
    lr_max: float,
    lr_min: float,
    rho_max: float,
    rho_min: float = 0.0,
) -> Schedule:
    r"""The rho schedule that moves in proportion to a learning-rate schedule (GSAM, Zhuang et al. 2022).

    .. math::
        \rho_t = \rho_{min} + (\rho_{max} - \rho_{min}) \, \frac{\eta_t - \eta_{min}}{\eta_{max} - \eta_{min}}

    Pass it as `rho` to any SAM-family wrapper (with `sam_step=` in the gradient form). Equivalent to
    juntang-zhuang/GSAM's `ProportionScheduler`; optax and torch.optim have no counterpart.

    Args:
        learning_rate: the learning-rate schedule `step -> eta_t`.
        lr_max: the largest learning rate of the schedule (maps to `rho_max`), > lr_min.
        lr_min: the smallest (maps to `rho_min`).
        rho_max: rho at `lr_max`, >= rho_min.
        rho_min: rho at `lr_min`, >= 0.

    Returns:
        A schedule `step -> rho_t`.

    References:
        Zhuang et al., "Surrogate Gap Guided Sharpness-Aware Minimization", ICLR 2022, Section 5.

    Example:
        >>> import optax, sharpax
        >>> lr = optax.linear_schedule(0.1, 0.0, transition_steps=100)
        >>> rho = sharpax.wrappers.lr_proportional_rho(lr, 0.1, 0.0, rho_max=0.04, rho_min=0.02)
        >>> rho(50)  # half-way down the learning rate, half-way down rho
        Array(0.03, dtype=float32)
    """
    owner = "lr_proportional_rho"
    check_non_negative(owner, rho_min=rho_min)
    check_range(owner, "rho_max", rho_max, rho_min)
    check_range(owner, "lr_max", lr_max, lr_min, low_inclusive=False)

    def schedule(step):
        fraction = (jnp.asarray(learning_rate(step), jnp.float32) - lr_min) / (lr_max - lr_min)
        return rho_min + (rho_max - rho_min) * fraction

    return schedule
