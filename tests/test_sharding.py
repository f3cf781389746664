"""Many devices: every optimizer sharded over 8 virtual CPU devices gives the one-device result.

Data parallel (params replicated, batch split over 8 devices) and model parallel (params split over a
2x4 mesh, with both of JAX's axis modes), state sharding, abstract init, and no host round-trips.
"""

from __future__ import annotations

import chex
import jax
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from tests import reliability_common as rc
from tests.optimizer_table import CASES, WRAPPERS

# Elementwise optimizer math is the same on every shard; only the gradient's all-reduce (data parallel)
# sums in another order, a few ulps of float32.
RTOL, ATOL = 2e-5, 2e-6

PARAM_SPECS = rc.PARAM_SPECS
_mesh_2x4 = rc.mesh_2x4
_put = rc.put


def _assert_close(got, want):
    chex.assert_trees_all_close(got, want, rtol=RTOL, atol=ATOL)


def _assert_state_follows_params(tx, state, params):
    """Every param-shaped buffer in the state has its param's sharding (checked through optax's map).

    A factored buffer (Adafactor's row and column statistics: the param's shape with some axes reduced
    to 1) keeps the param's sharding on the axes it keeps; placeholders (0-d, for the leaves a buffer
    does not apply to) and `optax.partition`'s masked-out nodes are skipped.
    """
    checked = []

    def check(leaf, param):
        checked.append(leaf)
        if isinstance(leaf, optax.MaskedNode):
            return
        if leaf.shape == param.shape:
            assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim), (
                leaf.sharding,
                param.sharding,
            )
        elif leaf.ndim == param.ndim and leaf.ndim > 0:
            spec = param.sharding.spec
            spec = tuple(spec) + (None,) * (param.ndim - len(spec))
            kept = tuple(
                axis if size == full else None
                for axis, size, full in zip(spec, leaf.shape, param.shape, strict=True)
            )
            want = NamedSharding(param.sharding.mesh, P(*kept))
            assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (leaf.sharding, want)
        else:
            assert leaf.ndim == 0, (leaf.shape, param.shape)

    optax.tree_map_params(
        tx, check, state, params, is_leaf=lambda x: isinstance(x, optax.MaskedNode)
    )
    n_params = len(jax.tree.leaves(params))
    assert len(checked) % n_params == 0
    return len(checked) // n_params  # how many param-shaped buffers the state holds


# A compiled program per optimizer is slow on CPU: a few representative cases by default, all with -m slow.
DATA_PARALLEL_FAST = ("radamw",)
MODEL_PARALLEL_FAST = ("adam_l2_amsgrad", "rmsprop_centered_momentum_wd", "lion")


@pytest.mark.parametrize("case", rc.table(DATA_PARALLEL_FAST))
def test_data_parallel_matches_one_device(case):
    tx = case.build()
    params, (xs, ys) = rc.make_params(), rc.make_batches()
    want = rc.train_eager(tx, params, tx.init(params), xs, ys)

    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    p8 = jax.device_put(params, replicated)
    s8 = jax.device_put(tx.init(params), replicated)
    xs8 = jax.device_put(xs, NamedSharding(mesh, P(None, "data")))
    ys8 = jax.device_put(ys, NamedSharding(mesh, P(None, "data")))
    step = jax.jit(rc.train, static_argnums=0)
    step.lower(tx, p8, s8, xs8, ys8).compile()
    with jax.transfer_guard("disallow"):  # no host transfer inside a step
        got = step(tx, p8, s8, xs8, ys8)
    _assert_close(got, want)
    for leaf in jax.tree.leaves(got):
        assert leaf.sharding.is_fully_replicated


@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit], ids=["auto", "explicit"])
@pytest.mark.parametrize("case", rc.table(MODEL_PARALLEL_FAST))
def test_params_sharded_2x4_matches_one_device(case, axis_type):
    tx = case.build()
    params, grads = rc.make_params(), rc.make_grads()
    want = rc.apply_grads_eager(tx, params, tx.init(params), grads)

    mesh = _mesh_2x4(axis_type)
    grad_specs = jax.tree.map(lambda s: P(None, *s), PARAM_SPECS)
    with jax.set_mesh(mesh):
        p = _put(params, mesh, PARAM_SPECS)
        g = _put(grads, mesh, grad_specs)
        state = tx.init(p)  # eagerly: the buffers are created with the params' sharding
        n_buffers = _assert_state_follows_params(tx, state, p)
        step = jax.jit(rc.apply_grads, static_argnums=0)
        step.lower(tx, p, state, g).compile()
        with jax.transfer_guard("disallow"):
            got_params, got_state = step(tx, p, state, g)
    _assert_close((got_params, got_state), want)
    assert _assert_state_follows_params(tx, got_state, p) == n_buffers
    for leaf, spec in zip(jax.tree.leaves(got_params), jax.tree.leaves(PARAM_SPECS), strict=True):
        assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_jitted_init_follows_params_with_explicit_axes(case):
    """With explicit mesh axes, `jax.jit(tx.init)` and `jax.eval_shape(tx.init)` carry the params' sharding."""
    tx = case.build()
    mesh = _mesh_2x4(AxisType.Explicit)
    with jax.set_mesh(mesh):
        p = _put(rc.make_params(), mesh, PARAM_SPECS)
        state = jax.jit(tx.init)(p)
        _assert_state_follows_params(tx, state, p)
        abstract = jax.eval_shape(tx.init, p)
    masked = lambda x: isinstance(x, optax.MaskedNode)

    def specs(tree):
        return optax.tree_map_params(
            tx,
            # placeholders (0-d, for a leaf the buffer does not apply to) carry no sharding
            lambda a, param: None if masked(a) or a.ndim != param.ndim else a.sharding.spec,
            tree,
            p,
            transform_non_params=lambda _: None,
            is_leaf=masked,
        )

    # eval_shape gives the shardings init gives (checked against the params above).
    assert jax.tree.leaves(specs(abstract)) == jax.tree.leaves(specs(state))


def test_jitted_init_with_auto_axes_takes_out_shardings():
    """With auto axes a jitted init cannot see the params' placement: the recipe is `out_shardings`.

    `jax.eval_shape` gives the state's structure without allocating it; `optax.tree_map_params` maps the
    params' shardings onto it; the state is then created directly sharded (never whole on one device).
    """
    case = next(c for c in CASES if c.id == "adam_l2_amsgrad")
    tx = case.build()
    mesh = _mesh_2x4(AxisType.Auto)
    p = _put(rc.make_params(), mesh, PARAM_SPECS)
    abstract_params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), p)
    abstract_state = jax.eval_shape(tx.init, abstract_params)
    shardings = optax.tree_map_params(
        tx,
        lambda _, param: param.sharding,
        abstract_state,
        p,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    state = jax.jit(tx.init, out_shardings=shardings)(p)
    assert _assert_state_follows_params(tx, state, p) == 3  # mu, nu, nu_max


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_init_from_abstract_params(case):
    tx = case.build()
    params = rc.make_params()
    abstract_params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    abstract = jax.eval_shape(tx.init, abstract_params)
    concrete = tx.init(params)
    assert jax.tree.structure(abstract) == jax.tree.structure(concrete)
    for a, c in zip(jax.tree.leaves(abstract), jax.tree.leaves(concrete), strict=True):
        assert (a.shape, a.dtype) == (c.shape, c.dtype)


_HOST_PRIMITIVES = ("callback", "infeed", "outfeed", "debug")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_update_traces_abstractly_without_host_calls(case):
    """`update` traces from ShapeDtypeStructs alone (a host sync would fail on a tracer) and its
    program holds no host callback."""
    tx = case.build()
    abstract_params = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), rc.make_params()
    )
    abstract_state = jax.eval_shape(tx.init, abstract_params)
    closed = jax.make_jaxpr(tx.update)(abstract_params, abstract_state, abstract_params)
    found = {n for n in rc.primitives(closed.jaxpr) if any(h in n for h in _HOST_PRIMITIVES)}
    assert not found, found
    jax.jit(tx.update).lower(abstract_params, abstract_state, abstract_params)


# bsam: its noise is drawn inside the step, and must not depend on how the params are laid out.
WRAPPERS_FAST = ("lookahead(sam(radam))", "bsam")


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in WRAPPERS_FAST else pytest.mark.slow) for n in WRAPPERS],
)
@pytest.mark.parametrize("layout", ["data_parallel", "params_2x4"])
def test_wrappers_sharded_match_one_device(name, layout):
    """SAM's perturbation norm is a global reduction: with the batch split over 8 devices, or the
    params over a 2x4 mesh, the step equals one device's (a per-shard norm would not)."""
    tx = WRAPPERS[name]()
    params, (xs, ys) = rc.make_params(), rc.make_batches()
    want = rc.train_with_grad_fn_eager(tx, params, tx.init(params), xs, ys)
    if layout == "data_parallel":
        mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
        p = jax.device_put(params, NamedSharding(mesh, P()))
        xs, ys = (jax.device_put(a, NamedSharding(mesh, P(None, "data"))) for a in (xs, ys))
    else:
        mesh = rc.mesh_2x4()
        p = rc.put(params, mesh, rc.PARAM_SPECS)
        xs, ys = (jax.device_put(a, NamedSharding(mesh, P())) for a in (xs, ys))
    # The buffers follow the params; the scalar counters are created on the default device: place
    # them on the mesh once, so that the guarded steps below move nothing.
    state = jax.tree.map(
        lambda x: (
            x
            if isinstance(x.sharding, NamedSharding)
            else jax.device_put(x, NamedSharding(mesh, P()))
        ),
        tx.init(p),
    )
    step = jax.jit(rc.train_with_grad_fn, static_argnums=0)
    step.lower(tx, p, state, xs, ys).compile()
    with jax.transfer_guard("disallow"):
        got = step(tx, p, state, xs, ys)
    _assert_close(got, want)
    if layout == "params_2x4":
        _assert_state_follows_params(tx, got[1], p)
