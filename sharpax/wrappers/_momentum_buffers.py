"""Locate the first-moment (momentum) buffers inside an arbitrary optimizer state.

Lookahead's `pullback_momentum` modes act on these buffers; they are found by NamedTuple field name.
"""

from __future__ import annotations

from typing import Any

import jax

from sharpax._types import PyTree

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
    return tuple(getattr(n, _momentum_field(n)) for n in nodes if _is_momentum_state(n))


def set_momentum_buffers(state: PyTree, buffers: tuple[PyTree, ...]) -> PyTree:
    """`state` with its first-moment buffers replaced by `buffers` (same order as `get_momentum_buffers`)."""
    replacements = iter(buffers)

    def replace(node: Any) -> Any:
        field = _momentum_field(node)
        return node if field is None else node._replace(**{field: next(replacements)})

    return jax.tree.map(replace, state, is_leaf=_is_momentum_state)
