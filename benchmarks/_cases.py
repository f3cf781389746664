"""The optimizers benchmarked: each sharpax optimizer next to its optax namesake and its torch twin."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import optax

import sharpax


@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer: how to build it in sharpax, optax and (optionally) torch."""

    id: str
    sharpax: Callable[[], Any]
    optax: Callable[[], Any]
    torch: Callable[[list], Any] | None  # params -> torch optimizer
    note: str = ""


def _torch(name: str, **kwargs: Any) -> Callable[[list], Any]:
    def build(params: list) -> Any:
        import torch

        return getattr(torch.optim, name)(params, foreach=True, **kwargs)

    return build


def _torch_lion(**kwargs: Any) -> Callable[[list], Any]:
    def build(params: list) -> Any:
        from lion_pytorch import Lion

        return Lion(params, **kwargs)  # lion-pytorch has no foreach path

    return build


# Same hyperparameters on all three sides, torch's defaults where sharpax follows them. The optax anchor is
# the namesake; where its rule differs (eps placement, momentum schedule) the op count is still comparable.
CASES: list[Case] = [
    Case("sgd", lambda: sharpax.sgd(1e-2), lambda: optax.sgd(1e-2), _torch("SGD", lr=1e-2)),
    Case(
        "sgd_momentum",
        lambda: sharpax.sgd(1e-2, momentum=0.9),
        lambda: optax.sgd(1e-2, momentum=0.9),
        _torch("SGD", lr=1e-2, momentum=0.9),
    ),
    Case("adam", lambda: sharpax.adam(1e-3), lambda: optax.adam(1e-3), _torch("Adam", lr=1e-3)),
    Case(
        "adamw",
        lambda: sharpax.adamw(1e-3, weight_decay=1e-2),
        lambda: optax.adamw(1e-3, weight_decay=1e-2),
        _torch("AdamW", lr=1e-3, weight_decay=1e-2),
    ),
    Case(
        "amsgrad",
        lambda: sharpax.adam(1e-3, amsgrad=True),
        lambda: optax.amsgrad(1e-3),
        _torch("Adam", lr=1e-3, amsgrad=True),
    ),
    Case(
        "adagrad",
        lambda: sharpax.adagrad(1e-2),
        lambda: optax.adagrad(1e-2),
        _torch("Adagrad", lr=1e-2),
    ),
    Case(
        "adadelta",
        lambda: sharpax.adadelta(1.0),
        lambda: optax.adadelta(1.0),
        _torch("Adadelta", lr=1.0),
    ),
    Case(
        "rmsprop",
        lambda: sharpax.rmsprop(1e-2),
        lambda: optax.rmsprop(1e-2, decay=0.99, eps_in_sqrt=False),
        _torch("RMSprop", lr=1e-2),
    ),
    Case("nadam", lambda: sharpax.nadam(2e-3), lambda: optax.nadam(2e-3), _torch("NAdam", lr=2e-3)),
    Case("radam", lambda: sharpax.radam(1e-3), lambda: optax.radam(1e-3), _torch("RAdam", lr=1e-3)),
    Case(
        "adamax",
        lambda: sharpax.adamax(2e-3),
        lambda: optax.adamax(2e-3),
        _torch("Adamax", lr=2e-3),
    ),
    Case(
        "lion",
        lambda: sharpax.lion(1e-4),
        lambda: optax.lion(1e-4, weight_decay=0.0),
        _torch_lion(lr=1e-4),
        note="torch side is lion-pytorch (no foreach)",
    ),
    Case(
        "adafactor",
        lambda: sharpax.adafactor(1e-2),
        lambda: optax.adafactor(1e-2),
        _torch("Adafactor", lr=1e-2),
        note="optax's rule differs (factors the two largest dims from 128 on, no relative step)",
    ),
    Case(
        "muon_adamw",
        lambda: sharpax.muon_with_adamw(2e-2),
        lambda: optax.contrib.muon(2e-2),
        None,
        note="optax.contrib.muon (Adam on the non-matrices, its Newton-Schulz in the input dtype)",
    ),
    Case(
        "rprop",
        lambda: sharpax.rprop(1e-2),
        lambda: optax.rprop(1e-2),
        _torch("Rprop", lr=1e-2),
    ),
    Case(
        "asgd",
        lambda: sharpax.asgd(1e-2),
        lambda: optax.sgd(1e-2),
        _torch("ASGD", lr=1e-2),
        note="optax has no ASGD: the anchor is a plain SGD step (ASGD also averages the params)",
    ),
]

CASES_BY_ID = {c.id: c for c in CASES}
