"""One process of a multi-process (multi-controller) run, and the scenarios it trains.

    python -m tests.multiprocess_worker --process-id I --num-processes 2 --port P --out DIR \
        [--local-devices 4] [--steps 20] [--scenarios a,b] [--checkpoint DIR --phase save|resume]

Each process joins `jax.distributed` on 127.0.0.1 with gloo CPU collectives, sees its own 4 CPU devices
and the 8 of the job, feeds its half of every batch (`make_array_from_process_local_data`), trains
each scenario on one global 8-device mesh, and writes the final params (gathered) to
`DIR/process<I>.npz`. `test_multiprocess.py` compares them with `train()` run in its own process on
8 devices. The scenarios are those of issue 18: data-parallel SAM with one global perturbation and
per device (`mesh_axis`), GSAM, `lookahead(adam)`, and Adam with sharded (FSDP-style) params.

With `--checkpoint`, phase `save` trains `steps // 2` steps, saves `(params, opt_state)` with orbax (each
process writes the shards it holds), trains the rest and writes the result; phase `resume` restores
that checkpoint in fresh processes, trains the rest, and writes the result: the two must be identical.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

BATCH = 32  # global batch, split over 8 devices (and 2 processes)
FEATURES, HIDDEN = 8, 16
SCENARIOS = ("sam", "sam_per_device", "gsam", "lookahead_adam", "fsdp_adam")


def make_mesh():
    """All devices of the job on one `data` axis, in process order (process 0's devices first), so
    that process p's half of the batch is rows [p * B / 2, (p + 1) * B / 2) of the global batch."""
    import jax

    return jax.sharding.Mesh(np.array(jax.devices()), ("data",))


def init_params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "w1": (rng.normal(size=(FEATURES, HIDDEN)) * 0.5).astype(np.float32),
        "b1": (rng.normal(size=(HIDDEN,)) * 0.1).astype(np.float32),
        "w2": (rng.normal(size=(HIDDEN,)) * 0.25).astype(np.float32),
        "b2": np.zeros((), np.float32),
    }


def global_batch(step: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole batch of `step`, identical in every process (each keeps its own rows)."""
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(BATCH, FEATURES)).astype(np.float32)
    y = np.sin(x.sum(axis=1)).astype(np.float32)
    return x, y


def loss_fn(params, x, y):
    import jax.numpy as jnp

    hidden = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    return jnp.mean((hidden @ params["w2"] + params["b2"] - y) ** 2)


def param_specs(scenario: str) -> dict[str, Any]:
    """Replicated params for the data-parallel scenarios; FSDP shards every vector and matrix."""
    from jax.sharding import PartitionSpec as P

    if scenario == "fsdp_adam":
        return {"w1": P(None, "data"), "b1": P("data"), "w2": P("data"), "b2": P()}
    return dict.fromkeys(init_params(), P())


def make_step(scenario: str, mesh) -> tuple[Any, Callable]:
    """The optimizer and `step(params, state, x, y) -> (params, state)` of a scenario (not jitted)."""
    import jax
    import optax

    import sharpax

    grad = jax.grad(loss_fn)
    if scenario in ("sam", "sam_per_device"):
        per_device = dict(mesh_axis="data", mesh=mesh) if scenario == "sam_per_device" else {}
        sam_grad = sharpax.sam_value_and_grad(loss_fn, rho=0.05, **per_device)
        tx = sharpax.sgd(0.05, momentum=0.9) if scenario == "sam" else sharpax.adam(1e-2)

        def step(params, state, x, y):
            _, grads = sam_grad(params, x, y)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return tx, step

    tx = {
        "gsam": lambda: sharpax.gsam(sharpax.adamw(1e-2, weight_decay=1e-3), rho=0.05, alpha=0.2),
        "lookahead_adam": lambda: sharpax.lookahead(sharpax.adam(1e-2), sync_period=3, alpha=0.5),
        "fsdp_adam": lambda: sharpax.adam(1e-2),
    }[scenario]()

    def step(params, state, x, y):
        grad_fn = lambda p: grad(p, x, y)
        updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        return optax.apply_updates(params, updates), state

    return tx, step


def place_params(scenario: str, mesh) -> dict[str, Any]:
    import jax
    from jax.sharding import NamedSharding

    specs = param_specs(scenario)
    # Every process holds the same initial values; make_array_from_callback keeps its own shards.
    return {
        k: jax.make_array_from_callback(v.shape, NamedSharding(mesh, specs[k]), lambda i, v=v: v[i])
        for k, v in init_params().items()
    }


def place_batch(step: int, mesh) -> tuple[Any, Any]:
    """This process's rows of the batch, assembled into global arrays sharded over `data`."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    sharding = NamedSharding(mesh, P("data"))
    rows = BATCH // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    return tuple(
        jax.make_array_from_process_local_data(sharding, a[mine], a.shape)
        for a in global_batch(step)
    )


def state_shardings(tx, params, mesh):
    """The params' shardings for the state's param-shaped buffers, the others (step counts) replicated
    over the whole mesh; `params` may be abstract (`jax.ShapeDtypeStruct`s with shardings)."""
    import jax
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    return optax.tree_map_params(
        tx,
        lambda _, p: p.sharding,
        jax.eval_shape(tx.init, params),
        params,
        transform_non_params=lambda _: NamedSharding(mesh, P()),
    )


def init_state(tx, params, mesh):
    """The optimizer state initialised under `jit` with `state_shardings`: every leaf a global array."""
    import jax

    return jax.jit(tx.init, out_shardings=state_shardings(tx, params, mesh))(params)


def train(scenario: str, steps: int, start: int = 0, params=None, state=None, mesh=None):
    """`steps` training steps of `scenario` from step `start` (from scratch when params is None)."""
    import jax

    mesh = mesh if mesh is not None else make_mesh()
    tx, step = make_step(scenario, mesh)
    if params is None:
        params = place_params(scenario, mesh)
        state = init_state(tx, params, mesh)
    step = jax.jit(step, donate_argnums=(0, 1))
    for i in range(start, start + steps):
        params, state = step(params, state, *place_batch(i, mesh))
    return params, state


def gather(tree) -> dict[str, np.ndarray]:
    """Every leaf as a full numpy array on every process (a sharded leaf is all-gathered first)."""
    import jax
    from jax.experimental import multihost_utils

    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        value = multihost_utils.process_allgather(leaf, tiled=True)
        out[jax.tree_util.keystr(path)] = np.asarray(value)
    return out


def checkpoint_run(scenario: str, steps: int, directory: pathlib.Path, phase: str):
    """Phase `save`: train, checkpoint at steps // 2, train on. Phase `resume`: restore, train on."""
    import jax
    import orbax.checkpoint as ocp
    from jax.sharding import NamedSharding

    mesh = make_mesh()
    half = steps // 2
    path = directory / scenario
    checkpointer = ocp.StandardCheckpointer()
    if phase == "save":
        params, state = train(scenario, half, mesh=mesh)
        checkpointer.save(path, {"params": params, "opt_state": state})
        checkpointer.wait_until_finished()
    else:
        # The restore target from shapes and shardings alone, as a fresh job builds it.
        tx, _ = make_step(scenario, mesh)
        specs = param_specs(scenario)
        abstract_params = {
            k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=NamedSharding(mesh, specs[k]))
            for k, v in init_params().items()
        }
        abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            jax.eval_shape(tx.init, abstract_params),
            state_shardings(tx, abstract_params, mesh),
        )
        restored = checkpointer.restore(
            path, {"params": abstract_params, "opt_state": abstract_state}
        )
        params, state = restored["params"], restored["opt_state"]
        for leaf, want in zip(
            jax.tree.leaves(params), jax.tree.leaves(abstract_params), strict=True
        ):
            assert leaf.sharding.is_equivalent_to(want.sharding, leaf.ndim), leaf.sharding
    return train(scenario, steps - half, start=half, params=params, state=state, mesh=mesh)


def audit(directory: pathlib.Path | None) -> dict[str, np.ndarray]:
    """The library's entry points on global arrays outside `jit` (issue 18's audit of single-process
    assumptions): init, update, SAM's gradients, `lookahead_params`, `set_hyperparams`, complex params.
    Everything must run without a host read of a global array and give global arrays back. With
    `directory=None` (one process, the reference) only the values are computed."""
    import jax
    import jax.numpy as jnp
    import orbax.checkpoint as ocp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import sharpax

    mesh = make_mesh()
    params = place_params("fsdp_adam", mesh)  # sharded over both processes' devices
    x, y = place_batch(0, mesh)
    grad_fn = lambda p: jax.grad(loss_fn)(p, x, y)
    out, states = {}, {}
    multi = directory is not None
    is_global = lambda a: a.is_fully_addressable != multi
    for name, tx in {
        "adam": sharpax.adam(1e-2),
        "lookahead": sharpax.lookahead(sharpax.radam(1e-2), sync_period=2),
        "sam": sharpax.sam(sharpax.sgd(1e-2, momentum=0.9)),
    }.items():
        state = tx.init(params)  # eager: param-shaped buffers follow the params' shardings
        for _ in range(2):
            updates, state = tx.update(grad_fn(params), state, params, grad_fn=grad_fn)
        for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
            assert is_global(u) and u.sharding.is_equivalent_to(p.sharding, p.ndim)
        out.update({f"audit/{name}{k}": v for k, v in gather(updates).items()})
        states[name] = state
    slow = sharpax.lookahead_params(states["lookahead"], params)
    out.update({f"audit/slow{k}": v for k, v in gather(slow).items()})
    for kwargs in ({}, {"mesh_axis": "data", "mesh": mesh}, {"m": 2}):
        _, grads = sharpax.sam_value_and_grad(loss_fn, 0.05, **kwargs)(params, x, y)
        assert all(is_global(g) for g in jax.tree.leaves(grads))
    complex_params = jax.make_array_from_callback(
        (16,),
        NamedSharding(mesh, P("data")),
        lambda i: (np.arange(16) * (1 - 2j)).astype(np.complex64)[i],
    )
    tx = sharpax.adam(0.1)
    updates, _ = tx.update(complex_params, tx.init(complex_params), complex_params)
    assert updates.dtype == jnp.complex64 and is_global(updates)
    out["audit/complex"] = gather({"u": updates})["['u']"]
    # `jax.jit(tx.init)(params)` puts every leaf on one local device (zeros do not depend on the
    # params, so jit drops them and runs on the default device); with out_shardings every leaf is a
    # global array, and set_hyperparams keeps it so (it used to put the new value on one local
    # device, which orbax refuses to save in a multi-process job).
    if not multi:
        return out
    tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=1e-2)
    assert all(leaf.is_fully_addressable for leaf in jax.tree.leaves(jax.jit(tx.init)(params)))
    state = init_state(tx, params, mesh)
    state = sharpax.set_hyperparams(state, learning_rate=1e-3)
    assert all(is_global(leaf) for leaf in jax.tree.leaves(state))
    assert float(sharpax.current_learning_rate(state)) == np.float32(1e-3)  # a replicated scalar
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(directory / "audit", {"opt_state": state})
    checkpointer.wait_until_finished()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--local-devices", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--checkpoint", type=pathlib.Path)
    parser.add_argument("--phase", choices=("save", "resume"))
    parser.add_argument(
        "--audit", action="store_true", help="also run `audit()` (writes under --out)"
    )
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_num_cpu_devices", args.local_devices)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{args.port}",
        num_processes=args.num_processes,
        process_id=args.process_id,
        initialization_timeout=120,
    )
    assert jax.process_count() == args.num_processes
    assert jax.local_device_count() == args.local_devices
    results = {}
    for scenario in args.scenarios.split(","):
        if args.checkpoint is not None:
            params, _ = checkpoint_run(scenario, args.steps, args.checkpoint, args.phase)
        else:
            params, _ = train(scenario, args.steps)
        results.update({f"{scenario}{k}": v for k, v in gather(params).items()})
    args.out.mkdir(parents=True, exist_ok=True)
    if args.audit:
        results.update(audit(args.out))
    np.savez(args.out / f"process{args.process_id}.npz", **results)
    jax.distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
