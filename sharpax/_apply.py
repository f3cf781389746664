"""`apply_updates`: optax's, except that float0 updates (integer params' gradients) leave params alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from sharpax._types import Params, Updates


def apply_updates(params: Params, updates: Updates) -> Params:
    r"""Add updates to params, as `optax.apply_updates`, keeping each param's dtype.

    .. math::
        w \leftarrow w + u

    `jax.grad(..., allow_int=True)` gives integer params float0 gradients, which sharpax's optimizers
    pass through untouched; no arithmetic accepts float0 (optax's version raises), so here a float0
    update leaves its param as it is. Everything else is `optax.apply_updates`.

    Args:
        params: the params pytree.
        updates: a pytree of the same structure (`None` leaves for masked-out params are kept as is).

    Returns:
        The updated params.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> params = {"w": jnp.array([1.0]), "step": jnp.array(3)}
        >>> grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2), allow_int=True)(params)
        >>> tx = sharpax.sgd(0.25)
        >>> updates, _ = tx.update(grads, tx.init(params), params)
        >>> sharpax.apply_updates(params, updates)
        {'step': Array(3, dtype=int32, weak_type=True), 'w': Array([0.5], dtype=float32)}
    """
    float0 = jax.dtypes.float0
    keep = jax.tree.map(lambda u: getattr(u, "dtype", None) == float0, updates)
    if not any(jax.tree.leaves(keep)):
        return optax.apply_updates(params, updates)
    zeroed = jax.tree.map(lambda p, u, k: jnp.zeros_like(p) if k else u, params, updates, keep)
    applied = optax.apply_updates(params, zeroed)
    return jax.tree.map(lambda new, old, k: old if k else new, applied, params, keep)
