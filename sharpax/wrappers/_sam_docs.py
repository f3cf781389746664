"""Docstring text shared by the SAM family, written once and filled into each public docstring."""

from __future__ import annotations

from sharpax._docs import doc_filler

_SLOTS = {
    "perturbation_args": """\
rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
p: the norm of the ball, 2 or `math.inf` (then e = rho T_w sign(g), the dual-norm maximiser in
    the coordinates T_w^{-1} w).
mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
    only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
    the biases). Non-float leaves are never perturbed.""",
    "mesh_args": """\
mesh_axis: None (one global perturbation), or the name of the mesh axis the batch is sharded over
    for per-device SAM (see above).
mesh: the `jax.sharding.Mesh` holding `mesh_axis`, or None for the mesh set by `jax.set_mesh` at
    call time. Only with `mesh_axis`.""",
    "form_notes": """\
The returned function is called as `sam_grad(params, *args, sam_step=None, **kwargs)` and returns
`(loss, grads)`, or `((loss, aux), grads)` with `has_aux=True`: the loss and aux of the first pass at
the unperturbed params (the number to log, and the batch statistics a BatchNorm model should keep),
the gradient of the second pass. Differentiation is with respect to the first argument. When `rho` is
a schedule, pass the step count as `sam_step=` (0 at the first update, e.g. a TrainState's `step`);
a constant rho ignores it. The function is pure: jit it with the rest of the training step, and
hand `grads` to any optimizer, `TrainState.apply_gradients` or `nnx.Optimizer.update` unchanged.

m-sharpness (`m > 1`): every leaf of the positional arguments after `params` is split along its
leading (batch) axis into m contiguous chunks, each chunk gets its own perturbation, and the m
resulting gradients (and first-pass losses) are averaged; aux comes back stacked, one entry per
chunk on a new leading axis. Keyword arguments are given whole to every chunk (the place for
unbatched inputs). The chunks are vmapped: with a batch sharded over d devices along its leading
axis and `m = d`, chunk j is device j's shard, the per-device perturbation of the original JAX code.

Per-device SAM (`mesh_axis="data"`): the same result as `m = d` without the reshape, run by
`jax.shard_map` over that mesh axis. The positional arguments after `params` are sharded along their
leading axis over it (d shards, each of them then split in m chunks), `params`, `sam_step` and the
keyword arguments are replicated; each device takes its first-pass gradient, its own norm and
perturbation (no collective before the second pass, as under `pmap` in google-research/sam), its
second-pass gradient, and only then are the gradients and losses averaged with `lax.pmean`. The
returned loss and grads are replicated; aux comes back one entry per device (per chunk when m > 1)
on a new leading axis, sharded over `mesh_axis`. Works eagerly and under `jax.jit`, on an Auto or
Explicit mesh. The default (`mesh_axis=None`) is unchanged: one perturbation for the whole batch,
its norm global over every device the gradient is sharded on.""",
    "transform_notes": """\
Called as `tx.update(grads, state, params, grad_fn=grad_fn, **extra_args)`: `grads` are the
first-pass gradients at `params`, and `grad_fn(perturbed_params) -> grads` computes the gradient of
the same loss on the same batch at other params (a closure over the batch). Other extra args are
passed on to the base optimizer, so the transformation composes inside `optax.chain` and inside
wrappers that forward extra args. Put gradient clipping inside the base optimizer
(`sam(chain(clip, adam))`): a transform chained before this one sees the first-pass gradients only.
Unlike `optax.contrib.sam` the state holds no copy of the params and one base update runs per step;
`grad_fn` takes the params only (optax's opaque mode passes an extra step index).""",
}


fill_doc = doc_filler(_SLOTS)
