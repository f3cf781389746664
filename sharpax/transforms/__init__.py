"""Building blocks (`scale_by_*`) and the optimizers built from them, with torch.optim's update rules."""

from sharpax.transforms._adadelta import ScaleByAdadeltaState as ScaleByAdadeltaState
from sharpax.transforms._adadelta import adadelta as adadelta
from sharpax.transforms._adadelta import scale_by_adadelta as scale_by_adadelta
from sharpax.transforms._adafactor import ScaleByAdafactorState as ScaleByAdafactorState
from sharpax.transforms._adafactor import adafactor as adafactor
from sharpax.transforms._adafactor import scale_by_adafactor as scale_by_adafactor
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
from sharpax.transforms._asgd import ScaleByAsgdState as ScaleByAsgdState
from sharpax.transforms._asgd import asgd as asgd
from sharpax.transforms._asgd import asgd_averaged_params as asgd_averaged_params
from sharpax.transforms._asgd import scale_by_asgd as scale_by_asgd
from sharpax.transforms._build import RealImag as RealImag
from sharpax.transforms._lion import lion as lion
from sharpax.transforms._lion import scale_by_lion as scale_by_lion
from sharpax.transforms._muon import ScaleByMuonState as ScaleByMuonState
from sharpax.transforms._muon import muon as muon
from sharpax.transforms._muon import muon_with_adamw as muon_with_adamw
from sharpax.transforms._muon import scale_by_muon as scale_by_muon
from sharpax.transforms._nadam import ScaleByNadamState as ScaleByNadamState
from sharpax.transforms._nadam import nadam as nadam
from sharpax.transforms._nadam import scale_by_nadam as scale_by_nadam
from sharpax.transforms._radam import ScaleByRadamState as ScaleByRadamState
from sharpax.transforms._radam import radam as radam
from sharpax.transforms._radam import scale_by_radam as scale_by_radam
from sharpax.transforms._rmsprop import ScaleByRmspropState as ScaleByRmspropState
from sharpax.transforms._rmsprop import rmsprop as rmsprop
from sharpax.transforms._rmsprop import scale_by_rmsprop as scale_by_rmsprop
from sharpax.transforms._rprop import ScaleByRpropState as ScaleByRpropState
from sharpax.transforms._rprop import rprop as rprop
from sharpax.transforms._rprop import scale_by_rprop as scale_by_rprop
from sharpax.transforms._sgd import ScaleByMomentumState as ScaleByMomentumState
from sharpax.transforms._sgd import scale_by_momentum as scale_by_momentum
from sharpax.transforms._sgd import sgd as sgd

__all__ = [
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "asgd",
    "asgd_averaged_params",
    "lion",
    "muon",
    "muon_with_adamw",
    "nadam",
    "radam",
    "RealImag",
    "rmsprop",
    "rprop",
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
    "sgd",
]
