"""Every argument and tree check of sharpax, with messages that name the argument and the range.

Hyperparameter checks run at build time and skip traced values (so `optax.inject_hyperparams` works) and
schedules (checked when called); tree checks run at trace time, so they cost nothing inside `jit`.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, overload

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.sharding import Mesh

from sharpax._tree import is_float_leaf
from sharpax._types import PyTree, ScalarOrSchedule, Schedule


def is_static_number(value: Any) -> bool:
    """True for Python and concrete numpy/jax scalars; False for tracers, schedules and None."""
    if value is None or callable(value) or isinstance(value, Tracer):
        return False
    if isinstance(value, (str, bytes)):
        return False
    try:
        return np.ndim(value) == 0
    except Exception:  # noqa: BLE001 - anything that is not array-like is not a static number
        return False


def check_number(owner: str, name: str, value: Any) -> None:
    """Raise `TypeError` unless `value` is a real scalar, a traced value or a schedule.

    Catches a string, `None`, a bool, a complex number or an array of several elements passed for a
    number, which would otherwise fail later with an unrelated message (or broadcast silently).
    """
    if callable(value) or isinstance(value, Tracer):
        return
    kind = getattr(value, "dtype", None)
    if kind is None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return
    if kind is not None and np.ndim(value) != 0:
        raise TypeError(
            f"{owner}: {name} must be a scalar or a schedule, got an array of shape {np.shape(value)}"
        )
    if (
        kind is not None
        and jnp.issubdtype(kind, jnp.number)
        and not jnp.issubdtype(kind, jnp.complexfloating)
    ):
        return
    raise TypeError(
        f"{owner}: {name} must be a real number or a schedule, got {value!r} ({type(value).__name__})"
    )


def check_range(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise `ValueError("owner: name must be in [low, high), got value")` for a bad static value.

    Traced values and schedules pass unchecked: their values are not known at build time. Values that
    are not real scalars raise `TypeError` (`check_number`); NaN and infinities are always out of range.
    """
    check_number(owner, name, value)
    if not is_static_number(value):
        return
    x = float(value)
    ok_low = x >= low if low_inclusive else x > low
    ok_high = x <= high if high_inclusive else x < high
    if not math.isfinite(x) or not (ok_low and ok_high):
        left = "[" if low_inclusive and math.isfinite(low) else "("
        right = "]" if high_inclusive and math.isfinite(high) else ")"
        raise ValueError(f"{owner}: {name} must be in {left}{low}, {high}{right}, got {value!r}")


def check_non_negative(owner: str, **values: Any) -> None:
    """`check_range(owner, name, value, 0, inf)` for each keyword."""
    for name, value in values.items():
        check_range(owner, name, value, 0.0)


def check_beta(owner: str, **values: Any) -> None:
    """Each keyword must be in [0, 1) (a decay rate of an exponential moving average).

    "Below 1" in float32, where the update runs: 1 - 1e-17 passes [0, 1) in Python's float64 but is
    1.0 in float32, and its bias correction 1 - b**t would be 0.
    """
    for name, value in values.items():
        check_range(owner, name, value, 0.0, 1.0, high_inclusive=False)
        if is_static_number(value) and np.float32(value) >= 1.0:
            raise ValueError(
                f"{owner}: {name} must be in [0.0, 1.0), got {value!r}, which is 1.0 in float32 "
                f"(the largest float32 below 1 is {float(np.nextafter(np.float32(1), np.float32(0)))})"
            )


def check_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    """`value` must be a Python or numpy integer >= minimum (a period, a count of steps or chunks)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


def check_finite(owner: str, **values: Any) -> None:
    """Each keyword must be a finite number (a value a schedule returns)."""
    for name, value in values.items():
        if is_static_number(value) and not math.isfinite(float(value)):
            raise ValueError(f"{owner}: {name} must be finite, got {value!r}")


def check_positive(owner: str, **values: Any) -> None:
    """Each keyword must be in (0, inf)."""
    for name, value in values.items():
        check_range(owner, name, value, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


def check_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """`value` must be one of `choices`."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {choices}, got {value!r}")


def check_norm_order(owner: str, name: str, value: Any) -> None:
    """`value` must be a static real number in [1, inf], `math.inf` included (the p of a p-norm).

    Static because it selects the formula when the function is traced: a traced value or a schedule
    raises `TypeError`.
    """
    check_number(owner, name, value)
    if not is_static_number(value):
        raise TypeError(
            f"{owner}: {name} must be a static number (it selects the formula when tracing), "
            f"got {value!r}"
        )
    x = float(value)
    if math.isnan(x) or x < 1:
        raise ValueError(f"{owner}: {name} must be in [1, inf] (math.inf included), got {value!r}")


def check_float_dtype(owner: str, **dtypes: Any) -> None:
    """Each keyword must be `None` or a floating dtype (the dtype of an optimizer's moment buffer)."""
    for name, dtype in dtypes.items():
        if dtype is None:
            continue
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"{owner}: {name} must be a floating dtype or None, got {dtype!r}"
            ) from None
        if not jnp.issubdtype(resolved, jnp.floating):  # numpy does not count bfloat16
            raise TypeError(f"{owner}: {name} must be a floating dtype or None, got {resolved}")


def check_transformation(owner: str, name: str, value: Any) -> None:
    """`value` must be an optax `GradientTransformation` (anything with callable `init` and `update`)."""
    if not (callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))):
        raise TypeError(
            f"{owner}: {name} must be an optax.GradientTransformation (e.g. sharpax.adam(1e-3)), "
            f"got {value!r}"
        )


@overload
def checked_schedule(owner: str, name: str, value: Schedule) -> Schedule: ...


@overload
def checked_schedule(owner: str, name: str, value: ScalarOrSchedule) -> ScalarOrSchedule: ...


def checked_schedule(owner: str, name: str, value: ScalarOrSchedule) -> ScalarOrSchedule:
    """`value` unchanged if it is not callable; a schedule wrapped to check what it returns, otherwise.

    The signature is checked now (one positional argument, the step count); the value is checked when
    the schedule is traced (a real scalar), so the check costs nothing inside `jit`. A schedule that
    returns a vector would otherwise broadcast against the params or fail with a shape error deep in
    the update.
    """
    if not callable(value):
        return value
    try:
        inspect.signature(value).bind(0)
    except TypeError:
        raise TypeError(
            f"{owner}: the {name} schedule must take one argument, the step count; got {value!r}"
        ) from None
    except ValueError:  # no signature to inspect (some builtins): the call itself will tell
        pass

    @functools.wraps(value)
    def schedule(count):
        out = value(count)
        dtype = getattr(out, "dtype", None)
        if (dtype is None and not isinstance(out, (int, float))) or isinstance(out, bool):
            raise TypeError(
                f"{owner}: the {name} schedule must return a real scalar, got {out!r} "
                f"({type(out).__name__})"
            )
        if np.ndim(out) != 0:
            raise ValueError(
                f"{owner}: the {name} schedule must return a scalar, got shape {np.shape(out)}"
            )
        if dtype is not None and not (
            jnp.issubdtype(dtype, jnp.number) and not jnp.issubdtype(dtype, jnp.complexfloating)
        ):
            raise TypeError(f"{owner}: the {name} schedule must return a real scalar, got {dtype}")
        return out

    return schedule


def check_mesh_args(owner: str, mesh_axis: Any, mesh: Any) -> None:
    """Build-time checks of `mesh_axis` and `mesh` (the context mesh is only known at call time)."""
    if mesh_axis is None:
        if mesh is not None:
            raise ValueError(f"{owner}: mesh is only used with mesh_axis, got mesh_axis=None")
        return
    if not isinstance(mesh_axis, str):
        raise ValueError(f"{owner}: mesh_axis must be a mesh axis name (a str), got {mesh_axis!r}")
    if mesh is not None and not isinstance(mesh, Mesh):
        raise ValueError(f"{owner}: mesh must be a jax.sharding.Mesh or None, got {mesh!r}")
    if mesh is not None and mesh_axis not in mesh.axis_names:
        raise ValueError(
            f"{owner}: mesh_axis must be an axis of the mesh {tuple(mesh.axis_names)}, "
            f"got {mesh_axis!r}"
        )


def _describe(x: Any) -> str:
    """A leaf as `dtype[shape]`, for error messages."""
    dtype = getattr(x, "dtype", type(x).__name__)
    return f"{dtype}{list(np.shape(x))}"


def check_tree_match(
    owner: str, updates: PyTree, reference: PyTree, what: str = "optimizer state"
) -> None:
    """Raise a readable `ValueError` when `updates` and `reference` have different tree structures.

    Runs at trace time only (structures are static), so it costs nothing inside `jit`.
    """
    got = jax.tree.structure(updates)
    want = jax.tree.structure(reference)
    if got != want:
        raise ValueError(
            f"{owner}: the gradient tree does not match the {what}.\n"
            f"  gradients: {got}\n  {what}: {want}\n"
            "Pass gradients with the same structure as the params the optimizer was initialised with."
        )
    # A gradient of another shape would broadcast against its buffer (silently, under JAX's default
    # rank promotion) instead of failing.
    for (path, g), r in zip(
        jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(reference), strict=True
    ):
        if np.shape(g) != np.shape(r):
            raise ValueError(
                f"{owner}: the gradient at {jax.tree_util.keystr(path)} has shape "
                f"{np.shape(g)}, the {what} leaf there has shape {np.shape(r)}"
            )


def _is_complex(x: Any) -> bool:
    return isinstance(x, complex) or jnp.iscomplexobj(x)


def check_gradients(owner: str, updates: PyTree, params: PyTree | None) -> None:
    """Raise a readable error for gradients no optimizer can use (trace time only, free in `jit`).

    Every gradient must be an array (or a Python number). When `params` is passed, the gradients must
    match it in structure and shape, a float param needs a floating gradient (complex for a complex
    param, real for a real one), and a non-float param (never trained: its gradient passes through)
    must not receive a floating one.
    """
    for path, g in jax.tree_util.tree_leaves_with_path(updates):
        if not hasattr(g, "dtype") and not isinstance(g, (int, float, complex)):
            raise TypeError(
                f"{owner}: the gradient at {jax.tree_util.keystr(path)} is {_describe(g)}; "
                "gradients must be arrays"
            )
    if params is None:
        return
    check_tree_match(owner, updates, params, what="params")
    for (path, g), p in zip(
        jax.tree_util.tree_leaves_with_path(updates), jax.tree.leaves(params), strict=True
    ):
        where = jax.tree_util.keystr(path)
        if is_float_leaf(p) and not is_float_leaf(g):
            raise TypeError(
                f"{owner}: the gradient at {where} is {_describe(g)} but the param is "
                f"{_describe(p)}; a floating-point param needs a floating-point gradient"
            )
        if is_float_leaf(p) and is_float_leaf(g) and _is_complex(p) != _is_complex(g):
            raise TypeError(
                f"{owner}: the gradient at {where} is {_describe(g)} but the param is "
                f"{_describe(p)}; a complex param needs a complex gradient, a real one a real gradient"
            )
        if is_float_leaf(g) and not is_float_leaf(p):
            raise TypeError(
                f"{owner}: the param at {where} is {_describe(p)}, which is not trained, but its "
                f"gradient is {_describe(g)}; cast the param to a float dtype to train it, or pass "
                "a float0 gradient (jax.grad(..., allow_int=True))"
            )


def check_state(owner: str, state: Any, expected: Any) -> None:
    """A state from another optimizer (or restored without its NamedTuples) fails here, readably."""
    got, want = jax.tree.structure(state), jax.tree.structure(expected)
    if got != want:
        raise ValueError(
            f"{owner}: the gradient tree does not match the optimizer state: the state does not have "
            "the structure this optimizer's init gives for these gradients. Either the gradients have "
            "another structure than the params the state was made for, or the state was made by another "
            "optimizer (a checkpoint restored without a target also loses its NamedTuples).\n"
            f"  state: {got}\n  expected for these gradients: {want}"
        )


def check_key(owner: str, key: Any) -> None:
    """`key` must be a JAX PRNG key: a typed key (`jax.random.key`) or a raw uint32[2] one (`PRNGKey`)."""
    if isinstance(key, Tracer):
        return
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return
    if dtype == np.uint32 and np.shape(key)[-1:] == (2,):
        return
    raise TypeError(f"{owner}: key must be a JAX PRNG key (e.g. jax.random.key(0)), got {key!r}")
