"""Wrappers around any optimizer: SAM and its family, Lookahead."""

from sharpax.wrappers._looksam import LookSAMState as LookSAMState
from sharpax.wrappers._looksam import looksam as looksam
from sharpax.wrappers._periodic_sam import PeriodicSAMState as PeriodicSAMState
from sharpax.wrappers._periodic_sam import periodic_sam as periodic_sam
from sharpax.wrappers._sam import SAMState as SAMState
from sharpax.wrappers._sam import gsam as gsam
from sharpax.wrappers._sam import sam as sam
from sharpax.wrappers._sam_rho import lr_proportional_rho as lr_proportional_rho
from sharpax.wrappers._sam_value_and_grad import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers._sam_value_and_grad import sam_value_and_grad as sam_value_and_grad

__all__ = [
    "LookSAMState",
    "PeriodicSAMState",
    "SAMState",
    "gsam",
    "gsam_value_and_grad",
    "looksam",
    "lr_proportional_rho",
    "periodic_sam",
    "sam",
    "sam_value_and_grad",
]
