"""Periodic SAM: a SAM step every k steps and a one-pass step otherwise, chosen with `lax.cond`."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import optax
from jax import lax

from sharpax._tree import check_tree_match
from sharpax._types import Array, Mask, ScalarOrSchedule
from sharpax._validation import check_positive_int
from sharpax.wrappers._sam import require_grad_fn, sam_gradient
from sharpax.wrappers._sam_docs import fill_doc
from sharpax.wrappers._sam_perturbation import Perturbation


class PeriodicSAMState(NamedTuple):
    """State of `periodic_sam`: the step count (which steps are SAM steps) and the base state."""

    count: Array
    inner_state: optax.OptState


@fill_doc
def periodic_sam(
    base_optimizer: optax.GradientTransformation,
    rho: ScalarOrSchedule = 0.05,
    k: int = 5,
    *,
    adaptive: bool = False,
    eta: float = 0.0,
    p: float = 2,
    mask: Mask = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SAM on every k-th step (counts 0, k, 2k, ...) and the plain gradient on the others.

    .. math::
        d_t = \begin{cases} \text{grad\_fn}(w + e(w)) & t \bmod k = 0 \\ g_t & \text{otherwise}
              \end{cases}, \qquad u_t = \text{base.update}(d_t, s, w)

    The branch is a `lax.cond`, so under `jit` the plain steps run one forward-backward pass
    (`grad_fn` is not called); under `vmap` a cond becomes a select and both branches run. A rho
    schedule is evaluated at the step count of every step. `k = 1` is `sam`. No optax or
    torch.optim namesake.

    {transform_notes}

    Args:
        base_optimizer: the optimizer applying the chosen gradient.
        {perturbation_args}
        k: the period, an integer >= 1.

    Returns:
        An `optax.GradientTransformationExtraArgs` with state `PeriodicSAMState`.

    References:
        Foret et al., "Sharpness-Aware Minimization for Efficiently Improving Generalization", ICLR 2021;
        Liu et al., "Towards Efficient and Scalable Sharpness-Aware Minimization", CVPR 2022 (the
        "SAM every k steps" baseline of its Table 1).

    Example:
        >>> import jax, jax.numpy as jnp, sharpax
        >>> loss = lambda w: jnp.sum(w**2)
        >>> w = jnp.array([3.0, 4.0])
        >>> tx = sharpax.periodic_sam(sharpax.sgd(0.5), rho=5.0, k=2)
        >>> state = tx.init(w)
        >>> u, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
        >>> u  # step 0: SAM, -0.5 * 2 (w + e), e = 5 w / ||w|| = (3, 4)
        Array([-6., -8.], dtype=float32)
        >>> u, state = tx.update(jax.grad(loss)(w), state, w, grad_fn=jax.grad(loss))
        >>> u  # step 1: plain, -0.5 * 2 w
        Array([-3., -4.], dtype=float32)
    """
    owner = "periodic_sam"
    check_positive_int(owner, "k", k)
    perturbation = Perturbation(owner, rho, adaptive, eta, p, mask)
    base = optax.with_extra_args_support(base_optimizer)

    def init_fn(params):
        return PeriodicSAMState(count=jnp.zeros([], jnp.int32), inner_state=base.init(params))

    def update_fn(updates, state, params=None, *, grad_fn=None, **extra_args):
        grad_fn = require_grad_fn(owner, grad_fn, params)
        check_tree_match(owner, updates, params, "params")
        grads = lax.cond(
            state.count % k == 0,
            lambda g: sam_gradient(owner, perturbation, g, params, grad_fn, state.count),
            lambda g: g,
            updates,
        )
        new_updates, inner_state = base.update(grads, state.inner_state, params, **extra_args)
        return new_updates, PeriodicSAMState(
            count=optax.safe_increment(state.count), inner_state=inner_state
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
