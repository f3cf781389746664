"""Lookahead: any optimizer on the fast weights (the params), slow weights kept in the optimizer state."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import cast_like, is_float_leaf
from sharpax._types import Array, Params, PyTree, ScalarOrSchedule
from sharpax._validation import check_choice, check_positive_int, check_range
from sharpax.wrappers._momentum_buffers import (
    MOMENTUM_FIELDS,
    get_momentum_buffers,
    set_momentum_buffers,
)

PULLBACK_MODES = ("none", "reset", "pullback")


class LookaheadState(NamedTuple):
    """State of `lookahead`.

    Attributes:
        inner_state: the wrapped optimizer's state.
        slow: the slow weights, shaped like the params (`None` at non-floating leaves).
        count: number of updates so far (0 before the first); a sync happens when `count % k == k - 1`.
        slow_momentum: slow copies of the inner first-moment buffers (`pullback_momentum="pullback"`
            only; `None` otherwise).
    """

    inner_state: optax.OptState
    slow: Params
    count: Array
    slow_momentum: tuple[PyTree, ...] | None


def _is_none(x: Any) -> bool:
    return x is None


def _slow_copy(params: Params) -> Params:
    # A real copy: the params buffer may be donated by the caller's train step.
    return jax.tree.map(lambda p: jnp.array(p, copy=True) if is_float_leaf(p) else None, params)


def _lerp(start: PyTree, end: PyTree, alpha: Any) -> PyTree:
    """`start + alpha * (end - start)`, leafwise, with `None` leaves of `start` kept as `None`."""
    return jax.tree.map(
        lambda s, e: None if s is None else s + cast_like(alpha, s) * (e - s),
        start,
        end,
        is_leaf=_is_none,
    )


def lookahead(
    inner: optax.GradientTransformation,
    sync_period: int = 5,
    alpha: ScalarOrSchedule = 0.5,
    *,
    reset_state: bool = False,
    pullback_momentum: str = "none",
) -> optax.GradientTransformationExtraArgs:
    r"""Lookahead (Zhang et al. 2019): `inner` moves the fast weights, every k steps they are pulled back.

    The params *are* the fast weights; the slow weights live in the state. Every `sync_period` (k)-th
    update, after the inner step gives the fast weights :math:`\theta_t = \theta_{t-1} + u_t`,

    .. math::
        \phi \leftarrow \phi + \alpha\,(\theta_t - \phi), \qquad \theta_t \leftarrow \phi

    and the returned update is :math:`\phi_{new} - \theta_{t-1}`, so that `apply_updates` lands the params
    on the new slow weights (up to the rounding of that one addition). Other updates are the inner
    optimizer's. Evaluate with `lookahead_params(opt_state)`, the slow weights, as the paper does.

    Differences from its namesakes: `optax.lookahead` makes the params a `LookaheadParams(fast, slow)`
    pair; here the params stay a plain pytree, so flax's `TrainState` and `nnx.Optimizer` take this
    transform unchanged, and a checkpoint of `(params, opt_state)` holds everything. pytorch_optimizer's
    `Lookahead` keeps the same convention (params are fast, slow weights in its state) and matches this
    rule step for step. Its pullback modes act on a `momentum_buffer` state entry, which exists for torch's
    SGD and RMSprop but not Adam (where they silently do nothing); here they act on the inner state's
    first-moment buffers, found by NamedTuple field name (`mu`, `buf`, `trace`: the Adam family, lion,
    sgd and rmsprop with momentum, `optax.trace`), and it is an error when there are none.

    Place lookahead last: a transform chained *after* it also transforms the sync update, and the params
    then no longer land on the slow weights. Transforms meant for the fast steps (clipping, the learning
    rate) go inside, `lookahead(optax.chain(clip, adam))`. A transform after it is not an error: nothing
    about the fast weights is cached (they are read from `params` on each update), so the slow weights
    always move toward the params the caller really has, and the algorithm stays consistent, just with
    the sync step transformed too.

    Memory: one copy of the (floating) params, plus one copy of each momentum buffer with
    `pullback_momentum="pullback"`. Non-sync steps skip the sync arithmetic (`lax.cond`).

    Args:
        inner: the optimizer for the fast weights; extra keyword arguments of `update` (e.g. `grad_fn`)
            are passed on to it.
        sync_period: k, an integer >= 1.
        alpha: slow step size in [0, 1], or a schedule of the update count (0 at the first update, so the
            first sync reads `alpha(k - 1)`).
        reset_state: re-initialise the inner state (`inner.init` at the new slow weights) at each sync.
        pullback_momentum: at each sync, `"none"` leaves the inner momentum alone, `"reset"` zeroes it,
            `"pullback"` gives it the same slow/fast interpolation as the weights (with its own slow copy).
            Other inner statistics (second moments, step counts) are untouched.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `LookaheadState`. `update` needs `params`.

    References:
        Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019.

    Example:
        >>> import jax.numpy as jnp, optax, sharpax
        >>> tx = sharpax.lookahead(sharpax.sgd(0.1), sync_period=2, alpha=0.5)
        >>> params = jnp.array([1.0])
        >>> state = tx.init(params)
        >>> for _ in range(2):  # gradient 1: fast 1 -> 0.9 -> 0.8, then slow 1 -> 0.9
        ...     updates, state = tx.update(jnp.ones(1), state, params)
        ...     params = optax.apply_updates(params, updates)
        >>> params, sharpax.lookahead_params(state)
        (Array([0.9], dtype=float32), Array([0.9], dtype=float32))
    """
    owner = "lookahead"
    check_positive_int(owner, "sync_period", sync_period)
    check_range(owner, "alpha", alpha, 0.0, 1.0)
    check_choice(owner, "pullback_momentum", pullback_momentum, PULLBACK_MODES)
    if reset_state and pullback_momentum != "none":
        raise ValueError(
            f"{owner}: reset_state=True re-initialises the whole inner state, momentum included; "
            f"pullback_momentum must be 'none' with it, got {pullback_momentum!r}"
        )
    inner = optax.with_extra_args_support(inner)
    uses_momentum = pullback_momentum != "none"

    def init_fn(params):
        inner_state = inner.init(params)
        slow_momentum = None
        if uses_momentum:
            buffers = get_momentum_buffers(inner_state)
            if not buffers:
                raise ValueError(
                    f"{owner}: pullback_momentum={pullback_momentum!r} needs a first-moment buffer in the "
                    f"inner state (a NamedTuple field named one of {MOMENTUM_FIELDS}), and "
                    f"{type(inner_state).__name__} has none. Use pullback_momentum='none'."
                )
            if pullback_momentum == "pullback":
                slow_momentum = optax.tree.zeros_like(buffers)
        return LookaheadState(
            inner_state=inner_state,
            slow=_slow_copy(params),
            count=jnp.zeros([], jnp.int32),
            slow_momentum=slow_momentum,
        )

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise ValueError(f"{owner}: update needs params (the fast weights), got params=None")
        inner_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        step_alpha = alpha(state.count) if callable(alpha) else alpha

        def sync(operands):
            inner_updates, inner_state, slow, slow_momentum = operands
            # The fast weights after this step's inner update, rounded as `apply_updates` rounds them.
            fast = jax.tree.map(
                lambda s, p, u: None if s is None else (p + u).astype(p.dtype),
                slow,
                params,
                inner_updates,
                is_leaf=_is_none,
            )
            new_slow = _lerp(slow, fast, step_alpha)
            # The jump onto the new slow weights; non-floating leaves keep the inner update.
            jump = jax.tree.map(
                lambda s, p, u: u if s is None else (s - p).astype(u.dtype),
                new_slow,
                params,
                inner_updates,
                is_leaf=_is_none,
            )
            if reset_state:
                restart = jax.tree.map(
                    lambda s, p: p if s is None else s, new_slow, params, is_leaf=_is_none
                )
                inner_state = optax.tree.cast_like(inner.init(restart), inner_state)
            elif pullback_momentum == "reset":
                buffers = get_momentum_buffers(inner_state)
                inner_state = set_momentum_buffers(inner_state, optax.tree.zeros_like(buffers))
            elif pullback_momentum == "pullback":
                buffers = get_momentum_buffers(inner_state)
                slow_momentum = _lerp(slow_momentum, buffers, step_alpha)
                inner_state = set_momentum_buffers(inner_state, slow_momentum)
            return jump, inner_state, new_slow, slow_momentum

        def carry_on(operands):
            return operands

        # Only what the sync step rewrites goes through the cond, so a non-sync step touches nothing else.
        touches_inner = reset_state or uses_momentum
        operands = (
            inner_updates,
            inner_state if touches_inner else None,
            state.slow,
            state.slow_momentum,
        )
        is_sync = state.count % sync_period == sync_period - 1
        new_updates, new_inner, slow, slow_momentum = lax.cond(is_sync, sync, carry_on, operands)
        new_state = LookaheadState(
            inner_state=new_inner if touches_inner else inner_state,
            slow=slow,
            count=optax.safe_increment(state.count),
            slow_momentum=slow_momentum,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lookahead_params(opt_state: optax.OptState, params: Params | None = None) -> Params:
    """The slow weights of the (single) `lookahead` anywhere inside `opt_state`: the weights to evaluate.

    The state may be a `LookaheadState` or contain one, at any depth (a chain, `inject_hyperparams`,
    `MultiSteps`, ...). Non-floating leaves have no slow copy: they are `None`, or taken from `params`
    when it is given, so that the result is a complete params tree. With `flax.nnx`, pass
    `nnx.as_pure(optimizer.opt_state)`.

    Args:
        opt_state: an optimizer state holding exactly one `LookaheadState`.
        params: optional current params, to fill the non-floating leaves.

    Returns:
        The slow weights, shaped like the params.

    Example:
        >>> import jax.numpy as jnp, optax, sharpax
        >>> tx = optax.chain(optax.clip(1.0), sharpax.lookahead(sharpax.adam(1e-3)))
        >>> sharpax.lookahead_params(tx.init({"w": jnp.ones(2)}))
        {'w': Array([1., 1.], dtype=float32)}
    """
    found = optax.tree_utils.tree_get_all_with_path(
        opt_state,
        LookaheadState.__name__,
        filtering=lambda _, value: isinstance(value, LookaheadState),
    )
    if len(found) != 1:
        raise ValueError(
            f"lookahead_params: expected exactly one LookaheadState in the optimizer state, "
            f"found {len(found)}"
        )
    slow = found[0][1].slow
    if params is None:
        return slow
    return jax.tree.map(lambda s, p: p if s is None else s, slow, params, is_leaf=_is_none)
