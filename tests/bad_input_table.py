"""The one table of bad inputs tried against sharpax, and the error each gets (run by test_bad_inputs.py).

Each row: a description, a callable that triggers the mistake, the exception type, and a regex the
message must match: it must name what is wrong (the argument, the leaf, the shape) in the user's terms.
Build-time rows fail when the optimizer is constructed; the others at the first `update` trace.
`OUT_OF_RANGE` lists the hyperparameters outside their documented range compactly (each becomes a row
that checks the exact message `<owner>: <name> must be in <range>, got <value>`); `BAD_INPUTS` holds
them and every other mistake. One row per (factory, mistake): a value on the other side of a range, or
on its open edge, is another mistake.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax


@dataclasses.dataclass(frozen=True)
class BadInput:
    description: str
    trigger: Callable[[], Any]
    exception: type[BaseException]
    match: str


NON_NEGATIVE = "[0.0, inf)"
BETA = "[0.0, 1.0)"
UNIT = "[0.0, 1.0]"

# (factory, arguments needed besides the bad one, argument, bad value, range in the message)
OUT_OF_RANGE = [
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
    *[
        (sharpax.lion, {}, name, value, rng)
        for name, value, rng in [
            ("learning_rate", -1e-4, NON_NEGATIVE),
            ("b1", 1.0, BETA),
            ("b2", -0.5, BETA),
            ("weight_decay", -0.1, NON_NEGATIVE),
        ]
    ],
    # sgd's learning rate not finite; the other edge of nadam's b2 and lion's b2; plain SAM's rho;
    # BSAM's num_data on the open edge; Lookahead's alpha.
    (sharpax.sgd, {}, "learning_rate", math.nan, NON_NEGATIVE),
    (sharpax.sgd, {}, "learning_rate", math.inf, NON_NEGATIVE),
    (sharpax.nadam, {}, "b2", -0.1, BETA),
    (sharpax.lion, {}, "b2", 1.0, BETA),
    (sharpax.sam, {"base_optimizer": sharpax.adam()}, "rho", -0.1, NON_NEGATIVE),
    (sharpax.bsam, {"learning_rate": 0.1}, "num_data", 0, "(0.0, inf)"),
    (sharpax.lookahead, {"inner": sharpax.adam()}, "alpha", 1.5, UNIT),
    (sharpax.lookahead, {"inner": sharpax.sgd(0.1)}, "alpha", -0.1, UNIT),
]


def _out_of_range(factory, base, name, value, allowed) -> BadInput:
    owner = factory.__name__
    return BadInput(
        f"{owner}: {name}={value!r}",
        lambda: factory(**base, **{name: value}),
        ValueError,
        re.escape(f"{owner}: {name} must be in {allowed}, got {value!r}"),
    )


PARAMS = {"w": jnp.ones(3), "b": jnp.zeros(2)}
GRADS = {"w": jnp.ones(3), "b": jnp.ones(2)}


def _step(tx, grads=GRADS, params=PARAMS, state=None):
    """One update, traced under jit as in a training step."""
    state = tx.init(params) if state is None else state
    return jax.jit(tx.update)(grads, state, params)


def _sam_step(grad_fn):
    """One jitted SAM update with `grad_fn` as the second pass."""
    tx = sharpax.sam(sharpax.adam())
    return jax.jit(lambda g, s, p: tx.update(g, s, p, grad_fn=grad_fn))(
        GRADS, tx.init(PARAMS), PARAMS
    )


KEY = jax.random.key(0)


def _sum_loss(params, x):
    return jnp.sum(params["w"]) * jnp.mean(x)


def _per_example(params, x):
    return jnp.sum(params["w"]) * jnp.mean(x, axis=1)


BAD_INPUTS: list[BadInput] = [
    *(_out_of_range(*row) for row in OUT_OF_RANGE),
    # Hyperparameters out of range (build time), beyond OUT_OF_RANGE's exact messages.
    BadInput(
        "b2 below 1 in float64, 1 in float32",
        lambda: sharpax.adamw(b2=1 - 1e-9),
        ValueError,
        r"adamw: b2 .*1.0 in float32",
    ),
    # sgd (torch's rule): Nesterov needs momentum and no dampening.
    *(
        BadInput(
            f"sgd: nesterov=True with {kwargs}",
            lambda kwargs=kwargs: sharpax.sgd(0.1, **kwargs),
            ValueError,
            r"sgd: nesterov=True needs momentum > 0 and dampening == 0",
        )
        for kwargs in (
            dict(momentum=0.0, nesterov=True),
            dict(nesterov=True),
            dict(momentum=0.9, dampening=0.1, nesterov=True),
        )
    ),
    # Hyperparameters of the wrong type (build time).
    BadInput(
        "learning rate as a string",
        lambda: sharpax.adam("1e-3"),
        TypeError,
        r"adam: learning_rate must be a real number or a schedule, got '1e-3' \(str\)",
    ),
    BadInput(
        "learning rate None (was: silent gradient ascent)",
        lambda: sharpax.adam(None),
        TypeError,
        r"adam: learning_rate must be a real number .*got None",
    ),
    BadInput(
        "learning rate as a vector",
        lambda: sharpax.sgd(jnp.array([0.1, 0.2])),
        TypeError,
        r"sgd: learning_rate must be a scalar or a schedule, got an array of shape \(2,\)",
    ),
    BadInput(
        "momentum as a bool (nesterov passed positionally)",
        lambda: sharpax.sgd(0.1, True),
        TypeError,
        r"sgd: momentum must be a real number .*got True \(bool\)",
    ),
    BadInput(
        "complex b1",
        lambda: sharpax.adam(b1=0.5j),
        TypeError,
        r"adam: b1 must be a real number .*\(complex\)",
    ),
    BadInput(
        "integer moment dtype",
        lambda: sharpax.adam(mu_dtype=jnp.int32),
        TypeError,
        r"adam: mu_dtype must be a floating dtype or None, got int32",
    ),
    BadInput(
        "unknown moment dtype",
        lambda: sharpax.radam(nu_dtype="float33"),
        TypeError,
        r"radam: nu_dtype must be a floating dtype or None, got 'float33'",
    ),
    BadInput(
        "lion with an integer momentum dtype",
        lambda: sharpax.lion(mu_dtype=jnp.int8),
        TypeError,
        r"lion: mu_dtype must be a floating dtype",
    ),
    # Schedules.
    BadInput(
        "schedule taking no argument",
        lambda: sharpax.sgd(lambda: 0.1),
        TypeError,
        r"sgd: the learning_rate schedule must take one argument, the step count",
    ),
    BadInput(
        "schedule returning a vector",
        lambda: _step(sharpax.adam(lambda count: jnp.full(3, 1e-3))),
        ValueError,
        r"adam: the learning_rate schedule must return a scalar, got shape \(3,\)",
    ),
    BadInput(
        "schedule returning a string",
        lambda: _step(sharpax.sgd(lambda count: "0.1")),
        TypeError,
        r"sgd: the learning_rate schedule must return a real scalar, got '0.1'",
    ),
    BadInput(
        "weight-decay schedule returning a vector",
        lambda: _step(sharpax.adamw(weight_decay=lambda count: jnp.ones(2))),
        ValueError,
        r"the weight_decay schedule must return a scalar, got shape \(2,\)",
    ),
    BadInput(
        "adagrad lr_decay over a vector schedule",
        lambda: _step(sharpax.adagrad(lambda c: jnp.ones(3), lr_decay=0.1)),
        ValueError,
        r"adagrad: the learning_rate schedule must return a scalar",
    ),
    # Mismatched trees (first update).
    BadInput(
        "gradient with an extra leaf",
        lambda: _step(sharpax.adam(), grads={**GRADS, "c": jnp.ones(1)}),
        ValueError,
        r"adam: the gradient tree does not match the params",
    ),
    BadInput(
        "gradient as a list, params as a dict",
        lambda: _step(sharpax.sgd(0.1), grads=[jnp.ones(3), jnp.ones(2)]),
        ValueError,
        r"sgd: the gradient tree does not match the params",
    ),
    BadInput(
        "gradient of shape (1,) for a (3,) param (was: silent broadcast)",
        lambda: _step(sharpax.adam(), grads={**GRADS, "w": jnp.ones(1)}),
        ValueError,
        r"adam: the gradient at \['w'\] has shape \(1,\), the params leaf there has shape \(3,\)",
    ),
    BadInput(
        "gradient shape mismatch without params passed",
        lambda: sharpax.rmsprop().update(
            {"w": jnp.ones(4)}, sharpax.rmsprop().init({"w": jnp.ones(3)})
        ),
        ValueError,
        r"the gradient at \['w'\] has shape \(4,\), the optimizer state leaf there has shape \(3,\)",
    ),
    BadInput(
        "state of another optimizer",
        lambda: _step(sharpax.adam(), state=sharpax.sgd(0.1, momentum=0.9).init(PARAMS)),
        ValueError,
        r"adam: the gradient tree does not match the optimizer state: the state does not have the structure",
    ),
    BadInput(
        "update before init",
        lambda: _step(sharpax.nadam(), state=()),
        ValueError,
        r"nadam: the gradient tree does not match the optimizer state: the state does not have the structure",
    ),
    # Integer params and gradients. (An integer param with an integer or float0 gradient is allowed: the
    # gradient passes through untouched, the documented contract of `float_leaves_only`.)
    BadInput(
        "integer gradient for a float param",
        lambda: _step(sharpax.sgd(0.1), grads={**GRADS, "b": jnp.ones(2, jnp.int32)}),
        TypeError,
        r"sgd: the gradient at \['b'\] is int32\[2\] but the param is float32\[2\]",
    ),
    BadInput(
        "float gradient for an integer param",
        lambda: _step(
            sharpax.lion(), grads={"n": jnp.ones(2)}, params={"n": jnp.ones(2, jnp.int32)}
        ),
        TypeError,
        r"lion: the param at \['n'\] is int32\[2\], which is not trained",
    ),
    BadInput(
        "gradient of strings",
        lambda: sharpax.adam().update({"w": "g"}, sharpax.adam().init({"w": jnp.ones(1)})),
        TypeError,
        r"adam: the gradient at \['w'\] is str\[\]; gradients must be arrays",
    ),
    BadInput(
        "bool gradient for a float param",
        lambda: _step(sharpax.radam(), grads={**GRADS, "w": np.ones(3, bool)}),
        TypeError,
        r"radam: the gradient at \['w'\] is bool\[3\] but the param is float32\[3\]",
    ),
    # SAM and Lookahead.
    BadInput(
        "SAM without grad_fn",
        lambda: _sam_step(None),
        ValueError,
        r"sam: update needs the second pass: call `tx.update\(grads, state, params, grad_fn=grad_fn\)`",
    ),
    BadInput(
        "SAM grad_fn missing a leaf",
        lambda: _sam_step(lambda p: {"w": jnp.ones(3)}),
        ValueError,
        r"sam: the gradient tree does not match the first-pass gradients \(what grad_fn returns\)",
    ),
    BadInput(
        "SAM grad_fn is value_and_grad (returns (loss, grads))",
        lambda: _sam_step(jax.value_and_grad(lambda p: jnp.sum(p["w"]))),
        ValueError,
        r"sam: the gradient tree does not match the first-pass gradients",
    ),
    BadInput(
        "SAM grad_fn returning the wrong shape",
        lambda: _sam_step(lambda p: {"w": jnp.ones(1), "b": jnp.ones(2)}),
        ValueError,
        r"sam: the gradient at \['w'\] has shape \(1,\), the first-pass gradients .* has shape \(3,\)",
    ),
    BadInput(
        "SAM grad_fn returning integers (was: silently cast)",
        lambda: _sam_step(lambda p: {"w": jnp.ones(3, jnp.int32), "b": jnp.ones(2, jnp.int32)}),
        TypeError,
        r"sam: grad_fn returned int32 at \['b'\], where the first-pass gradient is float32",
    ),
    BadInput(
        "SAM rho as a string",
        lambda: sharpax.sam(sharpax.adam(), rho="0.05"),
        TypeError,
        r"sam: rho must be a real number or a schedule, got '0.05'",
    ),
    BadInput(
        "SAM around a string, not an optimizer",
        lambda: sharpax.sam("adam"),
        TypeError,
        r"sam: base_optimizer must be an optax.GradientTransformation .*got 'adam'",
    ),
    BadInput(
        "WSAM without its learning rate",
        lambda: sharpax.wsam(sharpax.adam()),
        TypeError,
        r"wsam\(\) missing 1 required positional argument: 'learning_rate'",
    ),
    BadInput(
        "WSAM learning rate schedule returning a vector",
        lambda: jax.jit(
            lambda s: sharpax.wsam(sharpax.sgd(0.1), lambda c: jnp.ones(2)).update(
                GRADS, s, PARAMS, grad_fn=lambda p: GRADS
            )
        )(sharpax.wsam(sharpax.sgd(0.1), lambda c: jnp.ones(2)).init(PARAMS)),
        ValueError,
        r"wsam: the learning_rate schedule must return a scalar, got shape \(2,\)",
    ),
    BadInput(
        "BSAM seed as a float",
        lambda: sharpax.bsam(0.1, num_data=100, seed=1.5),
        ValueError,
        r"bsam: seed must be an integer >= 0, got 1.5",
    ),
    BadInput(
        "BSAM without grad_fn",
        lambda: jax.jit(lambda s: sharpax.bsam(0.1, 100).update(GRADS, s, PARAMS))(
            sharpax.bsam(0.1, 100).init(PARAMS)
        ),
        ValueError,
        r"bsam: update needs the second pass: call `tx.update\(grads, state, params, grad_fn=grad_fn\)`",
    ),
    BadInput(
        "BSAM grad_fn returning the wrong shape",
        lambda: jax.jit(
            lambda s: sharpax.bsam(0.1, 100).update(
                None, s, PARAMS, grad_fn=lambda p: {"w": jnp.ones(1), "b": jnp.ones(2)}
            )
        )(sharpax.bsam(0.1, 100).init(PARAMS)),
        ValueError,
        r"bsam: the gradient at \['w'\] has shape \(1,\), the first-pass gradients .* has shape \(3,\)",
    ),
    BadInput(
        "bsam_variance of a state with no BSAM",
        lambda: sharpax.bsam_variance(sharpax.adam().init(PARAMS), 100),
        ValueError,
        r"bsam_variance: expected exactly one BSAMState .* found 0",
    ),
    BadInput(
        "SAM p as a schedule",
        lambda: sharpax.sam_value_and_grad(jnp.sum, p=lambda step: 2.0),
        TypeError,
        r"sam_value_and_grad: p must be a static number",
    ),
    BadInput(
        "SAM microbatches 0",
        lambda: sharpax.sam_value_and_grad(jnp.sum, microbatches=0),
        ValueError,
        r"sam_value_and_grad: microbatches must be an integer >= 1, got 0",
    ),
    BadInput(
        "SAM microbatches not an integer",
        lambda: sharpax.gsam_value_and_grad(jnp.sum, microbatches=2.0),
        ValueError,
        r"gsam_value_and_grad: microbatches must be an integer >= 1, got 2.0",
    ),
    BadInput(
        "SAM microbatches not dividing the batch (trace time)",
        lambda: jax.jit(sharpax.sam_value_and_grad(lambda w, x: jnp.sum(w * x), microbatches=4))(
            jnp.ones(3), jnp.ones((6, 3))
        ),
        ValueError,
        r"sam_value_and_grad: with microbatches=4, every leaf of the positional batch arguments "
        r"needs a leading axis divisible by 4, got shape \(6, 3\)",
    ),
    BadInput(
        "SAM m and microbatches not dividing the batch (trace time)",
        lambda: sharpax.microbatched_value_and_grad(lambda w, x: jnp.sum(w * x), 4)(
            jnp.ones(3), jnp.ones((6, 3))
        ),
        ValueError,
        r"microbatched_value_and_grad: with microbatches=4, .*divisible by 4, got shape \(6, 3\)",
    ),
    BadInput(
        "integer aux averaged over microbatches",
        lambda: sharpax.sam_value_and_grad(
            lambda w, x: (jnp.sum(x @ w), jnp.sum(x > 0)), microbatches=2, has_aux=True
        )(jnp.ones(3), jnp.ones((6, 3))),
        TypeError,
        r"sam_value_and_grad: with microbatches=2, aux is averaged .* got int32 at ",
    ),
    BadInput(
        "SAM loss_scale as a number",
        lambda: sharpax.sam(sharpax.adam(), loss_scale=2.0**15),
        TypeError,
        r"sam: loss_scale must be None or a DynamicLossScale \(sharpax.dynamic_loss_scale\(\)\)",
    ),
    BadInput(
        "dynamic loss scale below its floor",
        lambda: sharpax.dynamic_loss_scale(0.5, min_loss_scale=1.0),
        ValueError,
        r"dynamic_loss_scale: initial_scale must be >= min_loss_scale \(1.0\), got 0.5",
    ),
    BadInput(
        "current_loss_scale of a state without one",
        lambda: sharpax.current_loss_scale(sharpax.sam(sharpax.adam()).init(PARAMS)),
        ValueError,
        r"current_loss_scale: expected exactly one LossScaleState in the optimizer state .*found 0",
    ),
    BadInput(
        "momentum-SAM around a string, not an optimizer",
        lambda: sharpax.momentum_sam("sgd", rho=0.3),
        TypeError,
        r"momentum_sam: base_optimizer must be an optax.GradientTransformation .*got 'sgd'",
    ),
    BadInput(
        "momentum-SAM over a base with two momentum buffers",
        lambda: sharpax.momentum_sam(
            optax.chain(optax.trace(0.5), sharpax.sgd(0.1, momentum=0.9)), rho=0.3
        ).init(PARAMS),
        ValueError,
        r"momentum_sam: the base optimizer's state holds 2 first-moment buffers",
    ),
    BadInput(
        "momentum-SAM update without params",
        lambda: sharpax.momentum_sam(sharpax.adamw(), rho=0.5).update(
            GRADS, sharpax.momentum_sam(sharpax.adamw(), rho=0.5).init(PARAMS)
        ),
        ValueError,
        r"momentum_sam: update needs the params \(the perturbed weights",
    ),
    BadInput(
        "momentum_sam_params of a state with no momentum-SAM",
        lambda: sharpax.momentum_sam_params(sharpax.adam().init(PARAMS), PARAMS),
        ValueError,
        r"momentum_sam_params: expected exactly one MomentumSAMState in the optimizer state, found 0",
    ),
    BadInput(
        "AE-SAM total_steps 0",
        lambda: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=0),
        ValueError,
        r"ae_sam: total_steps must be an integer >= 1, got 0",
    ),
    BadInput(
        "AE-SAM total_steps as a float",
        lambda: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=1e4),
        ValueError,
        r"ae_sam: total_steps must be an integer >= 1, got 10000.0",
    ),
    BadInput(
        "AE-SAM threshold bound as a string",
        lambda: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=10, lambda1="-1"),
        TypeError,
        r"ae_sam: lambda1 must be a real number or a schedule, got '-1'",
    ),
    BadInput(
        "AE-SAM without grad_fn",
        lambda: _step(sharpax.ae_sam(sharpax.sgd(0.1), total_steps=10)),
        ValueError,
        r"ae_sam: update needs the second pass: call `tx.update\(grads, state, params, grad_fn=grad_fn\)`",
    ),
    BadInput(
        "ae_sam_fraction of a state with no AE-SAM",
        lambda: sharpax.ae_sam_fraction(sharpax.sam(sharpax.adam()).init(PARAMS)),
        ValueError,
        r"ae_sam_fraction: expected exactly one AESAMState in the optimizer state, found 0",
    ),
    BadInput(
        "untuned warmup around a string, not an optimizer",
        lambda: sharpax.with_untuned_warmup("adam"),
        TypeError,
        r"with_untuned_warmup: tx must be an optax.GradientTransformation .*got 'adam'",
    ),
    BadInput(
        "Lookahead around an optimizer factory, not an optimizer",
        lambda: sharpax.lookahead(sharpax.adam),
        TypeError,
        r"lookahead: inner must be an optax.GradientTransformation",
    ),
    BadInput(
        "Lookahead sync_period 0",
        lambda: sharpax.lookahead(sharpax.adam(), sync_period=0),
        ValueError,
        r"lookahead: sync_period must be an integer >= 1, got 0",
    ),
    BadInput(
        "Lookahead sync_period as a float",
        lambda: sharpax.lookahead(sharpax.sgd(0.1), sync_period=2.0),
        ValueError,
        r"lookahead: sync_period must be an integer >= 1, got 2.0",
    ),
    BadInput(
        "Lookahead reset_state with a momentum pullback (the reset already clears the momentum)",
        lambda: sharpax.lookahead(sharpax.sgd(0.1), reset_state=True, pullback_momentum="reset"),
        ValueError,
        r"lookahead: reset_state=True .*pullback_momentum must be 'none' with it, got 'reset'",
    ),
    BadInput(
        "Lookahead unknown pullback mode",
        lambda: sharpax.lookahead(sharpax.adam(), pullback_momentum="yes"),
        ValueError,
        r"lookahead: pullback_momentum must be one of \('none', 'reset', 'pullback'\)",
    ),
    BadInput(
        "lookahead_params of a state with no Lookahead",
        lambda: sharpax.lookahead_params(sharpax.adam().init(PARAMS), PARAMS),
        ValueError,
        r"lookahead_params: expected exactly one LookaheadState in the optimizer state, found 0",
    ),
    # RWP and ESAM (their calls: the batch and the key are only seen there).
    BadInput(
        "RWP batch of odd size",
        lambda: sharpax.rwp_value_and_grad(_sum_loss)(PARAMS, jnp.ones((5, 2)), key=KEY),
        ValueError,
        r"rwp_value_and_grad: every leaf of the positional batch arguments needs the same even "
        r"leading axis .*got shapes \[\(5, 2\)\]",
    ),
    BadInput(
        "RWP without a key",
        lambda: sharpax.rwp_value_and_grad(_sum_loss)(PARAMS, jnp.ones((4, 2))),
        TypeError,
        r"rwp_value_and_grad: this call draws random numbers: pass a fresh key at every step",
    ),
    BadInput(
        "RWP filter axis beyond the param's axes",
        lambda: sharpax.rwp_value_and_grad(
            lambda p, x: jnp.sum(p["k"]) * jnp.sum(x), filter_axis=2
        )({"k": jnp.ones((3, 2))}, jnp.ones((4, 2)), key=KEY),
        ValueError,
        r"rwp_value_and_grad: filter_axis=2 at \['k'\] does not name distinct axes of a 2-d param",
    ),
    BadInput(
        "ESAM loss that is already the mean",
        lambda: sharpax.esam_value_and_grad(_sum_loss, beta=1.0)(PARAMS, jnp.ones((4, 2))),
        ValueError,
        r"esam_value_and_grad: per_example_loss_fn must return one loss per example, shape \(4,\), "
        r"got shape \(\)",
    ),
    BadInput(
        "ESAM gamma too small to select an example of the batch",
        lambda: sharpax.esam_value_and_grad(_per_example, beta=1.0, gamma=0.1)(
            PARAMS, jnp.ones((4, 2))
        ),
        ValueError,
        r"esam_value_and_grad: gamma \* batch = 0.1 \* 4 selects no example",
    ),
    BadInput(
        "ESAM gamma traced (it sets a shape)",
        lambda: jax.jit(lambda g: sharpax.esam_value_and_grad(_per_example, gamma=g))(0.5),
        TypeError,
        r"esam_value_and_grad: gamma must be a static Python number, got .*Tracer",
    ),
    BadInput(
        "ESAM with beta < 1 and no key",
        lambda: sharpax.esam_value_and_grad(_per_example, beta=0.5)(PARAMS, jnp.ones((4, 2))),
        TypeError,
        r"esam_value_and_grad: this call draws random numbers: pass a fresh key",
    ),
]
