"""Wrappers around any optimizer: SAM and its family, Lookahead.

Layout. The SAM family is three ideas, one module each; a new variant is one function in the module of
its form, built on the geometry, plus a row in the table below:

- `_sam_geometry.py`: the geometry every variant shares: global norms and inner products over the tree,
  the perturbation e(w) (`Perturbation`: SAM, ASAM, the p-norm ball, masks, rho schedules) and the
  update directions built from the two gradients (GSAM's, LookSAM's).
- `_sam_gradients.py`: the gradient-wrapper forms, drop-ins for `jax.value_and_grad` that return
  `(loss, grads)` for any optimizer, with m-sharpness chunking and per-device SAM (`jax.shard_map`).
- `_sam_efficient_gradients.py`: the cheap gradient-wrapper forms (RWP, ESAM), which draw from a key
  passed at each call; their random perturbations (RWP's filter-wise noise, ESAM's random subset of
  tensors) are in the geometry.
- `_sam_transforms.py`: the transformation forms, `optax.GradientTransformationExtraArgs` around a base
  optimizer, called as `tx.update(grads, state, params, grad_fn=grad_fn)`.

Lookahead (with the momentum-buffer lookup of its pullback modes, and Ranger) is `_lookahead.py`.

The family (F+B: one forward-backward pass over the batch; F: a forward pass):

| variant | what it changes | gradient form | transformation form | passes per step | extra state | reference |
|---|---|---|---|---|---|---|
| SAM, ASAM (`adaptive=True`) | the gradient at w + e(w) | `sam_value_and_grad` | `sam` | 2 | none | davda54/sam |
| GSAM | minus alpha times g's part orthogonal to it | `gsam_value_and_grad` | `gsam` | 2 | none | juntang-zhuang/GSAM |
| LookSAM | reuses SAM's orthogonal direction for k - 1 steps | | `looksam` | 2 every k-th step, else 1 | a unit direction, like the params | Liu et al. 2022 |
| periodic SAM | SAM every k-th step, plain steps between | | `periodic_sam` | 2 every k-th step, else 1 | a step count | Liu et al. 2022 (its baseline) |
| RWP (m-RWP) | (1 - alpha) g(w) on one half of the batch + alpha g(w + noise) on the other, filter-wise Gaussian noise | `rwp_value_and_grad` | | 1 (one vmapped F+B over both halves) | none (a key per call) | nblt/RWP |
| ESAM | SAM on a random subset of tensors (probability beta) and the gamma fraction of examples whose loss rose most | `esam_value_and_grad` | | F+B + F + gamma F+B (2 at gamma = 1) | none (a key per call) | dydjw9/Efficient_SAM |

A rho schedule (e.g. `sharpax.lr_proportional_rho`) adds a step count to the transformation forms.
"""

from sharpax.wrappers._lookahead import LookaheadState as LookaheadState
from sharpax.wrappers._lookahead import lookahead as lookahead
from sharpax.wrappers._lookahead import lookahead_params as lookahead_params
from sharpax.wrappers._lookahead import ranger as ranger
from sharpax.wrappers._sam_efficient_gradients import esam_value_and_grad as esam_value_and_grad
from sharpax.wrappers._sam_efficient_gradients import rwp_value_and_grad as rwp_value_and_grad
from sharpax.wrappers._sam_gradients import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers._sam_gradients import sam_value_and_grad as sam_value_and_grad
from sharpax.wrappers._sam_transforms import LookSAMState as LookSAMState
from sharpax.wrappers._sam_transforms import PeriodicSAMState as PeriodicSAMState
from sharpax.wrappers._sam_transforms import SAMState as SAMState
from sharpax.wrappers._sam_transforms import gsam as gsam
from sharpax.wrappers._sam_transforms import looksam as looksam
from sharpax.wrappers._sam_transforms import periodic_sam as periodic_sam
from sharpax.wrappers._sam_transforms import sam as sam

__all__ = [
    "esam_value_and_grad",
    "gsam",
    "gsam_value_and_grad",
    "lookahead",
    "lookahead_params",
    "LookaheadState",
    "looksam",
    "LookSAMState",
    "periodic_sam",
    "PeriodicSAMState",
    "ranger",
    "rwp_value_and_grad",
    "sam",
    "sam_value_and_grad",
    "SAMState",
]
