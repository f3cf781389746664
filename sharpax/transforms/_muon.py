"""Muon with torch.optim.Muon's update rule, and the recipe that pairs it with AdamW."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from sharpax._tree import is_float_leaf, zeros_like_tree
from sharpax._types import Mask, ScalarOrSchedule, Updates
from sharpax._validation import (
    check_beta,
    check_choice,
    check_int,
    check_non_negative,
    check_tree_match,
    is_static_number,
)
from sharpax.transforms._adam import adamw
from sharpax.transforms._build import float_leaves_only, optimizer, weight_decay_block

# torch's constants (Keller Jordan's Muon).
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)
LAYOUTS = ("in_out", "out_in")


class ScaleByMuonState(NamedTuple):
    """State of `scale_by_muon`: the momentum buffer (torch's `momentum_buffer`)."""

    momentum_buffer: Updates


def _lerp(start: jax.Array, end: jax.Array, weight: Any) -> jax.Array:
    """torch's `lerp`: each form exact at its own end (chosen now for a static weight)."""
    if is_static_number(weight):
        if weight < 0.5:
            return start + weight * (end - start)
        return end - (end - start) * (1 - weight)
    weight = jnp.asarray(weight).astype(start.dtype)
    return jnp.where(
        weight < 0.5, start + weight * (end - start), end - (end - start) * (1 - weight)
    )


def newton_schulz(
    matrix: jax.Array,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    ns_steps: int = 5,
    eps: float = 1e-7,
) -> jax.Array:
    r"""torch's `_zeropower_via_newtonschulz`: about :math:`U V^T` of :math:`G = U S V^T`, in bfloat16.

    .. math::
        X_0 = G / \max(\|G\|_F, \epsilon), \quad A = X X^T, \quad
        X \leftarrow a X + (b A + c A^2) X

    on the wide orientation (more columns than rows), rounding to bfloat16 where torch does: each
    `addmm` accumulates in float32 and rounds once, as torch's CPU and CUDA kernels do, so the result
    is torch's to its float32 accumulation order.

    Args:
        matrix: a 2-D array, in torch's layout (its transpose gives the transposed result).
        ns_coefficients: (a, b, c).
        ns_steps: iterations, an integer >= 1.
        eps: floor of the Frobenius norm, >= 0.

    Returns:
        A bfloat16 array shaped like `matrix`.
    """
    bf16, f32 = jnp.bfloat16, jnp.float32
    a, b, c = ns_coefficients
    x = matrix.astype(bf16)
    tall = matrix.shape[0] > matrix.shape[1]
    if tall:
        x = x.T
    norm = jnp.sqrt(jnp.sum(jnp.square(x.astype(f32)))).astype(bf16)
    x = (x.astype(f32) / jnp.maximum(norm, jnp.asarray(eps, bf16)).astype(f32)).astype(bf16)

    # Under explicit sharding (sharding in types) a product whose contracting axis is sharded needs its
    # output sharding named: the iteration runs on the whole matrix, replicated, and the result takes
    # the input's sharding back.
    sharding = _explicit_sharding(matrix)
    replicated = None if sharding is None else jax.sharding.NamedSharding(sharding.mesh, P())

    def dot(p, q):
        return jnp.matmul(p, q, preferred_element_type=f32, out_sharding=replicated)

    def iteration(x):
        gram = dot(x, x.T).astype(bf16)
        update = (b * gram.astype(f32) + c * dot(gram, gram)).astype(bf16)
        return (a * x.astype(f32) + dot(update, x)).astype(bf16)

    if is_static_number(ns_steps):
        for _ in range(int(ns_steps)):
            x = iteration(x)
    else:  # optax.inject_hyperparams makes it an array
        x = jax.lax.fori_loop(0, ns_steps, lambda _, x: iteration(x), x)
    x = x.T if tall else x
    return x if sharding is None else jax.sharding.reshard(x, sharding)


def _explicit_sharding(x: jax.Array) -> Any:
    """The sharding of `x`'s type when it uses an explicit mesh axis, else None."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    explicit = {
        name
        for name, kind in zip(
            getattr(mesh, "axis_names", ()), getattr(mesh, "axis_types", ()), strict=True
        )
        if kind == AxisType.Explicit
    }
    used = set()
    for entry in getattr(sharding, "spec", ()) or ():
        used.update(entry if isinstance(entry, tuple) else (entry,))
    return sharding if explicit & used else None


def _adjust_ratio(adjust_lr_fn: str | None, rows: int, cols: int) -> float:
    """torch's `_adjust_lr` over lr, for a torch-layout `(rows, cols)` = `(fan_out, fan_in)` weight."""
    # An empty weight has no update to scale (torch divides by zero here).
    if rows == 0 or cols == 0:
        return 1.0
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1.0, rows / cols))
    return 0.2 * math.sqrt(max(rows, cols))  # "match_rms_adamw"


def _check_matrices(owner: str, params: Any) -> None:
    for path, p in jax.tree_util.tree_leaves_with_path(params):
        if is_float_leaf(p) and getattr(p, "ndim", 0) != 2:
            raise ValueError(
                f"{owner}: the leaf at {jax.tree_util.keystr(path)} has shape {list(p.shape)}; Muon "
                "orthogonalizes 2-D matrices only. Use sharpax.muon_with_adamw(...) (Muon for the "
                "matrices, AdamW for everything else, through optax.partition), or mask the leaf out."
            )


def _check(owner: str, momentum, ns_coefficients, eps, ns_steps, adjust_lr_fn, layout) -> None:
    check_beta(owner, momentum=momentum)
    check_non_negative(owner, eps=eps)
    if is_static_number(ns_steps) and not isinstance(ns_steps, jax.Array):
        check_int(owner, "ns_steps", ns_steps)
        if ns_steps >= 100:
            raise ValueError(f"{owner}: ns_steps must be below 100 (torch's limit), got {ns_steps}")
    if len(ns_coefficients) != 3:
        raise ValueError(f"{owner}: ns_coefficients must be (a, b, c), got {ns_coefficients!r}")
    check_choice(owner, "adjust_lr_fn", adjust_lr_fn, (None, "original", "match_rms_adamw"))
    check_choice(owner, "layout", layout, LAYOUTS)


def scale_by_muon(
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    layout: str = "in_out",
) -> optax.GradientTransformation:
    r"""Muon's orthogonalized momentum, as torch.optim.Muon, for 2-D leaves.

    .. math::
        B_t = \mathrm{lerp}(B_{t-1}, g_t, 1 - \mu), \quad
        \tilde B_t = \mathrm{lerp}(g_t, B_t, \mu) \text{ (Nesterov) else } B_t, \quad
        u_t = r(A, B) \, \mathrm{NS}_k(\tilde B_t)

    with NS the bfloat16 Newton-Schulz iteration of `newton_schulz` and r torch's rate adjustment for
    an `A x B` (`fan_out x fan_in`) weight: :math:`\sqrt{\max(1, A/B)}` ("original", the default) or
    :math:`0.2 \sqrt{\max(A, B)}` ("match_rms_adamw"). The buffer is an exponential moving average
    (torch's `lerp_`), not heavy-ball. `layout="in_out"` reads a leaf as Flax's `Dense` kernel
    `(fan_in, fan_out)`, torch's weight transposed; `"out_in"` as torch's `nn.Linear.weight`.
    `optax.contrib.muon` bias-corrects the momentum and runs Newton-Schulz in the input dtype.

    Args:
        momentum: mu in [0, 1).
        nesterov: use the Nesterov form.
        ns_coefficients: the Newton-Schulz coefficients (a, b, c).
        eps: floor of the Frobenius norm before the iteration, >= 0.
        ns_steps: Newton-Schulz iterations, an integer in [1, 100).
        adjust_lr_fn: None or "original", or "match_rms_adamw".
        layout: "in_out" (Flax) or "out_in" (torch).

    Returns:
        An `optax.GradientTransformation` with state `ScaleByMuonState`. A leaf that is not 2-D raises
        a `ValueError` pointing to `sharpax.muon_with_adamw`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.transforms.scale_by_muon(momentum=0.0, nesterov=False)
        >>> u, _ = tx.update(jnp.diag(jnp.array([4.0, 1.0])), tx.init(jnp.zeros((2, 2))))
        >>> jnp.round(u, 1)  # singular values 4 and 1 both brought near 0.7 (the quintic's fixed band)
        Array([[0.7, 0. ],
               [0. , 0.7]], dtype=float32)
    """
    owner = "scale_by_muon"
    _check(owner, momentum, ns_coefficients, eps, ns_steps, adjust_lr_fn, layout)
    a, b, c = ns_coefficients
    ns_coefficients = (float(a), float(b), float(c))

    def init_fn(params):
        _check_matrices("muon", params)
        return ScaleByMuonState(momentum_buffer=zeros_like_tree(params))

    def update_fn(updates, state, params=None):
        del params
        check_tree_match(owner, updates, state.momentum_buffer)
        _check_matrices("muon", updates)

        def step(g, buf):
            buf = _lerp(buf, g.astype(buf.dtype), 1.0 - momentum)
            direction = _lerp(g, buf.astype(g.dtype), momentum) if nesterov else buf
            torch_layout = direction.T if layout == "in_out" else direction
            orthogonal = newton_schulz(torch_layout, ns_coefficients, ns_steps, eps)
            if layout == "in_out":
                orthogonal = orthogonal.T
            ratio = _adjust_ratio(adjust_lr_fn, *torch_layout.shape)
            return _Leaf(orthogonal.astype(g.dtype) * ratio, buf)

        out = jax.tree.map(step, updates, state.momentum_buffer)
        pick = lambda i: jax.tree.map(lambda x: x[i], out, is_leaf=lambda x: isinstance(x, _Leaf))
        return pick(0), ScaleByMuonState(momentum_buffer=pick(1))

    return optax.GradientTransformation(init_fn, update_fn)


class _Leaf(NamedTuple):
    update: Any
    buffer: Any


def muon(
    learning_rate: ScalarOrSchedule = 1e-3,
    weight_decay: ScalarOrSchedule = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    layout: str = "in_out",
) -> optax.GradientTransformationExtraArgs:
    r"""Muon (Jordan et al. 2024) with torch.optim.Muon's update rule, for 2-D params only.

    .. math::
        w_t = w_{t-1} - \eta_t \left( r \, \mathrm{NS}_k(\tilde B_t) + \lambda w_{t-1} \right)

    with the orthogonalized momentum of `sharpax.transforms.scale_by_muon` and decoupled weight decay
    (multiplied by the learning rate, as torch). Leaves are read in Flax's `Dense` layout
    `(fan_in, fan_out)` (torch's weight transposed: the rate adjustment uses torch's shape);
    `layout="out_in"` for torch's. Newton-Schulz runs in bfloat16 as torch's does. Muon is for the
    hidden layers' matrices: biases, norms, embeddings and heads want AdamW, which
    `sharpax.muon_with_adamw` sets up in one call; a leaf that is not 2-D raises a `ValueError` that
    says so.

    Args:
        learning_rate: eta >= 0, or a schedule.
        weight_decay: decoupled decay lambda >= 0, or a schedule.
        momentum: mu in [0, 1).
        nesterov: use the Nesterov form.
        ns_coefficients: the Newton-Schulz coefficients (a, b, c).
        eps: floor of the Frobenius norm before the iteration, >= 0.
        ns_steps: Newton-Schulz iterations, an integer in [1, 100).
        adjust_lr_fn: None or "original" (:math:`\sqrt{\max(1, A/B)}`), or "match_rms_adamw"
            (:math:`0.2\sqrt{\max(A, B)}`), for a torch-layout `A x B` weight.
        layout: "in_out" (Flax's `(fan_in, fan_out)`) or "out_in" (torch's).

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
        Liu et al., "Muon is Scalable for LLM Training", 2025 (`match_rms_adamw`).

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.muon(0.02)
        >>> tx.init({"kernel": jnp.zeros((8, 4))}) is not None
        True
        >>> tx.init({"bias": jnp.zeros(4)})
        Traceback (most recent call last):
        ValueError: muon: the leaf at ['bias'] has shape [4]; Muon orthogonalizes 2-D matrices only. ...
    """
    owner = "muon"
    _check(owner, momentum, ns_coefficients, eps, ns_steps, adjust_lr_fn, layout)
    check_non_negative(owner, weight_decay=weight_decay)
    return optimizer(
        owner,
        scale_by_muon(
            momentum, nesterov, ns_coefficients, eps, ns_steps, adjust_lr_fn, layout=layout
        ),
        weight_decay_block(weight_decay, owner),
        learning_rate=learning_rate,
        complex_params=False,  # as torch.optim.Muon
    )


def muon_with_adamw(
    learning_rate: ScalarOrSchedule = 1e-3,
    weight_decay: ScalarOrSchedule = 0.1,
    momentum: float = 0.95,
    nesterov: bool = True,
    ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
    ns_steps: int = 5,
    adjust_lr_fn: str | None = None,
    *,
    layout: str = "in_out",
    adamw_learning_rate: ScalarOrSchedule | None = None,
    adamw_b1: float = 0.9,
    adamw_b2: float = 0.999,
    adamw_eps: float = 1e-8,
    adamw_weight_decay: ScalarOrSchedule | None = None,
    muon_mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The Muon recipe in one call: `muon` for the 2-D leaves, `adamw` for all the others.

    .. math::
        \text{2-D leaf: } \mathrm{muon}(\eta, \lambda, \ldots), \qquad
        \text{others: } \mathrm{adamw}(\eta_{A}, \beta_1, \beta_2, \epsilon_A, \lambda_A)

    As torch's documented use of Muon (two optimizers over the two groups of params), through
    `optax.partition`. Muon's arguments come first, with torch's names and defaults; AdamW's are
    keywords prefixed `adamw_` and default to Muon's learning rate and weight decay (the
    "match_rms_adamw" setting shares them). Choose the Muon leaves with `muon_mask` (e.g. to give
    embeddings and the output head to AdamW, as Keller Jordan's recipe does); the default takes every
    2-D floating leaf. `optax.contrib.muon` folds an Adam for the rest into itself, with other rules.

    Args:
        learning_rate: Muon's eta >= 0, or a schedule.
        weight_decay: Muon's decoupled decay >= 0, or a schedule.
        momentum: Muon's mu in [0, 1).
        nesterov: Muon's Nesterov form.
        ns_coefficients: the Newton-Schulz coefficients (a, b, c).
        eps: floor of the Frobenius norm, >= 0.
        ns_steps: Newton-Schulz iterations, an integer in [1, 100).
        adjust_lr_fn: None or "original", or "match_rms_adamw".
        layout: "in_out" (Flax's `(fan_in, fan_out)`) or "out_in" (torch's).
        adamw_learning_rate: AdamW's rate >= 0 or a schedule (default: `learning_rate`).
        adamw_b1: AdamW's beta_1 in [0, 1).
        adamw_b2: AdamW's beta_2 in [0, 1).
        adamw_eps: AdamW's eps >= 0.
        adamw_weight_decay: AdamW's decoupled decay >= 0 or a schedule (default: `weight_decay`).
        muon_mask: a pytree of bools shaped like the params (or a callable building one) choosing the
            Muon leaves, each 2-D; default: every 2-D floating leaf.

    Returns:
        An `optax.GradientTransformationExtraArgs`.

    References:
        Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> params = {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}
        >>> tx = sharpax.muon_with_adamw(0.02, adamw_learning_rate=3e-4, adamw_weight_decay=0.01)
        >>> updates, state = tx.update(params, tx.init(params), params)
        >>> updates["bias"]  # AdamW's first step on a zero gradient, with decay on zero params
        Array([0., 0., 0.], dtype=float32)
    """
    owner = "muon_with_adamw"
    _check(owner, momentum, ns_coefficients, eps, ns_steps, adjust_lr_fn, layout)
    check_non_negative(owner, learning_rate=learning_rate, weight_decay=weight_decay)
    check_beta(owner, adamw_b1=adamw_b1, adamw_b2=adamw_b2)
    check_non_negative(owner, adamw_eps=adamw_eps)
    transforms: dict[Hashable, optax.GradientTransformation] = {
        "muon": muon(
            learning_rate,
            weight_decay,
            momentum,
            nesterov,
            ns_coefficients,
            eps,
            ns_steps,
            adjust_lr_fn,
            layout=layout,
        ),
        "adamw": adamw(
            learning_rate if adamw_learning_rate is None else adamw_learning_rate,
            adamw_b1,
            adamw_b2,
            adamw_eps,
            weight_decay if adamw_weight_decay is None else adamw_weight_decay,
        ),
    }

    def labels(params):
        chosen = muon_mask(params) if callable(muon_mask) else muon_mask
        if chosen is None:
            return jax.tree.map(lambda p: "muon" if getattr(p, "ndim", 0) == 2 else "adamw", params)
        # float_leaves_only hands over None for the leaves nobody trains: they need no label.
        return jax.tree.map(
            lambda p, use: None if p is None else ("muon" if use else "adamw"),
            params,
            chosen,
            is_leaf=lambda x: x is None,
        )

    return float_leaves_only(optax.partition(transforms, labels), owner, complex_params=False)
