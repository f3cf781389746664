"""The one table of optimizers that every battery of tests runs through.

Each case names a sharpax factory, representative keyword arguments, the torch.optim (or lion-pytorch)
class and keyword arguments that define the same update rule, and capability flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import sharpax


@dataclasses.dataclass(frozen=True)
class OptimizerCase:
    """One optimizer configuration and its torch twin."""

    id: str
    make: Callable[..., Any]
    kwargs: dict[str, Any]
    torch_class: str  # "torch.optim.Adam" or "lion_pytorch.Lion"
    torch_kwargs: dict[str, Any]
    moment_dtypes: tuple[str, ...] = ()  # which of mu_dtype / nu_dtype the factory accepts

    def build(self, **overrides: Any) -> Any:
        return self.make(**{**self.kwargs, **overrides})


ADAM_DTYPES = ("mu_dtype", "nu_dtype")

CASES: list[OptimizerCase] = [
    OptimizerCase("sgd", sharpax.sgd, dict(learning_rate=0.1), "torch.optim.SGD", dict(lr=0.1)),
    OptimizerCase(
        "sgd_momentum_dampening_wd",
        sharpax.sgd,
        dict(learning_rate=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
        "torch.optim.SGD",
        dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
    ),
    OptimizerCase(
        "sgd_nesterov",
        sharpax.sgd,
        dict(learning_rate=0.1, momentum=0.9, nesterov=True),
        "torch.optim.SGD",
        dict(lr=0.1, momentum=0.9, nesterov=True),
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
    ),
    OptimizerCase(
        "adadelta",
        sharpax.adadelta,
        dict(learning_rate=1.0, rho=0.9, weight_decay=0.1),
        "torch.optim.Adadelta",
        dict(lr=1.0, rho=0.9, weight_decay=0.1),
    ),
    OptimizerCase(
        "rmsprop", sharpax.rmsprop, dict(learning_rate=1e-2), "torch.optim.RMSprop", dict(lr=1e-2)
    ),
    OptimizerCase(
        "rmsprop_centered_momentum_wd",
        sharpax.rmsprop,
        dict(learning_rate=1e-2, momentum=0.9, centered=True, weight_decay=0.1),
        "torch.optim.RMSprop",
        dict(lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1),
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

CASES_BY_ID = {case.id: case for case in CASES}
