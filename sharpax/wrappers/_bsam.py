"""Bayesian SAM (Möllenhoff & Khan 2023): a whole optimizer, with a Gaussian posterior N(w, 1/(N s)).

Not a wrapper around a base optimizer (it has its own momentum and precision), so it is its own module;
it shares the transformation forms' `grad_fn` convention and checks.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sharpax._random import normal
from sharpax._tree import (
    check_params_tree,
    find_state,
    is_float_leaf,
    scalars_as_arrays,
    without_nnx_variables,
)
from sharpax._types import Array, Params, ScalarOrSchedule, Updates
from sharpax._validation import (
    check_beta,
    check_int,
    check_non_negative,
    check_positive,
    check_tree_match,
    checked_schedule,
)
from sharpax.transforms._build import float_leaves_only
from sharpax.wrappers._sam_transforms import call_grad_fn, require_grad_fn


class BSAMState(NamedTuple):
    """State of `bsam`: the PRNG key of the next step's noise, the momentum g_m and the precision s.

    The posterior is N(params, 1 / (num_data * precision)), elementwise: `bsam_variance(state, num_data)`.
    `key` is a raw `uint32[2]` key (`jax.random.PRNGKey`), so checkpoints need no special handling.
    """

    key: Array
    momentum: Updates
    precision: Updates


def _state_dtype(x: Array) -> Any:
    """float32, or float64 for float64 params: a bfloat16 s would not move by (1 - b2) = 0.1%."""
    return jnp.float64 if jnp.result_type(x) == jnp.float64 else jnp.float32


def _normal_like(key: Array, leaves: list[Array]) -> dict[int, Array]:
    """One standard normal array per float leaf, by leaf index, drawn as the reference's
    `util.normal_like_tree`.

    `key` is split into len(leaves) + 1 keys and leaf i takes key i + 1 (non-float leaves get none,
    but still use up their key, so a tree of float leaves draws exactly the reference's numbers).
    """
    keys = jax.random.split(key, len(leaves) + 1)
    return {
        i: normal(keys[i + 1], jnp.shape(x), _state_dtype(x))
        for i, x in enumerate(leaves)
        if is_float_leaf(x)
    }


def _scale_by_bsam(
    num_data: float,
    rho: float,
    b1: float,
    b2: float,
    weight_decay: float,
    damping: float,
    s_init: float,
    seed: int,
) -> optax.GradientTransformationExtraArgs:
    """BSAM's direction g_m / s (two passes through `grad_fn`), before the learning rate."""
    owner = "bsam"

    def init_fn(params):
        for path, x in jax.tree_util.tree_leaves_with_path(params):
            if is_float_leaf(x) and jnp.iscomplexobj(x):
                raise TypeError(
                    f"{owner}: complex params are not supported (the param at "
                    f"{jax.tree_util.keystr(path)} is {jnp.result_type(x)}): BSAM's Gaussian posterior "
                    "is over real weights; view complex params as pairs of real ones"
                )

        def precision(x):
            return (
                jnp.full_like(x, s_init, _state_dtype(x)) if is_float_leaf(x) else jnp.zeros_like(x)
            )

        def momentum(x):
            return jnp.zeros_like(x, _state_dtype(x)) if is_float_leaf(x) else jnp.zeros_like(x)

        return BSAMState(
            key=jax.random.PRNGKey(seed),
            momentum=jax.tree.map(momentum, params),
            precision=jax.tree.map(precision, params),
        )

    def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
        del extra_args  # no base optimizer to hand them to
        grad_fn = require_grad_fn(owner, grad_fn, params)
        if updates is None:  # a template: float leaves like the params, float0 for the others
            updates = jax.tree.map(
                lambda x: x if is_float_leaf(x) else np.zeros(np.shape(x), jax.dtypes.float0),
                params,
            )
        like = updates
        check_tree_match(owner, like, params, "params")
        w, treedef = jax.tree.flatten(params)
        w = [jnp.asarray(x) if isinstance(x, float) else x for x in w]  # Python float params
        s = treedef.flatten_up_to(state.precision)
        gm = treedef.flatten_up_to(state.momentum)
        floats = [i for i, x in enumerate(w) if is_float_leaf(x)]
        # The reference's key schedule with one batch split: split(key, 2), the noise from the first.
        noise_key, next_key = jax.random.split(state.key, 2)
        noise = _normal_like(noise_key, w)

        def with_float_leaves(values):
            out = list(w)
            for i in floats:
                out[i] = values[i].astype(w[i].dtype)
            return jax.tree.unflatten(treedef, out)

        # Pass 1 at a sample of the posterior N(w, 1 / (N s)).
        mean = {i: w[i].astype(s[i].dtype) for i in floats}
        noisy = {i: mean[i] + jnp.sqrt(1.0 / (num_data * s[i])) * noise[i] for i in floats}
        g = treedef.flatten_up_to(call_grad_fn(owner, grad_fn, with_float_leaves(noisy), like))
        g = {i: g[i].astype(s[i].dtype) for i in floats}
        # Pass 2 at w + rho g / s: the noisy gradient, scaled by the posterior variance (up to N).
        perturbed = {i: mean[i] + rho * g[i] / s[i] for i in floats}
        g_sam = treedef.flatten_up_to(
            call_grad_fn(owner, grad_fn, with_float_leaves(perturbed), like)
        )

        # Non-float leaves: their gradient passes through (float0 when `grads` is None).
        out = treedef.flatten_up_to(like)
        new_gm, new_s = list(gm), list(s)
        for i in floats:
            g_s = g_sam[i].astype(s[i].dtype)
            new_gm[i] = b1 * gm[i] + (1 - b1) * (g_s + weight_decay * mean[i])
            out[i] = (new_gm[i] / s[i]).astype(
                w[i].dtype
            )  # the precision before this step's update
            new_s[i] = b2 * s[i] + (1 - b2) * (
                jnp.sqrt(s[i] * g[i] ** 2.0) + damping + weight_decay
            )
        return jax.tree.unflatten(treedef, out), BSAMState(
            key=next_key,
            momentum=jax.tree.unflatten(treedef, new_gm),
            precision=jax.tree.unflatten(treedef, new_s),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def bsam(
    learning_rate: ScalarOrSchedule,
    num_data: float,
    rho: float = 0.01,
    b1: float = 0.9,
    b2: float = 0.999,
    weight_decay: float = 2e-4,
    damping: float = 0.1,
    s_init: float = 1.0,
    *,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""Bayesian SAM (Möllenhoff & Khan 2023): SAM as a variational Gaussian posterior N(w, 1/(N s)).

    .. math::
        \epsilon \sim \mathcal{N}(0, I), \quad g = \text{grad\_fn}\big(w + \epsilon / \sqrt{N s}\big),
        \quad g_s = \text{grad\_fn}(w + \rho \, g / s) \\
        g_m \leftarrow \beta_1 g_m + (1 - \beta_1)(g_s + \delta w), \qquad
        w \leftarrow w - \eta_t \, g_m / s, \qquad
        s \leftarrow \beta_2 s + (1 - \beta_2)\big(\sqrt{s \, g^2} + \gamma + \delta\big)

    elementwise, with delta = `weight_decay`, gamma = `damping`, N = `num_data`; the step uses the s of
    before its update. The first pass is at a sample of the posterior, the second at SAM's perturbation
    of the mean w, scaled by the posterior's shape 1/s instead of normalised; s is an Adam-like
    estimate of the posterior precision. The params are the posterior mean; the variance is
    `bsam_variance(state, num_data)` and `bsam_sample` draws from the posterior (the reference tests
    with a Monte Carlo average of predictions over such samples). No optax or torch.optim namesake.

    A port of the authors' JAX code (team-approx-bayes/bayesian-sam, `optim.py`,
    `build_bsam_optimizer`) with one batch split: the same update, in the same order, and the same
    noise: the state's key is split in two, the first half drawing one standard normal per leaf as the
    reference's `normal_like_tree` does, the second kept for the next step. With `seed=k`, a run is the
    reference's started from `jax.random.PRNGKey(k)`. The reference's `--batchsplit` (m-sharpness: one
    noise sample and perturbation per chunk of the batch, 8 in its recipes) is not offered here: the
    transformation only sees `grad_fn`, not the batch.

    pytorch_optimizer 4.1's `BSAM` departs from the reference: its noise has standard deviation
    1/(N s) (the reference's variance); it adds the noise and then the perturbation to the weights and
    never restores them, so the perturbation is taken at the noisy sample and the update is applied to
    w + noise + e; its s update squares (sqrt(s)|g| + delta + gamma); its s is built from the second-
    pass gradient g_s, not the noisy one; its momentum averages delta * g_s, not g_s + delta w; its step
    divides by the updated s; and it starts s at 1 with no `s_init`. Its `adaptive` option (ASAM's |w|^2
    factor) is not in the paper and not here.

    Called as `tx.update(grads, state, params, grad_fn=grad_fn)`: `grad_fn(p) -> grads` computes the
    gradient of the loss on the batch at any `p`, and `update` calls it twice (the two passes above).
    `grads` is not used, since both of BSAM's gradients are taken at points only `update` knows: pass
    `None`, or the gradient at `params` if you computed it anyway (only its structure is checked; under
    `jit` its computation is dead code and dropped). Other extra args are ignored.

    Args:
        learning_rate: eta_t >= 0, or a schedule `count -> eta` (count 0 at the first update). The
            reference's recipes use 0.5 (0.25 on TinyImageNet) with warmup and cosine decay.
        num_data: N > 0, the number of training examples (the reference multiplies it by 4 under data
            augmentation); the posterior variance is 1 / (N s).
        rho: the perturbation's scale, >= 0 (not a radius: e = rho g / s is not normalised; the reference's
            CIFAR recipes use 0.01, its TinyImageNet one 5e-5).
        b1: decay of the momentum g_m, in [0, 1).
        b2: decay of the precision s, in [0, 1).
        weight_decay: delta >= 0, the L2 term in g_m and in s: the prior precision divided by N (the
            reference's `train.py` sets it to `priorprec / N`; the default is its CIFAR-10 recipe,
            40 / (4 * 50000)).
        damping: gamma >= 0, added to s (with weight_decay it keeps s away from zero).
        s_init: the initial precision s > 0 (the reference's `--custominit`).
        seed: an integer >= 0 seeding the noise (`jax.random.PRNGKey(seed)`, kept in the state).

    Returns:
        An `optax.GradientTransformationExtraArgs` whose state holds a `BSAMState`, then the learning
        rate's state.

    References:
        Möllenhoff & Khan, "SAM as an Optimal Relaxation of Bayes", ICLR 2023
        (https://github.com/team-approx-bayes/bayesian-sam).

    Example:
        >>> import jax, jax.numpy as jnp, optax, sharpax
        >>> loss = lambda w: jnp.sum(jnp.array([3.0, -4.0]) * w)  # linear: g = (3, -4) everywhere
        >>> w = jnp.array([1.0, 2.0])
        >>> tx = sharpax.bsam(0.5, num_data=100, weight_decay=0.1, damping=0.1)
        >>> state = tx.init(w)
        >>> u, state = tx.update(None, state, w, grad_fn=jax.grad(loss))
        >>> optax.apply_updates(w, u)  # w - 0.5 * 0.1 (g + 0.1 w) / 1
        Array([0.845, 2.19 ], dtype=float32)
        >>> sharpax.bsam_variance(state, num_data=100)  # 1 / (100 s), s = 0.999 + 0.001 (|g| + 0.2)
        Array([0.00997805, 0.0099681 ], dtype=float32)
    """
    owner = "bsam"
    check_non_negative(
        owner, learning_rate=learning_rate, rho=rho, weight_decay=weight_decay, damping=damping
    )
    check_positive(owner, num_data=num_data, s_init=s_init)
    check_beta(owner, b1=b1, b2=b2)
    # optax.inject_hyperparams passes every number as an array, the seed included.
    if not (isinstance(seed, jax.Array) and jnp.issubdtype(seed.dtype, jnp.integer)):
        check_int(owner, "seed", seed, minimum=0)
    learning_rate = checked_schedule(owner, "learning_rate", learning_rate)
    return optax.chain(
        _scale_by_bsam(num_data, rho, b1, b2, weight_decay, damping, s_init, seed),
        float_leaves_only(optax.scale_by_learning_rate(learning_rate), owner),
    )


def bsam_variance(state: optax.OptState, num_data: float) -> Updates:
    r"""The posterior variance 1 / (N s) of `bsam`, elementwise, shaped like the params.

    .. math::
        q(w) = \mathcal{N}\big(\mu, \operatorname{diag}(\sigma^2)\big), \qquad
        \mu = \text{params}, \quad \sigma^2 = \frac{1}{N s}

    Non-float params are not random: their variance is 0.

    Args:
        state: the state of `bsam`, or any optimizer state holding exactly one (a chain, a wrapper).
        num_data: N > 0, the `num_data` that `bsam` was built with.

    Returns:
        A tree like the params: float32 (float64 for float64 params) variances.

    References:
        Möllenhoff & Khan, "SAM as an Optimal Relaxation of Bayes", ICLR 2023.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> tx = sharpax.bsam(0.1, num_data=1000, s_init=2.0)
        >>> sharpax.bsam_variance(tx.init({"w": jnp.zeros(2)}), num_data=1000)["w"]
        Array([0.0005, 0.0005], dtype=float32)
    """
    owner = "bsam_variance"
    check_positive(owner, num_data=num_data)
    found = find_state(
        owner, without_nnx_variables(state), BSAMState, " (the state of sharpax.bsam)"
    )
    return jax.tree.map(
        lambda s: 1.0 / (num_data * s) if is_float_leaf(s) else jnp.zeros_like(s),
        found.precision,
    )


def bsam_sample(key: Array, state: optax.OptState, params: Params, num_data: float) -> Params:
    r"""One sample w ~ N(params, 1 / (N s)) from `bsam`'s posterior, for Monte Carlo predictions.

    .. math::
        w = \mu + \epsilon / \sqrt{N s}, \qquad \epsilon \sim \mathcal{N}(0, I)

    drawn as the reference's `test.py` does (one normal per leaf, from `key` split as its
    `normal_like_tree`). Map over keys (`jax.vmap`) for several samples; non-float leaves are returned
    as they are.

    Args:
        key: a `jax.random` key (raw or typed).
        state: the state of `bsam`, or any optimizer state holding exactly one.
        params: the posterior mean (the params `bsam` trains).
        num_data: N > 0, the `num_data` that `bsam` was built with.

    Returns:
        A tree like `params`, in the params' dtypes.

    References:
        Möllenhoff & Khan, "SAM as an Optimal Relaxation of Bayes", ICLR 2023.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> params = {"w": jnp.zeros(3)}
        >>> state = sharpax.bsam(0.1, num_data=4).init(params)  # s = 1: variance 1/4
        >>> keys = jax.random.split(jax.random.PRNGKey(0), 20000)
        >>> samples = jax.vmap(lambda k: sharpax.bsam_sample(k, state, params, 4))(keys)
        >>> bool(jnp.allclose(samples["w"].std(axis=0), 0.5, atol=0.02))
        True
    """
    owner = "bsam_sample"
    check_positive(owner, num_data=num_data)
    state, params = without_nnx_variables((state, params))
    found = find_state(owner, state, BSAMState, " (the state of sharpax.bsam)")
    check_params_tree(owner, params, found.precision, "precision")
    w, treedef = jax.tree.flatten(scalars_as_arrays(params))
    s = treedef.flatten_up_to(found.precision)
    noise = _normal_like(key, w)
    out = [
        (x.astype(s[i].dtype) + jnp.sqrt(1.0 / (num_data * s[i])) * noise[i]).astype(x.dtype)
        if i in noise
        else x
        for i, x in enumerate(w)
    ]
    return jax.tree.unflatten(treedef, out)
