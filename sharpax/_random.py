"""Gaussian draws that XLA:CPU fuses: `jax.random.normal`'s numbers, and a cheaper Box-Muller draw.

On CPU, JAX lowers threefry's twenty rounds as a rolled loop (to compile faster), so each draw is
a loop over whole arrays that no consumer fuses with. `normal` computes the same function unrolled,
from the same counters, as plain elementwise ops: XLA fuses the bits, the uniform-to-normal map and
whatever uses them into one pass. On GPUs JAX already emits the unrolled rounds, so there it is the
same program.

The numbers are `jax.random.normal(key, shape, dtype)`'s, bit for bit
(tests/test_random.py checks that on every shape class against JAX itself). Only the common case
is drawn here: a threefry key (the default), `jax_threefry_partitionable` on (the default since
JAX 0.5), float32, under 2^32 elements; anything else goes to `jax.random.normal`.

`box_muller_normal` maps the same threefry words by the Box-Muller transform, as torch's `normal_`
does, instead of `erf_inv`: about a third cheaper on XLA:CPU (`benchmarks/bench_normal.py`), and not
`jax.random.normal`'s numbers. RWP, which draws noise for every parameter at every step, uses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)
_ONE_BITS = np.array(1.0, np.float32).view(np.uint32)  # 1.0f as uint32: the exponent of [1, 2)


def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(r)) | lax.shift_right_logical(x, np.uint32(32 - r))


def _threefry2x32(
    k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 with 20 rounds (Salmon et al., 2011), as `jax._src.random.threefry2x32`."""
    ks = (k0, k1, k0 ^ k1 ^ _KEY_PARITY)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotate_left(x1, r)
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _flat_index(shape: Sequence[int]) -> jax.Array:
    """The row-major position of each element, as uint32 (JAX's partitionable counters, low word).

    A sum of iotas rather than a reshaped iota, so that the SPMD partitioner can split it.
    """
    index = jnp.zeros(shape, jnp.uint32)
    for axis in range(len(shape)):
        stride = math.prod(shape[axis + 1 :])
        index = index + lax.broadcasted_iota(jnp.uint32, tuple(shape), axis) * np.uint32(stride)
    return index


def _threefry_words_per_element(
    words: jax.Array, shape: tuple[int, ...]
) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32 of the key's two words at each element's counter (0, its row-major position),
    the counter JAX's partitionable threefry gives it (under 2^32 elements): two uint32 arrays."""
    counter = _flat_index(shape)
    return _threefry2x32(words[0], words[1], jnp.zeros_like(counter), counter)


def _threefry_bits(words: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """`jax.random.bits(key, shape)` for the key's two words (partitionable threefry, under 2^32
    elements): the two output words of each element's counter, xor-ed."""
    high, low = _threefry_words_per_element(words, shape)
    return high ^ low


def _threefry_words(key: Any) -> jax.Array | None:
    """The two uint32 words of a threefry key (typed or raw), None for any other key."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.dtype != jnp.uint32 or jnp.shape(key) != (2,):
            return None
        key = jax.random.wrap_key_data(key)
    if key.shape != () or str(jax.random.key_impl(key)) != "threefry2x32":
        return None
    return jax.random.key_data(key)


def _threefry_key(key: Any) -> jax.Array | None:
    """The key's two uint32 words if `jax.random` would draw from it with partitionable threefry."""
    if not jax.config.jax_threefry_partitionable:  # pyright: ignore[reportAttributeAccessIssue]
        return None
    return _threefry_words(key)


def normal(key: Any, shape: Sequence[int], dtype: Any) -> jax.Array:
    """Standard normal samples: `jax.random.normal(key, shape, dtype)`, bit for bit.

    Args:
        key: a `jax.random.key` or a raw `uint32[2]` key.
        shape: the shape of the sample.
        dtype: its float dtype (no default: JAX's depends on `jax_enable_x64`).

    Returns:
        An array of `shape` and `dtype`.
    """
    shape = tuple(int(d) for d in shape)
    words = _threefry_key(key)
    size = math.prod(shape)
    if words is None or jnp.dtype(dtype) != jnp.float32 or not shape or size >= 2**32:
        return jax.random.normal(key, shape, dtype)
    bits = _threefry_bits(words, shape)
    # jax.random.uniform(key, shape, float32, nextafter(-1, 0), 1), then sqrt(2) erfinv(u).
    mantissa = lax.shift_right_logical(bits, np.uint32(9)) | _ONE_BITS
    unit = lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)
    low_end = np.nextafter(np.float32(-1.0), np.float32(0.0))
    uniform = lax.max(low_end, unit * (np.float32(1.0) - low_end) + low_end)
    return np.float32(np.sqrt(2)) * lax.erf_inv(uniform)


_UNIT_24 = np.float32(2.0**-24)
_QUARTER_BITS = 22  # a 24-bit angle: 2 bits of quadrant, 22 of position within it
_COS_TAYLOR = tuple(np.float32((-1) ** k / math.factorial(2 * k)) for k in range(7))


def _cos_quarter_turn(x: jax.Array) -> jax.Array:
    """cos(x) for x in [0, pi/2], by its Taylor series to x^12 (truncation under 7e-9)."""
    x2 = x * x
    out = x2 * _COS_TAYLOR[-1] + _COS_TAYLOR[-2]
    for c in reversed(_COS_TAYLOR[:-2]):
        out = out * x2 + c
    return out


def _box_muller_radius(word: jax.Array) -> jax.Array:
    """sqrt(-2 ln u1) for u1 = 1 - (word >> 8) 2^-24 in (0, 1]."""
    top = lax.bitcast_convert_type(lax.shift_right_logical(word, np.uint32(8)), jnp.int32)
    radius_uniform = np.float32(1.0) - lax.convert_element_type(top, jnp.float32) * _UNIT_24
    return jnp.sqrt(np.float32(-2.0) * jnp.log(radius_uniform))


def _cos_two_pi(word: jax.Array) -> jax.Array:
    """cos(2 pi u) for u = (word >> 8) 2^-24, folded into [0, pi/2] exactly, in integers."""
    angle = lax.shift_right_logical(word, np.uint32(8))
    quadrant = lax.shift_right_logical(angle, np.uint32(_QUARTER_BITS))
    within = angle & np.uint32(2**_QUARTER_BITS - 1)
    # cos(pi/2 (q + f)) is cos(pi/2 f) for q = 0, -cos(pi/2 (1 - f)) for q = 1, -cos(pi/2 f) for
    # q = 2 and cos(pi/2 (1 - f)) for q = 3.
    odd = (quadrant & np.uint32(1)) == 1
    within = jnp.where(odd, np.uint32(2**_QUARTER_BITS) - within, within)
    x = lax.convert_element_type(lax.bitcast_convert_type(within, jnp.int32), jnp.float32)
    cosine = _cos_quarter_turn(x * np.float32(math.pi / 2 / 2**_QUARTER_BITS))
    negative = (quadrant ^ lax.shift_right_logical(quadrant, np.uint32(1))) & np.uint32(1)
    sign = lax.shift_left(negative, np.uint32(31))
    return lax.bitcast_convert_type(
        lax.bitcast_convert_type(cosine, jnp.uint32) ^ sign, jnp.float32
    )


def box_muller_normal(key: Any, shape: Sequence[int], dtype: Any) -> jax.Array:
    r"""Standard normal samples by the Box-Muller transform, one per element (not `jax.random.normal`'s).

    .. math::
        z_i = \sqrt{-2 \ln u_1} \cos(2 \pi u_2), \qquad
        u_1 = 1 - \lfloor b_1 / 2^8 \rfloor 2^{-24} \in (0, 1], \quad
        u_2 = \lfloor b_2 / 2^8 \rfloor 2^{-24} \in [0, 1)

    where :math:`(b_1, b_2)` = threefry-2x32(key, (0, i)) are the two words of element i's counter (its
    row-major position, the counter `jax.random` gives it). torch's CPU `normal_` applies the same
    transform to 24-bit uniforms (`normal_fill_16`, which also keeps the sine, for the next element);
    here each element draws both of its uniforms, so that it is computed on its own and fuses with
    whatever uses it. The cosine is a Taylor polynomial on [0, pi/2] after an exact fold by quadrant,
    not `jnp.cos`, which XLA:CPU evaluates with a general range reduction. The tails reach
    sqrt(48 ln 2) = 5.77 (`jax.random.normal`'s float32 draw reaches 5.42).

    A key other than threefry, a dtype other than float32, or 2^32 elements or more draw
    `jax.random.normal(key, shape, dtype)` instead.

    Args:
        key: a `jax.random.key` or a raw `uint32[2]` key.
        shape: the shape of the sample.
        dtype: its float dtype.

    Returns:
        An array of `shape` and `dtype`.
    """
    shape = tuple(int(d) for d in shape)
    words = _threefry_words(key)
    if words is None or jnp.dtype(dtype) != jnp.float32 or math.prod(shape) >= 2**32:
        return jax.random.normal(key, shape, dtype)
    first, second = _threefry_words_per_element(words, shape)
    return _box_muller_radius(first) * _cos_two_pi(second)
