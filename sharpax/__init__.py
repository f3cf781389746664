"""sharpax: JAX optimizers in the optax style, with SAM, Lookahead, warmup schedules and torch-exact rules.

Every public name of the subpackages (`transforms`, `wrappers`, `schedules`, `sharpness`) is re-exported
here.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from optax import chain as chain

from sharpax import lr_scheduler as lr_scheduler
from sharpax import schedules as schedules
from sharpax import sharpness as sharpness
from sharpax import transforms as transforms
from sharpax import wrappers as wrappers
from sharpax._apply import apply_updates as apply_updates
from sharpax.lr_scheduler import ReduceLROnPlateauState as ReduceLROnPlateauState
from sharpax.schedules import ScaleByScheduleState as ScaleByScheduleState
from sharpax.schedules import current_hyperparams as current_hyperparams
from sharpax.schedules import current_learning_rate as current_learning_rate
from sharpax.schedules import cyclic as cyclic
from sharpax.schedules import exponential_warmup as exponential_warmup
from sharpax.schedules import inject_hyperparams as inject_hyperparams
from sharpax.schedules import join_schedules as join_schedules
from sharpax.schedules import linear_warmup as linear_warmup
from sharpax.schedules import lr_proportional_rho as lr_proportional_rho
from sharpax.schedules import multiply_schedules as multiply_schedules
from sharpax.schedules import noam_schedule as noam_schedule
from sharpax.schedules import one_cycle as one_cycle
from sharpax.schedules import scale_by_schedule as scale_by_schedule
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
from sharpax.sharpness import filter_normalized_direction as filter_normalized_direction
from sharpax.sharpness import hessian_eigenvalues as hessian_eigenvalues
from sharpax.sharpness import hessian_spectrum as hessian_spectrum
from sharpax.sharpness import hessian_trace as hessian_trace
from sharpax.sharpness import loss_landscape as loss_landscape
from sharpax.sharpness import sam_sharpness as sam_sharpness
from sharpax.sharpness import spectral_density as spectral_density
from sharpax.transforms import RealImag as RealImag
from sharpax.transforms import ScaleByAdadeltaState as ScaleByAdadeltaState
from sharpax.transforms import ScaleByAdafactorState as ScaleByAdafactorState
from sharpax.transforms import ScaleByAdagradState as ScaleByAdagradState
from sharpax.transforms import ScaleByAdamaxState as ScaleByAdamaxState
from sharpax.transforms import ScaleByAdamState as ScaleByAdamState
from sharpax.transforms import ScaleByAsgdState as ScaleByAsgdState
from sharpax.transforms import ScaleByMomentumState as ScaleByMomentumState
from sharpax.transforms import ScaleByMuonState as ScaleByMuonState
from sharpax.transforms import ScaleByNadamState as ScaleByNadamState
from sharpax.transforms import ScaleByRadamState as ScaleByRadamState
from sharpax.transforms import ScaleByRmspropState as ScaleByRmspropState
from sharpax.transforms import ScaleByRpropState as ScaleByRpropState
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
from sharpax.transforms import scale_by_adadelta as scale_by_adadelta
from sharpax.transforms import scale_by_adafactor as scale_by_adafactor
from sharpax.transforms import scale_by_adagrad as scale_by_adagrad
from sharpax.transforms import scale_by_adam as scale_by_adam
from sharpax.transforms import scale_by_adamax as scale_by_adamax
from sharpax.transforms import scale_by_asgd as scale_by_asgd
from sharpax.transforms import scale_by_momentum as scale_by_momentum
from sharpax.transforms import scale_by_muon as scale_by_muon
from sharpax.transforms import scale_by_nadam as scale_by_nadam
from sharpax.transforms import scale_by_radam as scale_by_radam
from sharpax.transforms import scale_by_rmsprop as scale_by_rmsprop
from sharpax.transforms import scale_by_rprop as scale_by_rprop
from sharpax.transforms import sgd as sgd
from sharpax.wrappers import AESAMState as AESAMState
from sharpax.wrappers import BSAMState as BSAMState
from sharpax.wrappers import DynamicLossScale as DynamicLossScale
from sharpax.wrappers import FriendlySAMState as FriendlySAMState
from sharpax.wrappers import LookaheadState as LookaheadState
from sharpax.wrappers import LookSAMState as LookSAMState
from sharpax.wrappers import LossScaleState as LossScaleState
from sharpax.wrappers import MomentumSAMState as MomentumSAMState
from sharpax.wrappers import PeriodicSAMState as PeriodicSAMState
from sharpax.wrappers import SAMState as SAMState
from sharpax.wrappers import ae_sam as ae_sam
from sharpax.wrappers import ae_sam_fraction as ae_sam_fraction
from sharpax.wrappers import all_finite as all_finite
from sharpax.wrappers import bsam as bsam
from sharpax.wrappers import bsam_sample as bsam_sample
from sharpax.wrappers import bsam_variance as bsam_variance
from sharpax.wrappers import current_loss_scale as current_loss_scale
from sharpax.wrappers import dynamic_loss_scale as dynamic_loss_scale
from sharpax.wrappers import esam_value_and_grad as esam_value_and_grad
from sharpax.wrappers import friendly_sam as friendly_sam
from sharpax.wrappers import gsam as gsam
from sharpax.wrappers import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers import lookahead as lookahead
from sharpax.wrappers import lookahead_params as lookahead_params
from sharpax.wrappers import looksam as looksam
from sharpax.wrappers import microbatched_value_and_grad as microbatched_value_and_grad
from sharpax.wrappers import momentum_sam as momentum_sam
from sharpax.wrappers import momentum_sam_params as momentum_sam_params
from sharpax.wrappers import periodic_sam as periodic_sam
from sharpax.wrappers import ranger as ranger
from sharpax.wrappers import rwp_value_and_grad as rwp_value_and_grad
from sharpax.wrappers import sam as sam
from sharpax.wrappers import sam_value_and_grad as sam_value_and_grad
from sharpax.wrappers import wsam as wsam
from sharpax.wrappers import wsam_value_and_grad as wsam_value_and_grad

try:
    __version__ = _version("sharpax")
except _PackageNotFoundError:  # a source checkout on PYTHONPATH, not installed
    __version__ = "0+unknown"

__all__ = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "ae_sam",
    "ae_sam_fraction",
    "AESAMState",
    "all_finite",
    "apply_updates",
    "asgd",
    "asgd_averaged_params",
    "bsam",
    "bsam_sample",
    "bsam_variance",
    "BSAMState",
    "chain",
    "current_hyperparams",
    "current_learning_rate",
    "current_loss_scale",
    "cyclic",
    "dynamic_loss_scale",
    "DynamicLossScale",
    "esam_value_and_grad",
    "exponential_warmup",
    "filter_normalized_direction",
    "friendly_sam",
    "FriendlySAMState",
    "gsam",
    "gsam_value_and_grad",
    "hessian_eigenvalues",
    "hessian_spectrum",
    "hessian_trace",
    "inject_hyperparams",
    "join_schedules",
    "linear_warmup",
    "lion",
    "lookahead",
    "lookahead_params",
    "LookaheadState",
    "looksam",
    "LookSAMState",
    "loss_landscape",
    "LossScaleState",
    "lr_proportional_rho",
    "lr_scheduler",
    "microbatched_value_and_grad",
    "momentum_sam",
    "momentum_sam_params",
    "MomentumSAMState",
    "multiply_schedules",
    "muon",
    "muon_with_adamw",
    "nadam",
    "noam_schedule",
    "one_cycle",
    "periodic_sam",
    "PeriodicSAMState",
    "radam",
    "RealImag",
    "ranger",
    "ReduceLROnPlateauState",
    "rmsprop",
    "rprop",
    "rwp_value_and_grad",
    "sam",
    "sam_sharpness",
    "sam_value_and_grad",
    "SAMState",
    "scale_by_adadelta",
    "scale_by_adafactor",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_asgd",
    "scale_by_momentum",
    "scale_by_muon",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
    "scale_by_rprop",
    "scale_by_schedule",
    "ScaleByAdadeltaState",
    "ScaleByAdafactorState",
    "ScaleByAdagradState",
    "ScaleByAdamaxState",
    "ScaleByAdamState",
    "ScaleByAsgdState",
    "ScaleByMomentumState",
    "ScaleByMuonState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRmspropState",
    "ScaleByRpropState",
    "ScaleByScheduleState",
    "schedules",
    "set_hyperparams",
    "sgd",
    "sharpness",
    "spectral_density",
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
    "wsam",
    "wsam_value_and_grad",
]
