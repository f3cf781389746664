"""Hyperparameters in the optimizer state: read them for logging, change them without recompiling."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.core import Tracer

from sharpax._tree import without_nnx_variables
from sharpax._types import PyTree

_INJECTED_STATES = (optax.InjectStatefulHyperparamsState, optax.InjectHyperparamsState)


def inject_hyperparams(
    factory: Callable[..., optax.GradientTransformation],
    dynamic: str | Iterable[str] = ("learning_rate",),
    *,
    hyperparam_dtype: Any | None = None,
) -> Callable[..., optax.GradientTransformationExtraArgs]:
    r"""Keep the `dynamic` hyperparameters in the optimizer state; the others stay compile-time constants.

    `inject_hyperparams(sharpax.adam)(learning_rate=1e-3)` behaves as `sharpax.adam(1e-3)` bit for bit,
    but the learning rate lives in `state.hyperparams`: read it with `current_learning_rate`, change
    it between steps with `set_hyperparams` (same dtype and shape, so a jitted step is not
    recompiled). A dynamic hyperparameter given as a schedule is evaluated at each update and its
    value stored, for logging.

    Differences from `optax.inject_hyperparams` (whose state type, `optax.InjectStatefulHyperparamsState`,
    is reused): optax puts *every* numeric argument into the state by default. A traced `b1` makes
    `1 - b1` a float32 subtraction at run time, whereas the constant is folded in float64 and rounded
    once (`f32(1 - 0.9) != f32(1) - f32(0.9)`); the steps of Adam, RMSprop, NAdam, RAdam, Adamax and
    Adadelta then drift from the static optimizer (optax issue 1532). Here only the names in `dynamic`
    are injected. The learning rate (and decoupled weight decay) enters as a product, which is the
    same float operation traced or constant, so the trajectory is bit-identical. One exception, an XLA
    detail: a *static* learning rate of exactly 1.0 lets XLA rewrite `p + (-1.0) * u` as `p - u`,
    which fuses differently from a multiply by a traced 1.0 when the update and `apply_updates` share
    one `jit`; the difference is then a few ulp per step.

    The state structure: `state.inner_state` is exactly the state of the plain optimizer, so a
    checkpoint of `sharpax.adam(...)`'s state loads into it (`state._replace(inner_state=restored)`).
    Not so with `optax.inject_hyperparams(sharpax.X)`: an optimizer drops a block whose hyperparameter
    is a known zero (`weight_decay`, `momentum`, `dampening`, `lr_decay`), and optax turns every
    numeric default into an array, which may be changed to anything later, so the block is kept. Its
    inner state then holds blocks the plain one has not (a momentum buffer for `sgd(lr)`, an empty
    decay state shifting the chain's indices for `adam(lr)`), and plain checkpoints do not load. The
    structure is not made the same both ways on purpose: doing so would put an unused momentum buffer
    into every plain `sgd` state and change every existing checkpoint. With optax's wrapper, pass
    those names in `static_args` to keep the plain structure.

    Args:
        factory: an optimizer factory, e.g. `sharpax.adam` (any function returning a transformation).
        dynamic: name(s) of the factory's arguments to keep in the state; each must be a parameter of
            `factory`. Those given as numbers become arrays; schedules are evaluated per update.
        hyperparam_dtype: dtype of the injected values; default: the highest float dtype of the params
            (as optax, so that bfloat16 params see a bfloat16 learning rate, as with a Python float).

    Returns:
        A function with the factory's signature returning an `optax.GradientTransformationExtraArgs`.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=1e-3)
        >>> params = jnp.zeros(2)
        >>> state = tx.init(params)
        >>> state = sharpax.set_hyperparams(state, learning_rate=1e-4)
        >>> sharpax.current_learning_rate(state)
        Array(1.e-04, dtype=float32)
    """
    owner = "inject_hyperparams"
    names = {dynamic} if isinstance(dynamic, str) else set(dynamic)
    parameters = inspect.signature(factory).parameters
    unknown = names - set(parameters)
    if unknown:
        raise ValueError(
            f"{owner}: dynamic must name parameters of {getattr(factory, '__name__', factory)}, "
            f"got {sorted(unknown)} (parameters: {list(parameters)})"
        )
    static = [name for name in parameters if name not in names]
    return optax.inject_hyperparams(factory, static_args=static, hyperparam_dtype=hyperparam_dtype)


def _is_injected(x: Any) -> bool:
    return isinstance(x, _INJECTED_STATES)


def _injected_states(opt_state: PyTree) -> list[Any]:
    nodes = jax.tree.leaves(opt_state, is_leaf=_is_injected)
    return [node for node in nodes if _is_injected(node)]


def current_hyperparams(opt_state: PyTree) -> dict[str, jax.Array]:
    r"""The injected hyperparameters of an optimizer state, as used by the last update.

    Finds the one `inject_hyperparams` state anywhere in `opt_state` (inside `chain`, wrappers, ...).
    After `init`, the values the first update will use; after an update, the values it used.
    Works for states of `sharpax.inject_hyperparams` and `optax.inject_hyperparams`.

    Args:
        opt_state: an optimizer state holding exactly one injected-hyperparameter state.

    Returns:
        A dict `name -> array`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.inject_hyperparams(sharpax.adamw, ("learning_rate", "weight_decay"))(1e-3)
        >>> sorted(sharpax.current_hyperparams(tx.init(jnp.zeros(1))))
        ['learning_rate', 'weight_decay']
    """
    found = _injected_states(without_nnx_variables(opt_state))
    if len(found) != 1:
        raise ValueError(
            "current_hyperparams: opt_state must hold exactly one injected-hyperparameter state "
            f"(build the optimizer with sharpax.inject_hyperparams), found {len(found)}"
        )
    return dict(found[0].hyperparams)


def current_learning_rate(opt_state: PyTree) -> jax.Array:
    """The learning rate used by the last update (after `init`: by the next one), for logging.

    With a `sharpax.lr_scheduler.reduce_lr_on_plateau` in the chain, its rate (the one the next update
    applies), times the injected learning rate if there is one (the optimizer before the plateau
    transformation is meant to have rate 1).

    Args:
        opt_state: state of an optimizer built with `inject_hyperparams(...)`, learning rate dynamic,
            or holding a `reduce_lr_on_plateau` state.

    Returns:
        A scalar array.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.inject_hyperparams(sharpax.sgd)(sharpax.linear_warmup(0.1, 10))
        >>> state = tx.init(jnp.zeros(1))
        >>> _, state = tx.update(jnp.ones(1), state)
        >>> _, state = tx.update(jnp.ones(1), state)
        >>> sharpax.current_learning_rate(state)  # the second update used 0.1 * 1 / 10
        Array(0.01, dtype=float32)
    """
    # Imported here: sharpax.lr_scheduler builds on this package.
    from sharpax.lr_scheduler._plateau import plateau_learning_rate

    opt_state = without_nnx_variables(opt_state)
    plateau = plateau_learning_rate(opt_state)
    if plateau is not None:
        if len(_injected_states(opt_state)) != 1:
            return plateau
        injected = current_hyperparams(opt_state).get("learning_rate")
        return plateau if injected is None else plateau * injected.astype(plateau.dtype)
    hyperparams = current_hyperparams(opt_state)
    if "learning_rate" not in hyperparams:
        raise ValueError(
            "current_learning_rate: the injected hyperparameters have no learning_rate "
            f"(injected: {sorted(hyperparams)})"
        )
    return hyperparams["learning_rate"]


def set_hyperparams(opt_state: PyTree, **values: Any) -> PyTree:
    r"""A copy of `opt_state` with injected hyperparameters replaced, for the following updates.

    Each value is cast to the dtype, shape and sharding of the entry it replaces, so the state keeps
    its abstract signature and a jitted step is not recompiled (a Python float in its place would be
    weakly typed: a new signature, one more compilation). Scheduled hyperparameters are recomputed
    at every update, so setting them is refused. With `flax.nnx`, pass `optimizer.opt_state` and write
    the (plain) result back: `nnx.update(optimizer.opt_state, nnx.state(new_state))`.

    Args:
        opt_state: a state holding one injected-hyperparameter state.
        **values: new values, by name.

    Returns:
        The new state (the old one is unchanged).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.inject_hyperparams(sharpax.sgd)(learning_rate=0.1)
        >>> state = sharpax.set_hyperparams(tx.init(jnp.zeros(1)), learning_rate=0.05)
        >>> tx.update(jnp.ones(1), state)[0]
        Array([-0.05], dtype=float32)
    """
    owner = "set_hyperparams"
    opt_state = without_nnx_variables(opt_state)
    found = _injected_states(opt_state)
    if len(found) != 1:
        raise ValueError(
            f"{owner}: opt_state must hold exactly one injected-hyperparameter state, found {len(found)}"
        )
    node = found[0]
    hyperparams = dict(node.hyperparams)
    scheduled = set(getattr(node, "hyperparams_states", {}))
    for name, value in values.items():
        if name not in hyperparams:
            raise ValueError(f"{owner}: {name} is not injected (injected: {sorted(hyperparams)})")
        if name in scheduled:
            raise ValueError(
                f"{owner}: {name} follows a schedule and is recomputed at every update; "
                "inject it as a number to set it"
            )
        old = jnp.asarray(hyperparams[name])
        new = jnp.broadcast_to(jnp.asarray(value, old.dtype), old.shape)
        if (
            isinstance(old, jax.Array)
            and not isinstance(old, Tracer)
            and len(old.sharding.device_set) > 1
        ):
            # Where the old value lived, when that is several devices: in a multi-process job a
            # replicated global array, which a fresh `jnp` array (on one local device) is not, and
            # which orbax can save. A one-device value stays an uncommitted one, as jit expects it.
            new = jax.device_put(new, old.sharding)
        hyperparams[name] = new
    new_node = node._replace(hyperparams=hyperparams)
    return jax.tree.map(lambda x: new_node if x is node else x, opt_state, is_leaf=_is_injected)
