"""Every example runs, and says what it claims: the demo's smoke run, its sharpness and landscape helpers,
and each short example in `examples/`, imported from its file and run at a small size."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax

# Examples are user code, written with numpy's default promotion rules (and optax's schedules need them).
pytestmark = pytest.mark.loose_promotion

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    """Import `examples/<name>.py` as a module (examples are scripts, not a package)."""
    module_name = f"_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- demo


def test_digits_quick_run_writes_table_plots_and_results(tmp_path, capsys):
    digits = load("digits")
    rows = digits.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    recipes, noises = list(digits.RECIPES), [0.0, 0.4]
    assert [(r["noise"], r["recipe"]) for r in rows] == [(n, k) for n in noises for k in recipes]
    for row in rows:
        # Two epochs are enough for every recipe to beat chance (10%) by far on the clean labels
        # (RAdam is the slowest: its first steps are un-adapted).
        assert row["noise"] > 0 or row["test_acc"] > 30, row
        assert all(np.isfinite(row[k]) for k in ("train_loss", "top_eig", "rise", "ms_per_step"))
    for png in ("learning_curves.png", "landscape_1d.png", "landscape_2d.png"):
        assert (tmp_path / png).stat().st_size > 5_000
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["runs"]) == len(rows) and len(saved["runs"][0]["train_loss"]) == 2
    assert "| label noise | recipe |" in capsys.readouterr().out


def test_demo_sharpness_and_landscapes_call_sharpax_sharpness(monkeypatch):
    # The demo's own composition, run eagerly on stand-ins for the module's functions (recording their
    # arguments, returning set values): cheap, where the numbers themselves are the slow twin's.
    digits = load("digits")
    calls: dict[str, list] = {}

    def record(name, result):
        def fake(*args, **kwargs):
            calls.setdefault(name, []).append((args, kwargs))
            return result(len(calls[name])) if callable(result) else result

        monkeypatch.setattr(sharpax.sharpness, name, fake)

    params, x, y, key = {"w": jnp.ones((2, 3))}, jnp.ones((4, 2)), jnp.zeros(4), jax.random.key(3)
    monkeypatch.setattr(digits, "loss_fn", lambda p, x, y: jnp.float32(2.2))
    vecs = {"w": jnp.arange(6.0).reshape(1, 2, 3)}
    record("hessian_eigenvalues", (jnp.array([7.0]), vecs))
    record("loss_landscape", jnp.array([2.5, 2.0]))
    for first_order, want in [(0.1, 2.5 - 2.2), (0.5, 0.5)]:
        record("sam_sharpness", jnp.float32(first_order))
        top_eig, rise = digits.sharpness.__wrapped__(params, x, y, key, 0.05, 12)
        np.testing.assert_allclose([top_eig, rise], [7.0, want], rtol=1e-6)
    ((args, kwargs),) = calls["hessian_eigenvalues"][:1]
    assert args == (digits.loss_fn, params, x, y)
    assert kwargs["k"] == 1 and kwargs["num_iterations"] == 12 and kwargs["key"] is key
    (args, kwargs) = calls["loss_landscape"][0]
    np.testing.assert_array_equal(kwargs["directions"][0]["w"], vecs["w"][0])  # the top eigenvector
    np.testing.assert_allclose(kwargs["alphas"], [-0.05, 0.05])
    assert calls["sam_sharpness"][0][1]["rho"] == 0.05

    calls.clear()
    record("filter_normalized_direction", lambda i: {"w": jnp.full((2, 3), float(i))})
    record("loss_landscape", lambda i: jnp.full((3,) * i, float(i)))
    alphas = jnp.array([-1.0, 0.5, 1.0])
    line, surface = digits.landscape.__wrapped__(params, x, y, key, alphas)
    assert line.shape == (3,) and surface.shape == (3, 3) and surface[0, 0] == 2.0
    key1, key2 = jax.random.split(key)
    drawn = [kw.get("key", a[0]) for a, kw in calls["filter_normalized_direction"]]
    np.testing.assert_array_equal(
        jax.random.key_data(jnp.stack(drawn)), jax.random.key_data(jnp.stack([key1, key2]))
    )
    (_, line_kw), (_, surface_kw) = calls["loss_landscape"]
    assert [d["w"][0, 0] for d in line_kw["directions"]] == [1.0]
    # The surface's first axis runs along the first direction (the plot transposes it).
    assert [d["w"][0, 0] for d in surface_kw["directions"]] == [1.0, 2.0]
    assert line_kw["alphas"] is alphas and surface_kw["alphas"] is alphas


@pytest.mark.slow
def test_demo_sharpness_and_landscapes_come_from_sharpax_sharpness():
    digits = load("digits")
    (x, y), _ = digits.load_data()
    x, y = jnp.asarray(x[:128]), jnp.asarray(y[:128])
    params = digits.init_params(jax.random.key(0), x[:1])
    key = jax.random.key(3)
    top_eig, rise = digits.sharpness(params, x, y, key, 0.05, 10)
    eigs, vecs = sharpax.sharpness.hessian_eigenvalues(
        digits.loss_fn, params, x, y, num_iterations=10, key=key
    )
    np.testing.assert_allclose(top_eig, eigs[0], rtol=1e-5)
    first_order = sharpax.sharpness.sam_sharpness(digits.loss_fn, params, x, y, rho=0.05)
    along = [
        digits.loss_fn(jax.tree.map(lambda w, v, a=a: w + a * v[0], params, vecs), x, y)
        for a in (-0.05, 0.05)
    ]
    want = max(float(first_order), max(along) - float(digits.loss_fn(params, x, y)))
    np.testing.assert_allclose(rise, want, rtol=1e-4)

    alphas = jnp.array([-1.0, 0.5, 1.0])
    line, surface = digits.landscape(params, x, y, key, alphas)
    key1, key2 = jax.random.split(key)
    d1, d2 = (sharpax.sharpness.filter_normalized_direction(k, params) for k in (key1, key2))
    at = lambda a, b: digits.loss_fn(
        jax.tree.map(lambda w, u, v: w + (a * u + b * v), params, d1, d2), x, y
    )
    np.testing.assert_allclose(line, [at(a, 0.0) for a in alphas], rtol=1e-5)
    # The surface's first axis runs along the first direction (the plot transposes it).
    np.testing.assert_allclose(surface[2, 0], at(1.0, -1.0), rtol=1e-5)
    np.testing.assert_allclose(surface[0, 2], at(-1.0, 1.0), rtol=1e-5)


def test_label_noise_flips_the_asked_fraction_to_other_classes():
    digits = load("digits")
    y = np.arange(10_000) % 10
    noisy = digits.add_label_noise(y, 0.3, seed=0)
    flipped = noisy != y
    assert abs(flipped.mean() - 0.3) < 0.02  # each label flips with probability 0.3
    assert np.all((noisy >= 0) & (noisy < 10))
    np.testing.assert_array_equal(digits.add_label_noise(y, 0.0, seed=0), y)


# ------------------------------------------------------------------------------------------ examples


def test_per_layer_lr_freezes_embed_and_trains_the_rest():
    example = load("per_layer_lr")
    initial, final, loss = example.main(steps=40)
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), initial, final)["params"]
    assert max(moved["embed"].values()) == 0.0
    assert min(moved["hidden"].values()) > 0 and min(moved["head"].values()) > 0
    assert loss < 0.5  # from ~1.1 (log 3) at the start


def test_per_layer_lr_routes_each_layer_to_its_own_optimizer():
    # One step of the partition equals sharpax.sgd on the hidden layer and sharpax.adamw on the head,
    # each run alone on its own subtree.
    example = load("per_layer_lr")
    params = example.MLP().init(jax.random.key(0), jnp.ones((1, 4)))
    grads = jax.tree.map(lambda p: jnp.cos(p) + 0.1, params)
    tx = example.make_optimizer(steps=10)
    updates, _ = tx.update(grads, tx.init(params), params)
    sgd = sharpax.sgd(optax.cosine_decay_schedule(0.05, 10), momentum=0.9)
    adamw = sharpax.adamw(1e-2, weight_decay=1e-2)
    for layer, alone in [("hidden", sgd), ("head", adamw)]:
        p, g = params["params"][layer], grads["params"][layer]
        expected, _ = alone.update(g, alone.init(p), p)
        jax.tree.map(np.testing.assert_array_equal, updates["params"][layer], expected)


def test_checkpoint_resume_lands_exactly_where_an_uninterrupted_run_does():
    resumed, uninterrupted = load("checkpoint_resume").main()
    jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)


def test_port_torch_recipe_runs_without_torch_too():
    example = load("port_torch_recipe")
    params, x, y = example.data()
    for name in ("adamw_linear_warmup", "sgd_nesterov_one_cycle"):
        _, losses = example.run_sharpax(params, x, y, name)
        assert losses[-1] < 0.5 * losses[0], name
    _, (val_losses, rates) = example.run_sharpax(params, x, y, "adam_reduce_on_plateau")
    assert val_losses[-1] < 0.5 * val_losses[0]
    assert rates[0] == np.float32(0.05) and rates[-1] < rates[0]  # the plateau reduced the rate


def test_port_torch_recipe_matches_torch_step_for_step():
    pytest.importorskip("torch")
    results, plateau = load("port_torch_recipe").main()
    assert set(results) == {
        "adamw_linear_warmup",
        "sgd_nesterov_one_cycle",
        "adam_reduce_on_plateau",
    }
    for name, (final, torch_final) in results.items():
        for k in final:
            np.testing.assert_allclose(
                final[k], torch_final[k], rtol=1e-5, atol=1e-5, err_msg=f"{name}: {k}"
            )
    # The validation losses, and so the plateau decisions and the rates, are torch's.
    (losses, rates), (torch_losses, torch_rates) = plateau["sharpax"], plateau["torch"]
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-5)
    np.testing.assert_allclose(rates, torch_rates, rtol=1e-6)
    assert len(set(torch_rates)) == 3  # two reductions within the run


def test_mixing_with_optax_clips_before_lookahead_and_changes_the_rate():
    example = load("mixing_with_optax")
    params = {"x": jnp.array(-1.5), "y": jnp.array(2.0)}
    grads = jax.grad(example.rosenbrock)(params)  # global norm ~ 170: clipped to 1
    tx = example.make_optimizer()
    updates, _ = tx.update(grads, tx.init(params), params)
    clipped = jax.tree.map(lambda g: g / optax.tree.norm(grads), grads)
    inner = sharpax.lookahead(sharpax.adamw(0.1, weight_decay=1e-3), sync_period=5, alpha=0.5)
    expected, _ = inner.update(clipped, inner.init(params), params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), updates, expected)

    fast, slow, state = example.main()
    assert float(example.rosenbrock(slow)) < 0.05  # from 12.5
    assert float(example._find_injected_state(state).hyperparams["learning_rate"]) == np.float32(
        0.05
    )


# ----------------------------------------------------------------------------------- SAM in Flax code


def _sam_reference_grad(grad_fn, params, rho):
    """Foret et al.'s second pass written out: grad at w + rho g / |g|, with g the gradient at w."""
    g = grad_fn(params)
    scale = rho / optax.tree.norm(g)
    return grad_fn(jax.tree.map(lambda w, gi: w + scale * gi, params, g))


def test_flax_linen_sam_gives_the_perturbed_gradient_and_trains():
    example = load("flax_linen_sam")
    x = jax.random.uniform(jax.random.key(0), (16, 64))
    y = jnp.arange(16) % 10
    params = example.MODEL.init(jax.random.key(1), x)
    key = jax.random.key(2)
    (loss, acc), grads = jax.jit(example.sam_value_and_grad)(params, x, y, key)
    first_pass_loss, first_pass_acc = jax.jit(example.loss_fn)(params, x, y, key)
    np.testing.assert_allclose(loss, first_pass_loss, rtol=1e-6)  # loss and aux at w, not at w + e
    np.testing.assert_allclose(acc, first_pass_acc)
    grad_fn = lambda p: jax.grad(example.loss_fn, has_aux=True)(p, x, y, key)[0]  # same dropout key
    expected = _sam_reference_grad(grad_fn, params, 0.05)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads, expected
    )

    _, test_acc = example.main(epochs=3)
    assert test_acc > 0.9


def test_nnx_sam_step_is_sgd_at_the_perturbed_gradient_and_trains():
    from flax import nnx

    example = load("nnx_sam")
    x = jax.random.uniform(jax.random.key(0), (16, 64))
    y = jnp.arange(16) % 10
    model = example.MLP(nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = nnx.to_pure_dict(params)

    def loss_at(p):
        state = nnx.split(model, nnx.Param, ...)[1]
        nnx.replace_by_pure_dict(state, p)
        return example.loss_fn(nnx.merge(graphdef, state, rest), x, y)

    g = jax.jit(_sam_reference_grad, static_argnums=0)(jax.grad(loss_at), params, 0.05)
    expected = jax.tree.map(lambda w, gi: w - 0.1 * gi, params, g)  # plain SGD, lr 0.1

    optimizer = nnx.Optimizer(model, sharpax.sam(sharpax.sgd(0.1), rho=0.05), wrt=nnx.Param)
    example.train_step(model, optimizer, x, y)
    after = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), after, expected
    )

    _, test_acc = example.main(epochs=2)
    assert test_acc > 0.85


def test_data_parallel_sam_on_8_devices_equals_one_device():
    example = load("data_parallel_sam")
    assert jax.device_count() == 8  # conftest's virtual devices (the example asks for the same)
    sharded = example.main(steps=5)

    params = example.init_params(jax.random.key(0))
    opt_state = example.tx.init(params)
    x, y = example.data(jax.random.key(1))
    for _ in range(5):
        params, opt_state, _ = example.train_step(params, opt_state, x, y)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), sharded, params
    )
    assert all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(sharded))


def test_mixed_precision_sam_clean_float16_run_matches_float32():
    example = load("mixed_precision_sam")
    want, _, _, _ = example.train(5, jnp.float32)
    got, losses, skipped, scales = example.train(5, jnp.float16, initial_scale=2.0**15)
    assert skipped == 0 and np.all(scales == 2.0**15) and np.all(np.isfinite(losses))
    # float16 activations carry ~1e-3 relative error into each gradient; over 5 steps of SGD the
    # weights (|w| < 0.3) stay within 2e-3 of the float32 run.
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3)


def test_mixed_precision_sam_overflow_in_the_second_pass_skips_the_step():
    # rho = 1e4 puts the second pass at weights of ~1e4, whose float16 activations overflow; the
    # first pass, at the initial weights, is finite.
    example = load("mixed_precision_sam")
    (x, y), _ = example.load_data()
    x, y = x[:64], y[:64]
    model = example.MLP(dtype=jnp.float16)
    params = example.init_params(jnp.float16)
    scale = sharpax.dynamic_loss_scale(2.0**15)
    loss_fn = example.make_loss(model)
    first_pass = jax.jit(jax.grad(lambda p: scale.scale(loss_fn(p, x, y))))
    assert sharpax.all_finite(first_pass(params))
    base = sharpax.sgd(0.1, momentum=0.9)
    bits = lambda tree: [np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(tree)]

    tx, step = example.gradient_form_step(model, 1e4, base)
    state = tx.init(params)
    new_params, new_state, new_scale, _ = step(params, state, scale, x, y)
    assert bits(new_params) == bits(params) and bits(new_state.inner_state) == bits(
        state.inner_state
    )
    assert int(new_state.total_notfinite) == 1 and float(new_scale.loss_scale) == 2.0**14

    tx, step = example.transformation_form_step(model, 1e4, base, scale)
    state = tx.init(params)
    new_params, new_state, _ = step(params, state, x, y)
    assert bits(new_params) == bits(params) and bits(new_state.inner_state) == bits(
        state.inner_state
    )
    assert float(sharpax.current_loss_scale(new_state).loss_scale) == 2.0**14


@pytest.mark.slow  # the two forms are each checked by the tests above
def test_mixed_precision_sam_both_forms_take_the_same_steps_and_skips(capsys):
    # Starting at 2^24, the first steps overflow and are skipped; both forms skip the same ones.
    example = load("mixed_precision_sam")
    results = example.main(["--steps", "12"])
    grad_params, grad_losses, skipped, grad_scales = example.train(12, jnp.float16)
    tx_params, tx_losses, tx_scales = example.train_transformation_form(12)
    assert skipped >= 3 and grad_scales[0] == 2.0**23
    np.testing.assert_array_equal(tx_scales, grad_scales)
    np.testing.assert_allclose(tx_losses, grad_losses, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(tx_params), jax.tree.leaves(grad_params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(results["float16"]), jax.tree.leaves(grad_params), strict=True):
        np.testing.assert_array_equal(a, b)
    out = capsys.readouterr().out
    assert "gradient form, float16 compute" in out and "transformation form" in out


# ---------------------------------------------------------------------------------------- multi_host


def _losses(text: str) -> list[float]:
    return [float(line.split()[-1]) for line in text.splitlines() if line.startswith("step")]


def test_multi_host_one_process(capsys):
    """The one-process path (here on the 8 devices conftest creates): the loss goes down."""
    final = load("multi_host").main(["--steps", "12"])
    losses = _losses(capsys.readouterr().out)
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.1, losses
    assert all(np.all(np.isfinite(v)) for v in final.values())


@pytest.mark.slow
def test_multi_host_two_local_processes_match_one(tmp_path):
    """`--local-processes 2` (one command) trains as the one-process run does, to float32 rounding,
    and each process writes its shards of the checkpoint."""
    from tests.test_multiprocess import gloo_unavailable

    reason = gloo_unavailable()
    if reason:
        pytest.skip(reason)
    one = load("multi_host").main(["--steps", "12"])
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLES.parent), env.get("PYTHONPATH", "")])
    command = [sys.executable, str(EXAMPLES / "multi_host.py"), "--local-processes", "2"]
    command += ["--steps", "12", "--out", str(tmp_path / "two.npz")]
    command += ["--checkpoint", str(tmp_path / "ckpt")]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es), 8 devices (4 here)" in proc.stdout
    assert len(_losses(proc.stdout)) == 3  # printed by process 0 only
    with np.load(tmp_path / "two.npz") as two:
        for k, v in one.items():
            np.testing.assert_allclose(two[k], v, rtol=2e-5, atol=2e-6, err_msg=k)
    written = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= written, written


# ------------------------------------------------------------------------------- the SAM family study


# By default the two members with their own hooks (evaluation weights, passes per step); all slow.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=() if n in ("momentum_sam", "ae_sam") else pytest.mark.slow)
        for n in load("sam_family").METHODS
    ],
)
def test_sam_family_method_takes_a_finite_step_that_moves_the_params(name):
    study = load("sam_family")
    method = study.METHODS[name]
    (x, y), _ = study.digits.load_data()
    x, y = jnp.asarray(x[:32]), jnp.asarray(y[:32])
    init, step, eval_params = method.build(method.grid[-1], optax.constant_schedule(0.05), 10)
    params = study.init_params(jax.random.key(0), x[:1])
    state = init(params)
    step = jax.jit(step)
    for i in range(3):
        new_params, state, loss = step(params, state, x, y, jax.random.key(i))
        assert np.isfinite(float(loss))
        assert any(
            not np.array_equal(a, b)
            for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(params), strict=True)
        )
        params = new_params
    evaluated = eval_params(params, state)
    assert jax.tree.structure(evaluated) == jax.tree.structure(params)
    if method.passes is not None:
        assert 1.0 <= float(method.passes(state)) <= 2.0


@pytest.mark.parametrize("page", ["README.md", "docs/sam.md"])
def test_sam_family_table_in_the_docs_is_the_committed_results(page):
    """The study's table in the README and the docs is the one the committed results file gives."""
    study = load("sam_family")
    results = json.loads((EXAMPLES / "sam_family_results.json").read_text())
    assert set(results["noise"]) == {"0", "0.4"}
    table = study.side_by_side_table(results)
    assert len(table.splitlines()) == 2 + len(results["config"]["methods"])
    assert table in (EXAMPLES.parent / page).read_text(encoding="utf-8")


@pytest.mark.slow
def test_sam_family_quick_study_writes_table_plot_and_results(tmp_path, capsys):
    study = load("sam_family")
    results = study.main(
        ["--quick", "--methods", "sam", "momentum_sam", "--noise", "0", "--out", str(tmp_path)]
    )
    rows = results["noise"]["0"]
    assert set(rows) == {"sgd", "sam", "momentum_sam"}
    assert rows["sgd"]["vs_sgd"] == 1.0 and rows["sam"]["passes"] == 2
    assert all(50 < r["test_acc"] <= 100 and r["top_eig"] > 0 for r in rows.values())
    assert (tmp_path / "sam_family.png").stat().st_size > 0
    assert json.loads((tmp_path / "results.json").read_text())["noise"]["0"]["sam"]["rho"] in (
        study.SAM_RHOS
    )
    assert "| 0% | momentum_sam | rho=" in capsys.readouterr().out
