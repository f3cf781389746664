"""The cheap gradient-wrapper forms of the SAM family: random weight perturbation (RWP) and ESAM.

Drop-ins for `jax.value_and_grad` like those of `_sam_gradients.py`, which draw their randomness from a
key passed at each call; RWP costs about one pass over the batch, ESAM one pass plus a selected fraction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from sharpax._types import Mask, PyTree, ScalarOrSchedule
from sharpax._validation import check_non_negative, check_range, is_static_number
from sharpax.wrappers._sam_geometry import (
    Perturbation,
    accumulation_dtype,
    filter_noise_perturb,
    keep_tensors_at_random,
)
from sharpax.wrappers._sam_gradients import ascent_direction

ESAM_EPS = 1e-7
"""dydjw9/Efficient_SAM's constant in rho / (||g|| + eps) (davda54/sam's, used by SAM here, is 1e-12)."""


def _need_key(owner: str, key: Any) -> None:
    if key is None:
        raise TypeError(
            f"{owner}: this call draws random numbers: pass a fresh key at every step, e.g. "
            "`grad_fn(params, x, y, key=jax.random.fold_in(key, step))`"
        )


def _batch_leaves(owner: str, args: tuple, what: str) -> list[Any]:
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(args)]
    if not leaves:
        raise ValueError(
            f"{owner}: needs the batch as positional arguments after params (their leading axis is "
            f"the batch), {what}; got none"
        )
    return leaves


def _halves(owner: str, args: tuple) -> tuple:
    """Each leaf of the positional batch arguments, reshaped from (B, ...) to (2, B // 2, ...)."""
    leaves = _batch_leaves(owner, args, "split into two halves")
    sizes = {x.shape[0] if x.ndim else None for x in leaves}
    size = next(iter(sizes)) if len(sizes) == 1 else None
    if size is None or size % 2:
        shapes = [tuple(x.shape) for x in leaves]
        raise ValueError(
            f"{owner}: every leaf of the positional batch arguments needs the same even leading axis "
            f"(the first half is taken at w, the second at w + noise), got shapes {shapes} (pass "
            "unbatched values as keywords)"
        )

    def split(x):
        shape = (2, x.shape[0] // 2, *x.shape[1:])
        spec = _explicit_spec(x)
        if spec is None:
            return jnp.reshape(x, shape)
        # An Explicit mesh wants the layout of the halves: the batch's sharding, on each half.
        return lax.reshape(x, shape, out_sharding=P(None, *spec))

    return jax.tree.map(lambda x: split(jnp.asarray(x)), args)


def _explicit_spec(x: Any) -> Any:
    """The PartitionSpec of `x` when its leading axis is sharded over Explicit mesh axes, else None."""
    spec = jax.typeof(x).sharding.spec
    return spec if len(spec) and spec[0] is not None else None


def _take(x: Any, chosen: Any) -> Any:
    """`x[chosen]` along the batch axis; on an Explicit mesh, sharded as x when the count divides."""
    x = jnp.asarray(x)
    spec = _explicit_spec(x)
    if spec is None:
        return jnp.take(x, chosen, axis=0)
    names = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
    devices = math.prod(jax.sharding.get_abstract_mesh().shape[n] for n in names)
    out = spec if chosen.shape[0] % devices == 0 else P(None, *spec[1:])
    return x.at[chosen].get(out_sharding=out)


def rwp_value_and_grad(
    loss_fn: Callable[..., Any],
    gamma: float = 0.01,
    alpha: float = 0.5,
    *,
    filter_axis: Any = -1,
    has_aux: bool = False,
    mask: Mask = None,
) -> Callable[..., tuple[Any, PyTree]]:
    r"""Random weight perturbation's gradient (m-RWP, Li et al. 2024), one vmapped pass over the batch.

    .. math::
        n_f \sim \mathcal{N}\big(0, (\gamma \lVert w_f \rVert_2)^2 I\big) \text{ per filter } f,
        \qquad \text{returns } \Big(L(w; B_1), \;
        (1 - \alpha) \nabla L(w; B_1) + \alpha \nabla L(w + n; B_2)\Big)

    where B_1 and B_2 are the first and second halves of the batch. The two gradients are independent,
    so they are computed as one `jax.vmap` over (w, w + n) and (B_1, B_2): a step costs about one
    forward-backward pass over the whole batch, not two (the batched matmuls take the two weight sets
    stacked, a copy of the weights per step that counts where they outweigh the activations: see
    docs/sam_efficient.md for measured costs). This is nblt/RWP's `train_rwp_parallel.py`,
    where one DDP rank computes the plain gradient with its loss weighted by 2 (1 - alpha), another
    the gradient at w + n weighted by 2 alpha, and DDP's all-reduce averages them; alpha weights the
    noisy gradient. The noise is drawn filter-wise: a filter is one slice of a weight along
    `filter_axis` (an output unit of a dense layer, an output channel of a convolution), scaled by its
    own norm; a tensor of at most one axis (bias, norm scale) is one filter, scaled by
    gamma (||w|| + 1e-16), as in the reference, which perturbs every parameter. The weights are never
    moved in place, so there is nothing to restore. Complex params are refused (filter-wise noise is
    defined for real weights; leave them out with `mask=`). No optax or torch.optim namesake.

    Call it as `rwp_grad(params, *args, key, **kwargs)`, with a new `key` (a `jax.random.key`) at
    every step, e.g. `jax.random.fold_in(key, step)`: the same key gives the same noise. Every leaf of
    the positional arguments after `params` is a batch with the same even leading axis; its first half
    is used at w and its second half at w + n; keyword arguments go whole to both halves. The value is
    the loss (and aux, with `has_aux`) of the first half at the unperturbed params, the loss the
    reference logs. The reference feeds each step two batches of the SGD batch size (it doubles the
    epochs to keep the step count): pass a batch twice the size of a plain step's to follow it.

    Noise of leaf j (the j-th perturbed leaf in tree-flatten order) is `std * z` with std as above and
    z drawn in float32 from `k = jax.random.split(key, n)[j]` by the Box-Muller transform torch's
    `normal_` applies (nblt/RWP draws with `torch.normal`): element i (row-major) takes the two words
    `(b1, b2)` of threefry-2x32 at `k` and counter `(0, i)` (the counter `jax.random` gives it), and
    z = sqrt(-2 ln u1) cos(2 pi u2), u1 = 1 - (b1 >> 8) 2^-24, u2 = (b2 >> 8) 2^-24. On XLA:CPU that
    costs about a third of `jax.random.normal`'s draw (no rolled threefry loop, no `erf_inv`), and it
    is not `jax.random.normal`'s numbers. Float64 leaves, and keys other than threefry, draw
    `jax.random.normal(k, shape, dtype)`.

    Args:
        loss_fn: `loss_fn(params, *args, **kwargs) -> loss` (or `(loss, aux)` with `has_aux`), a scalar,
            the mean over the examples of its batch.
        gamma: the noise scale relative to each filter's norm, >= 0 (the references' scripts use 0.01
            and 0.015 on CIFAR, 0.005 on ImageNet). 0 gives the mixed plain gradient.
        alpha: the weight of the gradient at w + n, in [0, 1]; 1 - alpha weights the plain gradient.
        filter_axis: the axes of a weight that index its filters (the norm runs over the others): an
            int or a tuple of ints for every leaf of two or more axes (default -1: the output features
            of Flax's `Dense` `(in, out)` and `Conv` `(..., in, out)` kernels; torch's layout is 0),
            None for one norm over the whole tensor, or a pytree of those shaped like the params (or a
            prefix of it), or a callable `params -> such a tree`, for layouts that differ: e.g. 0 for
            `nn.Embed`'s `(vocab, dim)` table (its rows are torch's filters too), (1, 2) for the
            `(in, heads, head_dim)` query/key/value kernels of Flax's attention and None for their
            `(heads, head_dim)` biases (torch's are 1-d). Ignored on leaves of at most one axis.
        has_aux: `loss_fn` returns `(loss, aux)`; the aux of the first half is returned.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves are perturbed (default: every float leaf, as the reference).

    Returns:
        `rwp_grad(params, *args, key, **kwargs) -> (value, grads)`.

    References:
        Li, Tao, Yan, Wu, Lei, Fang, He & Huang, "Revisiting Random Weight Perturbation for Efficiently
        Improving Generalization", TMLR 2024 (the mixed objective m-RWP); code: github.com/nblt/RWP
        (`train_rwp_parallel.py`) and github.com/nblt/mARWP (`train_mrwp_parallel.py`, the same rule
        with gamma named sigma and alpha lambda).

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss_fn = lambda w, x: jnp.mean((x @ w) ** 2)
        >>> rwp_grad = sharpax.rwp_value_and_grad(loss_fn, gamma=0.0, alpha=0.5)
        >>> w, x = jnp.array([[1.0], [2.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> loss, grads = rwp_grad(w, x, key=jax.random.key(0))
        >>> loss  # (1 w_1)^2 on the first half
        Array(1., dtype=float32)
        >>> grads  # gamma = 0 and alpha = 0.5: the full-batch gradient, 2 x^T x w / 2
        Array([[1.],
               [2.]], dtype=float32)
    """
    owner = "rwp_value_and_grad"
    check_non_negative(owner, gamma=gamma)
    check_range(owner, "alpha", alpha, 0.0, 1.0)
    value_and_grad = jax.value_and_grad(loss_fn, has_aux=has_aux)

    def rwp_grad(params, *args, key=None, **kwargs):
        _need_key(owner, key)
        halves = _halves(owner, args)
        noisy = filter_noise_perturb(owner, params, key, gamma, filter_axis, mask)
        both = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, noisy)
        values, grads = jax.vmap(lambda p, half: value_and_grad(p, *half, **kwargs))(both, halves)

        def mix(g):
            # A complex leaf (one the mask leaves unperturbed) mixes as complex: both parts kept.
            dtype = accumulation_dtype([g])
            if jnp.iscomplexobj(g):
                dtype = jnp.complex128 if dtype == jnp.float64 else jnp.complex64
            a = jnp.asarray(alpha, dtype)
            return ((1 - a) * g[0].astype(dtype) + a * g[1].astype(dtype)).astype(g.dtype)

        return jax.tree.map(lambda v: v[0], values), jax.tree.map(mix, grads)

    return rwp_grad


def _example_count(owner: str, args: tuple) -> int:
    leaves = _batch_leaves(owner, args, "so that examples can be selected")
    sizes = {x.shape[0] if x.ndim else None for x in leaves}
    size = next(iter(sizes)) if len(sizes) == 1 else None
    if size is None:
        raise ValueError(
            f"{owner}: every leaf of the positional batch arguments needs the same leading (batch) "
            f"axis, got shapes {[tuple(x.shape) for x in leaves]} (pass unbatched values as keywords)"
        )
    return int(size)


def esam_value_and_grad(
    per_example_loss_fn: Callable[..., Any],
    rho: ScalarOrSchedule = 0.05,
    beta: float = 0.5,
    gamma: float = 0.5,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    has_aux: bool = False,
    mask: Mask = None,
) -> Callable[..., tuple[Any, PyTree]]:
    r"""ESAM's gradient (Du et al. 2022): SAM on a random subset of tensors and the sharpest examples.

    .. math::
        g = \nabla \tfrac{1}{B} \textstyle\sum_i \ell_i(w), \quad
        \hat g_j = \begin{cases} g_j & u_j < \beta \\ 0 & \text{else} \end{cases}, \quad
        e = \frac{\rho}{\beta} \frac{T_w^2 \hat g}{\lVert T_w \hat g \rVert_2 + 10^{-7}},

        S = \operatorname{top}_k\big(\ell_i(w + e) - \ell_i(w)\big), \;
        k = \lfloor \gamma B \rfloor, \qquad
        \text{returns } \Big(\tfrac{1}{B} \textstyle\sum_i \ell_i(w), \;
        \nabla \tfrac{1}{k} \textstyle\sum_{i \in S} \ell_i(w + e)\Big)

    with u_j ~ U[0, 1) one draw per tensor j and T_w = 1 (or |w| + eta with `adaptive`). Stochastic
    weight perturbation (SWP): each tensor is perturbed with probability beta, the kept ones by 1/beta
    more, the norm taken over them only, as dydjw9/Efficient_SAM's `ESAM` (its dropped tensors get no
    first-pass gradient). Sharpness-sensitive data selection (SDS): a forward pass at w + e gives each
    example's loss increase, and the second forward-backward pass runs on the k examples whose loss
    rose most, gathered, so its cost is gamma of a pass. With gamma = 1 the selection and its forward
    pass are skipped; with beta = 1 and gamma = 1 this is `sam_value_and_grad` with 1e-7 in place of
    SAM's 1e-12 in the norm. A complex param counts as its real and imaginary parts and is perturbed
    along conj(jax.grad), as in `sam_value_and_grad`; the returned gradient is JAX's. No optax or
    torch.optim namesake.

    Differences from the reference, all in the selection and the draw: (1) it keeps the examples whose
    loss rose strictly more than the k-th largest rise, i.e. k - 1 of them (ties aside); here exactly
    k, which keeps the array shapes static under `jit`; (2) it takes every example from gamma >= 0.99
    on, here from gamma = 1; (3) it draws step t's tensors at the end of step t - 1 (Python's
    `random`), perturbing every tensor at the first step; here from this call's key; (4) a dropped
    tensor's first-pass gradient is not computed there (a saving of SWP); under `jit` a random subset
    cannot be left out of the backward pass, so here SWP saves nothing and the first pass is whole.

    Call it as `esam_grad(params, *args, key=None, sam_step=None, **kwargs)`. Every leaf of the
    positional arguments after `params` is a batch with the same leading axis B (selected examples
    are gathered from them); keyword arguments go whole to every pass. Pass a new `key` at every step
    (e.g. `jax.random.fold_in(key, step)`); it may be left out with beta = 1, which draws nothing.
    Tensor j (the j-th perturbed leaf in tree-flatten order) is kept when
    `jax.random.uniform(key, (n,))[j] < beta`. Pass `sam_step=` (0 at the first update) when `rho` is
    a schedule.

    Args:
        per_example_loss_fn: `per_example_loss_fn(params, *args, **kwargs) -> losses` (or
            `(losses, aux)` with `has_aux`), a vector of one loss per example, shape (B,), e.g.
            `optax.softmax_cross_entropy_with_integer_labels(logits, y)` without the mean.
        rho: radius of the neighbourhood, >= 0, or a schedule `step -> rho` (step 0 at the first update).
        beta: the probability that a tensor is perturbed, in (0, 1] (SWP; 1 perturbs every tensor; the
            reference's scripts use 0.5 and 0.6).
        gamma: the fraction of the batch the second pass runs on, in (0, 1] (SDS; k = floor(gamma B)
            examples, at least 1; the reference's scripts use 0.5).
        adaptive: ASAM's scaling T_w = |w| + eta (the reference's `adaptive=True`, with eta = 0).
        eta: ASAM's offset in T_w, >= 0.
        has_aux: `per_example_loss_fn` returns `(losses, aux)`; the first pass's aux is returned.
        mask: a pytree of bools shaped like the params (or a prefix of it), or a callable `params -> mask`:
            only the `True` leaves may be perturbed (each with probability beta).

    Returns:
        `esam_grad(params, *args, key=None, sam_step=None, **kwargs) -> (mean loss, grads)`, the mean
        over the whole batch of the per-example losses at w (and aux, with `has_aux`).

    References:
        Du, Yan, Feng, Zhou, Zhen, Goh & Tan, "Efficient Sharpness-aware Minimization for Improved
        Training of Neural Networks", ICLR 2022; code: github.com/dydjw9/Efficient_SAM (`utils/Esam.py`).

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> per_example = lambda w, x: (x @ w) ** 2
        >>> esam_grad = sharpax.esam_value_and_grad(per_example, rho=0.1, beta=1.0, gamma=0.5)
        >>> x = jnp.array([[1.0, 0.0], [0.0, 3.0]])
        >>> loss, grads = esam_grad(jnp.array([1.0, 1.0]), x)
        >>> loss  # (1 + 9) / 2
        Array(5., dtype=float32)
        >>> grads.round(3)  # g = (1, 9), e = 0.1 g / sqrt(82); the 2nd loss rises most, alone: 18 (1 + e_2)
        Array([ 0.   , 19.789], dtype=float32)
    """
    owner = "esam_value_and_grad"
    check_non_negative(owner, rho=rho)
    check_range(owner, "beta", beta, 0.0, 1.0, low_inclusive=False)
    check_range(owner, "gamma", gamma, 0.0, 1.0, low_inclusive=False)
    for name, value in (("beta", beta), ("gamma", gamma)):
        if not is_static_number(value):
            # gamma sets the number of examples of the second pass, a shape; beta == 1 skips the draw.
            raise TypeError(f"{owner}: {name} must be a static Python number, got {value!r}")
    beta, gamma = float(beta), float(gamma)
    scaled_rho = (lambda step: rho(step) / beta) if callable(rho) else rho / beta
    perturbation = Perturbation(owner, scaled_rho, adaptive, eta, 2, mask, ESAM_EPS)
    draws = beta < 1

    def losses_of(params, args, kwargs):
        out = per_example_loss_fn(params, *args, **kwargs)
        losses, aux = out if has_aux else (out, None)
        count = _example_count(owner, args)
        if jnp.shape(losses) != (count,):
            raise ValueError(
                f"{owner}: per_example_loss_fn must return one loss per example, shape ({count},), "
                f"got shape {jnp.shape(losses)}"
            )
        return losses, aux

    def mean_loss(params, args, kwargs):
        losses, aux = losses_of(params, args, kwargs)
        return jnp.mean(losses), (losses, aux)

    def esam_grad(params, *args, key=None, sam_step=None, **kwargs):
        if draws:
            _need_key(owner, key)
        count = _example_count(owner, args)
        k = int(gamma * count)  # floor, as the reference's `int(len(targets) * prob)`
        if k < 1:
            raise ValueError(
                f"{owner}: gamma * batch = {gamma} * {count} selects no example; gamma must be "
                f">= 1 / {count} for this batch"
            )
        (loss, (losses, aux)), grads = jax.value_and_grad(mean_loss, has_aux=True)(
            params, args, kwargs
        )
        if draws:
            grads = keep_tensors_at_random(owner, grads, params, mask, key, beta)
        # Complex params: along conj(jax.grad), as sam_value_and_grad (the returned grads are JAX's).
        perturbed = perturbation.perturb(params, ascent_direction(grads), sam_step)
        if k < count:
            rise = losses_of(perturbed, args, kwargs)[0] - losses
            if _explicit_spec(rise) is not None:
                rise = jax.reshard(rise, P())  # top_k wants the whole vector on every device
            _, chosen = lax.top_k(rise, k)
            args = jax.tree.map(lambda x: _take(x, chosen), args)
        sam_grads = jax.grad(lambda p: jnp.mean(losses_of(p, args, kwargs)[0]))(perturbed)
        return ((loss, aux) if has_aux else loss), sam_grads

    return esam_grad
