"""Complex params: every optimizer and wrapper treats a complex leaf as its real and imaginary parts, as
torch does (`torch.view_as_real`), checked against torch goldens (`tests/references/complex.npz`, written by
`tests/references/make_complex_goldens.py`).

Gradient convention (optax's and torch's): an optimizer takes dL/dx + i dL/dy, the conjugate of what
`jax.grad` returns for a real loss of complex params; the `*_value_and_grad` wrappers are drop-ins for
`jax.value_and_grad` and return JAX's convention (they perturb along its conjugate).

Tolerance: that of `tests/test_parity_torch.py` (float32 rounding of the same rule; a changed rule moves
the trajectory by 1e-4 or more), looser for SAM's two passes through a tanh model, as in its real parity.
"""

from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from sharpax.wrappers._sam_geometry import Perturbation
from tests.optimizer_table import CASES, CASES_BY_ID
from tests.references import make_complex_goldens as ref

RTOL, ATOL = 1e-5, 1e-6
SAM_RTOL, SAM_ATOL = 2e-5, 2e-6

# The table's cases torch allows complex params for (Adafactor and Muon refuse them, in both).
COMPLEX_CASES = [case for case in CASES if case.torch_class not in ref.REFUSES_COMPLEX]

JAX_OPS = types.SimpleNamespace(
    real=jnp.real, imag=jnp.imag, cos=jnp.cos, sin=jnp.sin, tanh=jnp.tanh, constant=jnp.asarray
)


@functools.cache
def golden() -> dict[str, np.ndarray]:
    with np.load(ref.GOLDEN) as f:
        return {k: f[k] for k in f.files}


def golden_tree(prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1 :]: v for k, v in golden().items() if k.startswith(prefix + "/")}


def assert_close(got: dict, want: dict, what: str, rtol=RTOL, atol=ATOL) -> None:
    assert sorted(got) == sorted(want), what
    for k in want:
        scale = max(1.0, float(np.abs(want[k]).max()))
        np.testing.assert_allclose(
            got[k], want[k], rtol=rtol, atol=atol * scale, err_msg=f"{what} {k}"
        )


def conj_grad(loss_fn):
    """The optimizers' gradient (torch's) of a real loss of complex params: conj of jax.grad's."""
    return lambda *a: jax.tree.map(jnp.conj, jax.grad(loss_fn)(*a))


def test_every_core_case_has_a_complex_golden():
    stored = {k.split("/")[1] for k in golden() if k.startswith("opt/")}
    assert stored == {case.id for case in COMPLEX_CASES}


@pytest.mark.parametrize("case", [c for c in CASES if c not in COMPLEX_CASES], ids=lambda c: c.id)
def test_complex_params_are_refused_where_torch_refuses_them(case):
    tx = case.build()
    with pytest.raises(TypeError, match="complex params are not supported"):
        tx.init({"w": jnp.ones((2, 3), jnp.complex64)})
    params = {"w": jnp.ones((2, 3))}
    with pytest.raises(TypeError, match="complex params are not supported"):
        tx.update({"w": jnp.ones((2, 3), jnp.complex64)}, tx.init(params))


def test_torch_gradient_is_the_conjugate_of_jax_grad():
    """The convention everything below rests on, checked against torch's autograd."""
    params = {k: jnp.asarray(v) for k, v in ref.LOOKAHEAD_INIT.items()}
    got = jax.jit(conj_grad(lambda p: ref.lookahead_loss(p, JAX_OPS)))(params)
    flat = np.concatenate([np.ravel(got[k]) for k in ref.LOOKAHEAD_INIT])
    np.testing.assert_allclose(flat, golden()["grad0/lookahead"], rtol=1e-5, atol=1e-6)
    x, y, init = ref.sam_problem()
    got = jax.jit(conj_grad(lambda p: ref.sam_loss(p, x, y, JAX_OPS)))(init)
    flat = np.concatenate([np.ravel(got[k]) for k in init])
    np.testing.assert_allclose(flat, golden()["grad0/sam"], rtol=1e-5, atol=1e-6)
    # and not jax.grad's own: the imaginary parts have the other sign
    raw = jax.jit(jax.grad(lambda p: ref.sam_loss(p, x, y, JAX_OPS)))(init)
    assert not np.allclose(np.concatenate([np.ravel(raw[k]) for k in init]), flat, atol=1e-3)


def run_fixed_gradients(tx, params, grads, jit: bool) -> dict[str, np.ndarray]:
    """Params after each step of `tx` fed the fixed gradient sequence `grads` (leading step axis)."""

    def step(p, s, g):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    step = jax.jit(step) if jit else step
    state, out = tx.init(params), []
    for t in range(ref.STEPS):
        params, state = step(params, state, jax.tree.map(lambda g, t=t: g[t], grads))
        out.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in out]) for k in params}


def flat_problem():
    """The complex problem as one flat leaf (every rule here is elementwise): a third of the dispatches."""
    params, grads = ref.complex_problem()
    names = sorted(params)
    flat_p = np.concatenate([params[k].ravel() for k in names])
    flat_g = np.concatenate([grads[k].reshape(ref.STEPS, -1) for k in names], axis=1)
    sizes = np.cumsum([params[k].size for k in names])[:-1]

    def unflat(traj):
        parts = np.split(traj, sizes, axis=1)
        return {
            k: v.reshape(ref.STEPS, *params[k].shape) for k, v in zip(names, parts, strict=True)
        }

    return {"flat": jnp.asarray(flat_p)}, {"flat": jnp.asarray(flat_g)}, unflat


# Eager (one dispatch per op, no compilation per optimizer) for one case of each rule and option by
# default, jitted for a few; every case both ways with -m slow.
JIT_FAST = ("adam_l2_amsgrad", "rmsprop_centered_momentum_wd")
EAGER_SLOW = ("sgd", "adam", "adamw_amsgrad", "rmsprop", "nadam", "nadam_l2", "radamw")


@pytest.mark.parametrize(
    "case, jit",
    [
        pytest.param(
            c, False, id=f"{c.id}-eager", marks=pytest.mark.slow if c.id in EAGER_SLOW else ()
        )
        for c in COMPLEX_CASES
    ]
    + [
        pytest.param(c, True, id=f"{c.id}-jit", marks=() if c.id in JIT_FAST else pytest.mark.slow)
        for c in COMPLEX_CASES
    ],
)
def test_optimizer_matches_torch_on_complex_params(case, jit):
    params, grads, unflat = flat_problem()
    traj = run_fixed_gradients(case.build(), params, grads, jit)
    assert traj["flat"].dtype == np.complex64
    assert_close(unflat(traj["flat"]), golden_tree(f"opt/{case.id}"), f"{case.id} vs torch")


@pytest.mark.torch
@pytest.mark.slow  # importing torch; the goldens themselves are checked by default
@pytest.mark.parametrize("case_id", ["adam_l2_amsgrad"])
def test_complex_golden_matches_live_torch(case_id):
    pytest.importorskip("torch")
    from tests.references.torch_reference import GOLDEN_VS_LIVE

    live = ref.optimizer_trajectory(CASES_BY_ID[case_id], real_view=False)
    assert_close(live, golden_tree(f"opt/{case_id}"), "live torch", **GOLDEN_VS_LIVE)


def test_complex_state_is_real_and_shaped_like_the_param():
    tx = sharpax.adam(0.1, mu_dtype=jnp.bfloat16)
    state = tx.init({"z": jnp.ones((2, 3), jnp.complex64), "r": jnp.ones(3)})
    mu = state[0].mu
    assert isinstance(mu["z"], sharpax.transforms.RealImag)
    assert [(x.shape, x.dtype) for x in mu["z"]] == [((2, 3), jnp.bfloat16)] * 2
    assert mu["r"].dtype == jnp.bfloat16


def test_complex128_under_x64():
    with jax.enable_x64(True):
        p = jnp.array([1 + 2j], jnp.complex128)
        tx = sharpax.adam(0.1)
        u, state = tx.update(jnp.array([0.3 - 0.7j], jnp.complex128), tx.init(p), p)
        assert u.dtype == jnp.complex128 and state[0].nu.real.dtype == jnp.float64
        np.testing.assert_allclose(u, [-0.1 + 0.1j], rtol=1e-7)  # torch's sign(g) first step


def test_complex128_reductions_run_in_float64():
    """Under x64 a tree of complex128 params alone reduces in float64 (the norms and AE-SAM's squared-norm
    statistics ran in float32: a relative error of about 1e-8 instead of 1e-16)."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=1000) + 1j * rng.normal(size=1000)
    with jax.enable_x64(True):
        params = {"z": jnp.asarray(z, jnp.complex128)}
        grads = {"z": jnp.asarray(z[::-1].copy(), jnp.complex128)}
        e = jax.tree.map(jnp.subtract, Perturbation("t", 0.1).perturb(params, grads), params)
        want = 0.1 * z[::-1] / np.linalg.norm(z)
        np.testing.assert_allclose(e["z"], want, rtol=1e-11)  # e = (p + e) - p: p ~ 1, e ~ 1e-3
        tx = sharpax.ae_sam(sharpax.sgd(0.1), 0.05, total_steps=10, delta=0.5)
        _, state = tx.update(grads, tx.init(params), params, grad_fn=lambda p: grads)
        assert state.mean.dtype == jnp.float64
        np.testing.assert_allclose(state.mean, 0.5 * np.sum(np.abs(z) ** 2), rtol=1e-14)


def test_mismatched_complex_gradient_is_refused():
    tx = sharpax.sgd(0.1)
    p = {"z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match="complex param needs a complex gradient"):
        tx.update({"z": jnp.ones(2)}, tx.init(p), p)


def test_callable_mask_sees_the_complex_params():
    """A mask by `ndim` keeps its meaning: the complex bias (ndim 1) does not decay, the matrix does."""
    params = {"w": jnp.full((2, 2), 1 + 1j, jnp.complex64), "b": jnp.full(2, 1 + 1j, jnp.complex64)}
    grads = jax.tree.map(jnp.zeros_like, params)
    ndim_mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
    # Every alias masks through the same block (`weight_decay_block`); two of them here.
    for tx in (
        sharpax.adamw(0.1, weight_decay=0.5, mask=ndim_mask),
        sharpax.radam(0.1, weight_decay=0.5, decoupled_weight_decay=True, mask=ndim_mask),
    ):
        u, _ = jax.jit(tx.update)(grads, tx.init(params), params)
        np.testing.assert_allclose(u["w"], -0.05 * (1 + 1j) * np.ones((2, 2)), rtol=1e-6)
        np.testing.assert_array_equal(u["b"], np.zeros(2))


# --- the wrappers -----------------------------------------------------------------------------------


def lookahead_twin(inner: str):
    cls, kwargs = ref.LOOKAHEAD_INNER[inner]
    base = {
        "Adam": lambda: sharpax.adam(kwargs["lr"]),
        "SGD": lambda: sharpax.sgd(kwargs["lr"], momentum=kwargs["momentum"]),
    }[cls]()
    return sharpax.lookahead(base, sync_period=ref.LOOKAHEAD_K, alpha=0.5)


@pytest.mark.parametrize("inner", list(ref.LOOKAHEAD_INNER))
def test_lookahead_matches_pytorch_optimizer_on_complex_params(inner):
    tx = lookahead_twin(inner)
    grad = conj_grad(lambda p: ref.lookahead_loss(p, JAX_OPS))
    params = {k: jnp.asarray(v) for k, v in ref.LOOKAHEAD_INIT.items()}

    @jax.jit
    def step(p, s):
        u, s = tx.update(grad(p), s, p)
        return optax.apply_updates(p, u), s

    state, out = tx.init(params), []
    for _ in range(ref.LOOKAHEAD_STEPS):
        params, state = step(params, state)
        out.append(params)
    got = {k: np.stack([np.asarray(p[k]) for p in out]) for k in params}
    assert_close(got, golden_tree(f"lookahead/{inner}"), f"lookahead({inner})")


def sam_twin(case: str):
    base, kwargs, rho, adaptive = ref.SAM_CASES[case]
    opt = (
        sharpax.sgd(kwargs["lr"], momentum=kwargs["momentum"])
        if base == "SGD"
        else sharpax.adam(kwargs["lr"])
    )
    return opt, rho, adaptive


# Both forms of every case with -m slow; by default SAM and ASAM, each form once.
SAM_FAST = {("sgd_sam", "transformation"), ("sgd_asam", "value_and_grad")}


@pytest.mark.parametrize(
    "case, form",
    [
        pytest.param(c, f, id=f"{c}-{f}", marks=() if (c, f) in SAM_FAST else pytest.mark.slow)
        for c in ref.SAM_CASES
        for f in ("transformation", "value_and_grad")
    ],
)
def test_sam_matches_davda54_on_complex_params(case, form):
    opt, rho, adaptive = sam_twin(case)
    x, y, params = ref.sam_problem()
    loss = lambda p: ref.sam_loss(p, x, y, JAX_OPS)
    if form == "transformation":
        tx = sharpax.sam(opt, rho=rho, adaptive=adaptive)
        grad_fn = conj_grad(loss)

        def step(p, s):
            u, s = tx.update(grad_fn(p), s, p, grad_fn=grad_fn)
            return optax.apply_updates(p, u), s

    else:
        tx = opt
        sam_grad = sharpax.sam_value_and_grad(loss, rho=rho, adaptive=adaptive)

        def step(p, s):
            _, g = sam_grad(p)
            u, s = tx.update(jax.tree.map(jnp.conj, g), s, p)
            return optax.apply_updates(p, u), s

    step = jax.jit(step)
    state, out = tx.init(params), []
    for _ in range(ref.SAM_STEPS):
        params, state = step(params, state)
        out.append(params)
    got = {k: np.stack([np.asarray(p[k]) for p in out]) for k in params}
    assert_close(got, golden_tree(f"sam/{case}"), f"{case} ({form})", SAM_RTOL, SAM_ATOL)


def test_sam_norm_over_complex_leaves_is_the_modulus():
    """e = rho g / sqrt(sum |g|^2) over complex and real leaves together; p = inf and ASAM part by part."""
    params = {"z": jnp.array([1 + 2j, -0.5 + 0.25j], jnp.complex64), "r": jnp.array([3.0])}
    grads = {"z": jnp.array([0.3 - 0.4j, 1.2 + 0.0j], jnp.complex64), "r": jnp.array([-1.0])}
    g = {k: np.asarray(v, np.complex128) for k, v in grads.items()}
    norm = np.sqrt(sum(np.sum(np.abs(v) ** 2) for v in g.values()))  # |g|^2, not g^2
    rho = 0.1
    e = jax.tree.map(jnp.subtract, Perturbation("t", rho).perturb(params, grads), params)
    for k in g:
        np.testing.assert_allclose(e[k], rho * g[k] / norm, rtol=1e-6, atol=1e-8)

    e = jax.tree.map(jnp.subtract, Perturbation("t", rho, p=np.inf).perturb(params, grads), params)
    np.testing.assert_allclose(
        e["z"], rho * (np.sign(g["z"].real) + 1j * np.sign(g["z"].imag)), rtol=1e-6
    )

    # ASAM: T_w = |w| + eta on each part, e = rho T^2 g / ||T g||.
    eta = 0.01
    w = {k: np.asarray(v, np.complex128) for k, v in params.items()}
    t = {k: (np.abs(v.real) + eta) + 1j * (np.abs(v.imag) + eta) for k, v in w.items()}
    tg = {k: t[k].real * g[k].real + 1j * t[k].imag * g[k].imag for k in g}
    tnorm = np.sqrt(sum(np.sum(np.abs(v) ** 2) for v in tg.values()))
    want = {k: rho * (t[k].real * tg[k].real + 1j * t[k].imag * tg[k].imag) / tnorm for k in g}
    asam = Perturbation("t", rho, adaptive=True, eta=eta)
    e = jax.tree.map(jnp.subtract, asam.perturb(params, grads), params)
    for k in g:
        np.testing.assert_allclose(e[k], want[k], rtol=1e-6, atol=1e-8)


def _real_view(tree):
    return {k: {"re": jnp.real(v), "im": jnp.imag(v)} for k, v in tree.items()}


def _from_real_view(tree):
    return {k: jax.lax.complex(v["re"], v["im"]) for k, v in tree.items()}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda: sharpax.gsam(sharpax.adam(0.02), rho=0.05, alpha=0.3),
            id="gsam",
            marks=pytest.mark.slow,  # gsam_value_and_grad's test below runs by default
        ),
        pytest.param(
            lambda: sharpax.looksam(sharpax.sgd(0.05), rho=0.05, k=2),
            id="looksam",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: sharpax.lookahead(sharpax.adam(0.02), 2, pullback_momentum="pullback"),
            id="lookahead-pullback",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: sharpax.friendly_sam(sharpax.sgd(0.05, momentum=0.9), rho=0.05),
            id="friendly_sam",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: sharpax.wsam(sharpax.adam(0.02), 0.02, rho=0.05, gamma=0.8),
            id="wsam",
            marks=pytest.mark.slow,
        ),
        # The perturbation follows the base's momentum, a RealImag pair for a complex param.
        pytest.param(
            lambda: sharpax.momentum_sam(sharpax.sgd(0.05, momentum=0.9), rho=0.05),
            id="momentum_sam",
        ),
        pytest.param(
            lambda: sharpax.momentum_sam(sharpax.adamw(0.02), rho=0.05),
            id="momentum_sam-adamw",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: sharpax.ae_sam(sharpax.adam(0.02), rho=0.05, total_steps=4, lambda1=-3.0),
            id="ae_sam",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            lambda: sharpax.periodic_sam(sharpax.adam(0.02), rho=0.05, k=2),
            id="periodic_sam",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_wrappers_on_complex_params_are_their_real_view(make):
    """GSAM's and LookSAM's decompositions, Friendly-SAM's gradient average, WSAM's decoupled term,
    momentum-SAM's shift along the momentum, AE-SAM's norm statistics and Lookahead's pullback act
    on complex leaves as on the pairs of real leaves (the rule torch applies; torch has no reference
    for these)."""
    x, y, init = ref.sam_problem()
    loss = lambda p: ref.sam_loss(p, x, y, JAX_OPS)
    real_loss = lambda q: loss(_from_real_view(q))

    def run(params, grad_fn):
        tx = make()

        @jax.jit
        def step(p, s):
            u, s = tx.update(grad_fn(p), s, p, grad_fn=grad_fn)
            return optax.apply_updates(p, u), s

        state = tx.init(params)
        for _ in range(4):
            params, state = step(params, state)
        return params

    got = run(init, conj_grad(loss))
    want = _from_real_view(run(_real_view(init), jax.grad(real_loss)))
    for k in init:
        np.testing.assert_allclose(got[k], want[k], rtol=2e-6, atol=2e-7, err_msg=k)


@pytest.mark.slow  # the default run checks a wrapper's real view with momentum_sam above
def test_gsam_value_and_grad_on_complex_params_is_its_real_view():
    x, y, init = ref.sam_problem()
    loss = lambda p: ref.sam_loss(p, x, y, JAX_OPS)
    _, g = jax.jit(sharpax.gsam_value_and_grad(loss, rho=0.05, alpha=0.3))(init)
    real_loss = lambda q: loss(_from_real_view(q))
    _, g_real = jax.jit(sharpax.gsam_value_and_grad(real_loss, rho=0.05, alpha=0.3))(
        _real_view(init)
    )
    want = jax.tree.map(jnp.conj, _from_real_view(g_real))  # back to jax.grad's convention
    for k in init:
        np.testing.assert_allclose(g[k], want[k], rtol=2e-6, atol=2e-7, err_msg=k)


def test_tree_map_params_with_a_params_shaped_tree_needs_real_imag_as_leaf():
    """docs/complex.md's recipe: mapping shardings (a tree shaped like the params) onto the state."""
    params = {"z": jnp.ones((2, 3), jnp.complex64), "r": jnp.ones(3)}
    tx = sharpax.adam(0.1)
    state = jax.eval_shape(tx.init, params)
    shardings = jax.tree.map(lambda p: jax.sharding.SingleDeviceSharding(jax.devices()[0]), params)
    attach = lambda buf, s: jax.tree.map(
        lambda b: jax.ShapeDtypeStruct(b.shape, b.dtype, sharding=s), buf
    )
    with pytest.raises(ValueError):  # without is_leaf the pair does not match the complex leaf
        optax.tree_map_params(tx, attach, state, shardings)
    out = optax.tree_map_params(
        tx, attach, state, shardings, is_leaf=lambda x: isinstance(x, sharpax.RealImag)
    )
    assert all(leaf.sharding is not None for leaf in jax.tree.leaves(out[0].mu))
    assert isinstance(out[0].nu["z"], sharpax.RealImag)
