"""Bad input: every row of `tests/bad_input_table.py` gets a clear error; values on the edges of their
ranges are accepted; traced values and schedules are not checked at build time; gradient trees of the
wrong shape are named, for every optimizer of the table."""

from __future__ import annotations

import inspect
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sharpax
from tests.bad_input_table import BAD_INPUTS
from tests.optimizer_table import CASES


@pytest.mark.parametrize("row", BAD_INPUTS, ids=lambda row: row.description)
def test_bad_input_gets_a_clear_error(row):
    with pytest.raises(row.exception) as info:
        row.trigger()
    message = str(info.value)
    assert re.search(row.match, message), f"{row.description}: message was\n{message}"


def test_descriptions_are_unique():
    descriptions = [row.description for row in BAD_INPUTS]
    assert len(descriptions) == len(set(descriptions))


def test_boundary_values_are_accepted():
    sharpax.sgd(0.0, momentum=0.0, dampening=1.0)
    sharpax.adam(0.0, b1=0.0, b2=0.0, eps=0.0)
    sharpax.adadelta(rho=1.0)
    sharpax.rmsprop(decay=1.0)
    sharpax.radam(threshold=4.0)
    sharpax.lion(b1=0.0, b2=0.0)
    sharpax.adafactor(0.0, beta2_decay=0.0, eps=(0.0, 0.0), d=1.0)
    sharpax.muon(0.0, weight_decay=0.0, momentum=0.0, eps=0.0, ns_steps=99)
    sharpax.rprop(0.0, step_sizes=(0.0, 0.0))
    sharpax.asgd(0.0, lambd=0.0, alpha=0.0, t0=0.0)
    sharpax.sam(sharpax.sgd(0.1), p=1)
    sharpax.sam(sharpax.sgd(0.1), p=math.inf)
    sharpax.sam_value_and_grad(jnp.sum, p=1.0001, microbatches=1)
    sharpax.dynamic_loss_scale(1.0, period=1, factor=1.0, min_loss_scale=1.0)


def test_checks_skip_traced_values():
    """Inside `jit` the value is unknown at build time: no check, no host sync, no error."""

    @jax.jit
    def first_update(lr, b1):
        tx = sharpax.adam(lr, b1=b1)
        p = jnp.ones(2)
        return tx.update(p, tx.init(p), p)[0]

    np.testing.assert_allclose(first_update(-1.0, 0.9), [1.0, 1.0], rtol=1e-6)


def test_schedules_are_not_checked_at_build_time():
    tx = sharpax.sgd(lambda count: -0.1)  # a schedule's values are the user's business
    p = jnp.ones(1)
    np.testing.assert_allclose(tx.update(p, tx.init(p), p)[0], [0.1])


BAD_TREES = [
    pytest.param({"a": jnp.ones(3), "c": jnp.ones((2, 2))}, id="other_key"),
    pytest.param([jnp.ones(3), jnp.ones((2, 2))], id="list"),
    pytest.param({"a": jnp.ones(3)}, id="missing_leaf"),
    pytest.param({"a": jnp.ones(3), "b": {"x": jnp.ones((2, 2))}}, id="deeper"),
]
STRUCTURE_CASES = [pytest.param(case, id=case.id) for case in CASES]


@pytest.mark.parametrize("bad", BAD_TREES)
@pytest.mark.parametrize("case", STRUCTURE_CASES)
def test_gradient_tree_mismatch_names_both_structures(case, bad):
    params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    tx = case.build()
    state = tx.init(params)
    message = (
        f"{case.make.__name__}: the gradient tree does not match the params.\n"
        f"  gradients: {jax.tree.structure(bad)}\n  params: {jax.tree.structure(params)}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        tx.update(bad, state, params)
    with pytest.raises(ValueError, match=re.escape(message)):
        jax.jit(tx.update)(bad, state, params)


@pytest.mark.parametrize("case", STRUCTURE_CASES)
def test_gradient_tree_mismatch_without_params_names_the_state(case):
    """Without params (no weight decay) the first stateful block compares against its state."""
    params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    bad = [jnp.ones(3), jnp.ones((2, 2))]
    has_decay = "weight_decay" in inspect.signature(case.make).parameters
    tx = case.build(**({"weight_decay": 0.0} if has_decay else {}))
    state = tx.init(params)
    if not any(getattr(leaf, "shape", None) in ((3,), (2, 2)) for leaf in jax.tree.leaves(state)):
        pytest.skip("stateless (plain sgd): nothing to compare the gradients with")

    # The optimizer names itself, and shows the state it got next to the one these gradients need.
    def inside(tree):  # "{'a': *, 'b': *}" out of "PyTreeDef({'a': *, 'b': *})", regex-escaped
        return re.escape(str(jax.tree.structure(tree))[len("PyTreeDef(") : -1])

    pattern = (
        rf"{case.make.__name__}: the gradient tree does not match the optimizer state: .*\n"
        rf"  state: .*{inside(params)}.*\n"
        rf"  expected for these gradients: .*{inside(bad)}"
    )
    if case.make is sharpax.muon_with_adamw:
        # optax.partition's states mask each group's leaves out (MaskedNode): the two structures
        # are shown, but not as the plain params trees.
        pattern = (
            rf"{case.make.__name__}: the gradient tree does not match the optimizer state: .*\n"
            r"  state: .*'a'.*'b'.*\n  expected for these gradients: .*\[\*, "
        )
    with pytest.raises(ValueError, match=pattern):
        tx.update(bad, state)
