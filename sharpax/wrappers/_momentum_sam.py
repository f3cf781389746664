"""Momentum-SAM: SAM's perturbation along the base optimizer's momentum, one pass per step.

The params the caller holds are the perturbed weights; `momentum_sam_params` gives the unperturbed ones.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import (
    check_params_tree,
    find_state,
    is_float_leaf,
    without_nnx_variables,
)
from sharpax._types import Array, Params, ScalarOrSchedule, State, Updates
from sharpax._validation import (
    check_non_negative,
    check_transformation,
    check_tree_match,
)
from sharpax.transforms._build import RealImag
from sharpax.transforms._numerics import increment
from sharpax.wrappers._lookahead import MOMENTUM_FIELDS, get_momentum_buffers
from sharpax.wrappers._sam_geometry import (
    NORM_EPS,
    accumulation_dtype,
    resolve_rho,
    scale_norm,
)


class MomentumSAMState(NamedTuple):
    """State of `momentum_sam`. Read the unperturbed weights with `momentum_sam_params(opt_state, params)`.

    Attributes:
        scale: c = rho / (||v|| + 1e-12) of the perturbation the params carry: they are w - c v
            (0 before the first update, when they are w itself).
        direction: v for a base optimizer without a momentum buffer: its last update, negated. `None`
            when v is the momentum buffer of the base state (nothing is copied then).
        count: number of updates so far when rho is a schedule; `None` otherwise.
        inner_state: the base optimizer's state.
    """

    scale: Array
    direction: Updates | None
    count: Array | None
    inner_state: optax.OptState

    # The params of a state holding this are perturbed weights, not the ones the base steps from:
    # `lookahead` refuses to wrap it (its slow weights would interpolate the perturbation).
    holds_perturbed_params = True


def _is_none(x: Any) -> bool:
    return x is None


def _momentum_buffer(owner: str, inner_state: optax.OptState) -> Updates | None:
    """The one first-moment buffer of the base state, or `None` when it has none."""
    buffers = get_momentum_buffers(inner_state)
    if len(buffers) > 1:
        raise ValueError(
            f"{owner}: the base optimizer's state holds {len(buffers)} first-moment buffers (NamedTuple "
            f"fields named one of {MOMENTUM_FIELDS}); the perturbation follows one. Wrap a base "
            "optimizer with a single momentum."
        )
    return buffers[0] if buffers else None


def _buffer(owner: str, inner_state: optax.OptState) -> Updates:
    """The base state's momentum buffer, which `init` found (else it stored a direction of its own)."""
    buffer = _momentum_buffer(owner, inner_state)
    if buffer is None:
        raise ValueError(
            f"{owner}: the optimizer state has neither a momentum buffer in its base state nor a "
            "direction of its own; was it built by this momentum_sam's init?"
        )
    return buffer


def _direction(owner: str, state: MomentumSAMState) -> Updates:
    """v, the direction of the perturbation the params carry (state leaves, no copy)."""
    if state.direction is not None:
        return state.direction
    return _buffer(owner, state.inner_state)


def _has_direction(d: Any) -> bool:
    # None: a non-floating leaf of sharpax's optimizers; optax.MaskedNode: a leaf `optax.masked` skips.
    return d is not None and (hasattr(d, "dtype") or isinstance(d, RealImag))


def _as_leaf(d: Any) -> Any:
    """A direction leaf shaped like its param: sharpax's buffer of a complex param is a `RealImag`."""
    return lax.complex(d.real, d.imag) if isinstance(d, RealImag) else d


def _work_dtype(*dtypes: Any) -> Any:
    """The dtype to combine leaves of `dtypes` in: standard promotion of their real parts (spelled out,
    as strict promotion refuses e.g. bfloat16 with float32), complex if any of them is."""
    reals = {jnp.dtype(jnp.finfo(dtype).dtype) for dtype in dtypes}
    if len(reals) == 1:
        (real,) = reals
    else:
        real = jnp.dtype(jnp.float64 if jnp.dtype(jnp.float64) in reals else jnp.float32)
    if not any(jnp.issubdtype(dtype, jnp.complexfloating) for dtype in dtypes):
        return real
    return jnp.dtype(jnp.complex128 if real == jnp.float64 else jnp.complex64)


def _shift(params: Params, direction: Updates, scale: Array) -> Params:
    """`params + scale * direction` on the floating leaves that have a direction; the rest as they are."""

    def shift(p, d):
        if not _has_direction(d) or not is_float_leaf(p):
            return p
        p, d = jnp.asarray(p), _as_leaf(d)
        dtype = _work_dtype(p.dtype, d.dtype, scale.dtype)
        return (p.astype(dtype) + scale.astype(dtype) * d.astype(dtype)).astype(p.dtype)

    return jax.tree.map(shift, params, direction, is_leaf=_is_none)


def _inverse_norm_scale(
    owner: str, rho: ScalarOrSchedule, direction: Updates, step: Any, norm: Any = scale_norm
) -> Array:
    """rho / (||direction|| + 1e-12), the norm global over the tree (`norm(leaves, dtype)`)."""
    leaves = [d for d in jax.tree.leaves(direction) if is_float_leaf(d)]
    dtype = accumulation_dtype(leaves)
    norm = norm(leaves, dtype)
    return jnp.asarray(resolve_rho(owner, rho, step), dtype) / (norm + jnp.asarray(NORM_EPS, dtype))


def _new_direction(
    owner: str, state: MomentumSAMState, base_updates: Updates, inner_state: optax.OptState
) -> tuple[Updates | None, Updates]:
    """`(direction to store, new direction)`: the base's new momentum buffer (nothing to store), or,
    for a base without one, -u, stored in the state."""
    if state.direction is None:
        return None, _buffer(owner, inner_state)
    direction = jax.tree.map(
        lambda u, d: (-u).astype(d.dtype) if _has_direction(d) else d,
        base_updates,
        state.direction,
        is_leaf=_is_none,
    )
    return direction, direction


def _next_scale(
    owner: str,
    base: optax.GradientTransformationExtraArgs,
    rho: ScalarOrSchedule,
    updates: Updates,
    state: MomentumSAMState,
    params: Params,
    extra_args: dict[str, Any],
    norm: Any = scale_norm,
) -> Array:
    """c_t = rho / (||v_t|| + 1e-12), from a base update of its own: only what feeds v_t is kept of it
    (for Adam, the first moment), and the norm's reduction reads the gradient and the old buffer."""
    weights = _shift(params, _direction(owner, state), state.scale)
    base_updates, inner_state = base.update(updates, state.inner_state, weights, **extra_args)
    _, new = _new_direction(owner, state, base_updates, inner_state)
    return _inverse_norm_scale(owner, rho, new, state.count, norm).astype(state.scale.dtype)


def _step(
    owner: str,
    base: optax.GradientTransformationExtraArgs,
    updates: Updates,
    state: MomentumSAMState,
    params: Params,
    extra_args: dict[str, Any],
    scale_of: Any,
) -> tuple[Updates, MomentumSAMState]:
    """The base update at the unperturbed weights and the move to the next perturbed point, whose c_t
    is `scale_of(v_t)`."""
    old = _direction(owner, state)
    weights = _shift(params, old, state.scale)
    base_updates, inner_state = base.update(updates, state.inner_state, weights, **extra_args)
    direction, new = _new_direction(owner, state, base_updates, inner_state)
    scale = scale_of(new)
    new_updates = _move(base_updates, old, new, state.scale, scale)
    count = None if state.count is None else increment(state.count)
    return new_updates, MomentumSAMState(
        scale=scale, direction=direction, count=count, inner_state=inner_state
    )


def _barrier(tree: Any) -> Any:
    """`lax.optimization_barrier` over the array leaves of `tree` (Python scalars stay as they are)."""
    leaves, treedef = jax.tree.flatten(tree)
    arrays = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array)]
    held = lax.optimization_barrier([leaves[i] for i in arrays])
    for i, x in zip(arrays, held, strict=True):
        leaves[i] = x
    return jax.tree.unflatten(treedef, leaves)


def _move(
    base_updates: Updates, old: Updates, new: Updates, old_scale: Array, scale: Array
) -> Updates:
    """`c_{t-1} v_{t-1} + u_t - c_t v_t`: from one perturbed point to the next, on the leaves with a
    direction (the others take the base's update as it is)."""

    def move(u, d_old, d_new):
        if not _has_direction(d_old) or not is_float_leaf(u):
            return u
        d_old, d_new = _as_leaf(d_old), _as_leaf(d_new)
        dtype = _work_dtype(u.dtype, d_old.dtype, scale.dtype)
        back = old_scale.astype(dtype) * d_old.astype(dtype)
        ahead = scale.astype(dtype) * d_new.astype(dtype)
        return (back + u.astype(dtype) - ahead).astype(u.dtype)

    return jax.tree.map(move, base_updates, old, new, is_leaf=_is_none)


def momentum_sam(
    base_optimizer: optax.GradientTransformation, rho: ScalarOrSchedule
) -> optax.GradientTransformationExtraArgs:
    r"""Momentum-SAM (Becker, Altrock & Risse 2024): SAM's perturbation along the momentum, one pass per step.

    The params the caller holds are the *perturbed* weights :math:`\tilde w_t = w_t - c_{t-1} v_{t-1}`;
    the gradient is taken there, and the update moves them to the next perturbed point:

    .. math::
        w_t = \tilde w_t + c_{t-1} v_{t-1}, \qquad
        u_t = \text{base.update}\big(\nabla L(\tilde w_t), \; s, \; w_t\big), \qquad
        w_{t+1} = w_t + u_t, \\
        c_t = \frac{\rho}{\lVert v_t \rVert + 10^{-12}}, \qquad
        \tilde w_{t+1} = w_{t+1} - c_t v_t, \qquad
        \text{returned update} = c_{t-1} v_{t-1} + u_t - c_t v_t

    with :math:`v_t` the base optimizer's first-moment buffer after update t (t = 0, 1, ...), found
    in its state by NamedTuple field (`buf` of `sharpax.sgd`'s momentum, `trace` of `optax.sgd`'s, `mu`
    of the Adam family and lion) and :math:`c_{-1} = 0`: the first gradient is taken at the initial
    weights, and the first update lands on a perturbed point. :math:`-v_t` is the direction the base
    optimizer moves in, so the perturbation looks ahead along the descent (the paper's "negative
    momentum direction"). The norm is global over the tree. Evaluate, checkpoint for inference, or end
    training with `momentum_sam_params(opt_state, params)`, the unperturbed :math:`w_t` (exactly the
    weights the base optimizer steps from).

    This is MarlonBecker/MSAM's rule: `MSAM(lr, momentum, rho=rho)` is `momentum_sam(sharpax.sgd(lr,
    momentum), rho)` and `AdamW_MSAM(lr, betas, eps, weight_decay, rho=rho)` is
    `momentum_sam(sharpax.adamw(lr, b1, b2, eps, weight_decay), rho)` (also over `optax.sgd` and
    `optax.adamw`). Neither scales rho by the learning rate; MSAM's rho is of order 1 (its README
    trains with 3), far above SAM's 0.05. Three details differ, each by a choice a user can undo:

    - The base optimizer sees the unperturbed weights :math:`w_t`, as in `sam`. MSAM's SGD adds its L2
      term at the perturbed point instead (:math:`\lambda \tilde w_t`, as if the decay were part of the
      loss): to match it, chain the decay in front, `optax.chain(optax.add_decayed_weights(wd),
      momentum_sam(sharpax.sgd(lr, momentum), rho))`, rather than `sgd(..., weight_decay=wd)`.
    - `AdamW_MSAM` decays after the Adam step, :math:`(w - s\,\hat m / d)(1 - \eta\lambda)`; torch's
      AdamW, optax's and sharpax's decay first, :math:`w(1 - \eta\lambda) - s\,\hat m / d`. The two
      differ by :math:`\eta\lambda s\,\hat m / d`, second order in the learning rate.
    - The state stores :math:`c_t` itself, rho included (as `AdamW_MSAM` does); MSAM's SGD stores
      :math:`1 / (\lVert v \rVert + 10^{-12})` and multiplies by the *current* rho when it moves back,
      which returns to another point when rho changes between steps (a rho schedule).

    MSAM's SGD ignores its `nesterov` flag; here a Nesterov base takes its Nesterov step, and the
    perturbation still follows the buffer. A base optimizer without a first-moment buffer (`sgd`
    without momentum, `adagrad`, `rmsprop` without momentum, ...) is perturbed along its own last
    update, :math:`v_t = -u_t`, kept in the state (one params-sized buffer): for SGD with momentum and
    a constant learning rate that is the buffer's direction, as in MSAM. A state with two or more
    buffers is an error. No optax or torch.optim namesake.

    In a chain, place it last: a transform after it would transform the moves between perturbed
    points too. Gradient transforms (clipping) go in front of it or inside the base; so does Lookahead,
    whose slow weights must be unperturbed ones: `momentum_sam(lookahead(base, k), rho)` perturbs along
    the base's buffer and `lookahead_params(state, momentum_sam_params(state, params))` are its slow
    weights (`lookahead` refuses a `momentum_sam` inside it). `optax.MultiSteps` and
    `optax.apply_if_finite` around it leave the params where they are on the steps they skip.

    Called as `tx.update(grads, state, params, **extra_args)`: `grads` are the gradients at `params`
    (the perturbed weights the caller holds); no `grad_fn` is needed. Extra args go to the base
    optimizer. Cost: no second pass. The norm of the new buffer is needed before the move, so the
    update runs the base update twice: once for that norm (XLA keeps only what feeds the buffer, and
    the reduction reads the gradient and the old buffer) and again for the step, which then writes the
    new buffer in place of the old one (benchmarks/README.md has the cost on CPU and GPU).

    Args:
        base_optimizer: the optimizer stepping the unperturbed weights (any
            `optax.GradientTransformation`; MSAM's are SGD with momentum and AdamW).
        rho: the length of the perturbation, >= 0, or a schedule `step -> rho` (step 0 at the first
            update). 0 is the base optimizer alone.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `MomentumSAMState`. `update` needs `params`.

    References:
        Becker, Altrock & Risse, "Momentum-SAM: Sharpness Aware Minimization without Computational
        Overhead", arXiv:2401.12033, 2024; github.com/MarlonBecker/MSAM (`optimizer/msam.py`,
        `optimizer/adamW_msam.py`).

    Example:
        >>> import jax, jax.numpy as jnp, optax, sharpax
        >>> loss = lambda w: 0.5 * jnp.sum(w**2)
        >>> w = jnp.array([3.0, 4.0])
        >>> tx = sharpax.momentum_sam(sharpax.sgd(0.1, momentum=0.9), rho=1.0)
        >>> updates, state = tx.update(jax.grad(loss)(w), tx.init(w), w)
        >>> w = optax.apply_updates(w, updates)
        >>> w  # w_1 = (3, 4) - 0.1 (3, 4) = (2.7, 3.6), minus v / ||v|| = (0.6, 0.8)
        Array([2.1, 2.8], dtype=float32)
        >>> sharpax.momentum_sam_params(state, w).round(4)  # the unperturbed w_1, to rounding
        Array([2.7, 3.6], dtype=float32)
    """
    owner = "momentum_sam"
    check_non_negative(owner, rho=rho)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params: Params) -> State:
        inner_state = base.init(params)
        direction = None
        if _momentum_buffer(owner, inner_state) is None:
            direction = jax.tree.map(
                lambda p: jnp.zeros_like(p) if is_float_leaf(p) else None, params
            )
        state = MomentumSAMState(
            scale=jnp.zeros([], jnp.float32),
            direction=direction,
            count=jnp.zeros([], jnp.int32) if callable(rho) else None,
            inner_state=inner_state,
        )
        dtype = accumulation_dtype(
            [d for d in jax.tree.leaves(_direction(owner, state)) if is_float_leaf(d)]
        )
        return state._replace(scale=jnp.zeros([], dtype))

    def update_fn(updates, state, params=None, **extra_args) -> tuple[Updates, State]:
        if params is None:
            raise ValueError(
                f"{owner}: update needs the params (the perturbed weights the gradient was taken at), "
                "got params=None"
            )
        check_tree_match(owner, updates, params, "params")
        scale = _next_scale(owner, base, rho, updates, state, params, extra_args)
        # The step runs the base update again, from the same inputs: behind the barrier it is not the
        # same value, so it is not merged with the one above, and its kernels can read the old buffer
        # and write the new one in its place. Computed once, the new buffer would be needed for the norm
        # while the old one is still to be read by the move, and XLA would copy the old buffer first.
        updates, state, params, scale = _barrier((updates, state, params, scale))
        return _step(owner, base, updates, state, params, extra_args, lambda _: scale)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def momentum_sam_params(opt_state: optax.OptState, params: Params) -> Params:
    r"""The unperturbed weights of the (single) `momentum_sam` anywhere inside `opt_state`.

    `params` are the perturbed weights the caller holds, :math:`\tilde w_t = w_t - c_t v_t`; this returns
    :math:`w_t = \tilde w_t + c_t v_t`, computed exactly as the next `update` computes the weights the
    base optimizer steps from (MSAM's `move_back_from_momentumAscent`). Evaluate, and keep at the end of
    training, these weights. The state may be a `MomentumSAMState` or contain one at any depth (a chain,
    `inject_hyperparams`, ...). Leaves with no direction (non-floating ones) come back as they are. With
    `flax.nnx`, pass `optimizer.opt_state` and `nnx.state(model, nnx.Param)`: their Variables are
    unwrapped (`nnx.as_pure`), and the weights come back as arrays, for `nnx.update(model, ...)`.

    Args:
        opt_state: an optimizer state holding exactly one `MomentumSAMState`.
        params: the current (perturbed) params, as passed to `update`.

    Returns:
        The unperturbed weights, a complete params tree.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.momentum_sam(sharpax.adamw(1e-3), rho=0.5)
        >>> params = {"w": jnp.ones(2)}
        >>> sharpax.momentum_sam_params(tx.init(params), params)  # before the first update: no shift
        {'w': Array([1., 1.], dtype=float32)}
    """
    owner = "momentum_sam_params"
    opt_state, params = without_nnx_variables((opt_state, params))
    state = find_state(owner, opt_state, MomentumSAMState)
    direction = _direction(owner, state)
    check_params_tree(owner, params, direction, "perturbation direction")
    return _shift(params, direction, state.scale)
