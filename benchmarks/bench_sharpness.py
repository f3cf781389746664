"""sharpax.sharpness costs: a Hessian-vector product against a gradient, Lanczos against power iteration
with deflation (PyHessian's rule) at a known spectrum, and top-eigenvalue time against PyHessian itself.

    python -m benchmarks.bench_sharpness [--pyhessian PATH] [--quick] [--clock process] [--out DIR]

(`python -m benchmarks.run` runs it too, with the PyHessian comparison when $PYHESSIAN names a checkout.)
It writes sharpness.md and sharpness.json to `benchmarks/results/<device>/` unless `--out` says otherwise.

- `hvp`: one HVP (`jax.jvp` of `jax.grad`, what every function of the module calls) against one gradient
  (`jax.grad`), both jitted, on the MLP and the Flax Transformer of `_trees.py`; `_harness.interleaved`
  rounds by `--clock` (process CPU time by default), median and interquartile range of the per-round
  ratios.
- `accuracy`: on a small MLP whose dense Hessian is computed exactly, the top-3 eigenvalue errors and the
  number of HVPs of Lanczos (this module) and of power iteration with deflation (PyHessian's
  `hessian.eigenvalues`, its rule transcribed here on the same HVPs), at equal tolerances and at equal
  budgets.
- `pyhessian`: wall time of the top eigenvalue (k = 1 and 3) by `hessian_eigenvalues` (jitted, compile
  excluded and reported apart) and by PyHessian (`hessian(model, criterion, data).eigenvalues(...)`,
  construction included: it is the first backward pass) on the same MLP, weights and batch, interleaved
  rounds, always by the wall clock. Needs torch and a PyHessian checkout (`--pyhessian`, github.com/amirgholami/PyHessian); PyHessian
  is GPL-3.0 and is imported from that path, never copied here. Skipped without them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import pathlib
import platform
import sys
from collections.abc import Callable
from typing import Any
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import sharpax
from benchmarks import _harness, _trees
from sharpax.sharpness import _lanczos, _operator

# The PyHessian comparison is timed by the wall clock whatever --clock says: it is the time a user
# waits, and torch and XLA spread their work over threads differently.
wall = _harness.CLOCKS["wall"]

S = sharpax.sharpness


def classification_loss(apply):
    def loss(params, x, y):
        logits = apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return loss


def lm_loss(apply):
    def loss(params, tokens):
        logits = apply(params, tokens[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    return loss


# A loss of (params, *args), its params and its args: the args' number differs between problems.
Problem = tuple[Callable[..., jax.Array], Any, tuple[jax.Array, ...]]


def problems(quick: bool) -> dict[str, Problem]:
    """name -> (loss, params, args): the MLP and the Transformer LM of `_trees.py` with a batch each."""
    apply, params = _trees.mlp_model()
    x = jax.random.normal(jax.random.key(1), (256, 784))
    y = jax.random.randint(jax.random.key(2), (256,), 0, 10)
    out: dict[str, Problem] = {
        "mlp 784-1024-1024-10, batch 256": (classification_loss(apply), params, (x, y))
    }
    apply, params = _trees.transformer_model()
    tokens = jax.random.randint(jax.random.key(3), (4 if quick else 8, 129), 0, 4096)
    out[f"flax transformer LM, {tokens.shape[0]} x 128 tokens"] = (
        lm_loss(apply),
        params,
        (tokens,),
    )
    return out


# ------------------------------------------------------------------------------------------ HVP cost


def hvp_fn(loss):
    """`hvp(params, v, *args)`: forward-over-reverse, as `sharpax.sharpness` computes it."""
    return lambda p, v, *a: jax.jvp(lambda q: jax.grad(loss)(q, *a), (p,), (v,))[1]


def bench_hvp(quick: bool) -> list[dict]:
    rows = []
    for name, (loss, params, args) in problems(quick).items():
        grad, hvp = jax.jit(jax.grad(loss)), jax.jit(hvp_fn(loss))
        v = jax.tree.map(lambda a: jnp.ones_like(a) / np.sqrt(a.size), params)
        samples = _harness.interleaved(
            {
                "grad": _harness.StepRunner(grad, (), params, *args),
                "hvp": _harness.StepRunner(hvp, (), params, v, *args),
            },
            rounds=7 if quick else 15,
            target_s=0.05,
            budget_s=5 if quick else 20,
        )
        ratio = _harness.paired_ratio(samples["hvp"], samples["grad"])
        rows.append(
            {
                "problem": name,
                "params": int(sum(a.size for a in jax.tree.leaves(params))),
                "grad_ms": 1e3 * _harness.median(samples["grad"]),
                "hvp_ms": 1e3 * _harness.median(samples["hvp"]),
                "rounds": len(samples["grad"]),
                **ratio,
            }
        )
        print(
            f"  {name}: hvp / grad = {ratio['ratio']:.2f} [{ratio['p25']:.2f}-{ratio['p75']:.2f}]"
        )
    return rows


# ------------------------------------------------------------------------------------------ accuracy


def small_problem():
    """A 64-32-10 tanh MLP (2410 params) after 200 Adam steps on a random teacher's labels."""
    apply, params = _trees.mlp_model((64, 32, 10), seed=4)
    tanh_apply = lambda p, x: apply(p, jnp.tanh(x))
    x = jax.random.normal(jax.random.key(5), (512, 64))
    teacher = jax.random.normal(jax.random.key(6), (64, 10))
    y = jnp.argmax(x @ teacher, axis=1)
    loss = classification_loss(tanh_apply)
    tx = optax.adam(3e-3)
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        g = jax.grad(loss)(params, x, y)
        updates, state = tx.update(g, state)
        return optax.apply_updates(params, updates), state

    for _ in range(200):
        params, state = step(params, state)
    return loss, params, (x, y)


def power_iteration_with_deflation(hvp, n, k, max_iter, tol, seed=0):
    """PyHessian's `hessian.eigenvalues(maxIter, tol, top_n)` rule (pyhessian/hessian.py), transcribed
    on flat float64 vectors: per eigenvalue, power iteration orthogonalised against the previous
    eigenvectors, stopped when the Rayleigh quotient changes by less than tol relative; normalisation
    adds 1e-6 to the norm as its `utils.normalization` does. Returns (eigenvalues, products used)."""
    rng = np.random.default_rng(seed)
    normalization = lambda v: v / (np.linalg.norm(v) + 1e-6)
    eigenvalues, eigenvectors, products = [], [], 0
    for _ in range(k):
        eigenvalue = None
        v = normalization(rng.standard_normal(n))
        for _ in range(max_iter):
            for u in eigenvectors:
                v = v - (v @ u) * u
            v = normalization(v)
            hv = hvp(v)
            products += 1
            tmp = float(hv @ v)
            v = normalization(hv)
            if eigenvalue is not None and abs(eigenvalue - tmp) / (abs(eigenvalue) + 1e-6) < tol:
                break
            eigenvalue = tmp
        eigenvalues.append(eigenvalue)
        eigenvectors.append(v)
    return np.array(eigenvalues), products


def bench_accuracy(quick: bool) -> dict:
    loss, params, args = small_problem()
    flat, unravel = ravel_pytree(params)
    with jax.enable_x64(True):
        flat64 = flat.astype(jnp.float64)
        args64 = (args[0].astype(jnp.float64), args[1])
        f = lambda w: loss(jax.tree.map(lambda a: a.astype(jnp.float64), unravel(w)), *args64)
        dense = np.asarray(jax.jit(jax.hessian(f))(flat64))
        hvp64 = jax.jit(lambda v: jax.jvp(jax.grad(f), (flat64,), (v,))[1])
        exact = np.linalg.eigvalsh(dense)[::-1][:3]

        def lanczos(tol, budget, k=3):
            hessian = _operator.HessianOperator("bench", f, flat64, ())
            run = jax.jit(
                lambda key: _lanczos.lanczos(
                    hessian,
                    _operator.normalize(
                        _operator.random_vector(key, hessian.leaves, jnp.float64), jnp.float64
                    ),
                    budget,
                    jax.random.key(1),
                    k=k,
                    tol=tol or None,
                )
            )
            result = run(jax.random.key(0))
            eigs, _, _ = _lanczos._top_ritz(result.alpha, result.beta, result.steps, k)
            return np.asarray(eigs), int(result.steps)

        rows = []
        for tol in (1e-3, 1e-6):
            for k in (1, 3):
                got, used = power_iteration_with_deflation(
                    lambda v: np.asarray(hvp64(jnp.asarray(v))), flat.size, k, 100, tol
                )
                rows.append(("power+deflation (PyHessian's rule)", tol, k, used, got))
                got, used = lanczos(tol, 100, k)
                rows.append(("lanczos (sharpax)", tol, k, used, got))
        budgets = []
        for budget in (5, 10, 20, 40) if quick else (5, 10, 20, 40, 80):
            got_l, _ = lanczos(0.0, budget)
            per = max(1, budget // 3)  # power iteration: the budget split over the 3 eigenvalues
            got_p, _ = power_iteration_with_deflation(
                lambda v: np.asarray(hvp64(jnp.asarray(v))), flat.size, 3, per, 0.0
            )
            budgets.append(
                {
                    "hvps": budget,
                    "lanczos_rel_err": (np.abs(got_l - exact) / abs(exact[0])).tolist(),
                    "power_rel_err": (np.abs(got_p - exact) / abs(exact[0])).tolist(),
                }
            )
    out = {
        "params": int(flat.size),
        "exact_top3": exact.tolist(),
        "at_tolerance": [
            {
                "method": m,
                "tol": tol,
                "k": k,
                "hvps": used,
                "rel_err": (np.abs(np.asarray(got) - exact[: len(got)]) / abs(exact[0])).tolist(),
            }
            for m, tol, k, used, got in rows
        ],
        "at_budget": budgets,
    }
    for r in out["at_tolerance"]:
        print(
            f"  {r['method']:36s} tol {r['tol']:g} k={r['k']}: {r['hvps']:3d} HVPs, max rel err {max(r['rel_err']):.1e}"
        )
    return out


# ---------------------------------------------------------------------------------------- PyHessian


def bench_pyhessian(path: pathlib.Path | None, quick: bool) -> dict:
    try:
        import torch
    except ImportError:
        return {"status": "skipped: torch is not installed"}
    if path is None or not (path / "pyhessian" / "hessian.py").exists():
        return {"status": "skipped: no PyHessian checkout (--pyhessian PATH)"}
    # Loaded from the checkout as the package `pyhessian` (its modules import each other by that name).
    spec = importlib.util.spec_from_file_location(
        "pyhessian",
        path / "pyhessian" / "__init__.py",
        submodule_search_locations=[str(path / "pyhessian")],
    )
    assert spec is not None and spec.loader is not None
    sys.modules["pyhessian"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["pyhessian"])
    # The module, not the class of the same name that pyhessian/__init__.py exports over it.
    pyhessian_module = importlib.import_module("pyhessian.hessian")

    apply, params = _trees.mlp_model()
    loss = classification_loss(apply)
    x = jax.random.normal(jax.random.key(1), (256, 784))
    y = jax.random.randint(jax.random.key(2), (256,), 0, 10)
    layers = []
    for i in range(3):
        layer = torch.nn.Linear(*params[f"dense{i}"]["kernel"].shape)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.asarray(params[f"dense{i}"]["kernel"]).T.copy()))
            layer.bias.copy_(torch.from_numpy(np.array(params[f"dense{i}"]["bias"])))
        layers += [layer, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    data = (torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)).long())

    counter = {"hvps": 0}
    original = pyhessian_module.hessian_vector_product

    def counted(*a, **kw):
        counter["hvps"] += 1
        return original(*a, **kw)

    # PyHessian's eigenvalues() calls its module's function: patched there to count the HVPs, and
    # restored on the way out, an exception included.
    rows = []
    with mock.patch.object(pyhessian_module, "hessian_vector_product", counted):
        for k in (1, 3):
            rows.append(
                _versus_pyhessian(
                    k, quick, loss, params, x, y, pyhessian_module, model, data, counter
                )
            )
    return {
        "status": "ran",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "model": "mlp 784-1024-1024-10, batch 256, float32",
        "rows": rows,
    }


def _lanczos_steps(loss, params, x, y, k, key):
    """How many HVPs `hessian_eigenvalues(..., k=k, key=key)` took (the same start and tolerance)."""
    hessian = _operator.HessianOperator("bench", loss, params, (x, y))
    start_key, restart_key = jax.random.split(key)
    v0 = _operator.random_vector(start_key, hessian.leaves, jnp.float32)
    v0 = _operator.normalize(v0, jnp.float32)
    return _lanczos.lanczos(hessian, v0, 100, restart_key, k=k, tol=1e-6).steps


def _versus_pyhessian(k, quick, loss, params, x, y, pyhessian_module, model, data, counter):
    import torch

    criterion = torch.nn.CrossEntropyLoss()
    ours = jax.jit(
        lambda p, key: S.hessian_eigenvalues(loss, p, x, y, k=k, num_iterations=100, key=key)
    )
    t0 = wall()
    compiled = ours.lower(params, jax.random.key(0)).compile()
    compile_s = wall() - t0
    eigs_ours = np.asarray(compiled(params, jax.random.key(0))[0])
    steps = jax.jit(lambda p, key: _lanczos_steps(loss, p, x, y, k, key))(params, jax.random.key(0))

    def run_ours(_k):
        t0 = wall()
        jax.block_until_ready(compiled(params, jax.random.key(0)))
        return wall() - t0

    result = {}

    def run_pyhessian(_k):
        counter["hvps"] = 0
        t0 = wall()
        h = pyhessian_module.hessian(model, criterion, data=data, cuda=False)
        eigs, _ = h.eigenvalues(maxIter=100, tol=1e-3, top_n=k)
        result.update(eigs=eigs, hvps=counter["hvps"])
        return wall() - t0

    samples = _harness.interleaved(
        {"sharpax": run_ours, "pyhessian": run_pyhessian},
        rounds=3 if quick else 7,
        target_s=0.0,
        warmup=1,
    )
    ratio = _harness.paired_ratio(samples["pyhessian"], samples["sharpax"])
    row = {
        "k": k,
        "sharpax_s": _harness.median(samples["sharpax"]),
        "sharpax_compile_s": compile_s,
        "sharpax_hvps": int(steps),
        "sharpax_eigs": eigs_ours.tolist(),
        "pyhessian_s": _harness.median(samples["pyhessian"]),
        "pyhessian_hvps": result["hvps"],
        "pyhessian_eigs": [float(e) for e in result["eigs"]],
        "rounds": len(samples["sharpax"]),
        **ratio,
    }
    print(
        f"  k={k}: sharpax {row['sharpax_s']:.3f} s ({int(steps)} HVPs), PyHessian "
        f"{row['pyhessian_s']:.3f} s ({result['hvps']} HVPs): PyHessian / sharpax "
        f"{ratio['ratio']:.2f} [{ratio['p25']:.2f}-{ratio['p75']:.2f}]"
    )
    return row


# -------------------------------------------------------------------------------------------- report


def report(results: dict) -> str:
    lines = [
        f"# sharpax.sharpness benchmarks ({results['device']})",
        "",
        f"`{results['command']}`",
        "",
    ]
    lines += [
        f"## One HVP against one gradient ({results.get('clock', 'process')} clock, median [IQR] of "
        "per-round ratios)",
        "",
    ]
    lines += ["| problem | params | grad ms | HVP ms | HVP / grad |", "|---|---|---|---|---|"]
    for r in results["hvp"]:
        lines.append(
            f"| {r['problem']} | {r['params']:,} | {r['grad_ms']:.2f} | {r['hvp_ms']:.2f} "
            f"| {r['ratio']:.2f} [{r['p25']:.2f}-{r['p75']:.2f}] |"
        )
    acc = results["accuracy"]
    lines += ["", f"## Lanczos vs power iteration with deflation ({acc['params']} params, exact top 3 "
              f"{', '.join(f'{e:.4f}' for e in acc['exact_top3'])})", ""]  # fmt: skip
    lines += [
        "| method | tol | k | HVPs | relative errors (of lambda_1) |",
        "|---|---|---|---|---|",
    ]
    for r in acc["at_tolerance"]:
        errs = ", ".join(f"{e:.1e}" for e in r["rel_err"])
        lines.append(f"| {r['method']} | {r['tol']:g} | {r['k']} | {r['hvps']} | {errs} |")
    lines += [
        "",
        "Equal budgets (top 3; power iteration gets a third of the budget per eigenvalue):",
        "",
    ]
    lines += ["| HVPs | Lanczos errors | power+deflation errors |", "|---|---|---|"]
    for r in acc["at_budget"]:
        fmt = lambda es: ", ".join(f"{e:.1e}" for e in es)
        lines.append(f"| {r['hvps']} | {fmt(r['lanczos_rel_err'])} | {fmt(r['power_rel_err'])} |")
    ph = results["pyhessian"]
    lines += [
        "",
        "## Top eigenvalues: sharpax vs PyHessian (wall clock, same model, weights, batch)",
        "",
    ]
    if ph["status"] != "ran":
        lines.append(ph["status"])
    else:
        lines += [
            f"{ph['model']}; torch {ph['torch']} ({ph['torch_threads']} threads); sharpax "
            "`hessian_eigenvalues(num_iterations=100, tol=1e-6)` jitted (compile apart), PyHessian "
            "`eigenvalues(maxIter=100, tol=1e-3)` (its defaults) with its construction.",
            "",
            "| k | sharpax s (HVPs) | compile s | PyHessian s (HVPs) | PyHessian / sharpax | eigenvalues sharpax / PyHessian |",
            "|---|---|---|---|---|---|",
        ]
        for r in ph["rows"]:
            eigs = f"{', '.join(f'{e:.4f}' for e in r['sharpax_eigs'])} / {', '.join(f'{e:.4f}' for e in r['pyhessian_eigs'])}"
            lines.append(
                f"| {r['k']} | {r['sharpax_s']:.3f} ({r['sharpax_hvps']}) | {r['sharpax_compile_s']:.1f} "
                f"| {r['pyhessian_s']:.3f} ({r['pyhessian_hvps']}) | {r['ratio']:.2f} [{r['p25']:.2f}-{r['p75']:.2f}] | {eigs} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    assert __doc__ is not None, "the --help text is this docstring; only python -OO strips it"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pyhessian",
        type=pathlib.Path,
        default=os.environ.get("PYHESSIAN"),
        help="a PyHessian checkout (default: $PYHESSIAN)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and a smaller LM batch")
    parser.add_argument("--sections", default="hvp,accuracy,pyhessian")
    _harness.add_clock_argument(parser, default="process")
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help="write sharpness.md/.json here (default: benchmarks/results/<device>/)",
    )
    args = parser.parse_args()
    _harness.set_clock(args.clock)
    args.out = args.out or _harness.results_dir()
    sections = args.sections.split(",")
    device = jax.devices()[0]
    results = {
        "device": f"{device.platform} {device.device_kind}, {platform.processor() or platform.machine()}",
        **{
            k: v
            for k, v in _harness.run_meta("benchmarks.bench_sharpness").items()
            if k != "device"
        },
    }
    if "hvp" in sections:
        print("hvp / grad:")
        results["hvp"] = bench_hvp(args.quick)
    if "accuracy" in sections:
        print("accuracy:")
        results["accuracy"] = bench_accuracy(args.quick)
    if "pyhessian" in sections:
        print("vs PyHessian:")
        results["pyhessian"] = bench_pyhessian(args.pyhessian, args.quick)
    if all(s in results for s in ("hvp", "accuracy", "pyhessian")):
        text = report(results)
        print(text)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sharpness.md").write_text(text)
        (args.out / "sharpness.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
