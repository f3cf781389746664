"""The gradient-wrapper forms of the SAM family: drop-ins for `jax.value_and_grad`.

Each `*_value_and_grad` returns `(loss, grads)` for any optimizer to apply; they share the two-pass body
below, its m-sharpness chunking and its per-device (`jax.shard_map`) form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sharpax._tree import is_float_leaf
from sharpax._types import Mask, PyTree, ScalarOrSchedule
from sharpax._validation import check_beta, check_int, check_mesh_args, check_non_negative
from sharpax.wrappers._loss_scale import DynamicLossScale, all_finite, check_loss_scale
from sharpax.wrappers._microbatches import check_batch, mean_over_microbatches
from sharpax.wrappers._sam_geometry import Perturbation, gsam_direction, wsam_direction

Direction = Callable[[PyTree, PyTree], PyTree]

LocalFn = Callable[[PyTree, Any, Any, tuple, dict], tuple[Any, PyTree]]


def ascent_direction(grads: PyTree) -> PyTree:
    """The direction of steepest ascent from `jax.grad`'s output: its conjugate at complex leaves.

    For a real loss of complex params, `jax.grad` returns dL/dx - i dL/dy (JAX's convention); the
    perturbation must move along dL/dx + i dL/dy, torch's gradient and what the optimizers take.
    """
    return jax.tree.map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, grads)


def per_device(
    owner: str,
    local: LocalFn,
    mesh_axis: str,
    mesh: Mesh | None,
    *,
    has_aux: bool,
    m: int,
    microbatches: int,
) -> Callable[..., tuple[Any, PyTree]]:
    """`local` run by each device on its shard of the batch, then losses and gradients `pmean`-ed."""

    def sam_grad_fn(params, *args, sam_step=None, loss_scale=None, **kwargs):
        current = mesh if mesh is not None else jax.sharding.get_abstract_mesh()
        if mesh_axis not in current.axis_names:
            raise ValueError(
                f"{owner}: mesh_axis={mesh_axis!r} is not an axis of the mesh "
                f"{tuple(current.axis_names)}; pass mesh= or call under `jax.set_mesh(mesh)`"
            )
        size = current.shape[mesh_axis]
        parts = {f"mesh_axis={mesh_axis!r} ({size} devices)": size, f"m={m}": m}
        check_batch(
            owner, args, {**parts, f"microbatches={microbatches}": microbatches}, sharded=True
        )

        def on_device(params, args):
            # Varying params: their gradient is this device's own, not summed over devices by the
            # transpose of the implicit broadcast of a replicated input.
            params = lax.pcast(params, mesh_axis, to="varying")
            value, grads = local(params, sam_step, loss_scale, args, kwargs)
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


def _split_batch(m: int, args: tuple) -> tuple:
    """Each leaf of the positional batch arguments, reshaped from (B, ...) to (m, B // m, ...)."""
    return jax.tree.map(lambda x: jnp.reshape(x, (m, x.shape[0] // m, *x.shape[1:])), args)


def _scaled_loss(loss_fn: Callable[..., Any], has_aux: bool, loss_scale: DynamicLossScale):
    """`loss_fn` as `(scaled loss, (loss, aux))`: differentiated, it gives the scaled gradient."""

    def scaled(params, *args, **kwargs):
        out = loss_fn(params, *args, **kwargs)
        loss, aux = out if has_aux else (out, None)
        return loss_scale.scale(loss), (loss, aux)

    return scaled


def two_pass_value_and_grad(
    owner: str,
    loss_fn: Callable[..., Any],
    perturbation: Perturbation,
    direction: Direction,
    *,
    has_aux: bool,
    m: int,
    microbatches: int = 1,
    mesh_axis: str | None = None,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[Any, PyTree]]:
    """The shared body of the `*_value_and_grad` wrappers: pass 1 at w, pass 2 at w + e, chunked by m,
    each pass accumulated over microbatches (inside each chunk), the loss optionally scaled."""
    check_int(owner, "m", m)
    check_int(owner, "microbatches", microbatches)
    check_mesh_args(owner, mesh_axis, mesh)

    def one_batch(params, step, loss_scale, args, kwargs):
        if loss_scale is None:
            fn, aux_out = loss_fn, has_aux
        else:
            check_loss_scale(owner, loss_scale)
            fn, aux_out = _scaled_loss(loss_fn, has_aux, loss_scale), True
        value_and_grad = jax.value_and_grad(fn, has_aux=aux_out)
        grad = jax.grad(fn, has_aux=aux_out)
        # The second pass's aux (e.g. batch statistics) is dropped.
        second = lambda p, batch: (
            grad(p, *batch, **kwargs)[0] if aux_out else grad(p, *batch, **kwargs)
        )
        value, grads = mean_over_microbatches(
            owner,
            lambda batch: value_and_grad(params, *batch, **kwargs),
            microbatches,
            args,
            aux_at=(0, 1) if loss_scale is None else (0, 1, 1),
        )
        if loss_scale is not None:
            value = value[1] if has_aux else value[1][0]  # the unscaled loss (and aux)
            grads = loss_scale.unscale(grads)
        perturbed = perturbation.perturb(params, ascent_direction(grads), step)
        sam_grads = mean_over_microbatches(
            owner, lambda batch: second(perturbed, batch), microbatches, args
        )
        if loss_scale is None:
            return value, direction(grads, sam_grads)
        sam_grads = loss_scale.unscale(sam_grads)
        # Non-finite in either pass: every leaf NaN, for whatever skips the step to see.
        finite = all_finite(grads) & all_finite(sam_grads)
        nan = lambda x: (
            jnp.where(finite, x, jnp.asarray(jnp.nan, x.dtype)) if is_float_leaf(x) else x
        )
        return value, jax.tree.map(nan, direction(grads, sam_grads))

    def chunked(params, step, loss_scale, args, kwargs):
        if m == 1:
            return one_batch(params, step, loss_scale, args, kwargs)
        chunks = _split_batch(m, args)
        values, grads = jax.vmap(lambda c: one_batch(params, step, loss_scale, c, kwargs))(chunks)
        mean = lambda x: jnp.mean(x, axis=0)
        value = (mean(values[0]), values[1]) if has_aux else mean(values)
        return value, jax.tree.map(mean, grads)

    if mesh_axis is not None:
        return per_device(
            owner, chunked, mesh_axis, mesh, has_aux=has_aux, m=m, microbatches=microbatches
        )

    def sam_grad_fn(params, *args, sam_step=None, loss_scale=None, **kwargs):
        check_batch(owner, args, {f"m={m}": m, f"microbatches={microbatches}": microbatches})
        return chunked(params, sam_step, loss_scale, args, kwargs)

    return sam_grad_fn


def sam_value_and_grad(
    loss_fn: Callable[..., Any],
    rho: ScalarOrSchedule = 0.05,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    m: int = 1,
    microbatches: int = 1,
    has_aux: bool = False,
    mask: Mask = None,
    mesh_axis: str | None = None,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[Any, PyTree]]:
    r"""SAM's gradient (Foret et al. 2021) as a drop-in for `jax.value_and_grad(loss_fn, has_aux=...)`.

    .. math::
        g = \nabla L(w), \qquad e = \rho \, \frac{T_w^2 g}{\lVert T_w g \rVert_2 + 10^{-12}}, \qquad
        \text{returns } \big(L(w), \; \nabla L(w + e)\big)

    with T_w = 1 (SAM) or |w| + eta (ASAM, `adaptive=True`); other p-norms: the argument `p`.
    Two forward-backward passes. davda54/sam's PyTorch `SAM` is an optimizer that moves the weights in
    place between two calls; optax has only `optax.contrib.sam`, a transformation that keeps a copy of
    the params. Here SAM is a gradient, and the optimizer is whatever you apply it with.

    Call it as `sam_grad(params, *args, sam_step=None, loss_scale=None, **kwargs)`. It returns the loss
    (and aux, with `has_aux=True`) of the first pass at the unperturbed params and the gradient of the
    second pass, for any optimizer, `TrainState.apply_gradients` or `nnx.Optimizer.update`; jit it with
    the training step. Pass `sam_step=` (0 at the first update) when `rho` is a schedule. With `m > 1`
    the positional arguments after `params` are split along their leading axis into m chunks, each
    perturbed with its own gradient, and the m results are averaged (aux stacked per chunk); keyword
    arguments go whole to every chunk. With `microbatches=k` each pass (of each chunk: m is the outer
    split) runs as a `lax.scan` over k microbatches, so that the peak activation memory is one
    microbatch's: one perturbation from the mean first-pass gradient, the mean second-pass gradient
    returned, as on the whole batch (aux: the first pass's, averaged over the microbatches). With
    `mesh_axis`, each device along that mesh axis perturbs with its own shard's gradient
    (`jax.shard_map`, as google-research/sam under `pmap`) before losses and gradients are averaged.
    With `loss_scale=` (a `sharpax.DynamicLossScale`), both passes differentiate the scaled loss, the
    gradients are unscaled before the perturbation, and the returned gradient is all NaN when either
    pass's gradient was not finite: skip that step (`optax.apply_if_finite`) and
    `loss_scale.adjust(sharpax.all_finite(grads))`. The loss returned is unscaled. The guides
    docs/sam.md and docs/sam_accumulation_and_amp.md have the details.

    Args:
        loss_fn: `loss_fn(params, *args, **kwargs) -> loss` (or `(loss, aux)` with `has_aux`), a scalar.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        m: m-sharpness, the number of chunks the batch is split into, an integer >= 1.
        microbatches: gradient accumulation, the number of microbatches each pass (of each of the m
            chunks) is split into, an integer >= 1; the leading axis of every positional argument must
            be divisible by m * microbatches (checked at trace time).
        has_aux: `loss_fn` returns `(loss, aux)`, as in `jax.value_and_grad`.
        mesh_axis: None (one global perturbation), or the name of the mesh axis the batch is sharded over,
            for per-device SAM.
        mesh: the `jax.sharding.Mesh` holding `mesh_axis`, or None for the mesh set by `jax.set_mesh` at
            call time. Only with `mesh_axis`.

    Returns:
        `sam_grad(params, *args, sam_step=None, **kwargs) -> (value, grads)`.

    References:
        Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
        Generalization", ICLR 2021.
        Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant
        Learning of Deep Neural Networks", ICML 2021.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> sam_grad = sharpax.sam_value_and_grad(lambda w: jnp.sum(w**2), rho=0.5)
        >>> loss, grads = sam_grad(jnp.array([3.0, 4.0]))
        >>> loss  # first pass, at w
        Array(25., dtype=float32)
        >>> grads  # g = (6, 8), e = 0.5 g / 10 = (0.3, 0.4), so 2 (w + e)
        Array([6.6, 8.8], dtype=float32)

        Per-device SAM over a mesh axis (here a mesh of one device, where it is plain SAM):

        >>> import jax
        >>> mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
        >>> loss_fn = lambda w, x: jnp.mean(x) * jnp.sum(w**2)
        >>> per_device = sharpax.sam_value_and_grad(loss_fn, 0.5, mesh_axis="data", mesh=mesh)
        >>> loss, grads = jax.jit(per_device)(jnp.array([3.0, 4.0]), jnp.ones((8, 1)))
        >>> grads
        Array([6.6, 8.8], dtype=float32)
    """
    owner = "sam_value_and_grad"
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    return two_pass_value_and_grad(
        owner,
        loss_fn,
        perturbation,
        lambda g, sam_g: sam_g,
        has_aux=has_aux,
        m=m,
        microbatches=microbatches,
        mesh_axis=mesh_axis,
        mesh=mesh,
    )


def gsam_value_and_grad(
    loss_fn: Callable[..., Any],
    rho: ScalarOrSchedule = 0.05,
    alpha: float = 0.1,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    m: int = 1,
    microbatches: int = 1,
    has_aux: bool = False,
    mask: Mask = None,
    mesh_axis: str | None = None,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[Any, PyTree]]:
    r"""GSAM's gradient (Zhuang et al. 2022): SAM's, minus alpha times g's part orthogonal to it.

    .. math::
        g = \nabla L(w), \quad g_p = \nabla L(w + e(w)), \quad
        g_\perp = g - \frac{\langle g, g_p \rangle}{\lVert g_p \rVert^2} g_p, \qquad
        \text{returns } \big(L(w), \; g_p - \alpha \, g_\perp\big)

    with e(w) the SAM perturbation of `sam_value_and_grad`. Ascending along -g_perp lowers the
    surrogate gap h = L(w + e) - L(w) without changing the perturbed loss to first order. The paper
    ties rho to the learning-rate schedule: pass `rho=sharpax.lr_proportional_rho(...)` and
    `sam_step=`. With m-sharpness the decomposition is done per chunk, then averaged (as the reference
    code does per worker before its all-reduce); with microbatches, once, on the mean gradients. No optax or torch.optim namesake.

    Called as `gsam_grad(params, *args, sam_step=None, loss_scale=None, **kwargs)`, the convention of
    every gradient form (docs/sam.md): the loss (and aux) of the first pass at `params`, `sam_step=` for
    a rho schedule, `m`, `microbatches`, `mesh_axis` and `loss_scale` as in `sam_value_and_grad`.

    Args:
        loss_fn: `loss_fn(params, *args, **kwargs) -> loss` (or `(loss, aux)` with `has_aux`), a scalar.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces davda54/sam's `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        alpha: weight of the orthogonal correction, >= 0 (0 is SAM; the paper uses 0.01 to 0.3).
        m: m-sharpness, the number of chunks the batch is split into, an integer >= 1.
        microbatches: gradient accumulation, the number of microbatches each pass (of each of the m
            chunks) is split into, an integer >= 1; the leading axis of every positional argument must
            be divisible by m * microbatches (checked at trace time).
        has_aux: `loss_fn` returns `(loss, aux)`.
        mesh_axis: None (one global perturbation), or the name of the mesh axis the batch is sharded over,
            for per-device SAM.
        mesh: the `jax.sharding.Mesh` holding `mesh_axis`, or None for the mesh set by `jax.set_mesh` at
            call time. Only with `mesh_axis`.

    Returns:
        `gsam_grad(params, *args, sam_step=None, **kwargs) -> (value, grads)`.

    References:
        Zhuang, Gong, Yuan, Cui, Adam, Dvornek, Tatikonda, Duncan & Liu, "Surrogate Gap Guided
        Sharpness-Aware Minimization" (GSAM), ICLR 2022, Algorithm 1.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> loss_fn = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
        >>> gsam_grad = sharpax.gsam_value_and_grad(loss_fn, rho=0.5, alpha=0.5)
        >>> _, grads = gsam_grad(jnp.array([3.0, 1.0]))
        >>> grads.round(3)  # g = (3, 4), g_p = (3.3, 5.6), g_perp = (0.477, -0.281)
        Array([3.061, 5.741], dtype=float32)
    """
    owner = "gsam_value_and_grad"
    check_non_negative(owner, alpha=alpha)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    direction = lambda g, sam_g: gsam_direction(g, sam_g, alpha)
    return two_pass_value_and_grad(
        owner,
        loss_fn,
        perturbation,
        direction,
        has_aux=has_aux,
        m=m,
        microbatches=microbatches,
        mesh_axis=mesh_axis,
        mesh=mesh,
    )


def wsam_value_and_grad(
    loss_fn: Callable[..., Any],
    rho: ScalarOrSchedule = 0.05,
    gamma: float = 0.9,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    m: int = 1,
    microbatches: int = 1,
    has_aux: bool = False,
    mask: Mask = None,
    mesh_axis: str | None = None,
    mesh: Mesh | None = None,
) -> Callable[..., tuple[Any, PyTree]]:
    r"""WSAM's coupled gradient (Yue et al. 2023): g + alpha (g_s - g), alpha = gamma / (1 - gamma).

    .. math::
        g = \nabla L(w), \quad g_s = \nabla L(w + e(w)), \qquad
        \text{returns } \Big(L(w), \; g + \frac{\gamma}{1 - \gamma} (g_s - g)\Big)

    the gradient of L(w) + alpha (L(w + e) - L(w)) to first order, with e(w) the perturbation of
    `sam_value_and_grad`. This is `sharpax.wsam(..., decouple=False)` as a gradient; the decoupled
    mode (the paper's default) adds its term after the base optimizer, so it exists only as the
    transformation `sharpax.wsam`. gamma = 0.5 is SAM's gradient. With m-sharpness the mix is done
    per chunk, then averaged (the same, as the mix is linear). No optax or torch.optim namesake.

    Called as `wsam_grad(params, *args, sam_step=None, loss_scale=None, **kwargs)`, the convention of
    every gradient form (docs/sam.md): the loss (and aux) of the first pass at `params`, `sam_step=` for
    a rho schedule, `m`, `microbatches`, `mesh_axis` and `loss_scale` as in `sam_value_and_grad`.

    Args:
        loss_fn: `loss_fn(params, *args, **kwargs) -> loss` (or `(loss, aux)` with `has_aux`), a scalar.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        gamma: weight of the sharpness term, in [0, 1) (the references' default 0.9: alpha = 9).
        adaptive: ASAM (Kwon et al. 2021): scale by T_w = |w| + eta, so that e = rho T_w^2 g / ||T_w g||.
        eta: ASAM's offset in T_w, >= 0 (0 reproduces the references' `adaptive=True` exactly).
        p: the norm of the ball, a number in [1, inf]: e maximises g . e over ||T_w^{-1} e||_p <= rho
            (2: rho T_w^2 g / ||T_w g||; `math.inf`: rho T_w sign(g); 1: all of rho on the largest
            |T_w g|, ties split evenly; otherwise rho T_w sign(v) |v|^(q-1) / ||v||_q^(q-1), with
            v = T_w g and 1/p + 1/q = 1). docs/sam_accumulation_and_amp.md has the details.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed, and the norm runs over them only (e.g. everything but
            the biases). Non-float leaves are never perturbed.
        m: m-sharpness, the number of chunks the batch is split into, an integer >= 1.
        microbatches: gradient accumulation, the number of microbatches each pass (of each of the m
            chunks) is split into, an integer >= 1; the leading axis of every positional argument must
            be divisible by m * microbatches (checked at trace time).
        has_aux: `loss_fn` returns `(loss, aux)`.
        mesh_axis: None (one global perturbation), or the name of the mesh axis the batch is sharded over,
            for per-device SAM.
        mesh: the `jax.sharding.Mesh` holding `mesh_axis`, or None for the mesh set by `jax.set_mesh` at
            call time. Only with `mesh_axis`.

    Returns:
        `wsam_grad(params, *args, sam_step=None, loss_scale=None, **kwargs) -> (value, grads)`.

    References:
        Yue, Jiang, Ye, Ning, Liu & Zhang, "Sharpness-Aware Minimization Revisited: Weighted Sharpness
        as a Regularization Term", KDD 2023.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> loss_fn = lambda w: 0.5 * (w[0] ** 2 + 4 * w[1] ** 2)
        >>> wsam_grad = sharpax.wsam_value_and_grad(loss_fn, rho=0.5, gamma=0.8)
        >>> _, grads = wsam_grad(jnp.array([3.0, 1.0]))
        >>> grads  # g = (3, 4), g_s = (3.3, 5.6), alpha = 4: g + 4 (0.3, 1.6)
        Array([ 4.2, 10.4], dtype=float32)
    """
    owner = "wsam_value_and_grad"
    check_beta(owner, gamma=gamma)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    alpha = gamma / (1 - gamma)
    return two_pass_value_and_grad(
        owner,
        loss_fn,
        perturbation,
        lambda g, sam_g: wsam_direction(g, sam_g, alpha),
        has_aux=has_aux,
        m=m,
        microbatches=microbatches,
        mesh_axis=mesh_axis,
        mesh=mesh,
    )
