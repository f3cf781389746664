"""Benchmark suite: sharpax vs optax (and torch CPU), side by side, interleaved; writes RESULTS.md and JSON.

python -m benchmarks.run            # the full suite (tens of minutes on 2 CPU cores)
python -m benchmarks.run --quick    # a few minutes: fewer rounds, the costly regimes for adam only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# torch's OpenMP workers spin after each op by default, stealing the shared cores from whoever runs next;
# passive waiting keeps the interleaved samples independent. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from benchmarks import _cases, _report, _trees, compile_probe  # noqa: E402
from benchmarks import _harness as h  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Which optimizers run in each regime under --quick (the many-leaf regimes cost ~1 min of compile each).
QUICK_CASES = {
    "large_1x4M": None,
    "flax_transformer": None,
    "small_400x10k": ["adam", "sgd_momentum"],
    "small_2000x1k": [],  # ~1-2 min of compile per optimizer on 2 shared cores: full mode only
    "large_1x64M": None,
}
# Full mode: the per-regime compile probe of the 2000-leaf regime (~45 s per compile here, 9 samples x 2
# libraries x 12 optimizers would be ~2.5 h) runs for these optimizers only, with fewer samples; the
# compile-vs-leaves sweep covers the many-leaf compile scaling.
FULL_COMPILE_CASES = {"small_2000x1k": (["adam", "sgd_momentum"], 3)}
SWEEP_LEAVES = {"quick": [100, 1000], "full": [100, 1000, 4000]}
SWEEP_CASES = {"quick": ["adam"], "full": ["adam", "sgd"]}
# Compile samples per library at each leaf count (4000 leaves: ~1-2 min per compile here).
SWEEP_REPS = {"quick": {100: 5, 1000: 3}, "full": {100: 9, 1000: 5, 4000: 1}}
# The suites of the SAM, Lookahead and sharpness work, run as modules in a subprocess each; the arguments
# run.py passes them in each mode, and the name of what each writes into --out (a file, or "" for the
# directory itself).
EXTRA_SUITES = {
    "bench_sam": {
        "quick": ["--rounds", "15", "--steps", "10", "--clock", "process"],
        "full": ["--rounds", "25", "--steps", "10", "--clock", "process"],
        "out": "bench_sam_mlp.json",
    },
    "bench_lookahead": {
        "quick": ["--rounds", "20", "--warmup", "5", "--clock", "process", "--per-step"],
        "full": ["--rounds", "30", "--warmup", "5", "--clock", "process", "--per-step"],
        "out": "bench_lookahead.json",
    },
    # The PyHessian comparison runs when $PYHESSIAN names a checkout of it.
    "bench_sharpness": {"quick": ["--quick"], "full": [], "out": ""},
}


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def step_regime(name, params, cases, args, use_torch):
    grads = jax.tree.map(lambda x: 1e-3 * x + 1e-4, params)
    n_params = sum(x.size for x in jax.tree.leaves(params))
    out = {}
    for i, case in enumerate(cases):
        builders = [("sharpax", case.sharpax), ("optax", case.optax)]
        if i % 2:  # alternate who compiles first
            builders.reverse()
        jax_runners = {label: h.JaxRunner(make(), params, grads) for label, make in builders}
        runners: dict[str, h.JaxRunner | h.TorchRunner | h.CopyRunner] = {
            "sharpax": jax_runners["sharpax"],
            "optax": jax_runners["optax"],
        }
        if use_torch and case.torch is not None:
            runners["torch"] = h.TorchRunner(case.torch, params, grads)
        if name.startswith("large"):
            runners["copy"] = h.CopyRunner(n_params)
        samples = h.interleaved(runners, args.rounds, args.target_s, budget_s=args.budget_s)
        row = {
            "step_s": {k: h.median(v) for k, v in samples.items()},
            "vs_optax": h.paired_ratio(samples["sharpax"], samples["optax"]),
            "state_bytes": {
                k: r.state_bytes for k, r in runners.items() if not isinstance(r, h.CopyRunner)
            },
            "fusions": {k: jax_runners[k].fusions for k in ("sharpax", "optax")},
            "samples": samples,
        }
        if "torch" in samples:
            row["torch_vs_optax"] = h.paired_ratio(samples["torch"], samples["optax"])
        if "copy" in samples:
            # Floats read + written per parameter: params, grads, then every state array read and written.
            k = round(row["state_bytes"]["sharpax"] / (4 * n_params))
            bytes_step = 4 * n_params * (3 + 2 * k)
            copy_bytes = 8 * n_params
            row["bandwidth"] = {
                "bytes_per_step": bytes_step,
                "gbps": {lbl: bytes_step / row["step_s"][lbl] / 1e9 for lbl in ("sharpax", "optax")}
                | {"copy": copy_bytes / row["step_s"]["copy"] / 1e9},
                # time / (copy time scaled to the same bytes), per round
                "vs_floor": h.paired_ratio(
                    samples["sharpax"],
                    [c * bytes_step / copy_bytes for c in samples["copy"]],
                ),
                "optax_vs_floor": h.paired_ratio(
                    samples["optax"],
                    [c * bytes_step / copy_bytes for c in samples["copy"]],
                ),
            }
        out[case.id] = row
        print(
            f"  {name:18s} {case.id:14s} step x{row['vs_optax']['ratio']:.3f} "
            f"[{row['vs_optax']['p25']:.3f}, {row['vs_optax']['p75']:.3f}]  "
            + (f"  torch x{row['torch_vs_optax']['ratio']:.2f}" if "torch_vs_optax" in row else "")
            + (
                f"  floor x{row['bandwidth']['vs_floor']['ratio']:.2f}"
                if "bandwidth" in row
                else ""
            ),
            flush=True,
        )
        del runners
    if not args.compile_probe:
        return out
    ids, samples = [c.id for c in cases], None
    if not args.quick and name in FULL_COMPILE_CASES:
        keep, samples = FULL_COMPILE_CASES[name]
        ids = [i for i in ids if i in keep]
    compiles = compile_isolated(name, ids, args, samples=samples)
    for cid, row in out.items():
        if cid in compiles:
            row["compile"] = compiles[cid]
    return out


def compile_isolated(regime, ids, args, samples=None):
    """Compile times from `compile_probe.py` in a fresh process (see its docstring for why)."""
    if not ids:  # e.g. --only names no optimizer of the compile sweep
        return {}
    samples = samples or args.compile_samples
    res = compile_probe.run_isolated(regime, ids, samples, args.clock)
    for cid, r in res.items():
        cs, v = r["compile_s"], r["vs_optax"]
        print(
            f"  compile {regime:18s} {cid:14s} sharpax {cs['sharpax']:.2f}s optax {cs['optax']:.2f}s "
            f"x{v['ratio']:.3f} [{v['p25']:.2f}, {v['p75']:.2f}]  kernels "
            f"{r['kernels']['sharpax']}/{r['kernels']['optax']}",
            flush=True,
        )
    return res


def compile_sweep(cases, leaf_counts, args, quick):
    out = {}
    for n in leaf_counts:
        reps = SWEEP_REPS["quick" if quick else "full"][n]
        res = compile_isolated(f"leaves:{n}", [c.id for c in cases], args, samples=reps)
        for cid, row in res.items():
            out.setdefault(cid, {})[n] = row
    return out


def memory(cases, params, use_torch):
    p_bytes = _trees.tree_bytes(params)
    grads = jax.tree.map(lambda x: 1e-3 * x, params)
    out = {}
    for case in cases:
        row = {
            lbl: _trees.tree_bytes(jax.eval_shape(make().init, params)) / p_bytes
            for lbl, make in (("sharpax", case.sharpax), ("optax", case.optax))
        }
        if use_torch and case.torch is not None:
            row["torch"] = h.TorchRunner(case.torch, params, grads).state_bytes / p_bytes
        out[case.id] = row
    return out


def extra_suites(quick: bool, out: Path) -> dict:
    """Run the SAM / Lookahead / sharpness suites, each in its own process; they print their own tables
    and write their results next to run.py's."""
    results = {}
    for module, modes in EXTRA_SUITES.items():
        cmd = [sys.executable, "-m", f"benchmarks.{module}", *modes["quick" if quick else "full"]]
        cmd += ["--out", str(out / modes["out"])]
        print(f"running {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), cwd=ROOT)
        results[module] = {
            "status": "ok" if proc.returncode == 0 else f"exit {proc.returncode}",
            "seconds": time.perf_counter() - t0,
            "stdout": proc.stdout[-20000:],
            "stderr": proc.stderr[-4000:] if proc.returncode else "",
        }
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few minutes instead of tens")
    ap.add_argument("--only", help="comma-separated optimizer ids (default: all)")
    ap.add_argument("--regimes", help="comma-separated regimes (default: all)")
    ap.add_argument("--sections", default="step,compile,memory,grouped,extra")
    ap.add_argument("--no-torch", action="store_true")
    h.add_clock_argument(ap, default="process")
    ap.add_argument("--rounds", type=int, help="interleaved rounds per measurement")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for RESULTS.md, results.json and the suites' files (default: "
        "benchmarks/results/<device>/, e.g. results/cpu)",
    )
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    args.rounds = args.rounds or (
        15 if args.quick else 31
    )  # at least; more while the budget allows
    args.target_s = 0.01
    args.budget_s = 3.0 if args.quick else 8.0
    args.compile_samples = 5 if args.quick else 9  # per library, alternating, in a fresh process
    sections = set(args.sections.split(","))
    args.compile_probe = "compile" in sections  # each step regime's compile times, and the sweep
    h.set_clock(args.clock)
    out = args.out or h.results_dir()
    use_torch = have_torch() and not args.no_torch
    if use_torch:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    only = set(args.only.split(",")) if args.only else None
    cases = [c for c in _cases.CASES if only is None or c.id in only]
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.time()

    # One throwaway compile so no measured compile pays the process's first-compile costs.
    h.compile_step(optax.adam(1e-3), {"w": jnp.ones(8)}, {"w": jnp.ones(8)})

    results = {
        "meta": {
            "command": command.strip(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "mode": mode,
            "rounds": args.rounds,
            "target_sample_s": args.target_s,
            "budget_s": args.budget_s,
            "clock": args.clock,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores visible (shared)",
            "platform": platform.platform(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "optax": optax.__version__,
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
        },
        "step": {},
    }
    if use_torch:
        import torch

        results["meta"]["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"

    if "step" in sections:
        wanted = set(args.regimes.split(",")) if args.regimes else None
        for name, params in _trees.regime_trees(args.quick, wanted).items():
            ids = QUICK_CASES.get(name) if args.quick else None
            regime_cases = [c for c in cases if ids is None or c.id in ids]
            if not regime_cases:
                continue
            print(f"regime {name}", flush=True)
            results["step"][name] = step_regime(name, params, regime_cases, args, use_torch)
    if "compile" in sections:
        sweep_cases = [c for c in cases if c.id in SWEEP_CASES[mode]]
        print("compile sweep", flush=True)
        results["compile"] = compile_sweep(sweep_cases, SWEEP_LEAVES[mode], args, args.quick)
    if "memory" in sections:
        results["memory"] = memory(cases, _trees.transformer_params(), use_torch)
    if "grouped" in sections:
        from benchmarks import _grouped

        print("grouped prototype", flush=True)
        results["grouped"] = _grouped.run(args)
    if "extra" in sections:
        results["extra"] = extra_suites(args.quick, out)
    results["meta"]["wall_s"] = time.time() - started

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    (out / "RESULTS.md").write_text(_report.markdown(results))
    print(f"wrote {out / 'RESULTS.md'} and results.json in {results['meta']['wall_s']:.0f}s")


if __name__ == "__main__":
    main()
