"""Wrappers around any optimizer: SAM and its family, Lookahead; microbatches and loss scaling.

Layout. The SAM family is three ideas, one module each; a new variant is one function in the module of
its form, built on the geometry, plus a row in the table below:

- `_sam_geometry.py`: the geometry every variant shares: global norms and inner products over the tree,
  the perturbation e(w) (`Perturbation`: SAM, ASAM, the p-norm ball, masks, rho schedules) and the
  update directions built from the gradients (GSAM's, LookSAM's, WSAM's mix, Friendly-SAM's).
- `_sam_gradients.py`: the gradient-wrapper forms, drop-ins for `jax.value_and_grad` that return
  `(loss, grads)` for any optimizer, with m-sharpness chunking and per-device SAM (`jax.shard_map`).
- `_sam_transforms.py`: the two-pass transformation forms (`sam`, `gsam`, `friendly_sam`, `wsam`),
  `optax.GradientTransformationExtraArgs` around a base optimizer, called as
  `tx.update(grads, state, params, grad_fn=grad_fn)`, and what every transformation form shares (the
  second pass, the loss-scaled step).
- `_sam_efficient.py`: `looksam` and `periodic_sam`, the second pass every k-th step;
  `_ae_sam.py`: `ae_sam`, the second pass where the gradient norm is high; `_momentum_sam.py`:
  `momentum_sam`, no second pass (the perturbation follows the momentum).
- `_sam_efficient_gradients.py`: the cheap gradient-wrapper forms (RWP, ESAM), which draw from a key
  passed at each call; their random perturbations (RWP's filter-wise noise, ESAM's random subset of
  tensors) are in the geometry.
- `_bsam.py`: Bayesian SAM. It is a whole optimizer (its own momentum, precision and PRNG key, and the
  posterior accessors `bsam_variance`, `bsam_sample`), not a wrapper around a base optimizer, so it has a
  module of its own; it shares the transformation forms' `grad_fn` convention and checks.

Two helpers every SAM form uses, each its own concern:

- `_microbatches.py`: gradient accumulation inside one step (`microbatched_value_and_grad`, and the
  `lax.scan` that the SAM gradient forms run each pass through with `microbatches=`).
- `_loss_scale.py`: dynamic loss scaling for float16 (`DynamicLossScale`), and the state of a SAM
  transformation built with `loss_scale=`, which skips a step when either pass is not finite.

Lookahead (with the momentum-buffer lookup of its pullback modes, and Ranger) is `_lookahead.py`.

The family (docs/sam.md, "The SAM family: which to pick", has the same table and the call conventions):

| variant | what it changes | gradient form | transformation form | passes per step | extra state | reference |
|---|---|---|---|---|---|---|
| SAM, ASAM (`adaptive=True`) | the gradient at w + e(w), e = rho g / norm(g) (ASAM: in coordinates scaled by abs(w)) | `sam_value_and_grad` | `sam` | 2 | none | Foret et al. 2021; Kwon et al. 2021 |
| GSAM | minus alpha times g's part orthogonal to the SAM gradient | `gsam_value_and_grad` | `gsam` | 2 | none | Zhuang et al. 2022 |
| LookSAM | SAM every k-th step, else g plus the stored orthogonal direction | | `looksam` | 2 every k-th step, else 1 | a unit direction, like the params | Liu et al. 2022 |
| periodic SAM | SAM every k-th step, else g | | `periodic_sam` | 2 every k-th step, else 1 | a step count | Liu et al. 2022 (baseline) |
| Friendly-SAM | e along g - sigma m, m an EMA of the gradients | | `friendly_sam` | 2 | m, like the params; a step count | Li et al. 2024 |
| WSAM | sharpness weighted by gamma / (1 - gamma), mixed in or decoupled | `wsam_value_and_grad` (coupled) | `wsam` | 2 | none (a count for schedules) | Yue et al. 2023 |
| momentum-SAM | the gradient at w - rho v / norm(v), v the base's momentum buffer; the params are that perturbed point (`momentum_sam_params` gives w) | | `momentum_sam` | 1 | a scalar (plus the last update, for a base without momentum) | Becker et al. 2024 (MarlonBecker/MSAM) |
| AE-SAM | SAM where norm(g)^2 >= mu + c_t sigma (its moving mean and deviation), else g | | `ae_sam` | 2 on SAM steps, else 1 (`ae_sam_fraction`) | four scalars | Jiang et al. 2023 |
| Bayesian SAM | a whole optimizer: noisy first pass, e = rho g / s, precision s | | `bsam` | 2 | momentum and precision, like the params; a PRNG key | Möllenhoff & Khan 2023 |
| RWP (m-RWP) | (1 - alpha) g(w) on one half of the batch + alpha g(w + n) on the other, n filter-wise Gaussian | `rwp_value_and_grad` | | 1 (one vmapped pass over both halves) | none (a key per call) | Li et al. 2024 (TMLR) |
| ESAM | SAM on a random subset of tensors (probability beta), second pass on the gamma fraction of examples whose loss rose most | `esam_value_and_grad` | | 1 + a forward + gamma (2 at gamma = 1) | none (a key per call) | Du et al. 2022 |

A rho schedule (e.g. `sharpax.lr_proportional_rho`) adds a step count to the transformation forms.
Every form takes `p` in [1, inf] and a dynamic loss scale for float16 (`loss_scale=`: at call time in
the gradient forms, at build time in the transformation forms, whose state it then wraps); the gradient
forms take `microbatches=` (and the transformation forms a `grad_fn` built with
`microbatched_value_and_grad`). RWP and ESAM take none of these (nor `m=` or `mesh_axis=`): their
options are `mask=`, ESAM's rho schedule and `adaptive=`, and a key per call.
"""

from sharpax.wrappers._ae_sam import AESAMState as AESAMState
from sharpax.wrappers._ae_sam import ae_sam as ae_sam
from sharpax.wrappers._ae_sam import ae_sam_fraction as ae_sam_fraction
from sharpax.wrappers._bsam import BSAMState as BSAMState
from sharpax.wrappers._bsam import bsam as bsam
from sharpax.wrappers._bsam import bsam_sample as bsam_sample
from sharpax.wrappers._bsam import bsam_variance as bsam_variance
from sharpax.wrappers._lookahead import LookaheadState as LookaheadState
from sharpax.wrappers._lookahead import lookahead as lookahead
from sharpax.wrappers._lookahead import lookahead_params as lookahead_params
from sharpax.wrappers._lookahead import ranger as ranger
from sharpax.wrappers._loss_scale import DynamicLossScale as DynamicLossScale
from sharpax.wrappers._loss_scale import LossScaleState as LossScaleState
from sharpax.wrappers._loss_scale import all_finite as all_finite
from sharpax.wrappers._loss_scale import current_loss_scale as current_loss_scale
from sharpax.wrappers._loss_scale import dynamic_loss_scale as dynamic_loss_scale
from sharpax.wrappers._microbatches import (
    microbatched_value_and_grad as microbatched_value_and_grad,
)
from sharpax.wrappers._momentum_sam import MomentumSAMState as MomentumSAMState
from sharpax.wrappers._momentum_sam import momentum_sam as momentum_sam
from sharpax.wrappers._momentum_sam import momentum_sam_params as momentum_sam_params
from sharpax.wrappers._sam_efficient import LookSAMState as LookSAMState
from sharpax.wrappers._sam_efficient import PeriodicSAMState as PeriodicSAMState
from sharpax.wrappers._sam_efficient import looksam as looksam
from sharpax.wrappers._sam_efficient import periodic_sam as periodic_sam
from sharpax.wrappers._sam_efficient_gradients import esam_value_and_grad as esam_value_and_grad
from sharpax.wrappers._sam_efficient_gradients import rwp_value_and_grad as rwp_value_and_grad
from sharpax.wrappers._sam_gradients import gsam_value_and_grad as gsam_value_and_grad
from sharpax.wrappers._sam_gradients import sam_value_and_grad as sam_value_and_grad
from sharpax.wrappers._sam_gradients import wsam_value_and_grad as wsam_value_and_grad
from sharpax.wrappers._sam_transforms import FriendlySAMState as FriendlySAMState
from sharpax.wrappers._sam_transforms import SAMState as SAMState
from sharpax.wrappers._sam_transforms import friendly_sam as friendly_sam
from sharpax.wrappers._sam_transforms import gsam as gsam
from sharpax.wrappers._sam_transforms import sam as sam
from sharpax.wrappers._sam_transforms import wsam as wsam

__all__ = [
    "ae_sam",
    "ae_sam_fraction",
    "AESAMState",
    "all_finite",
    "bsam",
    "bsam_sample",
    "bsam_variance",
    "BSAMState",
    "current_loss_scale",
    "dynamic_loss_scale",
    "DynamicLossScale",
    "esam_value_and_grad",
    "friendly_sam",
    "FriendlySAMState",
    "gsam",
    "gsam_value_and_grad",
    "lookahead",
    "lookahead_params",
    "LookaheadState",
    "looksam",
    "LookSAMState",
    "LossScaleState",
    "microbatched_value_and_grad",
    "momentum_sam",
    "momentum_sam_params",
    "MomentumSAMState",
    "periodic_sam",
    "PeriodicSAMState",
    "ranger",
    "rwp_value_and_grad",
    "sam",
    "sam_value_and_grad",
    "SAMState",
    "wsam",
    "wsam_value_and_grad",
]
