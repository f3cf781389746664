"""Timing machinery: donated jitted steps, torch steps, a copy floor, interleaved rounds, medians."""

from __future__ import annotations

import gc
import math
import re
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

# The clock of every sample: wall time by default; `use_cpu_clock()` switches to this process's CPU time,
# which other jobs on a shared machine do not inflate (it does count every thread of the process).
CLOCK = time.perf_counter


def use_cpu_clock() -> None:
    global CLOCK
    CLOCK = time.process_time


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
    t0 = CLOCK()
    compiled = lower_step(tx, params, state, grads).compile()
    return compiled, CLOCK() - t0


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
        t0 = CLOCK()
        p, s = self.params, self.state
        for _ in range(k):
            p, s = self.compiled(p, s, self.grads)
        jax.block_until_ready((p, s))
        self.params, self.state = p, s
        return CLOCK() - t0


class CopyRunner:
    """The bandwidth floor: `x * s` on a same-size array, donated (reads 4 and writes 4 bytes per float)."""

    def __init__(self, size: int):
        self.fn = jax.jit(lambda x, s: x * s, donate_argnums=0)
        self.x = jnp.ones(size, jnp.float32)
        self.s = jnp.ones([], jnp.float32)  # an argument, so the multiply cannot be folded away

    def __call__(self, k: int) -> float:
        t0 = CLOCK()
        x = self.x
        for _ in range(k):
            x = self.fn(x, self.s)
        x.block_until_ready()
        self.x = x
        return CLOCK() - t0


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
        t0 = CLOCK()
        for _ in range(k):
            self.opt.step()
        return CLOCK() - t0


def _tree_bytes(tree) -> int:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, "dtype"))


def interleaved(
    runners: dict[str, Callable[[int], float]],
    rounds: int,
    target_s: float,
    warmup: int = 2,
    budget_s: float = 0.0,
    max_rounds: int = 400,
) -> dict[str, list[float]]:
    """Per-step seconds of each runner in each round, the runners alternating within every round.

    After `warmup` steps each, every runner gets its own repeat count `k` so that one sample lasts about
    `target_s`; there are `rounds` rounds, or more while they fit in `budget_s` (short samples and many
    rounds make the median robust to the bursts of other processes on a shared machine). The order is shuffled every round (seeded): a fixed rotation keeps each runner's predecessor
    the same, and a predecessor's after-effects (torch's spinning OpenMP threads, cache state) would bias it.
    """
    rng = np.random.default_rng(0)
    ks, sample_s = {}, {}
    for name, run in runners.items():
        run(warmup)
        one = max(run(1), 1e-7)
        ks[name] = max(1, math.ceil(target_s / one))
        sample_s[name] = ks[name] * one
    names = list(runners)
    per_round = sum(sample_s.values())
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
