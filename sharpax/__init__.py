"""sharpax: JAX optimizers in the optax style, with SAM, Lookahead, warmup schedules and torch-exact rules."""

from optax import chain as chain

from sharpax import lr_scheduler as lr_scheduler
from sharpax import schedules as schedules
from sharpax import transforms as transforms
from sharpax import wrappers as wrappers
from sharpax._apply import apply_updates as apply_updates
from sharpax.schedules import current_hyperparams as current_hyperparams
from sharpax.schedules import current_learning_rate as current_learning_rate
from sharpax.schedules import cyclic as cyclic
from sharpax.schedules import exponential_warmup as exponential_warmup
from sharpax.schedules import inject_hyperparams as inject_hyperparams
from sharpax.schedules import join_schedules as join_schedules
from sharpax.schedules import linear_warmup as linear_warmup
from sharpax.schedules import multiply_by_schedule as multiply_by_schedule
from sharpax.schedules import multiply_schedules as multiply_schedules
from sharpax.schedules import noam_schedule as noam_schedule
from sharpax.schedules import one_cycle as one_cycle
from sharpax.schedules import scale_schedule as scale_schedule
from sharpax.schedules import set_hyperparams as set_hyperparams
from sharpax.schedules import untuned_exponential_warmup as untuned_exponential_warmup
from sharpax.schedules import untuned_linear_warmup as untuned_linear_warmup
from sharpax.schedules import warmup_cosine_decay as warmup_cosine_decay
from sharpax.schedules import warmup_exponential_decay as warmup_exponential_decay
from sharpax.schedules import warmup_inverse_sqrt_decay as warmup_inverse_sqrt_decay
from sharpax.schedules import warmup_linear_decay as warmup_linear_decay
from sharpax.schedules import warmup_polynomial_decay as warmup_polynomial_decay
from sharpax.schedules import warmup_stable_decay as warmup_stable_decay
from sharpax.schedules import with_untuned_warmup as with_untuned_warmup
from sharpax.transforms import adadelta as adadelta
from sharpax.transforms import adafactor as adafactor
from sharpax.transforms import adagrad as adagrad
from sharpax.transforms import adam as adam
from sharpax.transforms import adamax as adamax
from sharpax.transforms import adamw as adamw
from sharpax.transforms import asgd as asgd
from sharpax.transforms import asgd_averaged_params as asgd_averaged_params
from sharpax.transforms import lion as lion
from sharpax.transforms import muon as muon
from sharpax.transforms import muon_with_adamw as muon_with_adamw
from sharpax.transforms import nadam as nadam
from sharpax.transforms import radam as radam
from sharpax.transforms import rmsprop as rmsprop
from sharpax.transforms import rprop as rprop
from sharpax.transforms import sgd as sgd
from sharpax.wrappers import LookaheadState as LookaheadState
from sharpax.wrappers import gsam as gsam
from sharpax.wrappers import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers import lookahead as lookahead
from sharpax.wrappers import lookahead_params as lookahead_params
from sharpax.wrappers import looksam as looksam
from sharpax.wrappers import periodic_sam as periodic_sam
from sharpax.wrappers import ranger as ranger
from sharpax.wrappers import sam as sam
from sharpax.wrappers import sam_value_and_grad as sam_value_and_grad

__version__ = "0.1.0"

__all__ = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "apply_updates",
    "asgd",
    "asgd_averaged_params",
    "chain",
    "current_hyperparams",
    "current_learning_rate",
    "cyclic",
    "exponential_warmup",
    "gsam",
    "gsam_value_and_grad",
    "inject_hyperparams",
    "join_schedules",
    "linear_warmup",
    "lion",
    "lookahead",
    "lookahead_params",
    "LookaheadState",
    "looksam",
    "lr_scheduler",
    "multiply_by_schedule",
    "multiply_schedules",
    "muon",
    "muon_with_adamw",
    "nadam",
    "noam_schedule",
    "one_cycle",
    "periodic_sam",
    "radam",
    "ranger",
    "rmsprop",
    "rprop",
    "sam",
    "sam_value_and_grad",
    "scale_schedule",
    "schedules",
    "set_hyperparams",
    "sgd",
    "transforms",
    "untuned_exponential_warmup",
    "untuned_linear_warmup",
    "warmup_cosine_decay",
    "warmup_exponential_decay",
    "warmup_inverse_sqrt_decay",
    "warmup_linear_decay",
    "warmup_polynomial_decay",
    "warmup_stable_decay",
    "with_untuned_warmup",
    "wrappers",
]
