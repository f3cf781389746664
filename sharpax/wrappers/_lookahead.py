"""Lookahead: any optimizer on the fast weights (the params), slow weights kept in the optimizer state.

Also the momentum-buffer lookup its pullback modes need, and Ranger (RAdam inside Lookahead).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import check_params_tree, find_state, is_float_leaf, without_nnx_variables
from sharpax._types import Array, Params, PyTree, ScalarOrSchedule, State, Updates
from sharpax._validation import check_choice, check_int, check_range, check_transformation
from sharpax.transforms import radam
from sharpax.transforms._numerics import increment

PULLBACK_MODES = ("none", "reset", "pullback")

# Lookahead's `pullback_momentum` modes act on the first-moment buffers of any inner state, found by
# NamedTuple field name.
MOMENTUM_FIELDS = ("mu", "buf", "trace")
"""Field names holding a first-moment buffer, looked up in this order within one state NamedTuple.

`mu`: sharpax's and optax's Adam family (adam, adamw, nadam, radam, adamax), lion; `buf`: sharpax's
`scale_by_momentum` (sgd and rmsprop with momentum); `trace`: optax's `trace` (optax.sgd with momentum).
"""


def _momentum_field(node: Any) -> str | None:
    fields = getattr(node, "_fields", None)
    if not isinstance(node, tuple) or fields is None:
        return None
    return next((name for name in MOMENTUM_FIELDS if name in fields), None)


def _is_momentum_state(node: Any) -> bool:
    return _momentum_field(node) is not None


def get_momentum_buffers(state: PyTree) -> tuple[PyTree, ...]:
    """The first-moment buffers found in `state`, in flattening order (empty when there are none)."""
    nodes = jax.tree.leaves(state, is_leaf=_is_momentum_state)
    return tuple(getattr(n, field) for n in nodes if (field := _momentum_field(n)) is not None)


def set_momentum_buffers(state: PyTree, buffers: tuple[PyTree, ...]) -> PyTree:
    """`state` with its first-moment buffers replaced by `buffers` (same order as `get_momentum_buffers`)."""
    replacements = iter(buffers)

    def replace(node: Any) -> Any:
        field = _momentum_field(node)
        return node if field is None else node._replace(**{field: next(replacements)})

    return jax.tree.map(replace, state, is_leaf=_is_momentum_state)


class LookaheadState(NamedTuple):
    """State of `lookahead`. Read the slow weights with `lookahead_params(opt_state, params)`.

    Attributes:
        inner_state: the wrapped optimizer's state.
        slow: the slow weights (`None` at non-floating leaves), except right after a sync, when the
            slow weights are the params themselves and this field is refreshed from them at the start
            of the next update.
        count: number of updates so far (0 before the first); a sync happens when `count % k == k - 1`.
        params_are_slow: whether the last update was a sync (so the params are the slow weights).
        slow_momentum: slow copies of the inner first-moment buffers (`pullback_momentum="pullback"`
            only; `None` otherwise).
    """

    inner_state: optax.OptState
    slow: Params
    count: Array
    params_are_slow: Array
    slow_momentum: tuple[PyTree, ...] | None


def _holds_perturbed_params(node: Any) -> bool:
    return getattr(type(node), "holds_perturbed_params", False) is True


def _refuse_perturbed_params(owner: str, inner_state: PyTree) -> None:
    """A ValueError when the inner state is (or holds) `momentum_sam`'s: its params are perturbed
    weights, which lookahead would take as fast weights and interpolate, perturbation and all."""
    nodes = jax.tree.leaves(inner_state, is_leaf=_holds_perturbed_params)
    found = next((n for n in nodes if _holds_perturbed_params(n)), None)
    if found is not None:
        raise ValueError(
            f"{owner}: the inner optimizer's state holds a {type(found).__name__}, whose params are "
            "perturbed weights; lookahead would interpolate the perturbation into its slow weights. "
            "Put lookahead inside it instead: sharpax.momentum_sam(sharpax.lookahead(base, ...), rho)."
        )


def _is_none(x: Any) -> bool:
    return x is None


def _slow_copy(params: Params) -> Params:
    # A real copy: the params buffer may be donated by the caller's train step.
    return jax.tree.map(lambda p: jnp.array(p, copy=True) if is_float_leaf(p) else None, params)


def _times(alpha: Any, x: Array) -> Array:
    """`alpha * x` for a real scalar `alpha`; a complex `x` is scaled part by part (no complex product)."""
    if jnp.iscomplexobj(x):
        a = jnp.asarray(alpha, jnp.finfo(x.dtype).dtype)
        return lax.complex(a * jnp.real(x), a * jnp.imag(x))
    return jnp.asarray(alpha, x.dtype) * x


def _lerp(start: PyTree, end: PyTree, alpha: Any) -> PyTree:
    """`start + alpha * (end - start)`, leafwise, with `None` leaves of `start` kept as `None`."""
    return jax.tree.map(
        lambda s, e: None if s is None else s + _times(alpha, e - s),
        start,
        end,
        is_leaf=_is_none,
    )


def _cast_like(fresh: PyTree, current: PyTree) -> PyTree:
    """`fresh` (a new inner state) with the dtypes of `current` (the running one), leaf by leaf.

    Both branches of the sync's `lax.cond` must give the same types. Unlike `optax.tree.cast_like`,
    Python scalars (a flag or a count kept as a Python bool or int by the inner transform, which
    `lax.cond` has turned into arrays in `current`) are converted, not called `.astype` on.
    """
    return jax.tree.map(lambda f, c: jnp.asarray(f, dtype=jnp.result_type(c)), fresh, current)


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
    on the new slow weights; the params it produces are then taken as the slow weights (bit for bit).
    Other updates are the inner optimizer's. Evaluate with `lookahead_params(opt_state, params)`, the
    slow weights, as the paper does.

    Differences from its namesakes: `optax.lookahead` makes the params a `LookaheadParams(fast, slow)`
    pair; here the params stay a plain pytree, so flax's `TrainState` and `nnx.Optimizer` take this
    transform unchanged, and a checkpoint of `(params, opt_state)` holds everything. pytorch_optimizer's
    `Lookahead` keeps the same convention (params are fast, slow weights in its state) and matches this
    rule step for step (it computes the slow weights and copies them into the params; here they differ
    from that by the rounding of one addition). It takes alpha in [0, 1); alpha = 1 is allowed here (it
    is the inner optimizer alone). Its pullback modes act on a `momentum_buffer` state entry, which
    exists for torch's SGD and RMSprop but not Adam (where they silently do nothing); here they act on
    the inner state's first-moment buffers, found by NamedTuple field name (`mu`, `buf`, `trace`: the
    Adam family, lion, sgd and rmsprop with momentum, `optax.trace`), and it is an error when there are
    none.

    In a chain: place lookahead last. A transform chained *after* it transforms the sync update too, so
    the params land elsewhere than the interpolated point; they are still taken as the new slow weights
    (lookahead reads the fast weights from `params` on each update and caches nothing about them), so
    fast and slow weights stay consistent with what the caller really has, and only the sync step is
    transformed. Transforms meant for the fast steps (clipping, the learning rate) go inside:
    `lookahead(optax.chain(clip, adam))`. `momentum_sam` goes outside: its params are perturbed
    weights, which lookahead would interpolate into its slow weights, so `init` refuses one inside it;
    `momentum_sam(lookahead(base), rho)` is Lookahead on the unperturbed weights.

    Cost: one copy of the (floating) params in the state, plus one copy of each momentum buffer with
    `pullback_momentum="pullback"`. A non-sync step adds one read of the slow weights to the inner
    step; the step after a sync copies the params into the state.

    Args:
        inner: the optimizer for the fast weights; extra keyword arguments of `update` (e.g. `grad_fn`)
            are passed on to it.
        sync_period: k, an integer >= 1.
        alpha: slow step size in [0, 1], or a schedule of the update count (0 at the first update, so the
            first sync reads `alpha(k - 1)`).
        reset_state: re-initialise the inner state (`inner.init(params)`, as `optax.lookahead` does) at
            each sync.
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
        >>> params, sharpax.lookahead_params(state, params)
        (Array([0.9], dtype=float32), Array([0.9], dtype=float32))
    """
    owner = "lookahead"
    check_int(owner, "sync_period", sync_period)
    check_range(owner, "alpha", alpha, 0.0, 1.0)
    check_choice(owner, "pullback_momentum", pullback_momentum, PULLBACK_MODES)
    if reset_state and pullback_momentum != "none":
        raise ValueError(
            f"{owner}: reset_state=True re-initialises the whole inner state, momentum included; "
            f"pullback_momentum must be 'none' with it, got {pullback_momentum!r}"
        )
    check_transformation(owner, "inner", inner)
    inner = optax.with_extra_args_support(inner)
    uses_momentum = pullback_momentum != "none"

    def init_fn(params: Params) -> State:
        inner_state = inner.init(params)
        _refuse_perturbed_params(owner, inner_state)
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
            params_are_slow=jnp.zeros([], jnp.bool_),
            slow_momentum=slow_momentum,
        )

    def sync_inner(operands):
        inner_state, slow_momentum, params, step_alpha = operands
        if reset_state:
            return _cast_like(inner.init(params), inner_state), slow_momentum
        buffers = get_momentum_buffers(inner_state)
        if pullback_momentum == "reset":
            return set_momentum_buffers(inner_state, optax.tree.zeros_like(buffers)), slow_momentum
        slow_momentum = _lerp(slow_momentum, buffers, step_alpha)
        return set_momentum_buffers(inner_state, slow_momentum), slow_momentum

    def update_fn(updates, state, params=None, **extra_args) -> tuple[Updates, State]:
        if params is None:
            raise ValueError(f"{owner}: update needs params (the fast weights), got params=None")
        inner_updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        step_alpha = alpha(state.count) if callable(alpha) else alpha
        # After a sync the params are the new slow weights: copy them now. Storing the slow weights
        # during the sync step itself would need the inner update as a materialised buffer on every
        # step (a conditional stops XLA from fusing it into `apply_updates`), which measured slower
        # (benchmarks/README.md).
        slow = lax.cond(
            state.params_are_slow,
            lambda s, p: p,
            lambda s, p: s,
            state.slow,
            jax.tree.map(
                lambda s, p: None if s is None else p, state.slow, params, is_leaf=_is_none
            ),
        )
        is_sync = state.count % sync_period == sync_period - 1

        def select(s, p, u):
            if s is None:  # no slow copy of non-floating leaves: they take the inner update
                return u
            p = jnp.asarray(p)  # a Python float param too
            fast = (p + u).astype(p.dtype)  # rounded as `apply_updates` rounds it
            jump = (s + _times(step_alpha, fast - s) - p).astype(u.dtype)
            return jnp.where(is_sync, jump, u)

        new_updates = jax.tree.map(select, slow, params, inner_updates, is_leaf=_is_none)
        slow_momentum = state.slow_momentum
        if reset_state or uses_momentum:
            inner_state, slow_momentum = lax.cond(
                is_sync,
                sync_inner,
                lambda ops: ops[:2],
                (inner_state, slow_momentum, params, step_alpha),
            )
        new_state = LookaheadState(
            inner_state=inner_state,
            slow=slow,
            count=increment(state.count),
            params_are_slow=is_sync,
            slow_momentum=slow_momentum,
        )
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lookahead_params(opt_state: optax.OptState, params: Params) -> Params:
    """The slow weights of the (single) `lookahead` anywhere inside `opt_state`: the weights to evaluate.

    The state may be a `LookaheadState` or contain one, at any depth (a chain, `inject_hyperparams`,
    `apply_if_finite`, ...). `params` are the current params: right after a sync they *are* the slow
    weights (the state refreshes its copy from them on the next update), and they fill the
    non-floating leaves, which have no slow copy. With `flax.nnx`, pass `optimizer.opt_state` and
    `nnx.state(model, nnx.Param)`: their Variables are unwrapped (`nnx.as_pure`), and the slow weights
    come back as arrays, for `nnx.update(model, ...)`.

    Args:
        opt_state: an optimizer state holding exactly one `LookaheadState`.
        params: the current params (the fast weights), as passed to `update`.

    Returns:
        The slow weights, a complete params tree.

    Example:
        >>> import jax.numpy as jnp, optax, sharpax
        >>> tx = optax.chain(optax.clip(1.0), sharpax.lookahead(sharpax.adam(1e-3)))
        >>> params = {"w": jnp.ones(2)}
        >>> sharpax.lookahead_params(tx.init(params), params)
        {'w': Array([1., 1.], dtype=float32)}
    """
    owner = "lookahead_params"
    opt_state, params = without_nnx_variables((opt_state, params))
    state = find_state(owner, opt_state, LookaheadState)
    check_params_tree(owner, params, state.slow, "slow weights")
    return jax.tree.map(
        lambda s, p: p if s is None else jnp.where(state.params_are_slow, p, s),
        state.slow,
        params,
        is_leaf=_is_none,
    )


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
