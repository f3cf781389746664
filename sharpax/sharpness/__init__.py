"""Sharpness of a loss at given weights: Hessian eigenvalues, trace and spectral density (from
Hessian-vector products), SAM's sharpness, and loss landscapes along filter-normalised directions.
"""

from sharpax.sharpness._lanczos import hessian_eigenvalues as hessian_eigenvalues
from sharpax.sharpness._landscape import filter_normalized_direction as filter_normalized_direction
from sharpax.sharpness._landscape import loss_landscape as loss_landscape
from sharpax.sharpness._sam_sharpness import sam_sharpness as sam_sharpness
from sharpax.sharpness._spectrum import hessian_spectrum as hessian_spectrum
from sharpax.sharpness._spectrum import spectral_density as spectral_density
from sharpax.sharpness._trace import hessian_trace as hessian_trace

__all__ = [
    "filter_normalized_direction",
    "hessian_eigenvalues",
    "hessian_spectrum",
    "hessian_trace",
    "loss_landscape",
    "sam_sharpness",
    "spectral_density",
]
