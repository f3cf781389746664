"""What `test_checkpoint.py` saves and a fresh process resumes: every optimizer of the shared table,
the wrappers (SAM family, Lookahead: slow weights and counters), run op by op, and one jitted run
with params and state sharded over a 2x4 mesh.
"""

from __future__ import annotations

import jax
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tests import reliability_common as rc
from tests.optimizer_table import CASES, CASES_BY_ID, WRAPPERS

STEPS_BEFORE = 2  # steps trained before the checkpoint
STEPS_AFTER = 2  # steps trained after it (equal, so the jitted run compiles one program)
SHARDED = "adamw@2x4"  # the sharded, jitted entry


# One entry per kind of state, for the default run; `-m slow` checkpoints every entry.
FAST = (
    "sgd_momentum_dampening_wd",
    "adam_l2_amsgrad",
    "adagrad",
    "rmsprop_centered_momentum_wd",
    "nadamw",
    "lion",
    "gsam(adamw)",
    "sam(adam, loss_scale)",
    "lookahead(sam(radam))",
    SHARDED,
)


def optimizers(entries: tuple[str, ...] | None = None) -> dict[str, optax.GradientTransformation]:
    """The checkpoint's entries by name (default: all): the table's cases, the wrappers, and the
    sharded run's optimizer."""
    makers = {case.id: case.build for case in CASES}
    makers.update(WRAPPERS)
    makers[SHARDED] = lambda: CASES_BY_ID["adamw_amsgrad"].build(weight_decay=0.1)
    return {name: make() for name, make in makers.items() if entries is None or name in entries}


def _grads(first: bool):
    grads = rc.make_grads(steps=STEPS_BEFORE + STEPS_AFTER)
    part = slice(0, STEPS_BEFORE) if first else slice(STEPS_BEFORE, None)
    return jax.tree.map(lambda g: g[part], grads)


def _grad_specs():
    return jax.tree.map(lambda s: P(None, *s), rc.PARAM_SPECS)


_jitted_apply_grads = jax.jit(rc.apply_grads, static_argnums=0)


def _batches(first: bool):
    xs, ys = rc.make_batches(steps=STEPS_BEFORE + STEPS_AFTER)
    part = slice(0, STEPS_BEFORE) if first else slice(STEPS_BEFORE, None)
    return xs[part], ys[part]


def _train(entry: str, tx, params, state, grads, first: bool):
    if entry in WRAPPERS:  # the wrappers need grad_fn: they train on the loss
        return rc.train_with_grad_fn_eager(tx, params, state, *_batches(first))
    if entry == SHARDED:
        grads = rc.put(grads, rc.mesh_2x4(), _grad_specs())
        return _jitted_apply_grads(tx, params, state, grads)
    return rc.apply_grads_eager(tx, params, state, grads)


def start_training(entries: tuple[str, ...] | None = None) -> dict:
    """`{entry: {"params", "opt_state"}}` after STEPS_BEFORE steps from `make_params()`."""
    out = {}
    for entry, tx in optimizers(entries).items():
        params = rc.make_params()
        if entry == SHARDED:
            params = rc.put(params, rc.mesh_2x4(), rc.PARAM_SPECS)
        params, state = _train(entry, tx, params, tx.init(params), _grads(first=True), True)
        out[entry] = {"params": params, "opt_state": state}
    return out


def continue_training(checkpoint: dict) -> dict:
    """STEPS_AFTER more steps for every entry of `checkpoint`."""
    out = {}
    for entry, tx in optimizers(tuple(checkpoint)).items():
        saved = checkpoint[entry]
        params, state = _train(
            entry, tx, saved["params"], saved["opt_state"], _grads(first=False), False
        )
        out[entry] = {"params": params, "opt_state": state}
    return out


def _state_shardings(tx, abstract_state, param_shardings):
    mesh = rc.mesh_2x4()
    return optax.tree_map_params(
        tx,
        lambda _, sharding: sharding,
        abstract_state,
        param_shardings,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )


def abstract_checkpoint(entries: tuple[str, ...] | None = None) -> dict:
    """The restore target: shapes, dtypes and (for the sharded entry) shardings, no arrays."""
    out = {}
    abstract_params = jax.eval_shape(rc.make_params)
    for entry, tx in optimizers(entries).items():
        abstract_state = jax.eval_shape(tx.init, abstract_params)
        if entry == SHARDED:
            param_shardings = jax.tree.map(
                lambda s: NamedSharding(rc.mesh_2x4(), s), rc.PARAM_SPECS
            )
            state_shardings = _state_shardings(tx, abstract_state, param_shardings)
            attach = lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s)
            out[entry] = {
                "params": jax.tree.map(attach, abstract_params, param_shardings),
                "opt_state": jax.tree.map(attach, abstract_state, state_shardings),
            }
        else:
            out[entry] = {"params": abstract_params, "opt_state": abstract_state}
    return out


def check_restored_shardings(checkpoint: dict) -> None:
    """The sharded entry comes back sharded as it was saved: each state buffer as its param."""
    mesh = rc.mesh_2x4()
    if SHARDED not in checkpoint:
        return
    saved = checkpoint[SHARDED]
    for leaf, spec in zip(
        jax.tree.leaves(saved["params"]), jax.tree.leaves(rc.PARAM_SPECS), strict=True
    ):
        assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim), leaf.sharding

    def check(buffer, param):
        assert buffer.sharding.is_equivalent_to(param.sharding, buffer.ndim), buffer.sharding

    optax.tree_map_params(
        optimizers((SHARDED,))[SHARDED], check, saved["opt_state"], saved["params"]
    )


def leaves(tree) -> list:
    """`(path, leaf)` pairs in a fixed order: what the two processes compare."""
    return jax.tree_util.tree_flatten_with_path(tree)[0]
