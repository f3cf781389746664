"""The wrappers compose: Lookahead over SAM forwards `grad_fn`, inside optax chains, as the math says."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax


def _loss(params):
    return jnp.sum(jnp.sin(params["w"]) * params["w"] ** 2) + jnp.sum((params["b"] - 1.0) ** 2)


def _params():
    return {"w": jnp.linspace(-1.0, 2.0, 6).reshape(2, 3), "b": jnp.array([0.5, -0.25])}


def _reference_sam_gradient(params, rho):
    # SAM (Foret et al. 2021), p = 2: gradient at w + rho * g / (||g|| + 1e-12), norm global over leaves.
    g = jax.grad(_loss)(params)
    norm = jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))
    perturbed = jax.tree.map(lambda w, gi: w + rho * gi / (norm + 1e-12), params, g)
    return jax.grad(_loss)(perturbed)


class LookaheadOverSAMTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_lookahead_over_sam_over_adam_matches_hand_composition(self):
        _lookahead_over_sam_over_adam(self.variant)


def _lookahead_over_sam_over_adam(variant):
    rho, k, alpha, lr = 0.1, 3, 0.5, 0.05
    tx = sharpax.lookahead(sharpax.sam(sharpax.adam(lr), rho=rho), sync_period=k, alpha=alpha)
    grad_fn = jax.grad(_loss)

    def step(params, state):
        updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    step = variant(step)
    params = _params()
    state = tx.init(params)
    # Reference: the SAM gradient fed to plain adam on the fast weights; every k steps
    # slow <- slow + alpha (fast - slow) and fast <- slow (Zhang et al. 2019, Algorithm 1).
    adam = sharpax.adam(lr)
    adam_state = adam.init(params)
    fast = slow = params
    for t in range(1, 3 * k + 2):
        params, state = step(params, state)
        updates, adam_state = adam.update(_reference_sam_gradient(fast, rho), adam_state, fast)
        fast = optax.apply_updates(fast, updates)
        if t % k == 0:
            slow = jax.tree.map(lambda s, f: s + alpha * (f - s), slow, fast)
            fast = slow
        for key in params:
            np.testing.assert_allclose(params[key], fast[key], rtol=1e-5, atol=1e-6)
    for key in params:
        np.testing.assert_allclose(
            sharpax.lookahead_params(state, params)[key], slow[key], rtol=1e-5, atol=1e-6
        )


def test_clipping_the_sam_gradient_goes_inside_the_base_optimizer():
    # sam(chain(clip, sgd)) clips the second-pass (SAM) gradient. A clip placed *before* sam in a chain
    # only rescales the first-pass gradient, whose direction alone sets e(w): it changes nothing.
    grad_fn = jax.grad(_loss)
    params = _params()
    inside = sharpax.sam(optax.chain(optax.clip_by_global_norm(1e-3), sharpax.sgd(1.0)), rho=0.05)
    updates, _ = inside.update(grad_fn(params), inside.init(params), params, grad_fn=grad_fn)
    np.testing.assert_allclose(optax.tree.norm(updates), 1e-3, rtol=1e-5)

    before = optax.chain(optax.clip_by_global_norm(1e-3), sharpax.sam(sharpax.sgd(1.0), rho=0.05))
    plain = sharpax.sam(sharpax.sgd(1.0), rho=0.05)
    u_before, _ = before.update(grad_fn(params), before.init(params), params, grad_fn=grad_fn)
    u_plain, _ = plain.update(grad_fn(params), plain.init(params), params, grad_fn=grad_fn)
    expected = jax.tree.map(lambda g: -g, _reference_sam_gradient(params, 0.05))
    for key in params:
        np.testing.assert_allclose(u_before[key], u_plain[key], rtol=1e-6)
        np.testing.assert_allclose(u_plain[key], expected[key], rtol=1e-5, atol=1e-7)


def test_integer_params_with_float0_gradients_train_through_apply_updates():
    # jax.grad(allow_int=True) gives an integer leaf a float0 gradient. The optimizer passes it through
    # (so optax.apply_if_finite's two branches agree), and sharpax.apply_updates leaves the integer
    # alone where optax.apply_updates raises on float0 arithmetic.
    params = {"w": jnp.array([1.0, -2.0]), "step": jnp.array(7, jnp.int32)}
    grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2), allow_int=True)(params)
    assert grads["step"].dtype == jax.dtypes.float0
    tx = sharpax.sgd(0.1, momentum=0.9)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert updates["step"].dtype == jax.dtypes.float0
    with pytest.raises(TypeError, match="float0"):
        optax.apply_updates(params, updates)
    new = jax.jit(sharpax.apply_updates)(params, updates)
    assert new["step"].dtype == jnp.int32 and int(new["step"]) == 7
    np.testing.assert_allclose(new["w"], [1.0 - 0.1 * 2.0, -2.0 + 0.1 * 4.0], rtol=1e-6)
