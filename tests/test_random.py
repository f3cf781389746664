"""sharpax._random.normal draws `jax.random.normal`'s numbers bit for bit, from code XLA:CPU fuses (no
rolled threefry loop), and hands every case it does not draw itself to `jax.random.normal`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sharpax._random import _threefry2x32, _threefry_bits, normal
from tests import reliability_common as rc

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


def test_draws_without_the_threefry_loop():
    """What makes it fast on CPU: JAX's draw compiles to a loop over the rounds there, this one to
    straight-line code XLA fuses (no loop, no random-number primitive)."""
    key = jax.random.key(0)
    found = rc.primitives(jax.make_jaxpr(lambda k: normal(k, (64, 32), jnp.float32))(key).jaxpr)
    assert not found & {"random_bits", "threefry2x32", "while"}, found

    def compiled(f):
        return jax.jit(f).lower(key).compile().as_text()

    assert " while(" not in compiled(lambda k: normal(k, (64, 32), jnp.float32))
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


def test_sharded_draw_equals_one_device():
    """The counters are a sum of iotas, which the SPMD partitioner splits: the same numbers when the
    output is sharded over 8 devices."""
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("a", "b"))
    key = jax.random.key(11)
    got = jax.jit(lambda k: normal(k, (16, 24), jnp.float32), out_shardings=sharding)(key)
    assert len(got.sharding.device_set) == 8
    np.testing.assert_array_equal(_bits(got), _bits(jax.random.normal(key, (16, 24))))
