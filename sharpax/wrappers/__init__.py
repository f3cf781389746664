"""Wrappers around any optimizer: SAM and its family, Lookahead.

Layout. The SAM family is three ideas, one module each; a new variant is one function in the module of
its form, built on the geometry, plus a row in the table below:

- `_sam_geometry.py`: the geometry every variant shares: global norms and inner products over the tree,
  the perturbation e(w) (`Perturbation`: SAM, ASAM, the p-norm ball, masks, rho schedules) and the
  update directions built from the two gradients (GSAM's, LookSAM's).
- `_sam_gradients.py`: the gradient-wrapper forms, drop-ins for `jax.value_and_grad` that return
  `(loss, grads)` for any optimizer, with m-sharpness chunking and per-device SAM (`jax.shard_map`).
- `_sam_transforms.py`: the two-pass transformation forms (`sam`, `gsam`),
  `optax.GradientTransformationExtraArgs` around a base optimizer, called as
  `tx.update(grads, state, params, grad_fn=grad_fn)`, and the second pass they share.
- `_sam_efficient.py`: the one-pass and near-one-pass transformation forms: `looksam` and `periodic_sam`
  (the second pass every k-th step), `ae_sam` (the second pass where the gradient norm is high),
  `momentum_sam` (no second pass: the perturbation follows the momentum).

Lookahead (with the momentum-buffer lookup of its pullback modes, and Ranger) is `_lookahead.py`.

The family:

| variant | what it changes | gradient form | transformation form | passes per step | extra state | reference |
|---|---|---|---|---|---|---|
| SAM, ASAM (`adaptive=True`) | the gradient is taken at w + e(w) | `sam_value_and_grad` | `sam` | 2 | none | Foret et al. 2021; Kwon et al. 2021 |
| GSAM | SAM's gradient minus alpha times g's part orthogonal to it | `gsam_value_and_grad` | `gsam` | 2 | none | Zhuang et al. 2022 |
| LookSAM | SAM every k-th step; in between g plus the stored orthogonal part | | `looksam` | 2 every k-th step, else 1 | a unit direction, like the params | Liu et al. 2022 |
| periodic SAM | SAM every k-th step, the plain gradient in between | | `periodic_sam` | 2 every k-th step, else 1 | a step count | Liu et al. 2022 (baseline) |
| momentum-SAM | the gradient is taken at w - rho v / norm(v), v the base's momentum buffer; the params are the perturbed weights (`momentum_sam_params` gives w) | | `momentum_sam` | 1 | a scalar (plus the last update, for a base without momentum) | Becker et al. 2024 (MarlonBecker/MSAM) |
| AE-SAM | SAM where norm(g)^2 >= mu + c_t sigma (its moving mean and deviation), the plain gradient elsewhere | | `ae_sam` | 2 on SAM steps, else 1 (`ae_sam_fraction`) | four scalars | Jiang et al. 2023 |

A rho schedule (e.g. `sharpax.lr_proportional_rho`) adds a step count to the transformation forms.
"""

from sharpax.wrappers._lookahead import LookaheadState as LookaheadState
from sharpax.wrappers._lookahead import lookahead as lookahead
from sharpax.wrappers._lookahead import lookahead_params as lookahead_params
from sharpax.wrappers._lookahead import ranger as ranger
from sharpax.wrappers._sam_efficient import AESAMState as AESAMState
from sharpax.wrappers._sam_efficient import LookSAMState as LookSAMState
from sharpax.wrappers._sam_efficient import MomentumSAMState as MomentumSAMState
from sharpax.wrappers._sam_efficient import PeriodicSAMState as PeriodicSAMState
from sharpax.wrappers._sam_efficient import ae_sam as ae_sam
from sharpax.wrappers._sam_efficient import ae_sam_fraction as ae_sam_fraction
from sharpax.wrappers._sam_efficient import looksam as looksam
from sharpax.wrappers._sam_efficient import momentum_sam as momentum_sam
from sharpax.wrappers._sam_efficient import momentum_sam_params as momentum_sam_params
from sharpax.wrappers._sam_efficient import periodic_sam as periodic_sam
from sharpax.wrappers._sam_gradients import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers._sam_gradients import sam_value_and_grad as sam_value_and_grad
from sharpax.wrappers._sam_transforms import SAMState as SAMState
from sharpax.wrappers._sam_transforms import gsam as gsam
from sharpax.wrappers._sam_transforms import sam as sam

__all__ = [
    "ae_sam",
    "ae_sam_fraction",
    "AESAMState",
    "gsam",
    "gsam_value_and_grad",
    "lookahead",
    "lookahead_params",
    "LookaheadState",
    "looksam",
    "LookSAMState",
    "momentum_sam",
    "momentum_sam_params",
    "MomentumSAMState",
    "periodic_sam",
    "PeriodicSAMState",
    "ranger",
    "sam",
    "sam_value_and_grad",
    "SAMState",
]
