"""The one table of optimizers that every battery of tests runs through.

Each case names a sharpax factory, representative keyword arguments, the torch.optim (or lion-pytorch)
class and keyword arguments that define the same update rule, and capability flags. `WRAPPERS` (at the
end) are the SAM-family and Lookahead configurations over table optimizers that the batteries also run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp

import sharpax
from sharpax import lr_scheduler as ls


@dataclasses.dataclass(frozen=True)
class OptimizerCase:
    """One optimizer configuration and its torch twin."""

    id: str
    make: Callable[..., Any]
    kwargs: dict[str, Any]
    # "torch.optim.Adam" or "lion_pytorch.Lion"; "torch.optim.Muon+torch.optim.AdamW" splits the params:
    # the 2-D ones (transposed, unless kwargs say layout="out_in") go to the first, with
    # torch_kwargs["matrices"], the others to the second, with torch_kwargs["others"].
    torch_class: str
    torch_kwargs: dict[str, Any]
    # which state-dtype options (mu_dtype, nu_dtype, accumulator_dtype) act on its state
    moment_dtypes: tuple[str, ...] = ()
    # A learning-rate factor `count -> float` (jnp-traceable): sharpax gets `lr * lr_schedule(count)`,
    # torch a `LambdaLR(lr_schedule)` stepped after every update; both see factor(0) at the first update.
    lr_schedule: Callable[[Any], Any] | None = None
    # The parity problem (`tests/references/torch_reference.py`): "default", or "matrices" (rectangular 2-D and
    # 3-D leaves, for the optimizers that are not elementwise).
    problem: str = "default"
    # Elementwise rules run the parity problem as one flat leaf (faster); the others need the tree.
    elementwise: bool = True
    # False where the learning rate does not scale the update (Rprop: the initial step size only).
    lr_scales_updates: bool = True
    # False where the update keeps changing with the step count past 10^7 (ASGD's step size,
    # Adafactor's relative step): the int32-limit test then checks saturation and finiteness only.
    stationary_late: bool = True
    # Per-param torch state entries also recorded in the goldens and compared (ASGD's "ax").
    torch_state: tuple[str, ...] = ()
    # (rtol, atol) for the torch parity, when not the float32 default (Muon: bfloat16 Newton-Schulz).
    parity_tolerance: tuple[float, float] | None = None
    # A torch scheduler that also cycles the momentum (SGD) or beta_1 (the Adam family): `scheduler()`
    # builds the sharpax twin, whose rate and `.momentum` replace learning_rate and momentum / b1;
    # `torch_scheduler` builds torch's on `opt` (the names of torch.optim.lr_scheduler in scope).
    scheduler: Callable[[], Any] | None = None
    torch_scheduler: str | None = None

    def build(self, **overrides: Any) -> Any:
        kwargs = {**self.kwargs, **overrides}
        if self.lr_schedule is not None and "learning_rate" not in overrides:
            base, factor = kwargs["learning_rate"], self.lr_schedule
            kwargs["learning_rate"] = lambda count: base * factor(count)
        if self.scheduler is not None and "learning_rate" not in overrides:
            schedule = self.scheduler()
            kwargs["learning_rate"] = schedule
            kwargs["momentum" if self.make is sharpax.sgd else "b1"] = schedule.momentum
        return self.make(**kwargs)


ADAM_DTYPES = ("mu_dtype", "nu_dtype")
MOMENTUM_DTYPE = ("accumulator_dtype",)  # the momentum buffer of sgd and rmsprop
NU_DTYPE = ("nu_dtype",)  # the second-moment statistics of rmsprop, adagrad, adadelta
MUON_ADAMW = "torch.optim.Muon+torch.optim.AdamW"
# Muon's Newton-Schulz runs in bfloat16 (both sides): it rounds its output to 8 significant bits, and
# a float32 accumulation in another order (another BLAS) can round an entry the other way: one bfloat16
# ulp, 2^-8 of the entry (|entries| <= 1), times lr * sqrt(4/3) = 0.023 per step. The same entry
# flipping at every one of the 50 steps would move a param by 50 * 0.023 * 2^-8 = 4.5e-3: the
# absolute tolerance. Measured here (same CPU kernels as the goldens): bit-identical Newton-Schulz
# outputs, 2e-7. A wrong rule (no Nesterov, another rate adjustment or layout, a bias correction)
# moves the params by 1e-2 or more within 50 steps.
MUON_TOLERANCE = (1e-5, 4.5e-3)

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
    # lr 0.5 > 1 / sqrt(t) from t = 5: the relative step's two branches.
    OptimizerCase(
        "adafactor",
        sharpax.adafactor,
        dict(learning_rate=0.5, weight_decay=0.02),
        "torch.optim.Adafactor",
        dict(lr=0.5, weight_decay=0.02),
        elementwise=False,
        stationary_late=False,
    ),
    # One learning rate for both groups (so that a zero rate stops everything; the option cases give
    # AdamW its own).
    OptimizerCase(
        "muon_adamw",
        sharpax.muon_with_adamw,
        dict(learning_rate=0.02, weight_decay=0.1, adamw_weight_decay=0.01),
        MUON_ADAMW,
        dict(matrices=dict(lr=0.02, weight_decay=0.1), others=dict(lr=0.02, weight_decay=0.01)),
        elementwise=False,
        parity_tolerance=MUON_TOLERANCE,
    ),
    OptimizerCase(
        "rprop",
        sharpax.rprop,
        dict(learning_rate=1e-2),
        "torch.optim.Rprop",
        dict(lr=1e-2),
        lr_scales_updates=False,
    ),
    # t0 = 10: the averaging starts within the 50 steps.
    OptimizerCase(
        "asgd",
        sharpax.asgd,
        dict(learning_rate=1e-2, lambd=1e-3, t0=10.0, weight_decay=0.1),
        "torch.optim.ASGD",
        dict(lr=1e-2, lambd=1e-3, t0=10.0, weight_decay=0.1),
        stationary_late=False,
        torch_state=("ax",),
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
    *[
        dataclasses.replace(case, elementwise=False, stationary_late=False, problem=problem)
        for case, problem in (
            (_case("adafactor_defaults", sharpax.adafactor, "torch.optim.Adafactor"), "default"),
            (
                # eps_1 = 1e-3 clamps the estimate of the small-gradient leaf b.
                _case(
                    "adafactor_options",
                    sharpax.adafactor,
                    "torch.optim.Adafactor",
                    learning_rate=1e-2,
                    beta2_decay=-0.5,
                    eps=(1e-3, 1e-2),
                    d=2.0,
                ),
                "default",
            ),
            (
                _case(
                    "adafactor_matrices",
                    sharpax.adafactor,
                    "torch.optim.Adafactor",
                    learning_rate=0.2,
                    weight_decay=0.1,
                ),
                "matrices",
            ),
        )
    ],
    *[
        OptimizerCase(
            id,
            sharpax.muon_with_adamw,
            kwargs,
            MUON_ADAMW,
            torch_kwargs,
            problem=problem,
            elementwise=False,
            parity_tolerance=MUON_TOLERANCE,
        )
        for id, kwargs, torch_kwargs, problem in (
            (
                "muon_adamw_defaults",
                dict(),
                dict(matrices=dict(), others=dict(lr=1e-3, weight_decay=0.1)),
                "default",
            ),
            (
                "muon_matrices_match_rms_adamw",
                dict(
                    learning_rate=0.01,
                    momentum=0.9,
                    nesterov=False,
                    adjust_lr_fn="match_rms_adamw",
                    adamw_learning_rate=3e-4,
                    adamw_weight_decay=0.0,
                ),
                dict(
                    matrices=dict(
                        lr=0.01, momentum=0.9, nesterov=False, adjust_lr_fn="match_rms_adamw"
                    ),
                    others=dict(lr=3e-4, weight_decay=0.0),
                ),
                "matrices",
            ),
            (
                # torch's own layout, and the classic cubic Newton-Schulz.
                "muon_matrices_out_in",
                dict(
                    learning_rate=0.02,
                    layout="out_in",
                    ns_coefficients=(1.5, -0.5, 0.0),
                    ns_steps=8,
                    eps=1e-5,
                    adamw_learning_rate=1e-2,
                ),
                dict(
                    matrices=dict(lr=0.02, ns_coefficients=(1.5, -0.5, 0.0), ns_steps=8, eps=1e-5),
                    others=dict(lr=1e-2, weight_decay=0.1),
                    transpose=False,
                ),
                "matrices",
            ),
        )
    ],
    dataclasses.replace(
        _case("rprop_defaults", sharpax.rprop, "torch.optim.Rprop"), lr_scales_updates=False
    ),
    dataclasses.replace(
        _case(
            "rprop_options",
            sharpax.rprop,
            "torch.optim.Rprop",
            learning_rate=0.02,
            etas=(0.3, 1.5),
            step_sizes=(1e-3, 0.05),
        ),
        lr_scales_updates=False,
    ),
    *[
        dataclasses.replace(case, stationary_late=False, torch_state=("ax",))
        for case in (
            _case("asgd_defaults", sharpax.asgd, "torch.optim.ASGD"),
            _case(
                "asgd_average_from_start",
                sharpax.asgd,
                "torch.optim.ASGD",
                learning_rate=0.05,
                lambd=0.01,
                alpha=0.5,
                t0=0.0,
            ),
        )
    ],
]


def warmup_then_decay(count: Any) -> Any:
    """Linear warmup over 10 steps from 0.1 (so factor(0) != factor(1)), then 0.95 ** (count - 9)."""
    count = jnp.asarray(count, jnp.float32)
    return jnp.where(count < 10, (count + 1) / 10, 0.95 ** (count - 9))


CASES_BY_NAME = {case.id: case for case in CASES}

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
] + [
    # ASGD computes each step size from the previous step's rate: the schedule arrives a step late.
    dataclasses.replace(CASES_BY_NAME[name], id=f"{name}_schedule", lr_schedule=warmup_then_decay)
    for name in ("adafactor", "asgd", "muon_adamw")
]


def _cycling(
    case: OptimizerCase, scheduler: Callable[[], Any], torch_scheduler: str
) -> OptimizerCase:
    return dataclasses.replace(case, scheduler=scheduler, torch_scheduler=torch_scheduler)


# torch's OneCycleLR and CyclicLR also set the momentum (SGD) or beta_1 (the Adam family) at every
# step: the sharpax twin's `.momentum` goes to `momentum` / `b1`.
MOMENTUM_CASES: list[OptimizerCase] = [
    _cycling(
        _case(
            "sgd_nesterov_one_cycle",
            sharpax.sgd,
            "torch.optim.SGD",
            learning_rate=0.1,
            momentum=0.9,
            nesterov=True,
        ),
        lambda: ls.one_cycle_lr(max_lr=0.1, total_steps=50),
        "OneCycleLR(opt, max_lr=0.1, total_steps=50)",
    ),
    _cycling(
        _case(
            "sgd_dampening_cyclic_exp_range",
            sharpax.sgd,
            "torch.optim.SGD",
            learning_rate=0.1,
            momentum=0.9,
            dampening=0.2,
        ),
        lambda: ls.cyclic_lr(
            base_lr=0.01, max_lr=0.1, step_size_up=10, mode="exp_range", gamma=0.99
        ),
        "CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=10, mode='exp_range', gamma=0.99)",
    ),
    _cycling(
        _case("adam_one_cycle_three_phase", sharpax.adam, "torch.optim.Adam", learning_rate=1e-2),
        lambda: ls.one_cycle_lr(max_lr=1e-2, total_steps=50, three_phase=True),
        "OneCycleLR(opt, max_lr=1e-2, total_steps=50, three_phase=True)",
    ),
    _cycling(
        _case(
            "adamw_cyclic_triangular2",
            sharpax.adamw,
            "torch.optim.AdamW",
            learning_rate=1e-2,
            weight_decay=0.1,
        ),
        lambda: ls.cyclic_lr(base_lr=1e-3, max_lr=1e-2, step_size_up=8, mode="triangular2"),
        "CyclicLR(opt, base_lr=1e-3, max_lr=1e-2, step_size_up=8, mode='triangular2')",
    ),
    _cycling(
        _case("nadam_one_cycle_linear", sharpax.nadam, "torch.optim.NAdam", learning_rate=1e-2),
        lambda: ls.one_cycle_lr(max_lr=1e-2, total_steps=50, anneal_strategy="linear"),
        "OneCycleLR(opt, max_lr=1e-2, total_steps=50, anneal_strategy='linear')",
    ),
    _cycling(
        _case("radam_one_cycle", sharpax.radam, "torch.optim.RAdam", learning_rate=1e-2),
        lambda: ls.one_cycle_lr(max_lr=1e-2, total_steps=50, pct_start=0.2),
        "OneCycleLR(opt, max_lr=1e-2, total_steps=50, pct_start=0.2)",
    ),
    _cycling(
        _case("adamax_cyclic", sharpax.adamax, "torch.optim.Adamax", learning_rate=1e-2),
        lambda: ls.cyclic_lr(base_lr=1e-3, max_lr=2e-2, step_size_up=12, step_size_down=5),
        "CyclicLR(opt, base_lr=1e-3, max_lr=2e-2, step_size_up=12, step_size_down=5)",
    ),
]

ALL_CASES: list[OptimizerCase] = CASES + OPTION_CASES + SCHEDULE_CASES + MOMENTUM_CASES
"""Every case with a torch twin (the goldens cover all of them); `CASES` is the battery's core set."""

CASES_BY_ID = {case.id: case for case in ALL_CASES}


# The wrappers (SAM family, Lookahead) over table optimizers, by name: each needs `grad_fn` in `update`,
# so the batteries train them on a loss (`reliability_common.train_with_grad_fn*`) rather than on a fixed
# gradient sequence. Every battery that runs the table's optimizers runs these too.
WRAPPERS: dict[str, Callable[[], Any]] = {
    "sam(adam)": lambda: sharpax.sam(sharpax.adam(1e-2), rho=0.05),
    "asam(sgd_momentum)": lambda: sharpax.sam(
        sharpax.sgd(0.1, momentum=0.9), rho=0.5, adaptive=True
    ),
    "gsam(adamw)": lambda: sharpax.gsam(sharpax.adamw(1e-2), rho=0.05, alpha=0.1),
    "friendly_sam(sgd_momentum)": lambda: sharpax.friendly_sam(
        sharpax.sgd(0.1, momentum=0.9), rho=0.05
    ),
    "wsam(adam)": lambda: sharpax.wsam(sharpax.adam(1e-2), 1e-2, rho=0.05, gamma=0.8),
    "bsam": lambda: sharpax.bsam(1e-2, num_data=64, rho=0.05),
    # A static scale of 1 (factor 1): the loss is not scaled here, but the counter still moves.
    "sam(adam, loss_scale)": lambda: sharpax.sam(
        sharpax.adam(1e-2),
        rho=0.05,
        loss_scale=sharpax.dynamic_loss_scale(1.0, period=3, factor=1.0),
    ),
    "lookahead(adamw)": lambda: sharpax.lookahead(sharpax.adamw(1e-2), sync_period=2),
    "lookahead(sam(radam))": lambda: sharpax.lookahead(
        sharpax.sam(sharpax.radam(1e-2), rho=0.05), sync_period=3, alpha=0.5
    ),
    "momentum_sam(sgd_momentum)": lambda: sharpax.momentum_sam(
        sharpax.sgd(0.1, momentum=0.9), rho=0.3
    ),
    "ae_sam(adamw)": lambda: sharpax.ae_sam(sharpax.adamw(1e-2), rho=0.05, total_steps=8),
}
