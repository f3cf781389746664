"""Twins of every `torch.optim.lr_scheduler` scheduler (2.13): `schedule(count)` is the rate torch uses
at its `count + 1`-th `optimizer.step()` when `scheduler.step()` follows each one.

Each twin takes torch's argument names and defaults, with the optimizer's base rate as the first
argument (`cyclic_lr` and `one_cycle_lr` set the rate themselves, from keywords), and returns an
`LRSchedule`, a schedule `count -> rate` (float32) usable wherever sharpax takes a learning rate.
`reduce_lr_on_plateau` is a transformation (the rate depends on a metric), `ReduceLROnPlateau` its
host-side form. See docs/porting_from_pytorch.md.
"""

from sharpax.lr_scheduler._compose import chained_scheduler as chained_scheduler
from sharpax.lr_scheduler._compose import sequential_lr as sequential_lr
from sharpax.lr_scheduler._cosine import cosine_annealing_lr as cosine_annealing_lr
from sharpax.lr_scheduler._cosine import (
    cosine_annealing_warm_restarts as cosine_annealing_warm_restarts,
)
from sharpax.lr_scheduler._cycles import cyclic_lr as cyclic_lr
from sharpax.lr_scheduler._cycles import one_cycle_lr as one_cycle_lr
from sharpax.lr_scheduler._decay import exponential_lr as exponential_lr
from sharpax.lr_scheduler._decay import lambda_lr as lambda_lr
from sharpax.lr_scheduler._decay import multi_step_lr as multi_step_lr
from sharpax.lr_scheduler._decay import multiplicative_lr as multiplicative_lr
from sharpax.lr_scheduler._decay import step_lr as step_lr
from sharpax.lr_scheduler._plateau import ReduceLROnPlateauState as ReduceLROnPlateauState
from sharpax.lr_scheduler._plateau import plateau_step as plateau_step
from sharpax.lr_scheduler._plateau import reduce_lr_on_plateau as reduce_lr_on_plateau
from sharpax.lr_scheduler._plateau_host import ReduceLROnPlateau as ReduceLROnPlateau
from sharpax.lr_scheduler._ramp import constant_lr as constant_lr
from sharpax.lr_scheduler._ramp import linear_lr as linear_lr
from sharpax.lr_scheduler._ramp import polynomial_lr as polynomial_lr
from sharpax.lr_scheduler._schedule import LRSchedule as LRSchedule

__all__ = [
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "exponential_lr",
    "lambda_lr",
    "linear_lr",
    "LRSchedule",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "plateau_step",
    "polynomial_lr",
    "reduce_lr_on_plateau",
    "ReduceLROnPlateau",
    "ReduceLROnPlateauState",
    "sequential_lr",
    "step_lr",
]
