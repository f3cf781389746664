"""The geometry of the SAM family: global norms, the perturbation e(w), and the update directions.

Every SAM form (gradient wrapper or transformation) takes its perturbation and direction from here.
Norms and inner products are global over the whole tree (and over all devices when arrays are sharded).
A complex leaf counts as its real and imaginary parts (torch's view_as_real): |g|^2 = re^2 + im^2.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from sharpax._random import box_muller_normal
from sharpax._tree import float_leaves, is_float_leaf, real_parts, scalars_as_arrays
from sharpax._types import Array, Mask, Params, PyTree, ScalarOrSchedule, Updates
from sharpax._validation import check_non_negative, check_norm_order

NORM_EPS = 1e-12
"""Added to the gradient norm before dividing (davda54/sam's constant): a zero gradient gives e = 0."""


def accumulation_dtype(leaves: Sequence[Array]) -> Any:
    """float64 when a leaf is float64 or complex128 (x64 mode), else float32: the real dtype reductions
    run in, never half precision."""
    wide = (jnp.dtype(jnp.float64), jnp.dtype(jnp.complex128))
    return jnp.float64 if any(jnp.result_type(x) in wide for x in leaves) else jnp.float32


def _squares(x: Array, dtype: Any, divisor: Array | None = None) -> Array:
    x = jnp.abs(x) if jnp.iscomplexobj(x) else x
    x = x.astype(dtype)
    return jnp.sum(jnp.square(x if divisor is None else x / divisor))


def global_norm(leaves: Sequence[Array], dtype: Any = None) -> Array:
    """The 2-norm of all `leaves` together, without overflow (1e30**2 is inf in float32).

    On CPU and TPU the common case is one plain sum of squares; only when that sum over- or underflows
    (or is NaN) is it recomputed from the leaves divided by their largest magnitude, and `lax.cond`
    keeps that second pass off the common path (under `vmap` both run). On GPUs a `lax.cond` is a host
    sync (XLA:GPU copies the branch index to the host and waits for the stream), so there the norm is
    `blue_norm`, one pass with no branch.
    """
    return _norm_on_each_platform(leaves, dtype, blue_norm)


def scale_norm(leaves: Sequence[Array], dtype: Any = None) -> Array:
    """The 2-norm of all `leaves`, for a scale `rho / (norm + 1e-12)`: `global_norm` on CPU and TPU,
    `two_range_norm` on GPUs, where it is one pass even when the leaves are an expression that is not
    stored (momentum-SAM's new buffer, before the step writes it)."""
    return _norm_on_each_platform(leaves, dtype, two_range_norm)


def _norm_on_each_platform(leaves: Sequence[Array], dtype: Any, gpu_norm: Any) -> Array:
    """The plain sum of squares, rescaled only if needed, on CPU and TPU; `gpu_norm` elsewhere."""
    dtype = dtype or accumulation_dtype(leaves)
    if not leaves:
        return jnp.zeros([], dtype)
    return lax.platform_dependent(
        list(leaves),
        cpu=lambda leaves: _norm_rescaled_if_needed(leaves, dtype),
        tpu=lambda leaves: _norm_rescaled_if_needed(leaves, dtype),
        default=lambda leaves: gpu_norm(leaves, dtype),
    )


def _norm_rescaled_if_needed(leaves: Sequence[Array], dtype: Any) -> Array:
    squares = sum(_squares(x, dtype) for x in leaves)

    def rescaled():
        largest = _largest_magnitude(leaves, dtype)
        safe = jnp.where(largest > 0, largest, jnp.ones([], dtype))
        return safe * jnp.sqrt(sum(_squares(x, dtype, safe) for x in leaves))

    # Below sqrt(tiny), squares of the smallest entries may have been flushed to zero.
    in_range = (squares >= jnp.sqrt(jnp.finfo(dtype).tiny)) & (squares < jnp.inf)
    return lax.cond(in_range, lambda: jnp.sqrt(squares), rescaled)


def _blue_constants(dtype: Any) -> tuple[float, float, float, float]:
    """LAPACK's `la_constants` for `dtype`: thresholds tsml, tbig and scalings ssml, sbig (powers of 2).

    numpy's `finfo` counts exponents from a mantissa in [1, 2), Fortran's model from [0.5, 1): Fortran's
    MINEXPONENT is `minexp + 1`, MAXEXPONENT is `maxexp`, DIGITS is `nmant + 1`.
    """
    info = jnp.finfo(dtype)
    min_exponent, max_exponent, digits = int(info.minexp) + 1, int(info.maxexp), int(info.nmant) + 1
    return (
        2.0 ** math.ceil((min_exponent - 1) * 0.5),
        2.0 ** math.floor((max_exponent - digits + 1) * 0.5),
        2.0 ** -math.floor((min_exponent - digits) * 0.5),
        2.0 ** -math.ceil((max_exponent + digits - 1) * 0.5),
    )


def blue_norm(leaves: Sequence[Array], dtype: Any = None) -> Array:
    r"""The 2-norm of all `leaves` together by Blue's algorithm: one pass, no branch, no overflow.

    Each |x| is accumulated, squared, into one of three sums by its size: below `tsml` scaled up by
    `ssml`, above `tbig` scaled down by `sbig`, and in between as it is (the three sums are one variadic
    reduction, a single pass over each leaf); the sums are then combined as LAPACK's `nrm2`
    (Reference-LAPACK `snrm2.f90`/`dnrm2.f90`, Anderson 2017) combines them: big values present, the
    big sum with the medium one folded in; else small values present, both medium and small by
    :math:`y_{max} \sqrt{1 + (y_{min}/y_{max})^2}` or the small sum alone; else the medium sum. A NaN
    gives NaN and an inf gives inf. The constants are LAPACK's for the accumulation dtype (float32:
    tsml = 2^-63, tbig = 2^52, ssml = 2^75, sbig = 2^-76).

    References:
        Blue, "A Portable Fortran Program to Find the Euclidean Norm of a Vector", ACM TOMS 4(1), 1978;
        Anderson, "Algorithm 978: Safe Scaling in the Level 1 BLAS", ACM TOMS 44(1), 2017.
    """
    dtype = dtype or accumulation_dtype(leaves)
    tsml, tbig, ssml, sbig = (jnp.asarray(c, dtype) for c in _blue_constants(dtype))
    # XLA folds (x * c) * (x * c) into (x * x) * c^2, and c^2 over- or underflows for the two scalings
    # (2^150 and 2^-152 in float32): behind a barrier they are not constants to fold.
    ssml, sbig = lax.optimization_barrier((ssml, sbig))
    zero = jnp.zeros([], dtype)
    small_sum, medium_sum, big_sum = zero, zero, zero
    for x in leaves:
        ax = jnp.abs(x).astype(dtype)
        big, small = ax > tbig, ax < tsml
        # Each value is selected before it is scaled and squared, so that the other two terms see 0
        # (a square that overflows where it is not selected would make the gradient NaN).
        terms = (
            jnp.square(jnp.where(small, ax, zero) * ssml),
            jnp.square(jnp.where(big | small, zero, ax)),
            jnp.square(jnp.where(big, ax, zero) * sbig),
        )
        sums = lax.reduce(
            terms,
            (zero, zero, zero),
            lambda a, b: (a[0] + b[0], a[1] + b[1], a[2] + b[2]),
            tuple(range(ax.ndim)),
        )
        small_sum, medium_sum, big_sum = (
            small_sum + sums[0],
            medium_sum + sums[1],
            big_sum + sums[2],
        )
    use_big = big_sum > 0
    use_small = ~use_big & (small_sum > 0)
    has_medium = (medium_sum > 0) | jnp.isnan(medium_sum)
    one = jnp.ones([], dtype)
    # Every square root gets 1 where its branch is not taken, so that no branch's derivative at 0 (inf
    # times a zero cotangent) makes the gradient NaN.
    big_total = big_sum + jnp.where(has_medium, (medium_sum * sbig) * sbig, zero)
    with_big = jnp.sqrt(jnp.where(use_big, big_total, one)) / sbig
    small_root = jnp.sqrt(jnp.where(use_small, small_sum, one)) / ssml
    medium_root = jnp.sqrt(jnp.where(use_small & has_medium, medium_sum, one))
    low, high = jnp.minimum(medium_root, small_root), jnp.maximum(medium_root, small_root)
    both = high * jnp.sqrt(1 + jnp.square(low / high))
    with_small = jnp.where(has_medium, both, small_root)
    medium_only = jnp.sqrt(jnp.where(use_big | use_small, one, medium_sum))
    return jnp.where(use_big, with_big, jnp.where(use_small, with_small, medium_only))


def two_range_norm(leaves: Sequence[Array], dtype: Any = None) -> Array:
    r"""The 2-norm of all `leaves` together by Blue's algorithm without its small range: one pass, no
    branch, no overflow; values whose squares underflow count as 0.

    Each |x| above `tbig` is scaled down by `sbig` before it is squared, and every other |x| is squared
    as it is; the two sums are one reduction of two operands, and combine as in `blue_norm` (the big
    sum with the medium one folded in, when there are big values). Squares below the dtype's smallest
    normal number (|x| < 2^-63 in float32) are 0 or inexact, so a tree all of whose values are that
    small has a norm of 0 or less than its own; where the norm only divides, in
    :math:`\rho / (\lVert v \rVert + 10^{-12})`, that moves the result only when the 1e-12 is most of
    the divisor anyway. A NaN gives NaN and an inf gives inf.

    Why not `blue_norm`: XLA:GPU fuses a reduction of two operands with the elementwise computation of
    its input, but not a reduction of three: the input is then written out and read back, two passes
    over it (benchmarks/README.md, momentum-SAM on the H200).
    """
    dtype = dtype or accumulation_dtype(leaves)
    _, tbig, _, sbig = (jnp.asarray(c, dtype) for c in _blue_constants(dtype))
    sbig = lax.optimization_barrier(sbig)  # as in blue_norm: sbig^2 is no constant to fold
    zero = jnp.zeros([], dtype)
    medium_sum, big_sum = zero, zero
    for x in leaves:
        ax = jnp.abs(x).astype(dtype)
        big = ax > tbig
        terms = (jnp.square(jnp.where(big, zero, ax)), jnp.square(jnp.where(big, ax, zero) * sbig))
        sums = lax.reduce(
            terms, (zero, zero), lambda a, b: (a[0] + b[0], a[1] + b[1]), tuple(range(ax.ndim))
        )
        medium_sum, big_sum = medium_sum + sums[0], big_sum + sums[1]
    use_big = big_sum > 0
    one = jnp.ones([], dtype)
    # Each square root gets 1 where its branch is not taken, as in blue_norm (no NaN gradient).
    with_big = jnp.sqrt(jnp.where(use_big, big_sum + (medium_sum * sbig) * sbig, one)) / sbig
    return jnp.where(use_big, with_big, jnp.sqrt(jnp.where(use_big, one, medium_sum)))


def global_dot(a: Sequence[Array], b: Sequence[Array], dtype: Any) -> Array:
    """Sum over all leaves of `a * b`, accumulated in `dtype`."""
    return sum(
        (jnp.sum(x.astype(dtype) * y.astype(dtype)) for x, y in zip(a, b, strict=True)),
        jnp.zeros([], dtype),
    )


def unit(leaves: Sequence[Array], dtype: Any) -> list[Array]:
    """`leaves / ||leaves||` in `dtype`, and all zeros (never NaN) when the norm is zero."""
    norm = global_norm(leaves, dtype)
    inv = jnp.where(norm > 0, 1 / jnp.where(norm > 0, norm, 1), 0).astype(dtype)
    return [x.astype(dtype) * inv for x in leaves]


def resolve_rho(owner: str, rho: ScalarOrSchedule, step: Any) -> Any:
    """`rho` itself, or `rho(step)` for a schedule (which then needs the step)."""
    if not callable(rho):
        return rho
    if step is None:
        raise TypeError(
            f"{owner}: rho is a schedule, so the step is needed to evaluate it; pass the step count "
            "(0 at the first update), e.g. `sam_step=state.step`."
        )
    return rho(step)


def _mask_leaves(owner: str, mask: Mask, params: Params) -> list[bool]:
    """One Python bool per params leaf: is this leaf perturbed?"""
    leaves, treedef = jax.tree.flatten(params)
    if mask is None:
        return [is_float_leaf(x) for x in leaves]
    if callable(mask):
        mask = mask(params)
    # A prefix mask is broadcast over the subtree it covers, as in optax.masked.
    try:
        full = jax.tree.map(lambda m, sub: jax.tree.map(lambda _: m, sub), mask, params)
    except ValueError as err:
        raise ValueError(
            f"{owner}: mask must be a pytree of bools shaped like the params (or a prefix of it): {err}"
        ) from None
    flags = treedef.flatten_up_to(full)
    for flag in flags:
        if not isinstance(flag, bool):
            raise TypeError(f"{owner}: mask leaves must be Python bools, got {flag!r}")
    return [flag and is_float_leaf(x) for flag, x in zip(flags, leaves, strict=True)]


def _largest_magnitude(leaves: Sequence[Array], dtype: Any) -> Array:
    """max |x| over all leaves (0 for none or empty leaves), in `dtype`."""
    return jnp.max(
        jnp.stack([jnp.max(jnp.abs(x), initial=0).astype(dtype) for x in leaves]), initial=0
    )


def _dual_direction(v: Sequence[Array], p: float, dtype: Any) -> list[Array]:
    """sign(v) |v|^(q-1) / ||v||_q^(q-1), 1/p + 1/q = 1, 1 < p < inf: the unit p-norm vector maximising
    <v, d>. From a = |v| / max|v| in [0, 1], so nothing overflows and ||a||_q >= 1; zero for v = 0."""
    q = p / (p - 1)
    largest = _largest_magnitude(v, dtype)
    safe = jnp.where(largest > 0, largest, jnp.ones([], dtype))
    a = [jnp.abs(x) / safe for x in v]
    norm_q = sum(jnp.sum(jnp.power(x, jnp.asarray(q, dtype))) for x in a) ** jnp.asarray(
        1 / q, dtype
    )
    inv = jnp.where(largest > 0, 1 / jnp.power(norm_q, jnp.asarray(q - 1, dtype)), 0).astype(dtype)
    return [
        jnp.sign(x) * jnp.power(y, jnp.asarray(q - 1, dtype)) * inv
        for x, y in zip(v, a, strict=True)
    ]


def _l1_direction(v: Sequence[Array], dtype: Any) -> list[Array]:
    """The p -> 1 limit of `_dual_direction`: sign(v) / k on the k entries of largest |v|, 0 elsewhere."""
    largest = _largest_magnitude(v, dtype)
    top = [jnp.abs(x) == largest for x in v]
    count = sum((jnp.sum(t, dtype=jnp.int32) for t in top), jnp.zeros([], jnp.int32)).astype(dtype)
    share = 1 / jnp.maximum(count, jnp.ones([], dtype))
    return [
        jnp.where(t, jnp.sign(x) * share, jnp.zeros([], dtype)) for t, x in zip(top, v, strict=True)
    ]


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """SAM's first-order worst-case step e(w) for one gradient, validated once at build time.

    .. math::
        v = T_w g, \\qquad e = T_w \\hat e, \\qquad
        \\hat e = \\rho \\, \\frac{\\operatorname{sign}(v) \\, |v|^{q-1}}{\\lVert v \\rVert_q^{q-1}},
        \\qquad \\frac{1}{p} + \\frac{1}{q} = 1

    with T_w = |w| + eta under ASAM and T_w = 1 otherwise: the maximiser of g . e over
    ||T_w^{-1} e||_p <= rho (the dual-norm formula in the coordinates T_w^{-1} w), so ||e-hat||_p = rho.
    p = 2 is e = rho T_w^2 g / (||T_w g||_2 + eps) (davda54/sam's form, its own code path; eps is
    its 1e-12, or ESAM's 1e-7);
    p = inf is e = rho T_w sign(g); p = 1 is the limit p -> 1: all of rho on the entries of largest
    |v| over the whole tree, split evenly between ties. The general p is computed from v / max|v|
    (no overflow, and the denominator is >= 1), in float32 or float64 (`accumulation_dtype`).
    """

    owner: str
    rho: ScalarOrSchedule = 0.05
    adaptive: bool = False
    eta: float = 0.0
    p: float = 2
    mask: Mask = None
    eps: float = NORM_EPS

    def __post_init__(self):
        check_non_negative(self.owner, rho=self.rho, eta=self.eta)
        check_norm_order(self.owner, "p", self.p)
        if not isinstance(self.adaptive, bool):
            raise TypeError(f"{self.owner}: adaptive must be a bool, got {self.adaptive!r}")

    @property
    def scheduled(self) -> bool:
        """True when rho is a schedule, so the caller must keep a step count."""
        return callable(self.rho)

    def perturb(self, params: Params, grads: Updates, step: Any = None) -> Params:
        """`params + e(params, grads)`; leaves outside the mask come back as they are (no `+ 0`)."""
        p_leaves, treedef = jax.tree.flatten(scalars_as_arrays(params))
        try:
            g_leaves = treedef.flatten_up_to(grads)
        except ValueError:
            raise ValueError(
                f"{self.owner}: the gradient tree does not match the params.\n"
                f"  gradients: {jax.tree.structure(grads)}\n  params: {treedef}"
            ) from None
        selected = [i for i, s in enumerate(_mask_leaves(self.owner, self.mask, params)) if s]
        if not selected:
            return params
        for i in selected:
            if jnp.iscomplexobj(p_leaves[i]) != jnp.iscomplexobj(g_leaves[i]):
                raise TypeError(
                    f"{self.owner}: a complex param needs a complex gradient and a real one a real "
                    f"gradient, got param {p_leaves[i].dtype} and gradient {g_leaves[i].dtype}"
                )
        # Complex leaves as their real and imaginary parts: T_w, the norm and sign act on each part.
        ws, _ = real_parts([p_leaves[i] for i in selected])
        gs, rebuild = real_parts([g_leaves[i] for i in selected])
        dtype = accumulation_dtype(ws + gs)
        rho = jnp.asarray(resolve_rho(self.owner, self.rho, step), dtype)
        if self.adaptive:
            scales = [jnp.abs(w).astype(dtype) + jnp.asarray(self.eta, dtype) for w in ws]
        else:
            scales = [None] * len(ws)
        times = lambda t, x: x if t is None else t * x
        if self.p == 2:
            v = [times(t, g.astype(dtype)) for t, g in zip(scales, gs, strict=True)]
            factor = rho / (global_norm(v, dtype) + jnp.asarray(self.eps, dtype))
            es = [times(t, x) * factor for t, x in zip(scales, v, strict=True)]
        elif self.p == math.inf:
            es = [
                times(t, jnp.sign(g).astype(dtype)) * rho for t, g in zip(scales, gs, strict=True)
            ]
        else:
            v = [times(t, g.astype(dtype)) for t, g in zip(scales, gs, strict=True)]
            direction = (
                _l1_direction(v, dtype) if self.p == 1 else _dual_direction(v, self.p, dtype)
            )
            es = [times(t, d) * rho for t, d in zip(scales, direction, strict=True)]
        out = list(p_leaves)
        for i, e in zip(selected, rebuild(es), strict=True):
            out[i] = p_leaves[i] + e.astype(p_leaves[i].dtype)
        return jax.tree.unflatten(treedef, out)


# Random perturbations: RWP's filter-wise Gaussian noise and ESAM's random subset of tensors. Each
# draws from a key passed in, one key per perturbed leaf in tree-flatten order (documented, so that a
# reference can redraw the same numbers).

RWP_EPS = 1e-16
"""Added to a whole-tensor norm before it scales RWP's noise (nblt/RWP's constant, on 1-D tensors)."""


@dataclasses.dataclass(frozen=True)
class _Axes:
    """One leaf's entry of a filter-axis tree (None and tuples are not pytree leaves, so wrap them)."""

    value: Any


def _filter_axes(owner: str, filter_axis: Any, params: Params) -> list[tuple[int, ...] | None]:
    """Per params leaf, the axes that index its filters (None: the whole tensor is one filter).

    `filter_axis` is an int, a tuple of ints, None, or a pytree of those shaped like the params (or a
    prefix of it), or a callable `params -> such a tree`.
    """
    leaves, treedef = jax.tree.flatten(params)
    if callable(filter_axis):
        filter_axis = filter_axis(params)
    one = lambda a: a is None or isinstance(a, (int, tuple))
    if one(filter_axis):
        spec = [filter_axis] * len(leaves)
    else:
        wrapped = jax.tree.map(_Axes, filter_axis, is_leaf=one)
        try:
            full = jax.tree.map(lambda a, sub: jax.tree.map(lambda _: a, sub), wrapped, params)
        except ValueError as err:
            raise ValueError(
                f"{owner}: filter_axis must be an int, a tuple of ints, None, or a pytree of those "
                f"shaped like the params (or a prefix of it): {err}"
            ) from None
        spec = [a.value for a in treedef.flatten_up_to(full)]
    out = []
    for (path, x), axis in zip(jax.tree_util.tree_leaves_with_path(params), spec, strict=True):
        ndim = jnp.ndim(x)
        axes = (axis,) if isinstance(axis, int) else axis
        if axes is not None and not all(
            isinstance(a, int) and not isinstance(a, bool) for a in axes
        ):
            raise TypeError(
                f"{owner}: filter_axis at {jax.tree_util.keystr(path)} must be an int, a tuple of "
                f"ints or None, got {axis!r}"
            )
        if axes is None or ndim < 2:
            out.append(None)
            continue
        if not all(-ndim <= a < ndim for a in axes) or len({a % ndim for a in axes}) != len(axes):
            raise ValueError(
                f"{owner}: filter_axis={axis!r} at {jax.tree_util.keystr(path)} does not name "
                f"distinct axes of a {ndim}-d param"
            )
        out.append(tuple(sorted(a % ndim for a in axes)))
    return out


def filter_noise_perturb(
    owner: str,
    params: Params,
    key: Any,
    gamma: Any,
    filter_axis: Any,
    mask: Mask,
    draw: Callable[[Any, tuple[int, ...], Any], jax.Array] = box_muller_normal,
) -> Params:
    """`params + n`, n ~ N(0, (gamma ||w_filter||)^2) per filter (nblt/RWP's random weight perturbation).

    A leaf of two or more axes is a stack of filters indexed by `filter_axis` (torch's axis 0, the
    output channel, is Flax's last axis): each filter gets noise of standard deviation gamma times its
    own 2-norm over the other axes. A leaf of at most one axis (a bias, a norm scale), or one whose
    axis is None, gets gamma (||w|| + 1e-16). Leaves outside the mask (and non-float leaves) come back
    as they are. `draw(key, shape, dtype)` gives the standard normal array of a leaf (the benchmarks
    time other draws through it).
    """
    leaves, treedef = jax.tree.flatten(params)
    selected = [i for i, s in enumerate(_mask_leaves(owner, mask, params)) if s]
    if not selected:
        return params
    axes = _filter_axes(owner, filter_axis, params)
    keys = jax.random.split(key, len(selected))
    out = list(leaves)
    for k, i in zip(keys, selected, strict=True):
        w = jnp.asarray(leaves[i])
        if jnp.iscomplexobj(w):
            raise TypeError(
                f"{owner}: the param at {jax.tree_util.keystr(_path(params, i))} is {w.dtype}; "
                "filter-wise noise is defined for real weights (leave it out with mask=)"
            )
        dtype = accumulation_dtype([w])
        wf = w.astype(dtype)
        g = jnp.asarray(gamma, dtype)
        leaf_axes = axes[i]
        if leaf_axes is None:
            std = g * (jnp.sqrt(jnp.sum(jnp.square(wf))) + jnp.asarray(RWP_EPS, dtype))
        else:
            others = tuple(d for d in range(w.ndim) if d not in leaf_axes)
            std = g * jnp.sqrt(jnp.sum(jnp.square(wf), axis=others, keepdims=True))
        out[i] = (wf + std * draw(k, w.shape, dtype)).astype(w.dtype)
    return jax.tree.unflatten(treedef, out)


def _path(tree: PyTree, index: int) -> Any:
    return jax.tree_util.tree_leaves_with_path(tree)[index][0]


def keep_tensors_at_random(
    owner: str, grads: Updates, params: Params, mask: Mask, key: Any, beta: Any
) -> Updates:
    """`grads` with each perturbable tensor's gradient kept with probability beta, else zeroed.

    ESAM's stochastic weight perturbation: a zeroed gradient is neither perturbed nor counted in the
    norm of e(w), as a tensor without a gradient in dydjw9/Efficient_SAM. Tensor j (the j-th
    perturbable leaf in tree-flatten order) is kept when `jax.random.uniform(key, (n,))[j] < beta`.
    """
    selected = [i for i, s in enumerate(_mask_leaves(owner, mask, params)) if s]
    g_leaves, treedef = jax.tree.flatten(grads)
    if not selected:
        return grads
    keep = jax.random.uniform(key, (len(selected),)) < beta
    out = list(g_leaves)
    for j, i in enumerate(selected):
        out[i] = jnp.where(keep[j], g_leaves[i], jnp.zeros_like(g_leaves[i]))
    return jax.tree.unflatten(treedef, out)


# Update directions built from the two SAM gradients: GSAM's and LookSAM's orthogonal decompositions,
# WSAM's weighted mix; and Friendly-SAM's ascent direction. Each works on the floating leaves of the
# gradient trees; other leaves pass through.


def _orthogonal_part(leaves, onto, dtype):
    """`leaves` minus their projection on the line of `onto` (nothing removed when `onto` is zero)."""
    u = unit(onto, dtype)
    coef = global_dot(leaves, u, dtype)
    return [x.astype(dtype) - coef * ui for x, ui in zip(leaves, u, strict=True)]


def gsam_direction(grads: Updates, sam_grads: Updates, alpha) -> Updates:
    """GSAM's update direction `g_p - alpha * g_perp`, g_perp the part of `grads` orthogonal to `g_p`.

    `grads` is the first-pass gradient g at w, `sam_grads` the SAM gradient g_p at w + e(w)
    (Zhuang et al. 2022, Algorithm 1; juntang-zhuang/GSAM `gradient_decompose`).
    """
    g, _ = real_parts(float_leaves(grads)[0])
    gp_leaves, rebuild = float_leaves(sam_grads)
    gp, rebuild_complex = real_parts(gp_leaves)
    dtype = accumulation_dtype(g + gp)
    perp = _orthogonal_part(g, gp, dtype)
    a = jnp.asarray(alpha, dtype)
    return rebuild(
        rebuild_complex([x.astype(dtype) - a * v for x, v in zip(gp, perp, strict=True)])
    )


def looksam_vertical_direction(grads: Updates, sam_grads: Updates) -> Updates:
    """LookSAM's g_v / ||g_v||: the unit part of the SAM gradient g_s orthogonal to g (zero if none).

    Liu et al. 2022, Algorithm 1: g_v = g_s - ||g_s|| cos(theta) g / ||g||; only its direction is reused.
    """
    g, _ = real_parts(float_leaves(grads)[0])
    gs_leaves, rebuild = float_leaves(sam_grads)
    gs, rebuild_complex = real_parts(gs_leaves)
    dtype = accumulation_dtype(g + gs)
    return rebuild(rebuild_complex(unit(_orthogonal_part(gs, g, dtype), dtype)))


def looksam_direction(grads: Updates, vertical_direction: Updates, alpha) -> Updates:
    """LookSAM's cheap step `g + alpha * ||g|| * g_v / ||g_v||`, from one gradient and the stored direction."""
    g_leaves, rebuild = float_leaves(grads)
    g, rebuild_complex = real_parts(g_leaves)
    v, _ = real_parts(float_leaves(vertical_direction)[0])
    dtype = accumulation_dtype(g + v)
    scale = jnp.asarray(alpha, dtype) * global_norm(g, dtype)
    steps = [x.astype(dtype) + scale * y.astype(dtype) for x, y in zip(g, v, strict=True)]
    return rebuild(rebuild_complex(steps))


def wsam_direction(grads: Updates, sam_grads: Updates, alpha) -> Updates:
    """WSAM's coupled gradient `g + alpha * (g_s - g)`, alpha = gamma / (1 - gamma) (Yue et al. 2023)."""
    g, _ = real_parts(float_leaves(grads)[0])
    gs_leaves, rebuild = float_leaves(sam_grads)
    gs, rebuild_complex = real_parts(gs_leaves)
    dtype = accumulation_dtype(g + gs)
    a = jnp.asarray(alpha, dtype)
    return rebuild(
        rebuild_complex(
            [
                x.astype(dtype) + a * (y.astype(dtype) - x.astype(dtype))
                for x, y in zip(g, gs, strict=True)
            ]
        )
    )


def sharpness_gradient(grads: Updates, sam_grads: Updates) -> Updates:
    """`g_s - g`, the gradient of the sharpness term L(w + e) - L(w) to first order (WSAM's decoupled term)."""
    g, _ = real_parts(float_leaves(grads)[0])
    gs_leaves, rebuild = float_leaves(sam_grads)
    gs, rebuild_complex = real_parts(gs_leaves)
    dtype = accumulation_dtype(g + gs)
    return rebuild(
        rebuild_complex([y.astype(dtype) - x.astype(dtype) for x, y in zip(g, gs, strict=True)])
    )


def friendly_direction(
    grads: Updates, momentum: Updates, first: Array, sigma, lmbda
) -> tuple[Updates, Updates]:
    """Friendly-SAM's ascent direction `g - sigma * m` and the updated EMA m of the gradients.

    nblt/F-SAM `FriendlySAM.first_step` (Li et al. 2024): on the first step (`first` true) m is set to g
    and the direction is g itself (plain SAM); afterwards the direction takes the *previous* m, and only
    then m <- lmbda m + (1 - lmbda) g. Returns `(direction, new_momentum)`, each cast like its input.
    """
    g_leaves, rebuild_g = float_leaves(grads)
    m_leaves, rebuild_m = float_leaves(momentum)
    g, complex_g = real_parts(g_leaves)
    m, complex_m = real_parts(m_leaves)
    dtype = accumulation_dtype(g + m)
    s, lam = jnp.asarray(sigma, dtype), jnp.asarray(lmbda, dtype)
    directions, moments = [], []
    for x, y in zip(g, m, strict=True):
        x, y = x.astype(dtype), y.astype(dtype)
        directions.append(jnp.where(first, x, x - s * y))
        moments.append(jnp.where(first, x, lam * y + (1 - lam) * x))
    return rebuild_g(complex_g(directions)), rebuild_m(complex_m(moments))
