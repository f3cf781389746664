"""Per-device SAM (`mesh_axis=`) on a mesh of the 8 virtual CPU devices.

References: the `m = devices` chunked vmap, and a numpy loop over the shards with closed-form gradients.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import sharpax

N_DEV = 8
RHO = 0.3


def mesh_of(axis_type=AxisType.Auto, n=N_DEV):
    return jax.make_mesh((n,), ("data",), axis_types=(axis_type,), devices=jax.devices()[:n])


def loss_fn(params, x, y):
    r = x @ params["w"] + params["b"][None, :] - y
    return jnp.mean(r**2)


def aux_loss_fn(params, x, y):
    return loss_fn(params, x, y), {"pred": x @ params["w"]}


def numpy_grad(w, b, x, y):
    """d/d(w, b) of mean((x w + b - y)^2) over the n x k entries: 2 x^T r / (n k), 2 sum_i r_i / (n k)."""
    r = x @ w + b - y
    scale = 2.0 / r.size
    return scale * x.T @ r, scale * r.sum(axis=0)


def numpy_per_device_sam(params, x, y, n_shards, rho=RHO):
    """Each shard: its own g, e = rho g / (||g|| + 1e-12) (norm over that shard's g only), g at w + e."""
    w, b = (np.asarray(params[k], np.float64) for k in ("w", "b"))
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    grads_w, grads_b, losses = [], [], []
    for xs, ys in zip(np.split(x, n_shards), np.split(y, n_shards), strict=True):
        gw, gb = numpy_grad(w, b, xs, ys)
        norm = np.sqrt(np.sum(gw**2) + np.sum(gb**2))
        ew, eb = rho * gw / (norm + 1e-12), rho * gb / (norm + 1e-12)
        sw, sb = numpy_grad(w + ew, b + eb, xs, ys)
        grads_w.append(sw)
        grads_b.append(sb)
        losses.append(np.mean((xs @ w + b - ys) ** 2))
    return np.mean(losses), {"w": np.mean(grads_w, axis=0), "b": np.mean(grads_b, axis=0)}


def problem(batch=32):
    kw, kb, kx, ky = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {"w": jax.random.normal(kw, (5, 3)), "b": jax.random.normal(kb, (3,))}
    # Shards drawn at different scales so that their gradient norms (hence perturbations) differ.
    scales = jnp.repeat(jnp.linspace(0.2, 3.0, N_DEV), batch // N_DEV)[:, None]
    x = jax.random.normal(kx, (batch, 5)) * scales
    y = jax.random.normal(ky, (batch, 3))
    return params, x, y


def assert_tree_close(a, b, rtol=1e-5, atol=1e-6):
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


# Each axis type and each of jit / eager once in the default run; the other two pairs are slow.
@pytest.mark.parametrize(
    "jit,axis_type",
    [
        (True, AxisType.Explicit),
        (False, AxisType.Auto),
        pytest.param(True, AxisType.Auto, marks=pytest.mark.slow),
        pytest.param(False, AxisType.Explicit, marks=pytest.mark.slow),
    ],
)
def test_per_device_matches_chunked_and_numpy_and_differs_from_global(jit, axis_type):
    params, x, y = problem()
    mesh = mesh_of(axis_type)
    per_device = sharpax.sam_value_and_grad(loss_fn, RHO, mesh_axis="data", mesh=mesh)
    per_device = jax.jit(per_device) if jit else per_device
    loss, grads = per_device(params, x, y)

    chunk_loss, chunk_grads = sharpax.sam_value_and_grad(loss_fn, RHO, m=N_DEV)(params, x, y)
    assert_tree_close(grads, chunk_grads)
    np.testing.assert_allclose(loss, chunk_loss, rtol=1e-5)

    ref_loss, ref_grads = numpy_per_device_sam(params, x, y, N_DEV)
    assert_tree_close(grads, ref_grads)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)

    # One global norm gives another direction: the per-device norms must not be reduced.
    _, global_grads = sharpax.sam_value_and_grad(loss_fn, RHO)(params, x, y)
    gap = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(*map(jax.tree.leaves, (grads, global_grads)), strict=True)
    )
    assert gap > 1e-2

    for leaf in jax.tree.leaves(grads) + [loss]:
        assert leaf.sharding.is_fully_replicated


def test_per_device_on_sharded_inputs_under_set_mesh():
    params, x, y = problem()
    mesh = mesh_of(AxisType.Explicit)
    with jax.set_mesh(mesh):
        x = jax.device_put(x, NamedSharding(mesh, P("data")))
        y = jax.device_put(y, NamedSharding(mesh, P("data")))
        params = jax.device_put(params, NamedSharding(mesh, P()))
        loss, grads = jax.jit(sharpax.sam_value_and_grad(loss_fn, RHO, mesh_axis="data"))(
            params, x, y
        )
    ref_loss, ref_grads = numpy_per_device_sam(params, x, y, N_DEV)
    assert_tree_close(grads, ref_grads)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(grads))


def test_per_device_with_m_chunks_per_device_and_aux():
    params, x, y = problem()
    mesh = mesh_of(n=4)
    per_device = sharpax.sam_value_and_grad(
        aux_loss_fn, RHO, m=2, has_aux=True, mesh_axis="data", mesh=mesh
    )
    (loss, aux), grads = jax.jit(per_device)(params, x, y)
    (chunk_loss, chunk_aux), chunk_grads = sharpax.sam_value_and_grad(
        aux_loss_fn, RHO, m=8, has_aux=True
    )(params, x, y)
    assert_tree_close(grads, chunk_grads)
    np.testing.assert_allclose(loss, chunk_loss, rtol=1e-5)
    # aux: one entry per chunk on a new leading axis, devices in mesh order, chunks within each.
    assert aux["pred"].shape == (8, 4, 3)
    assert_tree_close(aux, chunk_aux)
    assert_tree_close(grads, numpy_per_device_sam(params, x, y, 8)[1])


def test_per_device_aux_stacked_one_per_device():
    params, x, y = problem()
    per_device = sharpax.sam_value_and_grad(
        aux_loss_fn, RHO, has_aux=True, mesh_axis="data", mesh=mesh_of()
    )
    (_, aux), _ = jax.jit(per_device)(params, x, y)
    assert aux["pred"].shape == (N_DEV, 4, 3)
    np.testing.assert_allclose(aux["pred"].reshape(32, 3), x @ params["w"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [{"adaptive": True, "eta": 0.01}, {"rho": lambda step: 0.1 * step}],
)
def test_gsam_and_options_match_chunked(kwargs):
    params, x, y = problem()
    kwargs = {"rho": RHO, **kwargs}
    per_device = sharpax.gsam_value_and_grad(
        loss_fn, alpha=0.3, mesh_axis="data", mesh=mesh_of(), **kwargs
    )
    chunked = sharpax.gsam_value_and_grad(loss_fn, alpha=0.3, m=N_DEV, **kwargs)
    step = jnp.asarray(3)
    assert_tree_close(
        jax.jit(per_device)(params, x, y, sam_step=step)[1], chunked(params, x, y, sam_step=step)[1]
    )


def test_keyword_arguments_are_replicated():
    params, x, y = problem()

    def weighted(params, x, y, *, weight):
        return weight * loss_fn(params, x, y)

    per_device = sharpax.sam_value_and_grad(weighted, RHO, mesh_axis="data", mesh=mesh_of())
    chunked = sharpax.sam_value_and_grad(weighted, RHO, m=N_DEV)
    weight = jnp.asarray(2.5)
    assert_tree_close(
        jax.jit(per_device)(params, x, y, weight=weight)[1], chunked(params, x, y, weight=weight)[1]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mesh_axis": 0}, "mesh_axis must be a mesh axis name"),
        ({"mesh": "mesh"}, "mesh is only used with mesh_axis"),
        ({"mesh_axis": "data", "mesh": "mesh"}, "mesh must be a jax.sharding.Mesh"),
        (
            {"mesh_axis": "batch", "mesh": mesh_of()},
            r"mesh_axis must be an axis of the mesh \('data',\)",
        ),
    ],
)
def test_build_time_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sharpax.sam_value_and_grad(loss_fn, **kwargs)


def test_call_time_errors():
    params, x, y = problem()
    with pytest.raises(ValueError, match="not an axis of the mesh"):
        sharpax.sam_value_and_grad(loss_fn, mesh_axis="data")(params, x, y)
    per_device = sharpax.sam_value_and_grad(loss_fn, m=2, mesh_axis="data", mesh=mesh_of())
    with pytest.raises(ValueError, match="divisible by 16, got shape"):
        per_device(params, x[:24], y[:24])
