"""Wrappers around any optimizer: SAM and its family, Lookahead."""

from sharpax.wrappers._lookahead import LookaheadState as LookaheadState
from sharpax.wrappers._lookahead import lookahead as lookahead
from sharpax.wrappers._lookahead import lookahead_params as lookahead_params
from sharpax.wrappers._looksam import LookSAMState as LookSAMState
from sharpax.wrappers._looksam import looksam as looksam
from sharpax.wrappers._periodic_sam import PeriodicSAMState as PeriodicSAMState
from sharpax.wrappers._periodic_sam import periodic_sam as periodic_sam
from sharpax.wrappers._ranger import ranger as ranger
from sharpax.wrappers._sam import SAMState as SAMState
from sharpax.wrappers._sam import gsam as gsam
from sharpax.wrappers._sam import sam as sam
from sharpax.wrappers._sam_rho import lr_proportional_rho as lr_proportional_rho
from sharpax.wrappers._sam_value_and_grad import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers._sam_value_and_grad import sam_value_and_grad as sam_value_and_grad

__all__ = [
    "gsam",
    "gsam_value_and_grad",
    "lookahead",
    "lookahead_params",
    "LookaheadState",
    "looksam",
    "LookSAMState",
    "lr_proportional_rho",
    "periodic_sam",
    "PeriodicSAMState",
    "ranger",
    "sam",
    "sam_value_and_grad",
    "SAMState",
]
