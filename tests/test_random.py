"""sharpax._random.normal draws `jax.random.normal`'s numbers bit for bit, from code XLA:CPU fuses (no
rolled threefry loop), and hands every case it does not draw itself to `jax.random.normal`.
`box_muller_normal` (RWP's noise) matches its formula computed in float64 from JAX's own threefry
words (tests/references/box_muller.py) and is a standard normal sample."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sharpax._random import _cos_two_pi, _threefry2x32, _threefry_bits, box_muller_normal, normal
from tests import reliability_common as rc
from tests.references import box_muller as reference

SHAPES = [
    (0, 3),
    (1,),
    (7,),
    (1000,),
    (3, 5),
    (256, 10),
    (7, 11, 13),
    (3, 3, 2, 5),
    (2, 1, 4, 1, 3),
]
KEYS = {
    "key(0)": lambda: jax.random.key(0),
    "key(2**31 + 5)": lambda: jax.random.key(2**31 + 5),
    "split": lambda: jax.random.split(jax.random.key(3), 4)[2],
    "fold_in": lambda: jax.random.fold_in(jax.random.key(1), 99),
    "raw PRNGKey": lambda: jax.random.PRNGKey(42),
}


def _bits(a: jax.Array) -> np.ndarray:
    return np.asarray(a).view(np.uint32)


@pytest.mark.parametrize("key_name", list(KEYS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_equals_jax_random_normal_bit_for_bit(shape, key_name):
    key = KEYS[key_name]()
    want = jax.random.normal(key, shape, jnp.float32)
    got = jax.jit(normal, static_argnums=(1, 2))(key, shape, jnp.float32)
    assert got.dtype == jnp.float32 and got.shape == shape
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("shape", [(5,), (6, 7), (2, 3, 4)], ids=str)
def test_bits_equal_jax_random_bits(shape):
    key = jax.random.key(9)
    got = jax.jit(_threefry_bits, static_argnums=1)(jax.random.key_data(key), shape)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jax.random.bits(key, shape)))


def test_threefry_matches_jax_on_arbitrary_counters():
    """The rounds themselves, on counters that use every bit (not only the small flat indices)."""
    from jax.extend.random import threefry_2x32

    words = np.random.default_rng(0).integers(0, 2**32, size=(2, 512), dtype=np.uint32)
    key = np.array([0xDEADBEEF, 0x01234567], np.uint32)
    x0, x1 = _threefry2x32(
        jnp.uint32(key[0]), jnp.uint32(key[1]), jnp.asarray(words[0]), jnp.asarray(words[1])
    )
    want = threefry_2x32(key, words.reshape(-1))
    np.testing.assert_array_equal(np.concatenate([x0, x1]), np.asarray(want))


def test_batched_keys_under_vmap():
    keys = jax.random.split(jax.random.key(5), 6)
    got = jax.jit(jax.vmap(lambda k: normal(k, (4, 9), jnp.float32)))(keys)
    want = jnp.stack([jax.random.normal(k, (4, 9), jnp.float32) for k in keys])
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("draw", [normal, box_muller_normal], ids=lambda f: f.__name__)
def test_draws_without_the_threefry_loop(draw):
    """What makes it fast on CPU: JAX's draw compiles to a loop over the rounds there, this one to
    straight-line code XLA fuses (no loop, no random-number primitive)."""
    key = jax.random.key(0)
    found = rc.primitives(jax.make_jaxpr(lambda k: draw(k, (64, 32), jnp.float32))(key).jaxpr)
    assert not found & {"random_bits", "threefry2x32", "while"}, found

    def compiled(f):
        return jax.jit(f).lower(key).compile().as_text()

    assert " while(" not in compiled(lambda k: draw(k, (64, 32), jnp.float32))
    if jax.default_backend() == "cpu":
        assert " while(" in compiled(lambda k: jax.random.normal(k, (64, 32), jnp.float32))


@pytest.mark.parametrize(
    "case",
    ["rbg key", "bfloat16", "float16", "0-d", "not partitionable"],
)
def test_other_cases_are_jax_random_normal(case):
    key, shape, dtype = jax.random.key(7), (5, 6), jnp.float32
    if case == "rbg key":
        key = jax.random.key(7, impl="rbg")
    elif case in ("bfloat16", "float16"):
        dtype = jnp.dtype(case)
    elif case == "0-d":
        shape = ()
    if case == "not partitionable":
        with jax.threefry_partitionable(False):
            got, want = normal(key, shape, dtype), jax.random.normal(key, shape, dtype)
            found = rc.primitives(jax.make_jaxpr(lambda k: normal(k, shape, dtype))(key).jaxpr)
    else:
        got, want = normal(key, shape, dtype), jax.random.normal(key, shape, dtype)
        found = rc.primitives(jax.make_jaxpr(lambda k: normal(k, shape, dtype))(key).jaxpr)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
    # Handed over, not drawn here: jax.random's own primitives appear.
    assert found & {"threefry2x32", "random_bits", "rng_bit_generator"}, found


@pytest.mark.parametrize("draw", [normal, box_muller_normal], ids=lambda f: f.__name__)
def test_sharded_draw_equals_one_device(draw):
    """The counters are a sum of iotas, which the SPMD partitioner splits: the same numbers when the
    output is sharded over 8 devices."""
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("a", "b"))
    key = jax.random.key(11)
    got = jax.jit(lambda k: draw(k, (16, 24), jnp.float32), out_shardings=sharding)(key)
    assert len(got.sharding.device_set) == 8
    want = jax.jit(lambda k: draw(k, (16, 24), jnp.float32))(key)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    if draw is normal:
        np.testing.assert_array_equal(_bits(got), _bits(jax.random.normal(key, (16, 24))))


# box_muller_normal: float32 against the formula in float64 (|error| about 5e-7 at most, from
# float32's log, the polynomial and rounding; a wrong word, fold or sign is off by O(1)).
BOX_MULLER_RTOL = BOX_MULLER_ATOL = 1e-6


@pytest.mark.parametrize("key_name", ["key(0)", "split", "raw PRNGKey"])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (7, 11, 13), (2, 1, 4, 1, 3), ()], ids=str)
def test_box_muller_matches_its_formula(shape, key_name):
    key = KEYS[key_name]()
    got = jax.jit(box_muller_normal, static_argnums=(1, 2))(key, shape, jnp.float32)
    assert got.dtype == jnp.float32 and got.shape == shape
    typed = key if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else jax.random.wrap_key_data(key)
    np.testing.assert_allclose(
        got, reference.box_muller_normal(typed, shape), rtol=BOX_MULLER_RTOL, atol=BOX_MULLER_ATOL
    )


def test_box_muller_cosine_at_every_quadrant_edge():
    """cos(2 pi u) on the angles where the fold by quadrant changes branch, and next to them."""
    quarter = 2**22
    angles = np.array(
        [q * quarter + d for q in range(4) for d in (0, 1, quarter // 3, quarter - 1)]
        + [2**24 - 1],
        np.uint32,
    )
    got = jax.jit(_cos_two_pi)(jnp.asarray(angles << np.uint32(8) | np.uint32(0xAB)))
    want = np.cos(2 * np.pi * angles.astype(np.float64) / 2**24)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)


def test_box_muller_is_a_standard_normal_sample():
    """2^20 draws: the moments and the Kolmogorov-Smirnov distance of N(0, 1), within a few standard
    errors (the key is fixed, so this cannot flake); the tails reach past 4.5."""
    from scipy import stats

    z = np.asarray(
        jax.jit(box_muller_normal, static_argnums=(1, 2))(
            jax.random.key(3), (1024, 1024), jnp.float32
        ),
        np.float64,
    ).ravel()
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / n)
    assert abs(np.mean(z**4) - 3) < 4 * np.sqrt(96 / n)
    assert abs(np.mean(z**3)) < 4 * np.sqrt(15 / n)
    assert stats.kstest(z, "norm").statistic < 1.63 / np.sqrt(n)  # p > 0.01
    assert 4.5 < np.abs(z).max() < np.sqrt(48 * np.log(2))
    # Neighbours (consecutive counters) are uncorrelated.
    assert abs(np.mean(z[1:] * z[:-1])) < 4 / np.sqrt(n)


def test_box_muller_batched_keys_and_split_keys_are_independent_draws():
    keys = jax.random.split(jax.random.key(5), 6)
    got = jax.jit(jax.vmap(lambda k: box_muller_normal(k, (4, 9), jnp.float32)))(keys)
    # Each key alone, also compiled (op by op, XLA may round a multiply-add differently).
    one = jax.jit(lambda k: box_muller_normal(k, (4, 9), jnp.float32))
    want = jnp.stack([one(k) for k in keys])
    np.testing.assert_array_equal(_bits(got), _bits(want))
    corr = np.corrcoef(np.asarray(got).reshape(6, -1))
    assert np.abs(corr[np.triu_indices(6, 1)]).max() < 0.6  # 36 samples per row: loosely


def test_box_muller_does_not_depend_on_threefry_partitionable():
    key = jax.random.key(8)
    want = box_muller_normal(key, (5, 6), jnp.float32)
    with jax.threefry_partitionable(False):
        got = box_muller_normal(key, (5, 6), jnp.float32)
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("case", ["rbg key", "float16", "float64"])
def test_box_muller_other_cases_are_jax_random_normal(case):
    key, dtype = jax.random.key(7), jnp.float32
    if case == "rbg key":
        key = jax.random.key(7, impl="rbg")
    elif case == "float16":
        dtype = jnp.float16
    if case == "float64":
        with jax.enable_x64(True):
            got, want = (
                box_muller_normal(key, (5, 6), jnp.float64),
                jax.random.normal(key, (5, 6), jnp.float64),
            )
            assert got.dtype == jnp.float64
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        return
    got, want = box_muller_normal(key, (5, 6), dtype), jax.random.normal(key, (5, 6), dtype)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
