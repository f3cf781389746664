"""The table of bad inputs tried against sharpax and the error each gets (run by test_hostile_inputs.py).

Each row: a description, a callable that triggers the mistake, the exception type, and a regex the
message must match: it must name what is wrong (the argument, the leaf, the shape) in the user's terms.
Build-time rows fail when the optimizer is constructed; the others at the first `update` trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax


@dataclasses.dataclass(frozen=True)
class HostileInput:
    description: str
    trigger: Callable[[], Any]
    exception: type[BaseException]
    match: str


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


HOSTILE_INPUTS: list[HostileInput] = [
    # Hyperparameters out of range (build time).
    HostileInput(
        "negative learning rate",
        lambda: sharpax.adam(-1e-3),
        ValueError,
        r"adam: learning_rate must be in \[0.0, inf\), got -0.001",
    ),
    HostileInput(
        "NaN learning rate",
        lambda: sharpax.sgd(float("nan")),
        ValueError,
        r"sgd: learning_rate must be in .*got nan",
    ),
    HostileInput(
        "infinite learning rate",
        lambda: sharpax.sgd(float("inf")),
        ValueError,
        r"sgd: learning_rate must be in .*got inf",
    ),
    HostileInput(
        "b1 = 1",
        lambda: sharpax.adam(b1=1.0),
        ValueError,
        r"adam: b1 must be in \[0.0, 1.0\), got 1.0",
    ),
    HostileInput(
        "b2 below 1 in float64, 1 in float32",
        lambda: sharpax.adamw(b2=1 - 1e-9),
        ValueError,
        r"adamw: b2 .*1.0 in float32",
    ),
    HostileInput(
        "negative b2",
        lambda: sharpax.nadam(b2=-0.1),
        ValueError,
        r"nadam: b2 must be in \[0.0, 1.0\)",
    ),
    HostileInput(
        "negative eps",
        lambda: sharpax.adam(eps=-1e-8),
        ValueError,
        r"adam: eps must be in \[0.0, inf\)",
    ),
    HostileInput(
        "negative weight decay",
        lambda: sharpax.adamw(weight_decay=-0.1),
        ValueError,
        r"adamw: weight_decay must be in \[0.0, inf\)",
    ),
    HostileInput(
        "negative momentum",
        lambda: sharpax.sgd(0.1, momentum=-0.9),
        ValueError,
        r"sgd: momentum must be in \[0.0, inf\)",
    ),
    HostileInput(
        "dampening > 1",
        lambda: sharpax.sgd(0.1, momentum=0.9, dampening=1.5),
        ValueError,
        r"sgd: dampening must be in \[0.0, 1.0\]",
    ),
    HostileInput(
        "Nesterov without momentum",
        lambda: sharpax.sgd(0.1, nesterov=True),
        ValueError,
        r"sgd: nesterov=True needs momentum > 0",
    ),
    HostileInput(
        "Nesterov with dampening",
        lambda: sharpax.sgd(0.1, momentum=0.9, dampening=0.1, nesterov=True),
        ValueError,
        r"sgd: nesterov=True needs .*dampening == 0",
    ),
    HostileInput(
        "negative lr_decay",
        lambda: sharpax.adagrad(lr_decay=-1.0),
        ValueError,
        r"adagrad: lr_decay must be in \[0.0, inf\)",
    ),
    HostileInput(
        "negative initial accumulator",
        lambda: sharpax.adagrad(initial_accumulator_value=-1.0),
        ValueError,
        r"initial_accumulator_value must be in \[0.0, inf\)",
    ),
    HostileInput(
        "rho > 1",
        lambda: sharpax.adadelta(rho=1.5),
        ValueError,
        r"adadelta: rho must be in \[0.0, 1.0\]",
    ),
    HostileInput(
        "rmsprop decay > 1",
        lambda: sharpax.rmsprop(decay=2.0),
        ValueError,
        r"rmsprop: decay must be in \[0.0, 1.0\]",
    ),
    HostileInput(
        "negative momentum_decay",
        lambda: sharpax.nadam(momentum_decay=-1.0),
        ValueError,
        r"nadam: momentum_decay must be in \[0.0, inf\)",
    ),
    HostileInput(
        "radam threshold below 4 (rectifier not real: NaN)",
        lambda: sharpax.radam(threshold=2.0),
        ValueError,
        r"radam: threshold must be in \[4.0, inf\)",
    ),
    HostileInput(
        "lion b2 = 1", lambda: sharpax.lion(b2=1.0), ValueError, r"lion: b2 must be in \[0.0, 1.0\)"
    ),
    # Hyperparameters of the wrong type (build time).
    HostileInput(
        "learning rate as a string",
        lambda: sharpax.adam("1e-3"),
        TypeError,
        r"adam: learning_rate must be a real number or a schedule, got '1e-3' \(str\)",
    ),
    HostileInput(
        "learning rate None (was: silent gradient ascent)",
        lambda: sharpax.adam(None),
        TypeError,
        r"adam: learning_rate must be a real number .*got None",
    ),
    HostileInput(
        "learning rate as a vector",
        lambda: sharpax.sgd(jnp.array([0.1, 0.2])),
        TypeError,
        r"sgd: learning_rate must be a scalar or a schedule, got an array of shape \(2,\)",
    ),
    HostileInput(
        "momentum as a bool (nesterov passed positionally)",
        lambda: sharpax.sgd(0.1, True),
        TypeError,
        r"sgd: momentum must be a real number .*got True \(bool\)",
    ),
    HostileInput(
        "complex b1",
        lambda: sharpax.adam(b1=0.5j),
        TypeError,
        r"adam: b1 must be a real number .*\(complex\)",
    ),
    HostileInput(
        "integer moment dtype",
        lambda: sharpax.adam(mu_dtype=jnp.int32),
        TypeError,
        r"adam: mu_dtype must be a floating dtype or None, got int32",
    ),
    HostileInput(
        "unknown moment dtype",
        lambda: sharpax.radam(nu_dtype="float33"),
        TypeError,
        r"radam: nu_dtype must be a floating dtype or None, got 'float33'",
    ),
    HostileInput(
        "lion with an integer momentum dtype",
        lambda: sharpax.lion(mu_dtype=jnp.int8),
        TypeError,
        r"lion: mu_dtype must be a floating dtype",
    ),
    # Schedules.
    HostileInput(
        "schedule taking no argument",
        lambda: sharpax.sgd(lambda: 0.1),
        TypeError,
        r"sgd: the learning_rate schedule must take one argument, the step count",
    ),
    HostileInput(
        "schedule returning a vector",
        lambda: _step(sharpax.adam(lambda count: jnp.full(3, 1e-3))),
        ValueError,
        r"adam: the learning_rate schedule must return a scalar, got shape \(3,\)",
    ),
    HostileInput(
        "schedule returning a string",
        lambda: _step(sharpax.sgd(lambda count: "0.1")),
        TypeError,
        r"sgd: the learning_rate schedule must return a real scalar, got '0.1'",
    ),
    HostileInput(
        "weight-decay schedule returning a vector",
        lambda: _step(sharpax.adamw(weight_decay=lambda count: jnp.ones(2))),
        ValueError,
        r"the weight_decay schedule must return a scalar, got shape \(2,\)",
    ),
    HostileInput(
        "adagrad lr_decay over a vector schedule",
        lambda: _step(sharpax.adagrad(lambda c: jnp.ones(3), lr_decay=0.1)),
        ValueError,
        r"adagrad: the learning_rate schedule must return a scalar",
    ),
    # Mismatched trees (first update).
    HostileInput(
        "gradient with an extra leaf",
        lambda: _step(sharpax.adam(), grads={**GRADS, "c": jnp.ones(1)}),
        ValueError,
        r"adam: the gradient tree does not match the params",
    ),
    HostileInput(
        "gradient as a list, params as a dict",
        lambda: _step(sharpax.sgd(0.1), grads=[jnp.ones(3), jnp.ones(2)]),
        ValueError,
        r"sgd: the gradient tree does not match the params",
    ),
    HostileInput(
        "gradient of shape (1,) for a (3,) param (was: silent broadcast)",
        lambda: _step(sharpax.adam(), grads={**GRADS, "w": jnp.ones(1)}),
        ValueError,
        r"adam: the gradient at \['w'\] has shape \(1,\), the params leaf there has shape \(3,\)",
    ),
    HostileInput(
        "gradient shape mismatch without params passed",
        lambda: sharpax.rmsprop().update(
            {"w": jnp.ones(4)}, sharpax.rmsprop().init({"w": jnp.ones(3)})
        ),
        ValueError,
        r"the gradient at \['w'\] has shape \(4,\), the optimizer state leaf there has shape \(3,\)",
    ),
    HostileInput(
        "state of another optimizer",
        lambda: _step(sharpax.adam(), state=sharpax.sgd(0.1, momentum=0.9).init(PARAMS)),
        ValueError,
        r"adam: the gradient tree does not match the optimizer state: the state does not have the structure",
    ),
    HostileInput(
        "update before init",
        lambda: _step(sharpax.nadam(), state=()),
        ValueError,
        r"nadam: the gradient tree does not match the optimizer state: the state does not have the structure",
    ),
    # Integer params and gradients. (An integer param with an integer or float0 gradient is allowed: the
    # gradient passes through untouched, the documented contract of `float_leaves_only`.)
    HostileInput(
        "integer gradient for a float param",
        lambda: _step(sharpax.sgd(0.1), grads={**GRADS, "b": jnp.ones(2, jnp.int32)}),
        TypeError,
        r"sgd: the gradient at \['b'\] is int32\[2\] but the param is float32\[2\]",
    ),
    HostileInput(
        "float gradient for an integer param",
        lambda: _step(
            sharpax.lion(), grads={"n": jnp.ones(2)}, params={"n": jnp.ones(2, jnp.int32)}
        ),
        TypeError,
        r"lion: the param at \['n'\] is int32\[2\], which is not trained",
    ),
    HostileInput(
        "gradient of strings",
        lambda: sharpax.adam().update({"w": "g"}, sharpax.adam().init({"w": jnp.ones(1)})),
        TypeError,
        r"adam: the gradient at \['w'\] is str\[\]; gradients must be arrays",
    ),
    HostileInput(
        "bool gradient for a float param",
        lambda: _step(sharpax.radam(), grads={**GRADS, "w": np.ones(3, bool)}),
        TypeError,
        r"radam: the gradient at \['w'\] is bool\[3\] but the param is float32\[3\]",
    ),
    # SAM and Lookahead.
    HostileInput(
        "SAM without grad_fn",
        lambda: _sam_step(None),
        ValueError,
        r"sam: update needs the second pass: call `tx.update\(grads, state, params, grad_fn=grad_fn\)`",
    ),
    HostileInput(
        "SAM grad_fn missing a leaf",
        lambda: _sam_step(lambda p: {"w": jnp.ones(3)}),
        ValueError,
        r"sam: the gradient tree does not match the first-pass gradients \(what grad_fn returns\)",
    ),
    HostileInput(
        "SAM grad_fn is value_and_grad (returns (loss, grads))",
        lambda: _sam_step(jax.value_and_grad(lambda p: jnp.sum(p["w"]))),
        ValueError,
        r"sam: the gradient tree does not match the first-pass gradients",
    ),
    HostileInput(
        "SAM grad_fn returning the wrong shape",
        lambda: _sam_step(lambda p: {"w": jnp.ones(1), "b": jnp.ones(2)}),
        ValueError,
        r"sam: the gradient at \['w'\] has shape \(1,\), the first-pass gradients .* has shape \(3,\)",
    ),
    HostileInput(
        "SAM grad_fn returning integers (was: silently cast)",
        lambda: _sam_step(lambda p: {"w": jnp.ones(3, jnp.int32), "b": jnp.ones(2, jnp.int32)}),
        TypeError,
        r"sam: grad_fn returned int32 at \['b'\], where the first-pass gradient is float32",
    ),
    HostileInput(
        "negative SAM rho",
        lambda: sharpax.sam(sharpax.adam(), rho=-0.1),
        ValueError,
        r"sam: rho must be in \[0.0, inf\), got -0.1",
    ),
    HostileInput(
        "SAM rho as a string",
        lambda: sharpax.sam(sharpax.adam(), rho="0.05"),
        TypeError,
        r"sam: rho must be a real number or a schedule, got '0.05'",
    ),
    HostileInput(
        "SAM around a string, not an optimizer",
        lambda: sharpax.sam("adam"),
        TypeError,
        r"sam: base_optimizer must be an optax.GradientTransformation .*got 'adam'",
    ),
    # RWP and ESAM (their calls: the batch and the key are only seen there).
    HostileInput(
        "RWP batch of odd size",
        lambda: sharpax.rwp_value_and_grad(_sum_loss)(PARAMS, jnp.ones((5, 2)), key=KEY),
        ValueError,
        r"rwp_value_and_grad: every leaf of the positional batch arguments needs the same even "
        r"leading axis .*got shapes \[\(5, 2\)\]",
    ),
    HostileInput(
        "RWP without a key",
        lambda: sharpax.rwp_value_and_grad(_sum_loss)(PARAMS, jnp.ones((4, 2))),
        TypeError,
        r"rwp_value_and_grad: this call draws random numbers: pass a fresh key at every step",
    ),
    HostileInput(
        "RWP filter axis beyond the param's axes",
        lambda: sharpax.rwp_value_and_grad(
            lambda p, x: jnp.sum(p["k"]) * jnp.sum(x), filter_axis=2
        )({"k": jnp.ones((3, 2))}, jnp.ones((4, 2)), key=KEY),
        ValueError,
        r"rwp_value_and_grad: filter_axis=2 at \['k'\] does not name distinct axes of a 2-d param",
    ),
    HostileInput(
        "ESAM loss that is already the mean",
        lambda: sharpax.esam_value_and_grad(_sum_loss, beta=1.0)(PARAMS, jnp.ones((4, 2))),
        ValueError,
        r"esam_value_and_grad: per_example_loss_fn must return one loss per example, shape \(4,\), "
        r"got shape \(\)",
    ),
    HostileInput(
        "ESAM gamma too small to select an example of the batch",
        lambda: sharpax.esam_value_and_grad(_per_example, beta=1.0, gamma=0.1)(
            PARAMS, jnp.ones((4, 2))
        ),
        ValueError,
        r"esam_value_and_grad: gamma \* batch = 0.1 \* 4 selects no example",
    ),
    HostileInput(
        "ESAM gamma traced (it sets a shape)",
        lambda: jax.jit(lambda g: sharpax.esam_value_and_grad(_per_example, gamma=g))(0.5),
        TypeError,
        r"esam_value_and_grad: gamma must be a static Python number, got .*Tracer",
    ),
    HostileInput(
        "ESAM with beta < 1 and no key",
        lambda: sharpax.esam_value_and_grad(_per_example, beta=0.5)(PARAMS, jnp.ones((4, 2))),
        TypeError,
        r"esam_value_and_grad: this call draws random numbers: pass a fresh key",
    ),
    HostileInput(
        "Friendly-SAM negative sigma",
        lambda: sharpax.friendly_sam(sharpax.adam(), sigma=-1.0),
        ValueError,
        r"friendly_sam: sigma must be in \[0.0, inf\), got -1.0",
    ),
    HostileInput(
        "Friendly-SAM lmbda = 1 (m would never move)",
        lambda: sharpax.friendly_sam(sharpax.adam(), lmbda=1.0),
        ValueError,
        r"friendly_sam: lmbda must be in \[0.0, 1.0\), got 1.0",
    ),
    HostileInput(
        "WSAM gamma = 1 (alpha = gamma / (1 - gamma) is infinite)",
        lambda: sharpax.wsam(sharpax.adam(), 1e-3, gamma=1.0),
        ValueError,
        r"wsam: gamma must be in \[0.0, 1.0\), got 1.0",
    ),
    HostileInput(
        "WSAM without its learning rate",
        lambda: sharpax.wsam(sharpax.adam()),
        TypeError,
        r"wsam\(\) missing 1 required positional argument: 'learning_rate'",
    ),
    HostileInput(
        "WSAM learning rate schedule returning a vector",
        lambda: jax.jit(
            lambda s: sharpax.wsam(sharpax.sgd(0.1), lambda c: jnp.ones(2)).update(
                GRADS, s, PARAMS, grad_fn=lambda p: GRADS
            )
        )(sharpax.wsam(sharpax.sgd(0.1), lambda c: jnp.ones(2)).init(PARAMS)),
        ValueError,
        r"wsam: the learning_rate schedule must return a scalar, got shape \(2,\)",
    ),
    HostileInput(
        "BSAM with num_data 0 (the variance 1 / (N s) is infinite)",
        lambda: sharpax.bsam(0.1, num_data=0),
        ValueError,
        r"bsam: num_data must be in \(0.0, inf\), got 0",
    ),
    HostileInput(
        "BSAM seed as a float",
        lambda: sharpax.bsam(0.1, num_data=100, seed=1.5),
        ValueError,
        r"bsam: seed must be an integer >= 0, got 1.5",
    ),
    HostileInput(
        "BSAM without grad_fn",
        lambda: jax.jit(lambda s: sharpax.bsam(0.1, 100).update(GRADS, s, PARAMS))(
            sharpax.bsam(0.1, 100).init(PARAMS)
        ),
        ValueError,
        r"bsam: update needs the second pass: call `tx.update\(grads, state, params, grad_fn=grad_fn\)`",
    ),
    HostileInput(
        "BSAM grad_fn returning the wrong shape",
        lambda: jax.jit(
            lambda s: sharpax.bsam(0.1, 100).update(
                None, s, PARAMS, grad_fn=lambda p: {"w": jnp.ones(1), "b": jnp.ones(2)}
            )
        )(sharpax.bsam(0.1, 100).init(PARAMS)),
        ValueError,
        r"bsam: the gradient at \['w'\] has shape \(1,\), the first-pass gradients .* has shape \(3,\)",
    ),
    HostileInput(
        "bsam_variance of a state with no BSAM",
        lambda: sharpax.bsam_variance(sharpax.adam().init(PARAMS), 100),
        ValueError,
        r"bsam_variance: expected exactly one BSAMState .* found 0",
    ),
    HostileInput(
        "SAM p below 1 (not a norm)",
        lambda: sharpax.sam(sharpax.adam(), p=0.5),
        ValueError,
        r"sam: p must be in \[1, inf\] \(math.inf included\), got 0.5",
    ),
    HostileInput(
        "SAM p as a schedule",
        lambda: sharpax.sam_value_and_grad(jnp.sum, p=lambda step: 2.0),
        TypeError,
        r"sam_value_and_grad: p must be a static number",
    ),
    HostileInput(
        "SAM microbatches 0",
        lambda: sharpax.sam_value_and_grad(jnp.sum, microbatches=0),
        ValueError,
        r"sam_value_and_grad: microbatches must be an integer >= 1, got 0",
    ),
    HostileInput(
        "SAM microbatches not an integer",
        lambda: sharpax.gsam_value_and_grad(jnp.sum, microbatches=2.0),
        ValueError,
        r"gsam_value_and_grad: microbatches must be an integer >= 1, got 2.0",
    ),
    HostileInput(
        "SAM microbatches not dividing the batch (trace time)",
        lambda: jax.jit(sharpax.sam_value_and_grad(lambda w, x: jnp.sum(w * x), microbatches=4))(
            jnp.ones(3), jnp.ones((6, 3))
        ),
        ValueError,
        r"sam_value_and_grad: with microbatches=4, every leaf of the positional batch arguments "
        r"needs a leading axis divisible by 4, got shape \(6, 3\)",
    ),
    HostileInput(
        "SAM m and microbatches not dividing the batch (trace time)",
        lambda: sharpax.microbatched_value_and_grad(lambda w, x: jnp.sum(w * x), 4)(
            jnp.ones(3), jnp.ones((6, 3))
        ),
        ValueError,
        r"microbatched_value_and_grad: with microbatches=4, .*divisible by 4, got shape \(6, 3\)",
    ),
    HostileInput(
        "integer aux averaged over microbatches",
        lambda: sharpax.sam_value_and_grad(
            lambda w, x: (jnp.sum(x @ w), jnp.sum(x > 0)), microbatches=2, has_aux=True
        )(jnp.ones(3), jnp.ones((6, 3))),
        TypeError,
        r"sam_value_and_grad: with microbatches=2, aux is averaged .* got int32 at ",
    ),
    HostileInput(
        "SAM loss_scale as a number",
        lambda: sharpax.sam(sharpax.adam(), loss_scale=2.0**15),
        TypeError,
        r"sam: loss_scale must be None or a DynamicLossScale \(sharpax.dynamic_loss_scale\(\)\)",
    ),
    HostileInput(
        "dynamic loss scale below its floor",
        lambda: sharpax.dynamic_loss_scale(0.5, min_loss_scale=1.0),
        ValueError,
        r"dynamic_loss_scale: initial_scale must be >= min_loss_scale \(1.0\), got 0.5",
    ),
    HostileInput(
        "current_loss_scale of a state without one",
        lambda: sharpax.current_loss_scale(sharpax.sam(sharpax.adam()).init(PARAMS)),
        ValueError,
        r"current_loss_scale: expected exactly one LossScaleState in the optimizer state .*found 0",
    ),
    HostileInput(
        "momentum-SAM around a string, not an optimizer",
        lambda: sharpax.momentum_sam("sgd", rho=0.3),
        TypeError,
        r"momentum_sam: base_optimizer must be an optax.GradientTransformation .*got 'sgd'",
    ),
    HostileInput(
        "momentum-SAM over a base with two momentum buffers",
        lambda: sharpax.momentum_sam(
            optax.chain(optax.trace(0.5), sharpax.sgd(0.1, momentum=0.9)), rho=0.3
        ).init(PARAMS),
        ValueError,
        r"momentum_sam: the base optimizer's state holds 2 first-moment buffers",
    ),
    HostileInput(
        "momentum-SAM update without params",
        lambda: sharpax.momentum_sam(sharpax.adamw(), rho=0.5).update(
            GRADS, sharpax.momentum_sam(sharpax.adamw(), rho=0.5).init(PARAMS)
        ),
        ValueError,
        r"momentum_sam: update needs the params \(the perturbed weights",
    ),
    HostileInput(
        "momentum_sam_params of a state with no momentum-SAM",
        lambda: sharpax.momentum_sam_params(sharpax.adam().init(PARAMS), PARAMS),
        ValueError,
        r"momentum_sam_params: expected exactly one MomentumSAMState in the optimizer state, found 0",
    ),
    HostileInput(
        "AE-SAM total_steps 0",
        lambda: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=0),
        ValueError,
        r"ae_sam: total_steps must be an integer >= 1, got 0",
    ),
    HostileInput(
        "AE-SAM total_steps as a float",
        lambda: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=1e4),
        ValueError,
        r"ae_sam: total_steps must be an integer >= 1, got 10000.0",
    ),
    HostileInput(
        "AE-SAM threshold bound as a string",
        lambda: sharpax.ae_sam(sharpax.sgd(0.1), total_steps=10, lambda1="-1"),
        TypeError,
        r"ae_sam: lambda1 must be a real number or a schedule, got '-1'",
    ),
    HostileInput(
        "AE-SAM without grad_fn",
        lambda: _step(sharpax.ae_sam(sharpax.sgd(0.1), total_steps=10)),
        ValueError,
        r"ae_sam: update needs the second pass: call `tx.update\(grads, state, params, grad_fn=grad_fn\)`",
    ),
    HostileInput(
        "ae_sam_fraction of a state with no AE-SAM",
        lambda: sharpax.ae_sam_fraction(sharpax.sam(sharpax.adam()).init(PARAMS)),
        ValueError,
        r"ae_sam_fraction: expected exactly one AESAMState in the optimizer state, found 0",
    ),
    HostileInput(
        "untuned warmup around a string, not an optimizer",
        lambda: sharpax.with_untuned_warmup("adam"),
        TypeError,
        r"with_untuned_warmup: tx must be an optax.GradientTransformation .*got 'adam'",
    ),
    HostileInput(
        "Lookahead around an optimizer factory, not an optimizer",
        lambda: sharpax.lookahead(sharpax.adam),
        TypeError,
        r"lookahead: inner must be an optax.GradientTransformation",
    ),
    HostileInput(
        "Lookahead sync_period 0",
        lambda: sharpax.lookahead(sharpax.adam(), sync_period=0),
        ValueError,
        r"lookahead: sync_period must be an integer >= 1, got 0",
    ),
    HostileInput(
        "Lookahead alpha > 1",
        lambda: sharpax.lookahead(sharpax.adam(), alpha=1.5),
        ValueError,
        r"lookahead: alpha must be in \[0.0, 1.0\], got 1.5",
    ),
    HostileInput(
        "Lookahead unknown pullback mode",
        lambda: sharpax.lookahead(sharpax.adam(), pullback_momentum="yes"),
        ValueError,
        r"lookahead: pullback_momentum must be one of \('none', 'reset', 'pullback'\)",
    ),
    HostileInput(
        "lookahead_params of a state with no Lookahead",
        lambda: sharpax.lookahead_params(sharpax.adam().init(PARAMS), PARAMS),
        ValueError,
        r"lookahead_params: expected exactly one LookaheadState in the optimizer state, found 0",
    ),
]
