"""Render results.json as RESULTS.md: ratios first, the spread next to each, verdicts on the targets."""

from __future__ import annotations

STEP_TARGET = 1.05
COMPILE_TARGET = 1.10
FLOOR_TARGET = 1.3


def _r(d: dict) -> str:
    return f"{d['ratio']:.3f} [{d['p25']:.2f}-{d['p75']:.2f}]"


def _verdict(d: dict, target: float) -> str:
    if d["p75"] <= target:
        return "met"
    if d["ratio"] <= target:
        return "met (median; spread crosses)"
    if d["p25"] <= target:
        return "MISSED (median; spread crosses)"
    return "MISSED"


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = [
        "# sharpax benchmarks",
        "",
        f"Produced by `{m['command']}` on {m['date']} ({m['mode']} mode, {m['wall_s']:.0f} s).",
        f"Machine: {m['machine']}; {m['platform']}; Python {m['python']}; jax {m['jax']} "
        f"({m['backend']}), optax {m['optax']}"
        + (f", torch {m['torch']}" if "torch" in m else "")
        + ".",
        "",
        "Method: each step is `update` + `apply_updates` under `jax.jit(step, donate_argnums=(0, 1))` "
        "(params and optimizer state donated, gradients fixed), called through the compiled executable and "
        f"timed to `block_until_ready` by the {m.get('clock', 'wall')} clock"
        + (
            " (this process's CPU time, all its threads)"
            if m.get("clock") in ("cpu", "process")
            else ""
        )
        + ". sharpax, optax, torch (CPU, `foreach=True`) and, for the large leaf, "
        f"a copy are run in interleaved rounds (at least {m['rounds']}, more while a per-case budget of "
        f"{m.get('budget_s', 0):.0f} s allows; the order shuffled each round; a sample is at least "
        f"{m['target_sample_s'] * 1e3:.0f} ms or one step, after warm-up). A ratio is the median of "
        "the per-round ratios (pairs from the same round), with its interquartile range in brackets. "
        "Compile time is `lower` + `compile` of a fresh closure, measured by `python -m benchmarks.compile_probe` in a "
        "fresh process per regime (each sample after a garbage collection, the libraries alternating; a ratio is "
        "the median of per-sample ratios, its interquartile range in brackets). Distinct kernels are the fused "
        "computations XLA:CPU actually compiles (equal bodies share one): a noise-free proxy for compile work. "
        "Timings on a shared machine are noisy; read ratios within their brackets.",
        "",
    ]
    verdicts: list[str] = []
    step = res.get("step", {})
    for regime, rows in step.items():
        lines += [f"## Step time: {regime}", ""]
        big = any("bandwidth" in r for r in rows.values())
        head = (
            "| optimizer | sharpax/optax step | torch/optax step | optax step (ms) | sharpax/optax compile "
            "| compile s (sharpax / optax) | fusions (sharpax / optax) | distinct kernels (sharpax / optax) |"
        )
        sep = "|---|---|---|---|---|---|---|---|"
        if big:
            head += " GB/s sharpax / optax / copy | sharpax / copy floor |"
            sep += "---|---|"
        lines += [head, sep]
        for oid, r in rows.items():
            torch = _r(r["torch_vs_optax"]) if "torch_vs_optax" in r else "-"
            # No compile entry where the mode does not probe this optimizer's compile in this regime.
            c = r.get("compile")
            ratio, secs, kernels = "not run", "-", "-"
            if c is not None:
                ratio = _r(c["vs_optax"])
                secs = f"{c['compile_s']['sharpax']:.2f} / {c['compile_s']['optax']:.2f}"
                kernels = f"{c['kernels']['sharpax']} / {c['kernels']['optax']}"
            line = (
                f"| {oid} | {_r(r['vs_optax'])} | {torch} | {r['step_s']['optax'] * 1e3:.2f} | "
                f"{ratio} | {secs} | {r['fusions']['sharpax']} / {r['fusions']['optax']} | {kernels} |"
            )
            if big:
                b = r["bandwidth"]
                g = b["gbps"]
                line += f" {g['sharpax']:.1f} / {g['optax']:.1f} / {g['copy']:.1f} | {_r(b['vs_floor'])} |"
            lines.append(line)
            v = _verdict(r["vs_optax"], STEP_TARGET)
            if v != "met":
                verdicts.append(
                    f"- step {regime} {oid}: {_r(r['vs_optax'])} vs <= {STEP_TARGET} -> {v}"
                )
            if c is not None:
                v = _verdict(c["vs_optax"], COMPILE_TARGET)
                if v != "met":
                    verdicts.append(
                        f"- compile {regime} {oid}: {_r(c['vs_optax'])} vs <= {COMPILE_TARGET} -> {v} "
                        f"(distinct kernels {c['kernels']['sharpax']} / {c['kernels']['optax']})"
                    )
            if big and oid == "adam":
                v = _verdict(r["bandwidth"]["vs_floor"], FLOOR_TARGET)
                verdicts.append(
                    f"- large-leaf adam vs copy floor: {_r(r['bandwidth']['vs_floor'])} "
                    f"(optax {_r(r['bandwidth']['optax_vs_floor'])}) vs <= {FLOOR_TARGET} -> {v}"
                )
        lines.append("")
    if "large_1x4M" in step:
        lines += [
            "GB/s counts the bytes an ideal single pass moves: params, grads and every state array read, "
            "params and state written (Adam: 28 bytes per float32 parameter); the copy is `x * s` "
            "(8 bytes per element). The floor ratio is step time over copy time scaled to the same bytes.",
            "",
        ]
    if res.get("compile"):
        lines += ["## Compile time vs number of leaves (256 floats each)", ""]
        lines += [
            "| optimizer | leaves | samples | sharpax s | optax s | sharpax/optax | distinct kernels |",
            "|---|---|---|---|---|---|---|",
        ]
        for oid, by_n in res["compile"].items():
            for n, r in by_n.items():
                cs, k = r["compile_s"], r["kernels"]
                lines.append(
                    f"| {oid} | {n} | {len(r['samples']['sharpax'])} | {cs['sharpax']:.2f} | "
                    f"{cs['optax']:.2f} | {_r(r['vs_optax'])} | {k['sharpax']} / {k['optax']} |"
                )
                v = _verdict(r["vs_optax"], COMPILE_TARGET)
                if v != "met":
                    verdicts.append(
                        f"- compile sweep {oid} {n} leaves: {_r(r['vs_optax'])} vs <= {COMPILE_TARGET} -> {v}"
                    )
        lines.append("")
    if "memory" in res:
        lines += [
            "## Optimizer state bytes per parameter byte (the Flax Transformer's params)",
            "",
            "| optimizer | sharpax | optax | torch |",
            "|---|---|---|---|",
        ]
        for oid, r in res["memory"].items():
            t = f"{r['torch']:.3f}" if "torch" in r else "-"
            lines.append(f"| {oid} | {r['sharpax']:.3f} | {r['optax']:.3f} | {t} |")
        lines.append("")
    if "grouped" in res:
        lines += res["grouped"].get("markdown", [])
        lines.append("")
    if "extra" in res:
        lines += ["## SAM and Lookahead suites", ""]
        for module, r in res["extra"].items():
            lines += [f"### `python -m benchmarks.{module}` ({r['status']}, {r['seconds']:.0f} s)"]
            lines += ["", "```"]
            lines += [r["stdout"].rstrip(), "```", ""]
            if r.get("stderr"):
                lines += ["stderr:", "```", r["stderr"].rstrip(), "```", ""]
    lines += ["## Targets", ""]
    lines += verdicts or ["- every measured target met"]
    lines.append("")
    return "\n".join(lines) + "\n"
