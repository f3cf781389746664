"""sharpax: JAX optimizers in the optax style, with SAM, Lookahead, warmup schedules and torch-exact rules."""

from optax import apply_updates as apply_updates
from optax import chain as chain

from sharpax import schedules as schedules
from sharpax import transforms as transforms
from sharpax import wrappers as wrappers
from sharpax.transforms import adadelta as adadelta
from sharpax.transforms import adagrad as adagrad
from sharpax.transforms import adam as adam
from sharpax.transforms import adamax as adamax
from sharpax.transforms import adamw as adamw
from sharpax.transforms import lion as lion
from sharpax.transforms import nadam as nadam
from sharpax.transforms import radam as radam
from sharpax.transforms import rmsprop as rmsprop
from sharpax.transforms import sgd as sgd
from sharpax.wrappers import gsam as gsam
from sharpax.wrappers import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers import looksam as looksam
from sharpax.wrappers import periodic_sam as periodic_sam
from sharpax.wrappers import sam as sam
from sharpax.wrappers import sam_value_and_grad as sam_value_and_grad

__version__ = "0.1.0"

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "apply_updates",
    "chain",
    "gsam",
    "gsam_value_and_grad",
    "lion",
    "looksam",
    "nadam",
    "periodic_sam",
    "radam",
    "rmsprop",
    "sam",
    "sam_value_and_grad",
    "schedules",
    "sgd",
    "transforms",
    "wrappers",
]
