"""Learning-rate (and other hyperparameter) schedules: pure functions of the step count.

A schedule maps the update count (0 at the first update) to a float32 value; it is jit- and vmap-able
and can be passed wherever sharpax accepts a `ScalarOrSchedule`.
"""

from sharpax.schedules._cyclic import cyclic as cyclic
from sharpax.schedules._cyclic import one_cycle as one_cycle
from sharpax.schedules._decay import warmup_cosine_decay as warmup_cosine_decay
from sharpax.schedules._decay import warmup_exponential_decay as warmup_exponential_decay
from sharpax.schedules._decay import warmup_inverse_sqrt_decay as warmup_inverse_sqrt_decay
from sharpax.schedules._decay import warmup_linear_decay as warmup_linear_decay
from sharpax.schedules._decay import warmup_polynomial_decay as warmup_polynomial_decay
from sharpax.schedules._decay import warmup_stable_decay as warmup_stable_decay
from sharpax.schedules._hyperparams import current_hyperparams as current_hyperparams
from sharpax.schedules._hyperparams import current_learning_rate as current_learning_rate
from sharpax.schedules._hyperparams import inject_hyperparams as inject_hyperparams
from sharpax.schedules._hyperparams import set_hyperparams as set_hyperparams
from sharpax.schedules._join import join_schedules as join_schedules
from sharpax.schedules._join import lr_proportional_rho as lr_proportional_rho
from sharpax.schedules._join import multiply_schedules as multiply_schedules
from sharpax.schedules._untuned import ScaleByScheduleState as ScaleByScheduleState
from sharpax.schedules._untuned import scale_by_schedule as scale_by_schedule
from sharpax.schedules._untuned import untuned_exponential_warmup as untuned_exponential_warmup
from sharpax.schedules._untuned import untuned_linear_warmup as untuned_linear_warmup
from sharpax.schedules._untuned import with_untuned_warmup as with_untuned_warmup
from sharpax.schedules._warmup import exponential_warmup as exponential_warmup
from sharpax.schedules._warmup import linear_warmup as linear_warmup
from sharpax.schedules._warmup import noam_schedule as noam_schedule

__all__ = [
    "current_hyperparams",
    "current_learning_rate",
    "cyclic",
    "exponential_warmup",
    "inject_hyperparams",
    "join_schedules",
    "linear_warmup",
    "lr_proportional_rho",
    "multiply_schedules",
    "noam_schedule",
    "one_cycle",
    "scale_by_schedule",
    "ScaleByScheduleState",
    "set_hyperparams",
    "untuned_exponential_warmup",
    "untuned_linear_warmup",
    "warmup_cosine_decay",
    "warmup_exponential_decay",
    "warmup_inverse_sqrt_decay",
    "warmup_linear_decay",
    "warmup_polynomial_decay",
    "warmup_stable_decay",
    "with_untuned_warmup",
]
