"""The one table of optimizers that every battery of tests runs through.

Each case names a sharpax factory, representative keyword arguments, the torch.optim (or lion-pytorch)
class and keyword arguments that define the same update rule, and capability flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

import sharpax


@dataclasses.dataclass(frozen=True)
class OptimizerCase:
    """One optimizer configuration and its torch twin."""

    id: str
    make: Callable[..., Any]
    kwargs: dict[str, Any]
    torch_class: str  # "torch.optim.Adam" or "lion_pytorch.Lion"
    torch_kwargs: dict[str, Any]
    moment_dtypes: tuple[
        str, ...
    ] = ()  # which state-dtype options (mu_dtype, ...) act on its state
    # A learning-rate factor `count -> float` (jnp-traceable): sharpax gets `lr * lr_schedule(count)`,
    # torch a `LambdaLR(lr_schedule)` stepped after every update; both see factor(0) at the first update.
    lr_schedule: Callable[[Any], Any] | None = None

    def build(self, **overrides: Any) -> Any:
        kwargs = {**self.kwargs, **overrides}
        if self.lr_schedule is not None and "learning_rate" not in overrides:
            base, factor = kwargs["learning_rate"], self.lr_schedule
            kwargs["learning_rate"] = lambda count: base * factor(count)
        return self.make(**kwargs)


ADAM_DTYPES = ("mu_dtype", "nu_dtype")
MOMENTUM_DTYPE = ("accumulator_dtype",)  # the momentum buffer of sgd and rmsprop
NU_DTYPE = ("nu_dtype",)  # the second-moment statistics of rmsprop, adagrad, adadelta

CASES: list[OptimizerCase] = [
    OptimizerCase("sgd", sharpax.sgd, dict(learning_rate=0.1), "torch.optim.SGD", dict(lr=0.1)),
    OptimizerCase(
        "sgd_momentum_dampening_wd",
        sharpax.sgd,
        dict(learning_rate=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
        "torch.optim.SGD",
        dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
        MOMENTUM_DTYPE,
    ),
    OptimizerCase(
        "sgd_nesterov",
        sharpax.sgd,
        dict(learning_rate=0.1, momentum=0.9, nesterov=True),
        "torch.optim.SGD",
        dict(lr=0.1, momentum=0.9, nesterov=True),
        MOMENTUM_DTYPE,
    ),
    OptimizerCase(
        "adam",
        sharpax.adam,
        dict(learning_rate=1e-2),
        "torch.optim.Adam",
        dict(lr=1e-2),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "adam_l2_amsgrad",
        sharpax.adam,
        dict(learning_rate=1e-2, weight_decay=0.1, amsgrad=True),
        "torch.optim.Adam",
        dict(lr=1e-2, weight_decay=0.1, amsgrad=True),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "adamw",
        sharpax.adamw,
        dict(learning_rate=1e-2, weight_decay=0.1),
        "torch.optim.AdamW",
        dict(lr=1e-2, weight_decay=0.1),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "adamw_amsgrad",
        sharpax.adamw,
        dict(learning_rate=1e-2, amsgrad=True),
        "torch.optim.AdamW",
        dict(lr=1e-2, amsgrad=True),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "adagrad",
        sharpax.adagrad,
        dict(learning_rate=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5),
        "torch.optim.Adagrad",
        dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5),
        NU_DTYPE,
    ),
    OptimizerCase(
        "adadelta",
        sharpax.adadelta,
        dict(learning_rate=1.0, rho=0.9, weight_decay=0.1),
        "torch.optim.Adadelta",
        dict(lr=1.0, rho=0.9, weight_decay=0.1),
        NU_DTYPE,
    ),
    OptimizerCase(
        "rmsprop",
        sharpax.rmsprop,
        dict(learning_rate=1e-2),
        "torch.optim.RMSprop",
        dict(lr=1e-2),
        NU_DTYPE,
    ),
    OptimizerCase(
        "rmsprop_centered_momentum_wd",
        sharpax.rmsprop,
        dict(learning_rate=1e-2, momentum=0.9, centered=True, weight_decay=0.1),
        "torch.optim.RMSprop",
        dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1),
        NU_DTYPE + MOMENTUM_DTYPE,
    ),
    OptimizerCase(
        "nadam",
        sharpax.nadam,
        dict(learning_rate=1e-2),
        "torch.optim.NAdam",
        dict(lr=1e-2),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "nadam_l2",
        sharpax.nadam,
        dict(learning_rate=1e-2, weight_decay=0.1),
        "torch.optim.NAdam",
        dict(lr=1e-2, weight_decay=0.1),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "nadamw",
        sharpax.nadam,
        dict(learning_rate=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        "torch.optim.NAdam",
        dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "radam",
        sharpax.radam,
        dict(learning_rate=1e-2),
        "torch.optim.RAdam",
        dict(lr=1e-2),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "radamw",
        sharpax.radam,
        dict(learning_rate=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        "torch.optim.RAdam",
        dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "adamax",
        sharpax.adamax,
        dict(learning_rate=1e-2, weight_decay=0.1),
        "torch.optim.Adamax",
        dict(lr=1e-2, weight_decay=0.1),
        ADAM_DTYPES,
    ),
    OptimizerCase(
        "lion",
        sharpax.lion,
        dict(learning_rate=1e-3, weight_decay=0.1),
        "lion_pytorch.Lion",
        dict(lr=1e-3, weight_decay=0.1),
        ("mu_dtype",),
    ),
]


def _case(id: str, make: Callable[..., Any], torch_class: str, **kwargs: Any) -> OptimizerCase:
    """A case whose torch kwargs follow from the sharpax ones (`learning_rate` -> `lr`, betas paired)."""
    rename = {"learning_rate": "lr", "decay": "alpha"}
    torch_kwargs = {rename.get(k, k): v for k, v in kwargs.items() if k not in ("b1", "b2")}
    if "b1" in kwargs or "b2" in kwargs:
        defaults = (0.9, 0.99) if make is sharpax.lion else (0.9, 0.999)
        torch_kwargs["betas"] = (kwargs.get("b1", defaults[0]), kwargs.get("b2", defaults[1]))
    dtypes = {sharpax.lion: ("mu_dtype",), sharpax.adam: ADAM_DTYPES, sharpax.adamw: ADAM_DTYPES}
    dtypes |= {sharpax.nadam: ADAM_DTYPES, sharpax.radam: ADAM_DTYPES, sharpax.adamax: ADAM_DTYPES}
    dtypes |= {sharpax.rmsprop: NU_DTYPE, sharpax.adagrad: NU_DTYPE, sharpax.adadelta: NU_DTYPE}
    if make is sharpax.sgd and kwargs.get("momentum"):
        dtypes[sharpax.sgd] = MOMENTUM_DTYPE
    if make is sharpax.rmsprop and kwargs.get("momentum"):
        dtypes[sharpax.rmsprop] = NU_DTYPE + MOMENTUM_DTYPE
    return OptimizerCase(id, make, kwargs, torch_class, torch_kwargs, dtypes.get(make, ()))


# Defaults (sharpax's defaults must be torch's) and the option combinations not covered by CASES.
OPTION_CASES: list[OptimizerCase] = [
    _case("sgd_momentum", sharpax.sgd, "torch.optim.SGD", learning_rate=0.05, momentum=0.9),
    _case("sgd_weight_decay", sharpax.sgd, "torch.optim.SGD", learning_rate=0.1, weight_decay=0.1),
    _case(
        "sgd_nesterov_weight_decay",
        sharpax.sgd,
        "torch.optim.SGD",
        learning_rate=0.05,
        momentum=0.5,
        nesterov=True,
        weight_decay=0.1,
    ),
    _case("adam_defaults", sharpax.adam, "torch.optim.Adam"),
    _case("adam_amsgrad", sharpax.adam, "torch.optim.Adam", learning_rate=1e-2, amsgrad=True),
    _case(
        "adam_betas_eps",
        sharpax.adam,
        "torch.optim.Adam",
        learning_rate=1e-2,
        b1=0.5,
        b2=0.9,
        eps=1e-4,
    ),
    _case("adam_b2_9999", sharpax.adam, "torch.optim.Adam", learning_rate=1e-2, b2=0.9999),
    _case("adamw_defaults", sharpax.adamw, "torch.optim.AdamW"),
    _case(
        "adamw_amsgrad_weight_decay",
        sharpax.adamw,
        "torch.optim.AdamW",
        learning_rate=1e-2,
        weight_decay=0.5,
        amsgrad=True,
    ),
    _case("adagrad_defaults", sharpax.adagrad, "torch.optim.Adagrad"),
    _case(
        "adagrad_lr_decay", sharpax.adagrad, "torch.optim.Adagrad", learning_rate=0.1, lr_decay=0.1
    ),
    _case(
        "adagrad_initial_accumulator_eps",
        sharpax.adagrad,
        "torch.optim.Adagrad",
        learning_rate=0.1,
        initial_accumulator_value=0.1,
        eps=1e-3,
    ),
    _case("adadelta_defaults", sharpax.adadelta, "torch.optim.Adadelta"),
    _case(
        "adadelta_rho_eps",
        sharpax.adadelta,
        "torch.optim.Adadelta",
        learning_rate=0.5,
        rho=0.5,
        eps=1e-4,
    ),
    _case("rmsprop_defaults", sharpax.rmsprop, "torch.optim.RMSprop"),
    _case(
        "rmsprop_centered",
        sharpax.rmsprop,
        "torch.optim.RMSprop",
        learning_rate=1e-2,
        centered=True,
    ),
    _case(
        "rmsprop_momentum_decay",
        sharpax.rmsprop,
        "torch.optim.RMSprop",
        learning_rate=1e-2,
        momentum=0.5,
        decay=0.9,
    ),
    _case(
        "rmsprop_weight_decay", sharpax.rmsprop, "torch.optim.RMSprop", weight_decay=0.1, eps=1e-4
    ),
    _case("nadam_defaults", sharpax.nadam, "torch.optim.NAdam"),
    _case(
        "nadam_momentum_decay",
        sharpax.nadam,
        "torch.optim.NAdam",
        learning_rate=1e-2,
        momentum_decay=0.1,
        b1=0.8,
    ),
    _case("radam_defaults", sharpax.radam, "torch.optim.RAdam"),
    _case("radam_l2", sharpax.radam, "torch.optim.RAdam", learning_rate=1e-2, weight_decay=0.1),
    # b2 = 0.9999: rho_5 = 4.9996, just below torch's threshold, where float32 cancellation in rho_t
    # used to swamp the decision; b2 = 0.9: a short rho_inf = 19, the rectifier far from 1.
    _case("radam_b2_9999", sharpax.radam, "torch.optim.RAdam", learning_rate=1e-2, b2=0.9999),
    _case("radam_b2_9", sharpax.radam, "torch.optim.RAdam", learning_rate=1e-2, b1=0.8, b2=0.9),
    _case("adamax_defaults", sharpax.adamax, "torch.optim.Adamax"),
    _case("adamax_betas", sharpax.adamax, "torch.optim.Adamax", learning_rate=1e-2, b1=0.5, b2=0.9),
    _case("lion_defaults", sharpax.lion, "lion_pytorch.Lion"),
    _case("lion_betas", sharpax.lion, "lion_pytorch.Lion", learning_rate=1e-2, b1=0.5, b2=0.9),
]


def warmup_then_decay(count: Any) -> Any:
    """Linear warmup over 10 steps from 0.1 (so factor(0) != factor(1)), then 0.95 ** (count - 9)."""
    count = jnp.asarray(count, jnp.float32)
    return jnp.where(count < 10, (count + 1) / 10, 0.95 ** (count - 9))


# Learning-rate schedules: torch's LambdaLR pins down which count the first update sees.
SCHEDULE_CASES: list[OptimizerCase] = [
    dataclasses.replace(case, id=f"{case.id}_schedule", lr_schedule=warmup_then_decay)
    for case in (
        _case("sgd_momentum", sharpax.sgd, "torch.optim.SGD", learning_rate=0.1, momentum=0.9),
        _case("adam", sharpax.adam, "torch.optim.Adam", learning_rate=1e-2),
        _case("adamw", sharpax.adamw, "torch.optim.AdamW", learning_rate=1e-2, weight_decay=0.5),
        _case(
            "adagrad_lr_decay",
            sharpax.adagrad,
            "torch.optim.Adagrad",
            learning_rate=0.1,
            lr_decay=0.1,
        ),
        _case("lion", sharpax.lion, "lion_pytorch.Lion", learning_rate=1e-2, weight_decay=0.5),
    )
]

ALL_CASES: list[OptimizerCase] = CASES + OPTION_CASES + SCHEDULE_CASES
"""Every case with a torch twin (the goldens cover all of them); `CASES` is the battery's core set."""

CASES_BY_ID = {case.id: case for case in ALL_CASES}
