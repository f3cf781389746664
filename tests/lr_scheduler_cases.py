"""The scheduler table: each sharpax twin next to the torch 2.13 scheduler it must reproduce, and the
torch runner that records torch's rates (and momenta) step by step.

Shared by `tests/references/make_lr_scheduler_goldens.py` (which writes the goldens) and
`tests/test_lr_scheduler.py`. torch is imported lazily, so importing this module never needs it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from sharpax import lr_scheduler as ls
from tests.references import GOLDEN_DIR

SCHEDULER_GOLDEN = GOLDEN_DIR / "lr_schedulers.npz"
PLATEAU_GOLDEN = GOLDEN_DIR / "lr_plateau.npz"
BASE_LR = 0.1
STEPS = 1200


@dataclasses.dataclass(frozen=True)
class SchedulerCase:
    """`torch`: a Python expression building torch's scheduler on `opt` (the names of
    `torch.optim.lr_scheduler` in scope); `make()`: the sharpax twin.

    torch's optimizer is SGD (momentum 0.9) with `lr=BASE_LR`, or Adam when `optimizer == "adam"`;
    `momentum`: also record its momentum (SGD) or beta_1 (Adam) and compare `make().momentum`.
    """

    id: str
    torch: str
    make: Callable[[], Any]
    steps: int = STEPS
    optimizer: str = "sgd"
    momentum: bool = False


def _f32(c):
    return c.astype(jnp.float32)


CASES: list[SchedulerCase] = [
    SchedulerCase(
        "lambda_traced",
        "LambdaLR(opt, lambda e: 1 / (1 + 0.01 * e))",
        lambda: ls.lambda_lr(BASE_LR, lambda c: 1 / (1 + 0.01 * _f32(c))),
    ),
    SchedulerCase(
        "lambda_host_table",
        "LambdaLR(opt, lambda e: 0.5 if e % 200 < 100 else 1.0)",
        lambda: ls.lambda_lr(BASE_LR, lambda e: 0.5 if e % 200 < 100 else 1.0, total_steps=STEPS),
    ),
    SchedulerCase(
        "multiplicative",
        "MultiplicativeLR(opt, lambda e: 0.995 if e < 600 else 1.002)",
        lambda: ls.multiplicative_lr(
            BASE_LR, lambda e: 0.995 if e < 600 else 1.002, total_steps=STEPS
        ),
    ),
    SchedulerCase(
        "step", "StepLR(opt, step_size=100, gamma=0.7)", lambda: ls.step_lr(BASE_LR, 100, 0.7)
    ),
    SchedulerCase("step_defaults", "StepLR(opt, step_size=30)", lambda: ls.step_lr(BASE_LR, 30)),
    SchedulerCase(
        "multi_step_zero_and_repeated",
        "MultiStepLR(opt, milestones=[800, 0, 300, 300], gamma=0.5)",
        lambda: ls.multi_step_lr(BASE_LR, [800, 0, 300, 300], gamma=0.5),
    ),
    SchedulerCase(
        "multi_step_defaults",
        "MultiStepLR(opt, milestones=[400, 900])",
        lambda: ls.multi_step_lr(BASE_LR, [400, 900]),
    ),
    SchedulerCase("constant_defaults", "ConstantLR(opt)", lambda: ls.constant_lr(BASE_LR)),
    SchedulerCase(
        "constant",
        "ConstantLR(opt, factor=0.3, total_iters=400)",
        lambda: ls.constant_lr(BASE_LR, factor=0.3, total_iters=400),
    ),
    SchedulerCase("linear_defaults", "LinearLR(opt)", lambda: ls.linear_lr(BASE_LR)),
    SchedulerCase(
        "linear_to_zero",
        "LinearLR(opt, start_factor=0.9, end_factor=0.0, total_iters=1000)",
        lambda: ls.linear_lr(BASE_LR, start_factor=0.9, end_factor=0.0, total_iters=1000),
    ),
    SchedulerCase(
        "exponential", "ExponentialLR(opt, gamma=0.995)", lambda: ls.exponential_lr(BASE_LR, 0.995)
    ),
    SchedulerCase(
        "exponential_growth",
        "ExponentialLR(opt, gamma=1.001)",
        lambda: ls.exponential_lr(BASE_LR, 1.001),
    ),
    SchedulerCase("polynomial_defaults", "PolynomialLR(opt)", lambda: ls.polynomial_lr(BASE_LR)),
    SchedulerCase(
        "polynomial_square",
        "PolynomialLR(opt, total_iters=900, power=2.0)",
        lambda: ls.polynomial_lr(BASE_LR, total_iters=900, power=2.0),
    ),
    SchedulerCase(
        "polynomial_sqrt",
        "PolynomialLR(opt, total_iters=1100, power=0.5)",
        lambda: ls.polynomial_lr(BASE_LR, total_iters=1100, power=0.5),
    ),
    SchedulerCase(
        "cosine_past_t_max",
        "CosineAnnealingLR(opt, T_max=300, eta_min=0.001)",
        lambda: ls.cosine_annealing_lr(BASE_LR, T_max=300, eta_min=0.001),
    ),
    SchedulerCase(
        "cosine_to_zero",
        "CosineAnnealingLR(opt, T_max=1000)",
        lambda: ls.cosine_annealing_lr(BASE_LR, T_max=1000),
    ),
    SchedulerCase(
        "warm_restarts_t_mult_2",
        "CosineAnnealingWarmRestarts(opt, T_0=50, T_mult=2, eta_min=1e-4)",
        lambda: ls.cosine_annealing_warm_restarts(BASE_LR, T_0=50, T_mult=2, eta_min=1e-4),
    ),
    SchedulerCase(
        "warm_restarts_t_mult_3",
        "CosineAnnealingWarmRestarts(opt, T_0=7, T_mult=3)",
        lambda: ls.cosine_annealing_warm_restarts(BASE_LR, T_0=7, T_mult=3),
    ),
    SchedulerCase(
        "warm_restarts_constant_period",
        "CosineAnnealingWarmRestarts(opt, T_0=100)",
        lambda: ls.cosine_annealing_warm_restarts(BASE_LR, T_0=100),
    ),
    SchedulerCase(
        "cyclic_triangular",
        "CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=150)",
        lambda: ls.cyclic_lr(base_lr=0.01, max_lr=0.1, step_size_up=150),
        momentum=True,
    ),
    SchedulerCase(
        "cyclic_triangular2_asymmetric",
        "CyclicLR(opt, base_lr=0.001, max_lr=0.1, step_size_up=40, step_size_down=160, "
        "mode='triangular2', base_momentum=0.7, max_momentum=0.95)",
        lambda: ls.cyclic_lr(
            base_lr=0.001,
            max_lr=0.1,
            step_size_up=40,
            step_size_down=160,
            mode="triangular2",
            base_momentum=0.7,
            max_momentum=0.95,
        ),
        momentum=True,
    ),
    SchedulerCase(
        "cyclic_exp_range",
        "CyclicLR(opt, base_lr=0.01, max_lr=0.2, step_size_up=100, mode='exp_range', gamma=0.998)",
        lambda: ls.cyclic_lr(
            base_lr=0.01, max_lr=0.2, step_size_up=100, mode="exp_range", gamma=0.998
        ),
        momentum=True,
    ),
    SchedulerCase(
        "cyclic_scale_fn_iterations",
        "CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=75, "
        "scale_fn=lambda x: 1 / (1 + 0.002 * x), scale_mode='iterations', cycle_momentum=False)",
        lambda: ls.cyclic_lr(
            base_lr=0.01,
            max_lr=0.1,
            step_size_up=75,
            scale_fn=lambda x: 1 / (1 + 0.002 * _f32(x)),
            scale_mode="iterations",
            cycle_momentum=False,
        ),
    ),
    SchedulerCase(
        "cyclic_adam_betas",
        "CyclicLR(opt, base_lr=0.001, max_lr=0.01, step_size_up=120, mode='triangular2')",
        lambda: ls.cyclic_lr(base_lr=0.001, max_lr=0.01, step_size_up=120, mode="triangular2"),
        optimizer="adam",
        momentum=True,
    ),
    SchedulerCase(
        "one_cycle_cos",
        "OneCycleLR(opt, max_lr=0.1, total_steps=1200)",
        lambda: ls.one_cycle_lr(max_lr=0.1, total_steps=1200),
        momentum=True,
    ),
    SchedulerCase(
        "one_cycle_linear",
        "OneCycleLR(opt, max_lr=0.3, total_steps=1001, pct_start=0.25, anneal_strategy='linear', "
        "div_factor=10.0, final_div_factor=100.0)",
        lambda: ls.one_cycle_lr(
            max_lr=0.3,
            total_steps=1001,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        steps=1001,
        momentum=True,
    ),
    SchedulerCase(
        "one_cycle_three_phase_cos",
        "OneCycleLR(opt, max_lr=0.1, epochs=12, steps_per_epoch=100, three_phase=True)",
        lambda: ls.one_cycle_lr(max_lr=0.1, epochs=12, steps_per_epoch=100, three_phase=True),
        momentum=True,
    ),
    SchedulerCase(
        "one_cycle_three_phase_linear",
        "OneCycleLR(opt, max_lr=1.0, total_steps=1050, pct_start=0.4, anneal_strategy='linear', "
        "three_phase=True, base_momentum=0.8, max_momentum=0.9)",
        lambda: ls.one_cycle_lr(
            max_lr=1.0,
            total_steps=1050,
            pct_start=0.4,
            anneal_strategy="linear",
            three_phase=True,
            base_momentum=0.8,
            max_momentum=0.9,
        ),
        steps=1050,
        momentum=True,
    ),
    SchedulerCase(
        "one_cycle_adam_betas",
        "OneCycleLR(opt, max_lr=0.01, total_steps=1000, pct_start=0.1)",
        lambda: ls.one_cycle_lr(max_lr=0.01, total_steps=1000, pct_start=0.1),
        steps=1000,
        optimizer="adam",
        momentum=True,
    ),
    SchedulerCase(
        "sequential_two_milestones",
        "SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=100), "
        "ExponentialLR(opt, gamma=0.998), CosineAnnealingLR(opt, T_max=250, eta_min=0.002)], "
        "milestones=[100, 600])",
        lambda: ls.sequential_lr(
            [
                ls.linear_lr(BASE_LR, start_factor=0.1, total_iters=100),
                ls.exponential_lr(BASE_LR, 0.998),
                ls.cosine_annealing_lr(BASE_LR, T_max=250, eta_min=0.002),
            ],
            milestones=[100, 600],
        ),
    ),
    SchedulerCase(
        "sequential_multiplicative_continues",
        "SequentialLR(opt, [StepLR(opt, step_size=100, gamma=0.5), "
        "MultiplicativeLR(opt, lambda e: 0.8 if e == 0 else 0.999)], milestones=[500])",
        lambda: ls.sequential_lr(
            [
                ls.step_lr(BASE_LR, 100, 0.5),
                ls.multiplicative_lr(
                    BASE_LR, lambda e: 0.8 if e == 0 else 0.999, total_steps=STEPS
                ),
            ],
            milestones=[500],
        ),
    ),
    SchedulerCase(
        "sequential_constant_then_restarts",
        "SequentialLR(opt, [ConstantLR(opt, factor=0.5, total_iters=50), "
        "CosineAnnealingWarmRestarts(opt, T_0=100, T_mult=2)], milestones=[200])",
        lambda: ls.sequential_lr(
            [
                ls.constant_lr(BASE_LR, factor=0.5, total_iters=50),
                ls.cosine_annealing_warm_restarts(BASE_LR, T_0=100, T_mult=2),
            ],
            milestones=[200],
        ),
    ),
    SchedulerCase(
        "chained_constant_exponential",
        "ChainedScheduler([ConstantLR(opt, factor=0.1, total_iters=50), "
        "ExponentialLR(opt, gamma=0.998)])",
        lambda: ls.chained_scheduler(
            [ls.constant_lr(BASE_LR, factor=0.1, total_iters=50), ls.exponential_lr(BASE_LR, 0.998)]
        ),
    ),
    SchedulerCase(
        "chained_warmup_cosine",
        "ChainedScheduler([LinearLR(opt, start_factor=0.01, total_iters=100), "
        "CosineAnnealingLR(opt, T_max=1200)])",
        lambda: ls.chained_scheduler(
            [
                ls.linear_lr(BASE_LR, start_factor=0.01, total_iters=100),
                ls.cosine_annealing_lr(BASE_LR, T_max=1200),
            ]
        ),
    ),
    SchedulerCase(
        "chained_four",
        "ChainedScheduler([MultiStepLR(opt, milestones=[200, 700], gamma=0.3), "
        "PolynomialLR(opt, total_iters=1100, power=1.5), "
        "MultiplicativeLR(opt, lambda e: 0.9995), StepLR(opt, step_size=250, gamma=0.9)])",
        lambda: ls.chained_scheduler(
            [
                ls.multi_step_lr(BASE_LR, [200, 700], gamma=0.3),
                ls.polynomial_lr(BASE_LR, total_iters=1100, power=1.5),
                ls.multiplicative_lr(BASE_LR, lambda e: 0.9995, total_steps=STEPS),
                ls.step_lr(BASE_LR, 250, 0.9),
            ]
        ),
    ),
]

CASES_BY_ID = {case.id: case for case in CASES}


def _torch_optimizer(kind: str):
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    if kind == "adam":
        return torch.optim.Adam([param], lr=BASE_LR, foreach=False)
    return torch.optim.SGD([param], lr=BASE_LR, momentum=0.9, foreach=False)


def torch_rates(case: SchedulerCase) -> tuple[np.ndarray, np.ndarray | None]:
    """torch's rate (and momentum) in effect at each of `case.steps + 1` optimizer steps (float64).

    Entry c is read before the (c + 1)-th `optimizer.step()`; `scheduler.step()` follows each one.
    The last entry is the rate after the final scheduler step (OneCycleLR defines it at
    `total_steps`).
    """
    import torch.optim.lr_scheduler as schedulers

    opt = _torch_optimizer(case.optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR and ChainedScheduler warn by design
        sched = eval(case.torch, {**vars(schedulers), "opt": opt})  # noqa: S307 - a fixed table
        rates, momenta = [], []
        for _ in range(case.steps + 1):
            group = opt.param_groups[0]
            rates.append(float(group["lr"]))
            momenta.append(float(group["betas"][0] if "betas" in group else group["momentum"]))
            if len(rates) <= case.steps:
                opt.step()
                sched.step()
    return np.asarray(rates), (np.asarray(momenta) if case.momentum else None)


# ---- ReduceLROnPlateau: metric sequences and configurations ----


@dataclasses.dataclass(frozen=True)
class PlateauCase:
    id: str
    kwargs: dict[str, Any]
    sequence: str  # a key of `plateau_sequences()`


def plateau_sequences(seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 metric sequences (torch is fed the same float32 values)."""
    rng = np.random.default_rng(seed)
    n = 300
    t = np.arange(n)
    noisy = 2.0 * np.exp(-t / 60) + 0.5 + 0.05 * rng.standard_normal(n)
    noisy[150] = np.nan  # torch counts a NaN as a bad epoch
    plateaus = np.repeat([1.0, 0.8, 0.8, 0.6, 0.6, 0.6, 0.59999, 0.3, 0.3, 0.3], 30)
    # Improving by 0.4e-4 relative per step, under the default threshold (1e-4): only every third
    # value beats `best` by the threshold (margins of 2e-5, far from float32 rounding); with patience 1
    # the two in between reduce the rate.
    creeping = 1.0 * (1 - 0.4e-4) ** t
    accuracy = np.minimum(0.95, 0.5 + 0.004 * t) + 0.01 * rng.standard_normal(n)
    return {
        name: np.asarray(values, np.float32)
        for name, values in dict(
            noisy=noisy, plateaus=plateaus, creeping=creeping, accuracy=accuracy
        ).items()
    }


PLATEAU_CASES: list[PlateauCase] = [
    PlateauCase("noisy_defaults", dict(lr=0.1), "noisy"),
    PlateauCase("noisy_patience_3", dict(lr=0.1, patience=3, factor=0.5), "noisy"),
    PlateauCase("plateaus_cooldown", dict(lr=0.1, patience=2, cooldown=5, factor=0.3), "plateaus"),
    PlateauCase("below_threshold", dict(lr=0.1, patience=1, factor=0.9), "creeping"),
    PlateauCase("below_threshold_abs", dict(lr=0.1, patience=1, threshold_mode="abs"), "creeping"),
    PlateauCase(
        "abs_mode", dict(lr=0.1, patience=2, threshold=0.05, threshold_mode="abs"), "noisy"
    ),
    PlateauCase("max_mode", dict(lr=0.1, mode="max", patience=3, factor=0.5), "accuracy"),
    PlateauCase(
        "max_abs",
        dict(lr=0.1, mode="max", patience=2, threshold=0.01, threshold_mode="abs"),
        "accuracy",
    ),
    PlateauCase("min_lr_reached", dict(lr=0.1, patience=1, factor=0.5, min_lr=0.004), "plateaus"),
    PlateauCase("eps_skips", dict(lr=2e-7, patience=1, factor=0.5, eps=1.5e-7), "plateaus"),
]


def torch_plateau_rates(case: PlateauCase, values: np.ndarray) -> np.ndarray:
    """torch's rate after each `scheduler.step(value)` (float64), `optimizer.step()` before each."""
    import torch

    kwargs = dict(case.kwargs)
    opt = _torch_optimizer("sgd")
    for group in opt.param_groups:
        group["lr"] = kwargs.pop("lr")
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for v in values:
        opt.step()
        sched.step(float(v))
        out.append(float(opt.param_groups[0]["lr"]))
    return np.asarray(out)
