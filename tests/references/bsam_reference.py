"""Bayesian SAM as its authors' JAX code runs it, for the goldens `sam_bsam.npz` and the live check.

A transcription of `build_bsam_optimizer` in team-approx-bayes/bayesian-sam `optim.py` (and of
`normal_like_tree` in its `util.py`), https://github.com/team-approx-bayes/bayesian-sam: the same
operations in the same order, the same key splits, the batch split into `msharpness` chunks by the
same `vmap`; only the network (the MLP of `sam_references.make_problem`) and the plumbing of its
`TrainState` differ. The learning-rate factor of its `train.py` schedule is 1.

One step (per chunk, then averaged over chunks; `msharpness = 1` in the goldens):
    keys = split(key, msharpness + 1); noise from keys[i] (split into one key per leaf, +1)
    g     = grad(w + sqrt(1 / (N s)) * noise)           the noisy first pass
    g_sam = grad(w + rho * g / s)                        SAM's pass, around the mean w
    gs    = sqrt(s * g**2)
    gm    = beta1 gm + (1 - beta1) (g_sam + wdecay w)
    w     = w - lr gm / s                                (the s before this step's update)
    s     = beta2 s + (1 - beta2) (gs + damping + wdecay);  key = keys[-1]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tests.references import sam_references as ref

# The goldens' settings: a small N so that the noise (std 1/8 at s = 1) matters, b2 = 0.9 so that s
# moves within 30 steps.
BSAM = {
    "learningrate": 0.2,
    "beta1": 0.9,
    "beta2": 0.9,
    "wdecay": 1e-2,
    "rho": 0.05,
    "Ndata": 64,
    "s_init": 1.0,
    "damping": 0.1,
    "seed": 3,
}


def normal_like_tree(a, key):
    """`util.normal_like_tree`: one key per leaf from split(key, leaves + 1), leaf i taking key i + 1."""
    treedef = jax.tree_util.tree_structure(a)
    num_vars = len(jax.tree_util.tree_leaves(a))
    all_keys = jax.random.split(key, num=(num_vars + 1))
    noise = jax.tree.map(
        lambda p, k: jax.random.normal(k, shape=p.shape),
        a,
        jax.tree_util.tree_unflatten(treedef, all_keys[1:]),
    )
    return noise, all_keys[0]


def mlp_loss(params, x, y):
    out = jnp.tanh(x @ params["w1"] + params["b1"][None]) @ params["w2"] + params["b2"][None]
    return jnp.mean((out - y) ** 2)


def build_bsam(
    lossgrad, learningrate, beta1, beta2, wdecay, rho, msharpness, Ndata, s_init, damping
):
    """`(init, step)` of the reference's `build_bsam_optimizer`, state as (w, gm, s, key)."""

    def init(w, key):
        return (
            w,
            jax.tree.map(lambda p: jnp.zeros(shape=p.shape), w),
            jax.tree.map(lambda p: s_init * jnp.ones(shape=p.shape), w),
            key,
        )

    def bsam_gradient(w, s, x, y, key):
        noise, _ = normal_like_tree(w, key)
        noisy = jax.tree.map(lambda n, mu, s: mu + jnp.sqrt(1.0 / (Ndata * s)) * n, noise, w, s)
        grad = lossgrad(noisy, x, y)
        perturbed = jax.tree.map(lambda p, g, s: p + rho * g / s, w, grad, s)
        perturbed_grad = lossgrad(perturbed, x, y)
        gs = jax.tree.map(lambda g, s: jnp.sqrt(s * (g**2.0)), grad, s)
        return gs, perturbed_grad

    def step(state, x, y, lrfactor=1.0):
        w, gm, s, key = state
        keys = jax.random.split(key, msharpness + 1)
        xs = x.reshape(msharpness, -1, *x.shape[1:])
        ys = y.reshape(msharpness, -1, *y.shape[1:])
        gs, grad = jax.vmap(bsam_gradient, in_axes=(None, None, 0, 0, 0))(
            w, s, xs, ys, keys[0:msharpness]
        )
        gs = jax.tree.map(lambda g: jnp.mean(g, axis=0), gs)
        grad = jax.tree.map(lambda g: jnp.mean(g, axis=0), grad)
        gm = jax.tree.map(lambda gm, g, w: beta1 * gm + (1 - beta1) * (g + wdecay * w), gm, grad, w)
        w = jax.tree.map(lambda p, gm, s: p - learningrate * lrfactor * gm / s, w, gm, s)
        s = jax.tree.map(lambda s, gs: beta2 * s + (1 - beta2) * (gs + damping + wdecay), s, gs)
        return w, gm, s, keys[-1]

    return init, step


def bsam_trajectory(steps: int = ref.STEPS, msharpness: int = 1, **overrides):
    """Params (steps + 1, n) and precisions s (steps + 1, n), flattened in `ref.SHAPES` order, float32."""
    settings = {**BSAM, **overrides}
    seed = settings.pop("seed")
    x, y, init = ref.make_problem()
    x, y = jnp.asarray(x), jnp.asarray(y)
    init_fn, step = build_bsam(jax.grad(mlp_loss), msharpness=msharpness, **settings)
    state = init_fn(jax.tree.map(jnp.asarray, init), jax.random.PRNGKey(seed))
    step = jax.jit(step)
    flat = lambda tree: np.concatenate([np.asarray(tree[k]).ravel() for k in ref.SHAPES])
    params, precisions = [flat(state[0])], [flat(state[2])]
    for _ in range(steps):
        state = step(state, x, y)
        params.append(flat(state[0]))
        precisions.append(flat(state[2]))
    return np.stack(params), np.stack(precisions)
