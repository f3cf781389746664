"""Averaged SGD with torch.optim.ASGD's update rule, and the averaged weights it keeps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sharpax._tree import check_params_tree, find_state, without_nnx_variables, zeros_like_tree
from sharpax._types import Array, Params, ScalarOrSchedule, Updates
from sharpax._validation import check_non_negative, check_tree_match, checked_schedule
from sharpax.transforms._build import float_leaves_only, weight_decay_block
from sharpax.transforms._numerics import increment


class ScaleByAsgdState(NamedTuple):
    """State of `scale_by_asgd`.

    Attributes:
        count: updates done (int32).
        eta: the step size of the next update (float32; torch's `state["eta"]`, computed from the
            learning rate of the update before it).
        ax: the averaged params (torch's `state["ax"]`).
    """

    count: Array
    eta: Array
    ax: Updates


def scale_by_asgd(
    learning_rate: ScalarOrSchedule = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
) -> optax.GradientTransformation:
    r"""ASGD's decaying step and iterate averaging, as torch.optim.ASGD (single-tensor path).

    .. math::
        d_t = \eta_t (g_t + \lambda w_{t-1}), \qquad w_t = w_{t-1} - d_t, \\
        \bar w_t = w_t \text{ if } \mu_t = 1 \text{ else } \bar w_{t-1} + \mu_t (w_t - \bar w_{t-1}),
        \\ \eta_{t+1} = \frac{\gamma_t}{(1 + \lambda \gamma_t t)^{\alpha}}, \quad
        \mu_{t+1} = \frac{1}{\max(1, t - t_0)}, \quad \eta_1 = \gamma_1, \; \mu_1 = 1

    with :math:`\gamma_t` the learning rate at step t. As in torch, the step size is computed after each
    step from that step's learning rate, so a scheduled rate takes effect one step later, and the
    averaging starts after `t0` steps. Emits :math:`d_t` (a step to subtract) and assumes the params
    move by exactly :math:`-d_t` (as in `sharpax.asgd`), to average them.

    Args:
        learning_rate: gamma >= 0, or a schedule.
        lambd: the decay term lambda >= 0.
        alpha: the power of the step-size decay, >= 0.
        t0: the step at which averaging starts, >= 0.

    Returns:
        An `optax.GradientTransformation` with state `ScaleByAsgdState`; `update` needs `params`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_asgd(0.1, lambd=0.0)
        >>> w = jnp.ones(1)
        >>> d, state = tx.update(jnp.ones(1), tx.init(w), w)
        >>> d, state.ax  # eta_1 = 0.1; before t0 the average is the current params
        (Array([0.1], dtype=float32), Array([0.9], dtype=float32))
    """
    owner = "scale_by_asgd"
    check_non_negative(owner, learning_rate=learning_rate, lambd=lambd, alpha=alpha, t0=t0)
    learning_rate = checked_schedule(owner, "learning_rate", learning_rate)

    def init_fn(params):
        return ScaleByAsgdState(
            count=jnp.zeros([], jnp.int32),
            eta=jnp.zeros([], jnp.float32),
            ax=zeros_like_tree(params),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"{owner}: update needs params (ASGD decays and averages them)")
        check_tree_match(owner, updates, state.ax)
        count = state.count
        lr = learning_rate(count) if callable(learning_rate) else learning_rate
        lr = jnp.asarray(lr, jnp.float32)
        first = count == 0
        eta = jnp.where(first, lr, state.eta)
        # torch's mu for this step was computed after the previous one, from its step number.
        mu = jnp.where(first, 1.0, 1.0 / jnp.maximum(1.0, count.astype(jnp.float32) - t0))

        def step(g, p, ax):
            d = eta.astype(g.dtype) * (g + lambd * p)
            new_p = p - d  # what apply_updates makes of the -d the alias emits
            averaged = ax + (new_p - ax) * mu.astype(ax.dtype)
            return _Leaf(d, jnp.where(mu == 1.0, new_p, averaged))

        out = jax.tree.map(step, updates, params, state.ax)
        pick = lambda i: jax.tree.map(lambda t: t[i], out, is_leaf=lambda x: isinstance(x, _Leaf))
        new_count = increment(count)
        t = new_count.astype(jnp.float32)
        new_eta = lr / (1.0 + lambd * lr * t) ** alpha
        return pick(0), ScaleByAsgdState(count=new_count, eta=new_eta, ax=pick(1))

    return optax.GradientTransformation(init_fn, update_fn)


class _Leaf(NamedTuple):
    step: Any
    ax: Any


def asgd(
    learning_rate: ScalarOrSchedule = 1e-2,
    lambd: float = 1e-4,
    alpha: float = 0.75,
    t0: float = 1e6,
    weight_decay: ScalarOrSchedule = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Averaged SGD (Polyak & Juditsky 1992; Xu 2011's step sizes) with torch.optim.ASGD's rule.

    .. math::
        g_t \leftarrow g_t + \mu_{wd} w_{t-1}, \qquad
        w_t = w_{t-1} - \eta_t (g_t + \lambda w_{t-1})

    with the step sizes and the averaged weights :math:`\bar w_t` of
    `sharpax.transforms.scale_by_asgd`. Read the averaged weights, the ones to evaluate, with
    `sharpax.asgd_averaged_params(opt_state, params)`. optax has no ASGD.

    Args:
        learning_rate: gamma >= 0, or a schedule (torch applies a changed rate one step later: so
            does this).
        lambd: the decay term lambda >= 0.
        alpha: the power of the step-size decay, >= 0.
        t0: the step at which averaging starts, >= 0.
        weight_decay: L2 coefficient >= 0 added to the gradient (torch's `weight_decay`), or a schedule.

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control
        Optim. 1992.
        Xu, "Towards Optimal One Pass Large Scale Learning with Averaged Stochastic Gradient Descent",
        2011.

    Example:
        >>> import jax, jax.numpy as jnp, optax, sharpax
        >>> params = jnp.array([1.0, -2.0])
        >>> tx = sharpax.asgd(0.1, t0=0.0)
        >>> state = tx.init(params)
        >>> for _ in range(3):
        ...     updates, state = tx.update(jax.grad(lambda w: jnp.sum(w**2))(params), state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> sharpax.asgd_averaged_params(state, params)  # torch's mu: (w_2 + w_3) / 2 for t0 = 0
        Array([ 0.5759..., -1.1519...], dtype=float32)
    """
    owner = "asgd"
    check_non_negative(owner, learning_rate=learning_rate, weight_decay=weight_decay)
    check_non_negative(owner, lambd=lambd, alpha=alpha, t0=t0)
    chained = optax.chain(
        *(b for b in (weight_decay_block(weight_decay, owner),) if b is not None),
        scale_by_asgd(learning_rate, lambd, alpha, t0),
        optax.scale(-1.0),
    )
    return float_leaves_only(chained, owner)


def asgd_averaged_params(opt_state: optax.OptState, params: Params) -> Params:
    """The averaged weights of the (single) ASGD inside `opt_state`: the weights to evaluate.

    torch keeps them as `optimizer.state[p]["ax"]`; before averaging starts (`t0`) they are the
    current params. Non-floating leaves, which ASGD does not train, come from `params`, and so does
    everything before the first update. With `flax.nnx`, pass `optimizer.opt_state` and
    `nnx.state(model, nnx.Param)`: their Variables are unwrapped (`nnx.as_pure`).

    Args:
        opt_state: an optimizer state holding exactly one `ScaleByAsgdState`, at any depth.
        params: the current params.

    Returns:
        The averaged params, a complete params tree.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> params = {"w": jnp.ones(2)}
        >>> sharpax.asgd_averaged_params(sharpax.asgd().init(params), params)
        {'w': Array([1., 1.], dtype=float32)}
    """
    owner = "asgd_averaged_params"
    opt_state, params = without_nnx_variables((opt_state, params))
    state = find_state(owner, opt_state, ScaleByAsgdState)
    check_params_tree(owner, params, state.ax, "averaged weights")
    return jax.tree.map(
        lambda ax, p: p if ax is None else jnp.where(state.count == 0, p, ax),
        state.ax,
        params,
        is_leaf=lambda x: x is None,
    )
