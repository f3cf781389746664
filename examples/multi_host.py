"""One training script for one process, several local processes, or a cluster (`jax.distributed`).

SAM with AdamW on a small MLP, the batch sharded over every device of the job and the weights
replicated; each process reads only its own rows of each batch. The same file runs

    python examples/multi_host.py                        # one process, all its devices
    python examples/multi_host.py --local-processes 2    # 2 processes on this machine (gloo, CPU)
    python examples/multi_host.py --distributed          # one process per host of a cluster

With `--distributed`, `jax.distributed.initialize()` reads the job's layout from the environment
(SLURM, Cloud TPU pods, Kubernetes with JAX's cluster detection, ...); docs/distributed.md has the
launch lines. `--local-processes N` starts N copies of this script with a local coordinator, each
with `8 // N` CPU devices, and waits for them: the result equals the one-process run's to float32
rounding (the gradients' all-reduce sums in another order). Only process 0 prints.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

STEPS, BATCH, FEATURES, CLASSES = 30, 64, 16, 4


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--local-processes", type=int, default=0, help="launch N local processes")
    parser.add_argument("--distributed", action="store_true", help="jax.distributed.initialize()")
    parser.add_argument("--checkpoint", type=pathlib.Path, help="save (params, opt_state) here")
    parser.add_argument("--out", type=pathlib.Path, help="write the final params (npz) here")
    # Set by --local-processes for the processes it starts.
    parser.add_argument("--coordinator", help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--num-processes", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def launch_local(args: argparse.Namespace, timeout_s: float = 600) -> int:
    """Start `args.local_processes` copies of this script on 127.0.0.1 and wait for all of them.

    Each copy gets its process id and the coordinator's address; all are killed if one fails, if
    they run past `timeout_s`, or if this process is interrupted.
    """
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = args.local_processes
    common = [sys.executable, __file__, "--steps", str(args.steps)]
    common += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n)]
    for flag in ("checkpoint", "out"):
        if getattr(args, flag) is not None:
            common += [f"--{flag}", str(getattr(args, flag))]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = []
    try:
        procs = [subprocess.Popen([*common, "--process-id", str(i)], env=env) for i in range(n)]
        codes = [p.wait(timeout=timeout_s) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return max(codes, key=abs)


def main(argv: list[str] | None = None) -> dict[str, np.ndarray] | None:
    args = parse(argv)
    if args.local_processes:
        sys.exit(launch_local(args))
    if not (args.coordinator or args.distributed):
        # One process: on a CPU-only machine, 8 simulated devices (a no-op once jax has started, and
        # for other platforms).
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=8".strip()

    import jax

    if args.coordinator:  # one of the processes started by --local-processes
        jax.config.update("jax_num_cpu_devices", 8 // args.num_processes)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    elif args.distributed:
        jax.distributed.initialize()  # the cluster's environment says who is who
    return train(args)


def train(args: argparse.Namespace) -> dict[str, np.ndarray]:
    import jax
    import optax
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import sharpax

    # Every device of the job, in process order: process p's devices hold rows p*B/n ... of a batch.
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    replicated, by_rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    say = print if jax.process_index() == 0 else lambda *a, **k: None
    say(
        f"{jax.process_count()} process(es), {jax.device_count()} devices ({jax.local_device_count()} here)"
    )

    def loss_fn(params, x, y):
        hidden = jax.nn.gelu(x @ params["w1"] + params["b1"][None, :])
        logits = hidden @ params["w2"] + params["b2"][None, :]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    rng = np.random.default_rng(0)  # the same initial weights in every process
    init = {
        "w1": rng.normal(size=(FEATURES, 64)).astype(np.float32) / 4,
        "b1": np.zeros(64, np.float32),
        "w2": rng.normal(size=(64, CLASSES)).astype(np.float32) / 8,
        "b2": np.zeros(CLASSES, np.float32),
    }
    params = {k: jax.device_put(v, replicated) for k, v in init.items()}
    tx = sharpax.adamw(sharpax.warmup_cosine_decay(3e-3, 5, args.steps), weight_decay=1e-2)
    # The state under jit with explicit shardings: param-shaped buffers like the params, counters
    # replicated. (`jax.jit(tx.init)(params)` would leave every leaf on one local device, and a
    # state from an eager `tx.init` holds host-local counters that orbax cannot save across hosts.)
    state_shardings = optax.tree_map_params(
        tx,
        lambda _, p: p.sharding,
        jax.eval_shape(tx.init, params),
        params,
        transform_non_params=lambda _: replicated,
    )
    opt_state = jax.jit(tx.init, out_shardings=state_shardings)(params)
    sam_grad = sharpax.sam_value_and_grad(loss_fn, rho=0.05)

    @jax.jit
    def train_step(params, opt_state, x, y):
        loss, grads = sam_grad(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def local_batch(step):
        """This process's rows of batch `step`: in real use, read from its own shard of the data."""
        rng = np.random.default_rng(1 + step)
        x = rng.normal(size=(BATCH, FEATURES)).astype(np.float32)
        y = np.argmax(x[:, :CLASSES] + 0.5 * x[:, CLASSES : 2 * CLASSES], axis=1).astype(np.int32)
        rows = BATCH // jax.process_count()
        mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
        return x[mine], y[mine]

    for step in range(args.steps):
        x, y = (
            jax.make_array_from_process_local_data(by_rows, a, (BATCH, *a.shape[1:]))
            for a in local_batch(step)
        )
        params, opt_state, loss = train_step(params, opt_state, x, y)
        if step % 10 == 0 or step == args.steps - 1:
            say(f"step {step:3d}  loss {float(loss):.4f}")  # a replicated scalar: any host reads it

    if args.checkpoint is not None:
        import orbax.checkpoint as ocp

        checkpointer = ocp.StandardCheckpointer()  # every process writes the shards it holds
        checkpointer.save(args.checkpoint.absolute(), {"params": params, "opt_state": opt_state})
        checkpointer.wait_until_finished()
        say(f"checkpoint: {args.checkpoint}")
    final = {
        k: np.asarray(multihost_utils.process_allgather(v, tiled=True)) for k, v in params.items()
    }
    if args.out is not None and jax.process_index() == 0:
        np.savez(args.out, **final)
    if args.coordinator or args.distributed:
        jax.distributed.shutdown()
    return final


if __name__ == "__main__":
    main()
