"""Bad input: invalid hyperparameters, `optax.inject_hyperparams`, and gradient trees of the wrong shape."""

from __future__ import annotations

import inspect
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from tests.optimizer_table import CASES, OPTION_CASES

NON_NEGATIVE = "[0.0, inf)"
BETA = "[0.0, 1.0)"
UNIT = "[0.0, 1.0]"

# (factory, arguments needed besides the bad one, argument, bad value, range in the message)
INVALID = [
    *[
        (sharpax.sgd, {"learning_rate": 0.1}, name, value, rng)
        for name, value, rng in [
            ("momentum", -0.1, NON_NEGATIVE),
            ("dampening", -0.1, UNIT),
            ("dampening", 1.5, UNIT),
            ("weight_decay", -1e-4, NON_NEGATIVE),
        ]
    ],
    (sharpax.sgd, {}, "learning_rate", -0.1, NON_NEGATIVE),
    *[
        (factory, {}, name, value, rng)
        for factory in (sharpax.adam, sharpax.adamw, sharpax.nadam, sharpax.radam, sharpax.adamax)
        for name, value, rng in [
            ("learning_rate", -1e-3, NON_NEGATIVE),
            ("learning_rate", math.nan, NON_NEGATIVE),
            ("b1", -0.1, BETA),
            ("b1", 1.0, BETA),
            ("b2", 1.0, BETA),
            ("b2", 1.5, BETA),
            ("eps", -1e-8, NON_NEGATIVE),
            ("weight_decay", -0.01, NON_NEGATIVE),
        ]
    ],
    (sharpax.nadam, {}, "momentum_decay", -4e-3, NON_NEGATIVE),
    (sharpax.radam, {}, "threshold", 3.0, "[4.0, inf)"),
    *[
        (sharpax.adagrad, {}, name, value, NON_NEGATIVE)
        for name, value in [
            ("learning_rate", -0.1),
            ("lr_decay", -0.1),
            ("weight_decay", -0.1),
            ("initial_accumulator_value", -0.1),
            ("eps", -1e-10),
        ]
    ],
    *[
        (sharpax.adadelta, {}, name, value, rng)
        for name, value, rng in [
            ("learning_rate", -1.0, NON_NEGATIVE),
            ("rho", -0.1, UNIT),
            ("rho", 1.1, UNIT),
            ("eps", -1e-6, NON_NEGATIVE),
            ("weight_decay", -0.1, NON_NEGATIVE),
        ]
    ],
    *[
        (sharpax.rmsprop, {}, name, value, rng)
        for name, value, rng in [
            ("learning_rate", -0.01, NON_NEGATIVE),
            ("decay", -0.1, UNIT),
            ("decay", 1.1, UNIT),
            ("eps", -1e-8, NON_NEGATIVE),
            ("weight_decay", -0.1, NON_NEGATIVE),
            ("momentum", -0.9, NON_NEGATIVE),
        ]
    ],
    *[
        (sharpax.adafactor, {}, name, value, rng)
        for name, value, rng in [
            ("learning_rate", -1e-2, NON_NEGATIVE),
            ("beta2_decay", 0.5, "(-inf, 0.0]"),
            ("d", 0.5, "[1.0, inf)"),
            ("weight_decay", -0.1, NON_NEGATIVE),
        ]
    ],
    *[
        (factory, {}, name, value, rng)
        for factory in (sharpax.muon, sharpax.muon_with_adamw)
        for name, value, rng in [
            ("learning_rate", -1e-3, NON_NEGATIVE),
            ("weight_decay", -0.1, NON_NEGATIVE),
            ("momentum", 1.0, BETA),
            ("eps", -1e-7, NON_NEGATIVE),
        ]
    ],
    (sharpax.rprop, {}, "learning_rate", -1e-2, NON_NEGATIVE),
    *[
        (sharpax.asgd, {}, name, value, NON_NEGATIVE)
        for name, value in [
            ("learning_rate", -1e-2),
            ("lambd", -1e-4),
            ("alpha", -0.75),
            ("t0", -1.0),
            ("weight_decay", -0.1),
        ]
    ],
    *[
        (sharpax.friendly_sam, {"base_optimizer": sharpax.sgd(0.1)}, name, value, rng)
        for name, value, rng in [
            ("rho", -0.05, NON_NEGATIVE),
            ("sigma", -1.0, NON_NEGATIVE),
            ("lmbda", -0.1, BETA),
            ("lmbda", 1.0, BETA),
            ("eta", -0.01, NON_NEGATIVE),
        ]
    ],
    *[
        (sharpax.wsam, {"base_optimizer": sharpax.sgd(0.1), "learning_rate": 0.1}, name, value, rng)
        for name, value, rng in [
            ("rho", -0.05, NON_NEGATIVE),
            ("gamma", -0.1, BETA),
            ("gamma", 1.0, BETA),
            ("eta", -0.01, NON_NEGATIVE),
        ]
    ],
    (sharpax.wsam, {"base_optimizer": sharpax.sgd(0.1)}, "learning_rate", -0.1, NON_NEGATIVE),
    (sharpax.wsam_value_and_grad, {"loss_fn": jnp.sum}, "gamma", 1.0, BETA),
    (sharpax.wsam_value_and_grad, {"loss_fn": jnp.sum}, "rho", -0.05, NON_NEGATIVE),
    *[
        (sharpax.bsam, {"learning_rate": 0.1, "num_data": 100}, name, value, rng)
        for name, value, rng in [
            ("rho", -0.01, NON_NEGATIVE),
            ("b1", 1.0, BETA),
            ("b2", -0.1, BETA),
            ("weight_decay", -1e-4, NON_NEGATIVE),
            ("damping", -0.1, NON_NEGATIVE),
            ("s_init", 0.0, "(0.0, inf)"),
        ]
    ],
    (sharpax.bsam, {"num_data": 100}, "learning_rate", -0.1, NON_NEGATIVE),
    (sharpax.bsam, {"learning_rate": 0.1}, "num_data", -5, "(0.0, inf)"),
    *[
        (factory, base, "p", value, "[1, inf] (math.inf included)")
        for factory, base in [
            (sharpax.sam, {"base_optimizer": sharpax.sgd(0.1)}),
            (sharpax.gsam, {"base_optimizer": sharpax.sgd(0.1)}),
            (sharpax.looksam, {"base_optimizer": sharpax.sgd(0.1)}),
            (sharpax.periodic_sam, {"base_optimizer": sharpax.sgd(0.1)}),
            (sharpax.ae_sam, {"base_optimizer": sharpax.sgd(0.1), "total_steps": 10}),
            (sharpax.sam_value_and_grad, {"loss_fn": jnp.sum}),
            (sharpax.gsam_value_and_grad, {"loss_fn": jnp.sum}),
        ]
        for value in (0.5, -2.0, math.nan)
    ],
    *[
        (sharpax.dynamic_loss_scale, {}, name, value, rng)
        for name, value, rng in [
            ("initial_scale", 0.0, "(0.0, inf)"),
            ("initial_scale", math.inf, "(0.0, inf)"),
            ("factor", 0.5, "[1.0, inf)"),
            ("min_loss_scale", -1.0, "(0.0, inf)"),
        ]
    ],
    *[
        (sharpax.ae_sam, {"base_optimizer": sharpax.sgd(0.1), "total_steps": 10}, name, value, rng)
        for name, value, rng in [
            ("rho", -0.05, NON_NEGATIVE),
            ("delta", 1.0, BETA),
            ("delta", -0.1, BETA),
            ("lambda1", math.nan, "(-inf, inf)"),
            ("lambda2", math.inf, "(-inf, inf)"),
            ("eta", -1.0, NON_NEGATIVE),
        ]
    ],
    *[
        (sharpax.momentum_sam, {"base_optimizer": sharpax.sgd(0.1, momentum=0.9)}, "rho", v, rng)
        for v, rng in [(-0.3, NON_NEGATIVE), (math.nan, NON_NEGATIVE)]
    ],
    *[
        (sharpax.lion, {}, name, value, rng)
        for name, value, rng in [
            ("learning_rate", -1e-4, NON_NEGATIVE),
            ("b1", 1.0, BETA),
            ("b2", -0.5, BETA),
            ("weight_decay", -0.1, NON_NEGATIVE),
        ]
    ],
    *[
        (sharpax.rwp_value_and_grad, {"loss_fn": jnp.sum}, name, value, rng)
        for name, value, rng in [
            ("gamma", -0.01, NON_NEGATIVE),
            ("gamma", math.inf, NON_NEGATIVE),
            ("alpha", -0.1, UNIT),
            ("alpha", 1.5, UNIT),
        ]
    ],
    *[
        (sharpax.esam_value_and_grad, {"per_example_loss_fn": jnp.square}, name, value, rng)
        for name, value, rng in [
            ("rho", -0.05, NON_NEGATIVE),
            ("beta", 0.0, "(0.0, 1.0]"),
            ("beta", 1.5, "(0.0, 1.0]"),
            ("gamma", 0.0, "(0.0, 1.0]"),
            ("gamma", 1.01, "(0.0, 1.0]"),
            ("eta", -0.1, NON_NEGATIVE),
        ]
    ],
]


@pytest.mark.parametrize(
    ("factory", "base", "name", "value", "allowed"),
    [
        pytest.param(*row, id=f"{row[0].__name__}-{row[2]}={row[3]}")
        for row in INVALID  # type: ignore[misc]
    ],
)
def test_invalid_hyperparameter_raises_naming_argument_and_range(
    factory, base, name, value, allowed
):
    expected = f"{factory.__name__}: {name} must be in {allowed}, got {value!r}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        factory(**base, **{name: value})


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(momentum=0.0, nesterov=True),
        dict(nesterov=True),
        dict(momentum=0.9, dampening=0.1, nesterov=True),
    ],
)
def test_sgd_nesterov_needs_momentum_and_no_dampening(kwargs):
    with pytest.raises(
        ValueError, match=r"sgd: nesterov=True needs momentum > 0 and dampening == 0"
    ):
        sharpax.sgd(0.1, **kwargs)


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


# Under jit the hyperparameters are tracers, which is where a chain built from their values breaks;
# the `*_defaults` cases inject every default (zeros included). Eagerly they are concrete, so a few
# cases suffice there.
DEFAULTS = [case for case in OPTION_CASES if case.id.endswith("_defaults")]
INJECT_CASES = [
    *(pytest.param(case, True, id=f"{case.id}-jit") for case in CASES + DEFAULTS),
    *(pytest.param(case, False, id=f"{case.id}-nojit") for case in CASES[::4]),
]


@pytest.mark.parametrize(("case", "jit"), INJECT_CASES)
def test_inject_hyperparams(case, jit):
    """Every float hyperparameter becomes state (defaults included); the updates equal the plain ones."""
    params = {"a": jnp.linspace(-1.0, 1.0, 3), "b": jnp.ones((2, 2))}
    grads = [jax.tree.map(lambda p, k=k: jnp.cos(p * (k + 1)), params) for k in range(2)]
    injected = optax.inject_hyperparams(case.make)(**case.kwargs)
    plain = case.build()

    def both(g, states):  # one compilation for the two optimizers
        (u_inj, s_inj), (u_plain, s_plain) = (
            injected.update(g, states[0], params),
            plain.update(g, states[1], params),
        )
        return (u_inj, u_plain), (s_inj, s_plain)

    both = jax.jit(both) if jit else both
    states = (injected.init(params), plain.init(params))
    for g in grads:  # the first step is special (momentum seeds, bias corrections), so two
        (u_inj, u_plain), states = both(g, states)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7), u_inj, u_plain
        )
    assert "learning_rate" in states[0].hyperparams


def test_inject_hyperparams_changes_the_learning_rate_in_the_state():
    tx = optax.inject_hyperparams(sharpax.adam)(learning_rate=1e-3)
    p = jnp.ones(2)
    state = tx.init(p)
    state.hyperparams["learning_rate"] = jnp.asarray(0.5)
    u, _ = jax.jit(tx.update)(p, state, p)
    np.testing.assert_allclose(u, [-0.5, -0.5], rtol=1e-6)


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
