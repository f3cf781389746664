"""The Box-Muller draw RWP documents, written from its formula in numpy float64 on the words of JAX's
own threefry (`jax.extend.random.threefry_2x32`), independently of `sharpax._random`.

Element i (row-major) of a leaf drawn with key k: (b1, b2) = threefry-2x32(k, (0, i)),
u1 = 1 - (b1 >> 8) 2^-24, u2 = (b2 >> 8) 2^-24, z = sqrt(-2 ln u1) cos(2 pi u2): torch's
`normal_fill_16` transform on 24-bit uniforms (torch keeps the sine for a second element; here each
element draws its own pair).
"""

from __future__ import annotations

import math

import jax
import numpy as np


def box_muller_normal(key, shape) -> np.ndarray:
    """float64 standard normals of `shape`, by the documented draw."""
    from jax.extend.random import threefry_2x32

    size = math.prod(shape)
    counters = np.concatenate([np.zeros(size, np.uint32), np.arange(size, dtype=np.uint32)])
    words = np.asarray(threefry_2x32(jax.random.key_data(key), counters))
    first, second = words[:size], words[size:]
    u1 = 1.0 - (first >> 8).astype(np.float64) * 2.0**-24
    u2 = (second >> 8).astype(np.float64) * 2.0**-24
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).reshape(shape)
