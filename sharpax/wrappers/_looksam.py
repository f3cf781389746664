"""LookSAM: a SAM step every k steps, reusing the SAM gradient's orthogonal direction in between."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import check_tree_match, is_float_leaf, zeros_like_tree
from sharpax._types import Array, Mask, ScalarOrSchedule, Updates
from sharpax._validation import check_non_negative, check_positive_int, check_transformation
from sharpax.wrappers._sam import require_grad_fn, sam_gradient
from sharpax.wrappers._sam_directions import looksam_direction, looksam_vertical_direction
from sharpax.wrappers._sam_docs import fill_doc
from sharpax.wrappers._sam_perturbation import Perturbation


class LookSAMState(NamedTuple):
    """State of `looksam`: step count, the unit direction g_v / ||g_v|| of the last SAM step, base state."""

    count: Array
    vertical_direction: Updates
    inner_state: optax.OptState


@fill_doc
def looksam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    k: int = 5,
    alpha: float = 0.7,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""LookSAM (Liu et al. 2022): full SAM every k steps, one pass plus a stored direction in between.

    .. math::
        t \bmod k = 0: \quad g_s = \text{grad\_fn}(w + e(w)), \quad
            g_v = g_s - \frac{\langle g_s, g \rangle}{\lVert g \rVert^2} g, \quad d_t = g_s \\
        \text{otherwise}: \quad d_t = g + \alpha \frac{\lVert g \rVert}{\lVert g_v \rVert} g_v

    and u_t = base.update(d_t, s, w). The state keeps g_v / ||g_v|| (zero when g_v is zero, so the step
    falls back to g rather than NaN). The SAM steps are counts 0, k, 2k, ... (the paper's t mod k = 0
    with t from 1 would leave g_v undefined for the first k - 1 steps). The branch is a `lax.cond`:
    under `jit` the other steps run one forward-backward pass. Norms are global over the tree (the
    paper's LookSAM; pytorch_optimizer's `LookSAM` normalises per tensor).

    {transform_notes}

    Args:
        base_optimizer: the optimizer applying the LookSAM gradient.
        {perturbation_args}
        k: the period of the SAM steps, an integer >= 1 (`k = 1` is `sam`).
        alpha: weight of the reused direction, >= 0 (the paper uses 0.7).

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `LookSAMState`.

    References:
        Liu, Mai, Chen, Hsieh & You, "Towards Efficient and Scalable Sharpness-Aware Minimization",
        CVPR 2022, Algorithm 1.

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> w = jnp.array([1.0, 1.0])
        >>> tx = sharpax.looksam(sharpax.sgd(1.0), rho=0.1, k=2, alpha=0.5)
        >>> state = tx.init(w)
        >>> sam_g = lambda p: jnp.array([1.0, 1.0])  # a stand-in second pass
        >>> u, state = tx.update(jnp.array([1.0, 0.0]), state, w, grad_fn=sam_g)
        >>> state.vertical_direction  # g_s minus its part along g = (1, 0)
        Array([0., 1.], dtype=float32)
        >>> u, state = tx.update(jnp.array([2.0, 0.0]), state, w, grad_fn=sam_g)
        >>> u  # -(g + 0.5 * ||g|| * (0, 1))
        Array([-2., -1.], dtype=float32)
    """
    owner = "looksam"
    check_positive_int(owner, "k", k)
    check_non_negative(owner, alpha=alpha)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    check_transformation(owner, "base_optimizer", base_optimizer)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        return LookSAMState(
            count=jnp.zeros([], jnp.int32),
            vertical_direction=zeros_like_tree(params),
            inner_state=base.init(params),
        )

    def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
        grad_fn = require_grad_fn(owner, grad_fn, params)
        check_tree_match(owner, updates, params, "params")
        keep_dtypes = lambda new: jax.tree.map(
            lambda n, old: n.astype(old.dtype) if is_float_leaf(old) else old,
            new,
            state.vertical_direction,
        )

        def sam_step(g):
            sam_grads = sam_gradient(owner, perturbation, g, params, grad_fn, state.count)
            return sam_grads, keep_dtypes(looksam_vertical_direction(g, sam_grads))

        def reuse_step(g):
            return looksam_direction(g, state.vertical_direction, alpha), state.vertical_direction

        grads, vertical = lax.cond(state.count % k == 0, sam_step, reuse_step, updates)
        new_updates, inner_state = base.update(grads, state.inner_state, params, **extra_args)
        return new_updates, LookSAMState(
            count=optax.safe_increment(state.count),
            vertical_direction=vertical,
            inner_state=inner_state,
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
