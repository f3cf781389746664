"""The one timing harness of every suite: the clock, runners, interleaved shuffled rounds, paired ratios.

A runner is a callable `run(k) -> seconds` that takes k steps and blocks on their result; `interleaved`
alternates the runners of one comparison in shuffled rounds and `paired_ratio` reduces two of them to the
median and quartiles of their per-round ratios.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

# `process` is this process's CPU time, all its threads: other jobs on a shared machine do not inflate it.
# On a GPU only `wall` means anything (the host thread mostly waits).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}
CLOCK_NAME = "wall"


def now() -> float:
    """The current reading of the selected clock (`set_clock`)."""
    return CLOCKS[CLOCK_NAME]()


def set_clock(name: str) -> None:
    """Select the clock of every sample: `wall` or `process` (`cpu` is accepted for `process`)."""
    global CLOCK_NAME
    name = clock_name(name)
    if name not in CLOCKS:
        raise ValueError(f"clock must be one of {sorted(CLOCKS)}, got {name!r}")
    CLOCK_NAME = name


def clock_name(name: str) -> str:
    """The clock's canonical name: `cpu`, the older spelling of `process`, maps to it."""
    return "process" if name == "cpu" else name


def add_clock_argument(parser: argparse.ArgumentParser, default: str) -> None:
    """`--clock {wall,process}`, the same option in every script (`cpu` still accepted for `process`)."""
    parser.add_argument(
        "--clock",
        type=clock_name,
        choices=sorted(CLOCKS),
        default=default,
        help="time samples by the wall clock, or by this process's CPU time (all its threads: other "
        f"jobs on a shared machine do not inflate it; meaningless on a GPU). Default: {default}",
    )


RESULTS = Path(__file__).resolve().parent / "results"


def results_dir() -> Path:
    """Where a run writes by default: `benchmarks/results/cpu/`, or e.g. `gpu_h200/` on an NVIDIA H200."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        return RESULTS / "cpu"
    kind = re.sub(r"^nvidia[ _-]*", "", device.device_kind.lower())
    return RESULTS / f"{device.platform}_{re.sub(r'[^a-z0-9]+', '_', kind).strip('_')}"


def run_meta(module: str) -> dict:
    """What every results file records: the command, the date, the device, the clock, the versions."""
    device = jax.devices()[0]
    return {
        "command": " ".join(["python -m", module, *sys.argv[1:]]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": f"{device.platform} {device.device_kind}",
        "host": platform.node(),
        "clock": CLOCK_NAME,
        "jax": jax.__version__,
        "optax": optax.__version__,
    }


def make_step(tx: optax.GradientTransformation) -> Callable:
    """A fresh training-loop step (update + apply_updates); a new closure so nothing is reused from a cache."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def lower_step(tx, params, state, grads):
    """The step with params and state donated, lowered (traced to StableHLO) for these shapes."""
    return jax.jit(make_step(tx), donate_argnums=(0, 1)).lower(params, state, grads)


def compile_step(tx, params, grads) -> tuple[Callable, float]:
    """(compiled step with params and state donated, seconds spent in lower + compile)."""
    state = jax.eval_shape(tx.init, params)
    t0 = now()
    compiled = lower_step(tx, params, state, grads).compile()
    return compiled, now() - t0


def count_fusions(compiled) -> int:
    """Kernels XLA emits for the step (fusions in the optimized HLO's entry computation)."""
    return len(re.findall(r"^\s*\S+ = \S+ fusion\(", compiled.as_text(), re.M))


def count_distinct_kernels(compiled) -> int:
    """Distinct fused computations: XLA:CPU compiles one kernel per distinct body and reuses it.

    Two fusions share a kernel only when their bodies, parameter shapes *and parameter order* match, so
    this, not the fusion count, is what LLVM compiles: a steadier proxy for compile time than a timing.
    """
    bodies = set()
    for params, out, body in re.findall(
        r"^%fused_computation\S* \((.*?)\) -> (.*?) \{\n(.*?)\n\}", compiled.as_text(), re.M | re.S
    ):
        body = re.sub(r", metadata=\{.*?\}", "", re.sub(r"%[\w.\-]+", "%", body))
        bodies.add((re.sub(r"[\w.]+: ", "", params), out, body))
    return len(bodies)


def fresh_copy(tree):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class JaxRunner:
    """Owns a params/state pair and advances it with a compiled, donating step."""

    def __init__(self, tx, params, grads):
        self.compiled, self.compile_s = compile_step(tx, params, grads)
        self.fusions = count_fusions(self.compiled)
        self.params = fresh_copy(params)
        self.state = tx.init(self.params)
        self.grads = grads
        self.state_bytes = _tree_bytes(self.state)

    def __call__(self, k: int) -> float:
        t0 = now()
        p, s = self.params, self.state
        for _ in range(k):
            p, s = self.compiled(p, s, self.grads)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s
        return now() - t0


class CopyRunner:
    """The bandwidth floor: `x * s` on a same-size array, donated (reads 4 and writes 4 bytes per float)."""

    def __init__(self, size: int):
        self.fn = jax.jit(lambda x, s: x * s, donate_argnums=0)
        self.x = jnp.ones(size, jnp.float32)
        self.s = jnp.ones([], jnp.float32)  # an argument, so the multiply cannot be folded away

    def __call__(self, k: int) -> float:
        t0 = now()
        x = self.x
        for _ in range(k):
            x = self.fn(x, self.s)
        x.block_until_ready()
        self.x = x
        return now() - t0


class TorchRunner:
    """torch.optim on CPU with `.grad` set once; `step()` is the whole training-loop update."""

    def __init__(self, build, params, grads):
        import torch

        self.params = [
            torch.tensor(np.asarray(x), requires_grad=True) for x in jax.tree.leaves(params)
        ]
        for p, g in zip(self.params, jax.tree.leaves(grads), strict=True):
            p.grad = torch.tensor(np.asarray(g))
        self.opt = build(self.params)
        self.compile_s = float("nan")
        self.opt.step()
        self.state_bytes = sum(
            t.numel() * t.element_size()
            for st in self.opt.state.values()
            for t in st.values()
            if isinstance(t, torch.Tensor)
        )

    def __call__(self, k: int) -> float:
        t0 = now()
        for _ in range(k):
            self.opt.step()
        return now() - t0


class StepRunner:
    """Advances a carry with a jitted step: `step(*carry, *args)` returns the new carry first, then
    any other outputs (a loss); `k` calls are timed together and blocked on at the end. With an empty
    carry it times `step(*args)`, whatever that returns. With `cycle` (e.g. PRNG keys made before
    timing), the i-th step of every sample also gets `cycle[i % len(cycle)]` as its last argument."""

    def __init__(self, step: Callable, carry: tuple, *args, cycle: Sequence | None = None):
        self.step, self.carry, self.args, self.cycle = step, tuple(carry), args, cycle

    def __call__(self, k: int) -> float:
        carry, n = self.carry, len(self.carry)
        out = carry
        extra = [()] if self.cycle is None else [(c,) for c in self.cycle]
        jax.block_until_ready(carry)
        t0 = now()
        for i in range(k):
            out = self.step(*carry, *self.args, *extra[i % len(extra)])
            if n:  # with no carry (a plain function of fixed arguments), the output is anything
                carry = tuple(out[:n])
        jax.block_until_ready(out)
        elapsed = now() - t0
        self.carry = carry
        return elapsed


def with_page_faults(run: Callable[[int], float], faults: list[float]) -> Callable[[int], float]:
    """`run`, appending the minor page faults per step of every sample to `faults` (getrusage)."""
    import resource

    def counted(k: int) -> float:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        elapsed = run(k)
        faults.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / max(k, 1))
        return elapsed

    return counted


def _tree_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def interleaved(
    runners: dict[str, Callable[[int], float]],
    rounds: int,
    target_s: float,
    warmup: int = 2,
    budget_s: float = 0.0,
    max_rounds: int = 400,
    steps: int | None = None,
) -> dict[str, list[float]]:
    """Per-step seconds of each runner in each round, the runners alternating within every round.

    After `warmup` steps each, every runner gets its own repeat count `k` so that one sample lasts about
    `target_s`, or the same fixed count `steps` (for steps whose cost repeats with a period: SAM every k
    steps, a Lookahead sync). There are `rounds` rounds, or more while they fit in `budget_s` (short
    samples and many rounds make the median robust to the bursts of other processes on a shared
    machine). The order is shuffled every round (seeded): a fixed rotation keeps each runner's
    predecessor the same, and a predecessor's after-effects (torch's spinning OpenMP threads, cache
    state) would bias it.
    """
    rng = np.random.default_rng(0)
    ks, sample_s = {}, {}
    for name, run in runners.items():
        if warmup:
            run(warmup)
        # One step's time sets k; with fixed `steps` it is needed only for the budget, and is taken over
        # a whole sample so that every runner's step count stays a multiple of `steps`.
        calibrate = steps is None or budget_s > 0
        one = max(run(steps or 1) / (steps or 1), 1e-7) if calibrate else 0.0
        ks[name] = steps or max(1, math.ceil(target_s / one))
        sample_s[name] = ks[name] * one
    names = list(runners)
    per_round = max(sum(sample_s.values()), 1e-9)
    rounds = min(max_rounds, max(rounds, int(budget_s / per_round)))
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name in rng.permutation(names):
                samples[name].append(runners[name](ks[name]) / ks[name])
    finally:
        gc.enable()
    return samples


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """Median and quartiles of the per-round ratios num/den (pairs taken in the same round)."""
    r = np.asarray(num) / np.asarray(den)
    p25, p50, p75 = np.percentile(r, [25, 50, 75])
    return {"ratio": float(p50), "p25": float(p25), "p75": float(p75)}


def median(xs: Sequence[float]) -> float:
    return float(np.median(xs))
