"""Many processes: jobs of 2 processes x 4 CPU devices on JAX's distributed runtime (`jax.distributed`,
gloo collectives over 127.0.0.1) train as one process with 8 devices does, and checkpoint and resume.

The workers are `tests/multiprocess_worker.py`; the reference is its `train()` run in this process, on
the 8 devices conftest creates. Results agree to float32 rounding: the gradients' all-reduce sums in
another order across processes (gloo) than within one (a few ulps per step; 20 steps of SAM stay
below 2e-5 relative). A checkpoint written by one 2-process job (each process its own shards) and
restored by a fresh one continues bit for bit.

Every process has a deadline and is killed on the way out, whatever happens. All of it runs with
`-m slow` only (two fresh JAX processes per job cost several seconds): one scenario for a few steps,
all of them for 20 steps with the audit of the library's entry points on global arrays outside `jit`,
and the checkpoint round trip.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests import multiprocess_worker as mw

REPO = pathlib.Path(__file__).resolve().parents[1]
RTOL, ATOL = 2e-5, 2e-6
TIMEOUT_S = 240  # one job, on 2 shared cores with other work (a quiet machine needs ~15 s)


def gloo_unavailable() -> str | None:
    """Why this jaxlib cannot run CPU collectives across processes, or None when it can."""
    try:
        from jax._src.lib import _jax
    except ImportError:  # a jaxlib layout we do not know: let the run itself tell
        return None
    if not hasattr(_jax, "make_gloo_tcp_collectives"):
        return "this jaxlib has no gloo CPU collectives (jax_cpu_collectives_implementation='gloo')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out: pathlib.Path, *args: str, processes: int = 2) -> list[dict[str, np.ndarray]]:
    """Run one job of `processes` workers; return what each wrote. Killed at TIMEOUT_S, always."""
    reason = gloo_unavailable()
    if reason:
        pytest.skip(reason)
    env = {
        k: v for k, v in os.environ.items() if k != "XLA_FLAGS"
    }  # 4 devices each, not conftest's 8
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    port = str(free_port())
    logs = [out / f"log{i}.txt" for i in range(processes)]
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for i, log in enumerate(logs):
            command = [sys.executable, "-m", "tests.multiprocess_worker", "--process-id", str(i)]
            command += ["--num-processes", str(processes), "--port", port, "--out", str(out)]
            with open(log, "w") as sink:
                procs.append(
                    subprocess.Popen(
                        command + list(args), cwd=REPO, env=env, stdout=sink, stderr=sink
                    )
                )
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    tails = "\n".join(f"--- process {i}\n{log.read_text()[-3000:]}" for i, log in enumerate(logs))
    assert codes is not None, f"the job did not finish within {TIMEOUT_S} s\n{tails}"
    assert codes == [0] * processes, f"exit codes {codes}\n{tails}"
    results = []
    for i in range(processes):
        with np.load(out / f"process{i}.npz") as f:
            results.append({k: f[k] for k in f.files})
    return results


def reference(scenarios, steps) -> dict[str, np.ndarray]:
    """The same training in this process, on 8 devices."""
    assert jax.device_count() >= 8
    out = {}
    for scenario in scenarios:
        params, _ = mw.train(scenario, steps)
        out.update({f"{scenario}{k}": np.asarray(v) for k, v in mw.gather(params).items()})
    return out


def assert_same_as_one_process(results, want):
    # Every process gathered the same global values, bit for bit.
    for other in results[1:]:
        assert sorted(other) == sorted(results[0])
        for k in other:
            assert other[k].tobytes() == results[0][k].tobytes(), k
    for k, w in want.items():
        np.testing.assert_allclose(results[0][k], w, rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.slow  # two fresh JAX processes and their compiles: several seconds
def test_two_processes_train_as_one_process_fsdp_adam(tmp_path):
    """The quick one: Adam with params sharded over both processes' devices, a few steps."""
    results = launch(tmp_path, "--scenarios", "fsdp_adam", "--steps", "4")
    assert_same_as_one_process(results, reference(["fsdp_adam"], 4))


@pytest.mark.slow
def test_two_processes_train_as_one_process_every_scenario(tmp_path):
    """Data-parallel SAM (one global perturbation, and per device), GSAM, lookahead(adam), FSDP Adam:
    20 steps each."""
    results = launch(tmp_path, "--steps", "20", "--audit")
    want = reference(mw.SCENARIOS, 20)
    # The audit's eager calls on global arrays give what the same calls give in one process.
    want.update(mw.audit(None))
    assert len([k for k in want if k.startswith("audit/")]) == 17
    assert_same_as_one_process(results, want)


@pytest.mark.slow
def test_checkpoint_resume_across_processes_is_bit_identical(tmp_path):
    """A 2-process job trains 10 steps, saves (each process writes its shards), trains 10 more; a fresh
    2-process job restores the checkpoint and trains the same 10: identical params, bit for bit."""
    scenarios = ",".join(mw.SCENARIOS)
    common = ("--scenarios", scenarios, "--steps", "20", "--checkpoint", str(tmp_path / "ckpt"))
    saved = launch(tmp_path / "save", *common, "--phase", "save")
    resumed = launch(tmp_path / "resume", *common, "--phase", "resume")
    for process in (tmp_path / "ckpt").iterdir():
        written = {p.name for p in process.iterdir()}
        assert {"ocdbt.process_0", "ocdbt.process_1"} <= written, written  # each its own shards
    for k, v in saved[0].items():
        assert resumed[0][k].tobytes() == v.tobytes(), k
        assert resumed[1][k].tobytes() == v.tobytes(), k
    assert_same_as_one_process(saved, reference(mw.SCENARIOS, 20))
