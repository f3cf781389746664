"""Ranger: RAdam inside Lookahead, the combination people search for by that name."""

from __future__ import annotations

import optax

from sharpax._types import ScalarOrSchedule
from sharpax.transforms import radam
from sharpax.wrappers._lookahead import lookahead


def ranger(
    learning_rate: ScalarOrSchedule = 1e-3,
    b1: float = 0.95,
    b2: float = 0.999,
    eps: float = 1e-5,
    weight_decay: ScalarOrSchedule = 0.0,
    *,
    sync_period: int = 6,
    alpha: ScalarOrSchedule = 0.5,
    threshold: float = 5.0,
    degenerated_to_sgd: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Ranger (Wright 2019): `lookahead(radam(...), sync_period=6, alpha=0.5)` with Ranger's defaults.

    .. math::
        \theta_t = \theta_{t-1} - \eta_t \left( u_t^{\text{RAdam}} + \lambda \theta_{t-1} \right), \qquad
        \text{every 6th step: } \phi \leftarrow \phi + \alpha (\theta_t - \phi), \ \theta_t \leftarrow \phi

    Exactly `sharpax.lookahead(sharpax.radam(learning_rate, b1, b2, eps, weight_decay,
    decoupled_weight_decay=True, threshold=threshold, degenerated_to_sgd=degenerated_to_sgd),
    sync_period, alpha)`. The defaults are those of the original Ranger (lessw2020/Ranger-Deep-Learning-
    Optimizer): beta1 0.95, eps 1e-5, k 6, alpha 0.5, rectification when rho_t > 5 and an un-adapted
    momentum step below it, weight decay decoupled and scaled by the learning rate. Not included: the
    gradient centralization that Ranger 2020 (and pytorch_optimizer's `Ranger`, `use_gc=True`) adds; chain
    it in front if wanted. pytorch_optimizer's `Ranger` also defaults to `degenerated_to_sgd=False`.
    Evaluate with `sharpax.lookahead_params(opt_state, params)`.

    Args:
        learning_rate: eta >= 0, or a schedule.
        b1: beta_1 in [0, 1).
        b2: beta_2 in [0, 1).
        eps: >= 0, added to the uncorrected root.
        weight_decay: decoupled decay lambda >= 0, or a schedule.
        sync_period: Lookahead's k, an integer >= 1.
        alpha: Lookahead's slow step size in [0, 1], or a schedule.
        threshold: rectify only when rho_t > threshold.
        degenerated_to_sgd: below the threshold take the un-adapted momentum step, else no step.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `sharpax.LookaheadState`.

    References:
        Wright, "New Deep Learning Optimizer, Ranger: Synergistic combination of RAdam + LookAhead for the
        best of both", Medium, 2019; github.com/lessw2020/Ranger-Deep-Learning-Optimizer.
        Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", ICLR 2020.
        Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.ranger(1e-3)
        >>> params = {"w": jnp.ones(3)}
        >>> state = tx.init(params)
        >>> updates, state = tx.update({"w": jnp.ones(3)}, state, params)
        >>> updates["w"]  # first step, rho_1 <= 5: -lr * the bias-corrected momentum, i.e. -lr * g
        Array([-0.001, -0.001, -0.001], dtype=float32)
    """
    inner = radam(
        learning_rate,
        b1,
        b2,
        eps,
        weight_decay,
        decoupled_weight_decay=True,
        threshold=threshold,
        degenerated_to_sgd=degenerated_to_sgd,
    )
    return lookahead(inner, sync_period, alpha)
