"""Building blocks (`scale_by_*`) and the optimizers built from them, with torch.optim's update rules."""

from sharpax.transforms._adadelta import ScaleByAdadeltaState as ScaleByAdadeltaState
from sharpax.transforms._adadelta import adadelta as adadelta
from sharpax.transforms._adadelta import scale_by_adadelta as scale_by_adadelta
from sharpax.transforms._adagrad import ScaleByAdagradState as ScaleByAdagradState
from sharpax.transforms._adagrad import adagrad as adagrad
from sharpax.transforms._adagrad import scale_by_adagrad as scale_by_adagrad
from sharpax.transforms._adam import ScaleByAdamState as ScaleByAdamState
from sharpax.transforms._adam import adam as adam
from sharpax.transforms._adam import adamw as adamw
from sharpax.transforms._adam import scale_by_adam as scale_by_adam
from sharpax.transforms._adamax import ScaleByAdamaxState as ScaleByAdamaxState
from sharpax.transforms._adamax import adamax as adamax
from sharpax.transforms._adamax import scale_by_adamax as scale_by_adamax
from sharpax.transforms._build import RealImag as RealImag
from sharpax.transforms._lion import lion as lion
from sharpax.transforms._lion import scale_by_lion as scale_by_lion
from sharpax.transforms._nadam import ScaleByNadamState as ScaleByNadamState
from sharpax.transforms._nadam import nadam as nadam
from sharpax.transforms._nadam import scale_by_nadam as scale_by_nadam
from sharpax.transforms._radam import ScaleByRadamState as ScaleByRadamState
from sharpax.transforms._radam import radam as radam
from sharpax.transforms._radam import scale_by_radam as scale_by_radam
from sharpax.transforms._rmsprop import ScaleByRmspropState as ScaleByRmspropState
from sharpax.transforms._rmsprop import rmsprop as rmsprop
from sharpax.transforms._rmsprop import scale_by_rmsprop as scale_by_rmsprop
from sharpax.transforms._sgd import ScaleByMomentumState as ScaleByMomentumState
from sharpax.transforms._sgd import scale_by_momentum as scale_by_momentum
from sharpax.transforms._sgd import sgd as sgd

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "lion",
    "nadam",
    "radam",
    "RealImag",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_momentum",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rmsprop",
    "ScaleByAdadeltaState",
    "ScaleByAdagradState",
    "ScaleByAdamaxState",
    "ScaleByAdamState",
    "ScaleByMomentumState",
    "ScaleByNadamState",
    "ScaleByRadamState",
    "ScaleByRmspropState",
    "sgd",
]
