"""Per-device SAM with `jax.shard_map`: each device perturbs with its own shard's gradient norm.

The original JAX code (google-research/sam) runs under `pmap`: no collective before the second pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sharpax._types import PyTree

LocalFn = Callable[[PyTree, Any, tuple, dict], tuple[Any, PyTree]]


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


def per_device(
    owner: str,
    local: LocalFn,
    mesh_axis: str,
    mesh: Mesh | None,
    *,
    has_aux: bool,
    m: int,
) -> Callable[..., tuple[Any, PyTree]]:
    """`local` run by each device on its shard of the batch, then losses and gradients `pmean`-ed."""

    def sam_grad_fn(params, *args, sam_step=None, **kwargs):
        current = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
        if mesh_axis not in current.axis_names:
            raise ValueError(
                f"{owner}: mesh_axis={mesh_axis!r} is not an axis of the mesh "
                f"{tuple(current.axis_names)}; pass mesh= or call under `jax.set_mesh(mesh)`"
            )
        size = current.shape[mesh_axis]
        for x in jax.tree.leaves(args):
            shape = jax.numpy.shape(x)
            if not shape or shape[0] % (size * m):
                raise ValueError(
                    f"{owner}: with mesh_axis={mesh_axis!r} ({size} devices) and m={m}, every "
                    f"leaf of the positional batch arguments needs a leading axis divisible by "
                    f"{size * m}, got shape {shape} (pass unbatched values as keywords)"
                )

        def on_device(params, args):
            # Varying params: their gradient is this device's own, not summed over devices by the
            # transpose of the implicit broadcast of a replicated input.
            params = lax.pcast(params, mesh_axis, to="varying")
            value, grads = local(params, sam_step, args, kwargs)
            mean = lambda tree: lax.pmean(tree, mesh_axis)
            if has_aux:
                loss, aux = value
                # One aux per device on a new leading axis (m > 1 already stacked one per chunk).
                aux = aux if m > 1 else jax.tree.map(lambda a: a[None], aux)
                return (mean(loss), aux), mean(grads)
            return mean(value), mean(grads)

        batch = P(mesh_axis)
        out_specs = ((P(), batch), P()) if has_aux else (P(), P())
        if dict(zip(current.axis_names, current.axis_types, strict=True))[mesh_axis] == (
            AxisType.Explicit
        ):
            # An Explicit mesh wants inputs already laid out as in_specs says (Auto reshards).
            spec = lambda s: NamedSharding(mesh, s) if mesh is not None else s
            params = jax.tree.map(lambda x: jax.reshard(x, spec(P())), params)
            args = jax.tree.map(lambda x: jax.reshard(x, spec(batch)), args)
        return jax.shard_map(on_device, mesh=mesh, in_specs=(P(), batch), out_specs=out_specs)(
            params, args
        )

    return sam_grad_fn
