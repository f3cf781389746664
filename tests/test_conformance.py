"""Conformance: every optimizer of the table and every wrapper through optax's generic properties.

Ported from optax's own suites (optax/_src/alias_test.py: convergence on a parabola and on Rosenbrock's
function in float32 and complex64, `tree_map_params`, dtype preservation and a state that survives a
`lax.cond`; transform and wrapper tests: `MultiSteps`, `apply_if_finite`, `masked`, `partition`; and
what meta-learning and ensembles need: `vmap` over members, hypergradients by finite differences).
Unlike optax's run, complex params are not skipped for any optimizer: each treats a complex leaf as
its real and imaginary parts (torch's rule, see tests/test_complex.py).

Cost: the cheap properties (abstract traces, no compilation) run for every entry; the numeric ones for
a few representative entries by default and for all with `-m slow`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sharpax
from tests.optimizer_table import CASES, WRAPPERS

# --- the entries: the table's cases and the wrappers ------------------------------------------------

SAM_FAMILY = (
    "sam(adam)",
    "sam(adam, loss_scale)",
    "asam(sgd_momentum)",
    "gsam(adamw)",
    "friendly_sam(sgd_momentum)",
    "wsam(adam)",
    "bsam",
    "lookahead(sam(radam))",
    "ae_sam(adamw)",
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """An optimizer or wrapper, as the table builds it, and as `tuned(lr, rho)` for convergence.

    `parabola_lr`, `rosenbrock_lr` and `rosenbrock_steps` are learning rates and step counts at which
    it converges (10^4 steps unless said; optax uses one rate per optimizer, we pick one per target).
    """

    name: str
    build: Callable[[], optax.GradientTransformation]
    tuned: Callable[[float, float], optax.GradientTransformation]
    parabola_lr: float
    rosenbrock_lr: float
    rosenbrock_steps: int = 10_000
    skip_complex_rosenbrock: str | None = None
    complex_unsupported: str | None = None  # why complex params raise a TypeError


def _case_tuned(case) -> Callable[[float, float], optax.GradientTransformation]:
    """The case at learning rate `lr`, its decays made small enough not to move the minimum."""
    params = inspect.signature(case.make).parameters

    def make(lr: float, rho: float) -> optax.GradientTransformation:
        del rho
        kwargs: dict[str, Any] = {"learning_rate": lr}
        for name in ("weight_decay", "adamw_weight_decay"):
            if name in params:
                default = params[name].default
                kwargs[name] = 1e-4 if case.kwargs.get(name, default) else 0.0
        if "lr_decay" in params:
            kwargs["lr_decay"] = 0.0  # 1 / (1 + 0.01 t) stops Adagrad far from the minimum
        return case.build(**kwargs)

    return make


# (parabola lr, Rosenbrock lr[, Rosenbrock steps]) at which each case converges to optax's 3e-2.
CASE_RATES: dict[str, tuple] = {
    "sgd": (1e-2, 1e-3, 30_000),
    "sgd_momentum_dampening_wd": (1e-2, 1e-3),
    "sgd_nesterov": (1e-2, 5e-4),
    "adam": (1e-2, 1e-2),
    "adam_l2_amsgrad": (1e-2, 1e-2),
    "adamw": (1e-2, 1e-2),
    "adamw_amsgrad": (1e-2, 1e-2),
    "adagrad": (1.0, 0.1),
    "adadelta": (0.1, 0.03),
    "rmsprop": (1e-2, 1e-3),
    "rmsprop_centered_momentum_wd": (1e-3, 1e-3),
    "nadam": (1e-2, 1e-2),
    "nadam_l2": (1e-2, 1e-2),
    "nadamw": (1e-2, 1e-2),
    "radam": (1e-2, 1e-2),
    "radamw": (1e-2, 1e-2),
    "adamax": (1e-2, 1e-2),
    "lion": (1e-2, 1e-3, 30_000),
    "adafactor": (1e-2, 1e-2),
    "muon_adamw": (1e-2, 1e-2),  # the targets' params are vectors: AdamW's part
    "rprop": (1e-2, 1e-2),
    "asgd": (1e-2, 1e-3, 30_000),
}
SKIP_COMPLEX_ROSENBROCK = {
    "adadelta": "Adadelta does not settle in the complex Rosenbrock valley within 6e4 steps at any "
    "rate tried (0.01-1: 0.045 at best); optax skips adadelta for complex params (its own run ends "
    "at 4.6, ours at 0.11)",
}

COMPLEX_UNSUPPORTED = {
    "bsam": "bsam's Gaussian posterior is over real weights: complex params raise a TypeError",
    "adafactor": "torch.optim.Adafactor refuses complex params, and so does sharpax's",
    "muon_adamw": "torch.optim.Muon refuses complex params, and so does sharpax's",
}

# The wrappers of the table's `WRAPPERS`, at a given rate; SAM's rho is the caller's (Rosenbrock's valley is
# narrower than the default 0.05, SAM's minimum would sit off the true one).
WRAPPER_TUNED: dict[str, tuple] = {
    "sam(adam)": (lambda lr, rho: sharpax.sam(sharpax.adam(lr), rho=rho), 1e-2, 1e-2),
    "asam(sgd_momentum)": (
        lambda lr, rho: sharpax.sam(
            sharpax.sgd(lr, momentum=0.9), rho=rho, adaptive=True, eta=0.01
        ),
        1e-3,
        3e-4,
    ),
    "gsam(adamw)": (
        lambda lr, rho: sharpax.gsam(sharpax.adamw(lr, weight_decay=1e-4), rho=rho, alpha=0.1),
        1e-2,
        1e-2,
    ),
    "friendly_sam(sgd_momentum)": (
        lambda lr, rho: sharpax.friendly_sam(sharpax.sgd(lr, momentum=0.9), rho=rho),
        1e-3,
        3e-4,
    ),
    # gamma 0.5 (alpha = 1): with the table's 0.8 the sharpness term keeps WSAM's minimum off the
    # valley floor of Rosenbrock's function.
    "wsam(adam)": (
        lambda lr, rho: sharpax.wsam(sharpax.adam(lr), lr, rho=rho, gamma=0.5),
        1e-2,
        1e-3,
    ),
    # A large num_data: the posterior's noise (variance 1 / (N s)) well below the tolerance.
    "bsam": (
        lambda lr, rho: sharpax.bsam(lr, num_data=1e6, rho=rho, weight_decay=0.0),
        1e-2,
        1e-2,
    ),
    # A loss scale of 1 that never grows (factor 1): the loss-scaled path, the values of plain SAM.
    "sam(adam, loss_scale)": (
        lambda lr, rho: sharpax.sam(
            sharpax.adam(lr),
            rho=rho,
            loss_scale=sharpax.dynamic_loss_scale(1.0, period=3, factor=1.0),
        ),
        1e-2,
        1e-2,
    ),
    # The params momentum-SAM hands back are the perturbed weights, rho from the unperturbed ones
    # (the shift is rho v / ||v|| however small v gets): rho a tenth of the others' keeps them within
    # the convergence tolerance.
    "momentum_sam(sgd_momentum)": (
        lambda lr, rho: sharpax.momentum_sam(sharpax.sgd(lr, momentum=0.9), rho=rho / 10),
        1e-3,
        3e-4,
    ),
    "ae_sam(adamw)": (
        lambda lr, rho: sharpax.ae_sam(
            sharpax.adamw(lr, weight_decay=1e-4), rho=rho, total_steps=10_000
        ),
        1e-2,
        1e-2,
    ),
    "lookahead(adamw)": (
        lambda lr, rho: sharpax.lookahead(sharpax.adamw(lr, weight_decay=1e-4), sync_period=2),
        1e-2,
        1e-2,
    ),
    "lookahead(sam(radam))": (
        lambda lr, rho: sharpax.lookahead(sharpax.sam(sharpax.radam(lr), rho=rho), sync_period=3),
        1e-2,
        1e-2,
    ),
}


def _entries() -> dict[str, Entry]:
    out = {}
    for case in CASES:
        out[case.id] = Entry(
            case.id,
            case.build,
            _case_tuned(case),
            *CASE_RATES[case.id],
            skip_complex_rosenbrock=SKIP_COMPLEX_ROSENBROCK.get(case.id),
            complex_unsupported=COMPLEX_UNSUPPORTED.get(case.id),
        )
    for name, build in WRAPPERS.items():
        if name in WRAPPER_TUNED:
            out[name] = Entry(
                name, build, *WRAPPER_TUNED[name], complex_unsupported=COMPLEX_UNSUPPORTED.get(name)
            )
    return out


ENTRIES = _entries()


def test_every_table_entry_has_conformance_settings():
    """A case or wrapper added to the table needs its rates here (a missing one would go untested)."""
    assert set(CASE_RATES) == {case.id for case in CASES}
    assert set(WRAPPER_TUNED) == set(WRAPPERS)


def params_of(names, fast: tuple[str, ...]):
    """One pytest param per entry name; those not in `fast` run with -m slow only."""
    return [
        pytest.param(ENTRIES[n], id=n, marks=() if n in fast else pytest.mark.slow) for n in names
    ]


ALL = list(ENTRIES)
# The representative entries of the default run: two Adam-family state layouts, RMSprop's centered
# buffers with momentum, Lion's sign, and the three wrapper kinds.
FAST = (
    "adam_l2_amsgrad",
    "rmsprop_centered_momentum_wd",
    "lion",
    "lookahead(adamw)",
    "gsam(adamw)",
)


# --- the problems -----------------------------------------------------------------------------------


def conj_grad(fn):
    # The optimizers' (optax's, torch's) convention for complex params: the conjugate of jax.grad.
    return lambda p: jax.tree.map(jnp.conj, jax.grad(fn)(p))


def parabola(dtype):
    """optax's `_setup_parabola`: from (-1, 10, 1) to (1, -1, 1), times 1 + i for complex params."""
    init = jnp.array([-1.0, 10.0, 1.0], dtype)
    final = jnp.array([1.0, -1.0, 1.0], dtype)
    if jnp.iscomplexobj(init):
        final = final * (1 + 1j)
    return init, final, lambda p: jnp.sum(jnp.real(p - final) ** 2 + jnp.imag(p - final) ** 2)


def rosenbrock(dtype):
    """optax's `_setup_rosenbrock`: a = 1 (1 + i for complex params), b = 100, from (0, 0) to (a, a^2)."""
    a = 1.0 + 1j if jnp.issubdtype(dtype, jnp.complexfloating) else 1.0
    init = jnp.zeros(2, dtype)
    final = jnp.array([a, a**2], dtype)
    sq = lambda z: jnp.real(z) ** 2 + jnp.imag(z) ** 2
    return init, final, lambda p: sq(a - p[0]) + 100.0 * sq(p[1] - p[0] ** 2)


def make_problem(dtype=jnp.float32):
    """A small tanh/relu model whose third hidden unit is dead (its gradients are exactly 0)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 3)), dtype)
    y = jnp.asarray(rng.normal(size=(8,)), dtype)
    params = {
        "w": jnp.asarray(rng.normal(size=(3, 4)) * 0.5, dtype),
        "b": jnp.asarray([0.1, -0.2, -50.0, 0.3], dtype),
        "v": jnp.asarray(rng.normal(size=(4,)), dtype),
    }

    def loss(p):
        hidden = jax.nn.relu(x @ p["w"] + p["b"][None, :])
        return jnp.mean((hidden @ p["v"] - y) ** 2)

    return params, loss


def step(tx, params, state, grad_fn, grads=None):
    """One update with `grad_fn` passed along (SAM's second pass; the others ignore extra args)."""
    grads = grad_fn(params) if grads is None else grads
    updates, state = tx.update(grads, state, params, grad_fn=grad_fn)
    return optax.apply_updates(params, updates), state, updates


def assert_trees_close(got, want, rtol=1e-6, atol=1e-7, what=""):
    chex.assert_trees_all_close(got, want, rtol=rtol, atol=atol, custom_message=what or None)


# --- convergence (optax's test_optimization) --------------------------------------------------------

CONVERGE_FAST = {
    ("adam_l2_amsgrad", "parabola", "complex64"),
    ("lion", "parabola", "float32"),
    ("lookahead(adamw)", "rosenbrock", "complex64"),
    ("gsam(adamw)", "parabola", "complex64"),
}


@pytest.mark.parametrize(
    "entry, target, dtype",
    [
        pytest.param(
            ENTRIES[n],
            t,
            d,
            id=f"{n}-{t}-{d}",
            marks=() if (n, t, d) in CONVERGE_FAST else pytest.mark.slow,
        )
        for n in ALL
        for t in ("parabola", "rosenbrock")
        for d in ("float32", "complex64")
    ],
)
def test_converges(entry, target, dtype):
    if target == "rosenbrock" and dtype == "complex64" and entry.skip_complex_rosenbrock:
        pytest.skip(entry.skip_complex_rosenbrock)
    if dtype == "complex64" and entry.complex_unsupported:
        pytest.skip(entry.complex_unsupported)
    init, final, objective = (parabola if target == "parabola" else rosenbrock)(jnp.dtype(dtype))
    lr = entry.parabola_lr if target == "parabola" else entry.rosenbrock_lr
    tx = entry.tuned(lr, 0.05 if target == "parabola" else 1e-3)
    steps = 10_000 if target == "parabola" else entry.rosenbrock_steps
    grad_fn = conj_grad(objective)
    # optax's check that tree_map_params works on the state (a no-op map).
    state = optax.tree_map_params(tx, lambda v: v, tx.init(init))

    @jax.jit
    def run(params, state):
        def body(carry, _):
            p, s = carry
            return step(tx, p, s, grad_fn)[:2], None

        return jax.lax.scan(body, (params, state), None, length=steps)[0]

    params, _ = run(init, state)
    assert params.dtype == init.dtype
    np.testing.assert_allclose(params, final, rtol=3e-2, atol=3e-2)  # optax's tolerance


# --- state, dtypes, tree_map_params (every entry; abstract traces only) ------------------------------

DTYPES = ("bfloat16", "float16", "float32", "float64", "complex64")


# Every entry by default in the two dtypes that break most (a half-precision param with float32
# scalars, a complex param as its parts); all five with -m slow.
DTYPES_FAST = ("bfloat16", "complex64")


@pytest.mark.parametrize(
    "entry, dtype",
    [
        pytest.param(
            ENTRIES[n], d, id=f"{d}-{n}", marks=() if d in DTYPES_FAST else pytest.mark.slow
        )
        for n in ALL
        for d in DTYPES
    ],
)
def test_dtype_preserved_and_state_stable_under_cond(entry, dtype):
    """optax's test_state_shape_dtype_shard_stability and test_preserve_dtype: an update inside one
    branch of a `lax.cond` whose other branch returns the state unchanged (so shapes, dtypes and weak
    types must not change), updates in the gradients' dtype, the params' dtype kept."""
    if dtype == "complex64" and entry.complex_unsupported:
        with pytest.raises(TypeError, match="complex params are not supported"):
            entry.build().init(jnp.ones(2, jnp.complex64))
        return
    with jax.enable_x64(dtype == "float64"):
        init, _, objective = parabola(jnp.dtype(dtype))
        tx = entry.build()
        grad_fn = conj_grad(objective)

        def two_branches(params, state, take):
            updates, new_state = jax.lax.cond(
                take,
                lambda: tx.update(grad_fn(params), state, params, grad_fn=grad_fn),
                lambda: (jax.tree.map(jnp.zeros_like, params), state),
            )
            return optax.apply_updates(params, updates), updates, new_state

        state = jax.eval_shape(tx.init, init)
        params, updates, new_state = jax.eval_shape(two_branches, init, state, True)
        assert params.dtype == updates.dtype == jnp.dtype(dtype)
        assert jax.tree.structure(new_state) == jax.tree.structure(state)
        for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state), strict=True):
            assert (a.shape, a.dtype, a.weak_type) == (b.shape, b.dtype, b.weak_type)


@pytest.mark.parametrize("entry", params_of(ALL, tuple(ALL)))
def test_tree_map_params(entry):
    """`optax.tree_map_params` finds every param-shaped buffer (real and complex params), and only
    those: a cast reaches each of them, and no counter."""
    tx = entry.build()
    params = {"w": jnp.ones((2, 3)), "z": jnp.ones(3, jnp.complex64)}
    if entry.complex_unsupported:
        params["z"] = jnp.ones(3)
    state = jax.eval_shape(tx.init, params)
    same = optax.tree_map_params(tx, lambda v: v, state)
    assert jax.tree.structure(same) == jax.tree.structure(state)
    cast = optax.tree_map_params(tx, lambda v: jax.ShapeDtypeStruct(v.shape, jnp.bfloat16), state)
    changed = [
        (a.shape, b.dtype)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(cast), strict=True)
        if a.dtype != b.dtype
    ]
    assert all(dtype == jnp.bfloat16 for _, dtype in changed)
    # Each param-shaped buffer holds w (2, 3) and z: as its two real parts (3,) in an optimizer's
    # state, as the complex (3,) itself in Lookahead's slow weights.
    # (Adafactor's factored statistics of w are rows and columns: only their count is checked.)
    shapes = [shape for shape, _ in changed]
    n, n_z = shapes.count((2, 3)), shapes.count((3,))
    if set(shapes) <= {(2, 3), (3,)}:
        assert n <= n_z <= 2 * n and len(shapes) == n + n_z
    else:
        assert len(shapes) > n
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(cast), strict=True):
        if a.dtype != b.dtype:
            assert jnp.issubdtype(a.dtype, jnp.inexact)  # only float buffers, never a counter


# --- optax's wrappers around each entry (numeric, one compiled step per run) -------------------------

# SAM's second pass calls the user's `grad_fn` on the params it is given; under optax.masked and
# optax.partition those are a sub-tree, which a loss over the whole model cannot take.
NOT_SUBTREE = set(SAM_FAMILY)


def jitted_step(tx, grad_fn):
    return jax.jit(lambda p, s, g: step(tx, p, s, grad_fn, g))


def random_grads(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(n)
    ]


@pytest.mark.parametrize("entry", params_of(ALL, ("lookahead(adamw)",)))
def test_multi_steps_accumulates_as_one_step_on_the_mean(entry):
    """`optax.MultiSteps(tx, 2)` on g1, g2 is one step of tx on their mean (as optax averages)."""
    tx = entry.build()
    params, loss = make_problem()
    grad_fn = jax.grad(loss)
    # optax's MultiSteps mixes int32 and float32 (`emit * ...`), which strict promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
        multi = optax.MultiSteps(tx, every_k_schedule=2)
        step_multi, step_ref = jitted_step(multi, grad_fn), jitted_step(tx, grad_fn)
        grads = random_grads(params, 4)
        p_multi, s_multi, p_ref, s_ref = params, multi.init(params), params, tx.init(params)
        for i, g in enumerate(grads):
            p_multi, s_multi, _ = step_multi(p_multi, s_multi, g)
            if i % 2 == 1:
                mean = jax.tree.map(lambda a, b: a + (b - a) / 2, grads[i - 1], g)  # optax's mean
                p_ref, s_ref, _ = step_ref(p_ref, s_ref, mean)
                assert_trees_close(p_multi, p_ref, what=f"step {i}")
    assert_trees_close(s_multi.inner_opt_state, s_ref)


# All with -m slow: tests/test_nonfinite.py already runs optimizers, Lookahead and SAM through it by
# default. bsam does not read the gradients it is given (both its passes call grad_fn), so a NaN there
# is nothing to skip.
@pytest.mark.parametrize("entry", params_of([n for n in ALL if n != "bsam"], ()))
def test_apply_if_finite_skips_a_nan_step(entry):
    """`optax.apply_if_finite`: a step with a NaN gradient leaves params and state as they were."""
    tx = entry.build()
    params, loss = make_problem()
    grad_fn = jax.grad(loss)
    guarded = optax.apply_if_finite(tx, max_consecutive_errors=3)
    step_guarded, step_ref = jitted_step(guarded, grad_fn), jitted_step(tx, grad_fn)
    p, s, p_ref, s_ref = params, guarded.init(params), params, tx.init(params)
    for i in range(4):
        if i == 1:
            bad = jax.tree.map(lambda g: g.at[0].set(jnp.nan), grad_fn(p))
            p, s, _ = step_guarded(p, s, bad)
            assert int(s.notfinite_count) == 1
            continue
        p, s, _ = step_guarded(p, s, grad_fn(p))
        p_ref, s_ref, _ = step_ref(p_ref, s_ref, grad_fn(p_ref))
        assert_trees_close(p, p_ref, what=f"step {i}")
    assert_trees_close(s.inner_state, s_ref)


def _subtree(tree):
    return {"w": tree["w"], "v": tree["v"]}


SUBTREE_FAST = {("lion", "masked"), ("lookahead(adamw)", "partition")}


@pytest.mark.parametrize(
    "entry, wrapper",
    [
        pytest.param(
            ENTRIES[n], w, id=f"{n}-{w}", marks=() if (n, w) in SUBTREE_FAST else pytest.mark.slow
        )
        for n in ALL
        if n not in NOT_SUBTREE
        for w in ("masked", "partition")
    ],
)
def test_masked_and_partition_act_on_their_leaves_only(entry, wrapper):
    """`optax.masked(tx, mask)` / `optax.partition` give the selected leaves tx's updates for that
    sub-tree alone, the others what the wrapper says (the gradient itself / the other optimizer's)."""
    tx = entry.build()
    params, loss = make_problem()
    grad_fn = jax.grad(loss)
    if wrapper == "masked":
        outer = optax.masked(tx, {"w": True, "b": False, "v": True})
    else:
        labels = {"w": "tx", "b": "sgd", "v": "tx"}
        outer = optax.partition({"tx": tx, "sgd": optax.sgd(0.1)}, labels)

    @jax.jit
    def both(p, s, s_sub):
        g = grad_fn(p)
        updates, s = outer.update(g, s, p)
        want, s_sub = tx.update(_subtree(g), s_sub, _subtree(p))
        return g, updates, s, want, s_sub

    p, s, s_sub = params, outer.init(params), tx.init(_subtree(params))
    for i in range(3):
        g, updates, s, want, s_sub = both(p, s, s_sub)
        assert_trees_close(_subtree(updates), want, what=f"step {i}")
        other = g["b"] if wrapper == "masked" else -0.1 * g["b"]
        np.testing.assert_allclose(updates["b"], other, rtol=1e-6)
        p = optax.apply_updates(p, updates)


@pytest.mark.parametrize("entry", params_of(ALL, ("lion",)))
def test_vmap_over_an_ensemble(entry):
    """`jax.vmap` of init and update over 3 ensemble members equals each member trained alone."""
    tx = entry.build()
    params, loss = make_problem()
    grad_fn = jax.grad(loss)
    members = [jax.tree.map(lambda x, k=k: x * (1 + 0.1 * k), params) for k in range(3)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)

    def train(p, s):
        for _ in range(2):
            p, s, _ = step(tx, p, s, grad_fn)
        return p

    got = jax.jit(jax.vmap(train))(stacked, jax.vmap(tx.init)(stacked))
    train_one = jax.jit(train)
    for k, member in enumerate(members):
        want = train_one(member, tx.init(member))
        assert_trees_close(jax.tree.map(lambda x, k=k: x[k], got), want, rtol=1e-5, atol=1e-6)


# --- hypergradients (meta-learning through `update`) -----------------------------------------------

# The optimizers whose second-moment root made these NaN at a dead unit (issue 18), without an L2
# term (which would make the dead unit's gradient nonzero).
ROOT_OF_ZERO: dict[str, Callable[[Any], optax.GradientTransformation]] = {
    "adam": lambda lr: sharpax.adam(lr),
    "amsgrad": lambda lr: sharpax.adam(lr, amsgrad=True),
    "adamw": lambda lr: sharpax.adamw(lr),
    "nadam": lambda lr: sharpax.nadam(lr),
    "radam": lambda lr: sharpax.radam(lr),
    "rmsprop": lambda lr: sharpax.rmsprop(lr),
    "rmsprop_centered": lambda lr: sharpax.rmsprop(lr, centered=True, momentum=0.9),
    "adagrad": lambda lr: sharpax.adagrad(lr),
}


def trained_loss(make, params, loss, steps=2):
    """`lr -> loss(params after `steps` updates of make(lr))`, differentiable in lr."""
    grad_fn = jax.grad(loss)

    def run(lr):
        tx = make(lr)
        p, s = params, tx.init(params)
        for _ in range(steps):
            p, s, _ = step(tx, p, s, grad_fn)
        return loss(p)

    return run


# The two roots by default (Adam's of v, centered RMSprop's of v - m^2); every optimizer with -m slow.
ROOT_FAST = ("adam", "rmsprop_centered")


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=() if n in ROOT_FAST else pytest.mark.slow) for n in ROOT_OF_ZERO],
)
def test_update_is_differentiable_where_a_gradient_is_zero(name):
    """The derivative of one update with respect to the gradient, at a gradient with exact zeros (so
    second moments at 0), is finite: the root's infinite slope at 0 times the zero slope of g^2 gave
    NaN, and NaN hypergradients through every later step. Eager, one jvp per optimizer."""
    tx = ROOT_OF_ZERO[name](1e-2)
    params = {"w": jnp.array([1.0, -2.0, 0.5])}
    grads = {"w": jnp.array([0.3, 0.0, -1.0])}
    state = tx.init(params)
    if (
        name == "radam"
    ):  # past the first rectified step (t* = 6 for b2 = 0.999), where sqrt(v) is used
        state = optax.tree.set(state, count=jnp.asarray(10, jnp.int32))
    _, tangent = jax.jvp(lambda g: tx.update(g, state, params)[0], (grads,), (grads,))
    assert np.all(np.isfinite(tangent["w"])), tangent
    _, tangent = jax.jvp(lambda g: tx.update(g, state, params)[0], (grads,), ({"w": jnp.ones(3)},))
    assert np.all(np.isfinite(tangent["w"])), tangent


@pytest.mark.slow
def test_hypergradients_are_finite_at_a_dead_unit():
    """Two steps from params with a dead ReLU unit (gradient coordinates exactly 0, second moments 0):
    d loss / d lr through `update` is finite for every optimizer with a root of its second moment.
    One program."""
    params, loss = make_problem()
    assert float(jnp.abs(jax.grad(loss)(params)["v"][2])) == 0.0  # the dead unit
    hyper = jax.jit(
        lambda lr: {
            n: jax.grad(trained_loss(make, params, loss))(lr) for n, make in ROOT_OF_ZERO.items()
        }
    )(jnp.float32(1e-2))
    for name, value in hyper.items():
        assert np.isfinite(float(value)) and float(value) != 0.0, (name, value)


# Entries whose `update` only forward mode differentiates through, and why.
FORWARD_MODE_ONLY = {
    "ae_sam(adamw)": "AE-SAM's second pass sits in a loop of 0 or 1 trips (main's design: a cond "
    "would copy the gradients every step), which reverse mode cannot differentiate",
}


@pytest.mark.parametrize("entry", params_of(ALL, ("adam_l2_amsgrad",)))
def test_hypergradient_matches_finite_differences(entry):
    """d/d(lr) of the loss after 2 steps, through every `update`, equals a central finite difference
    (float64), from params with a dead unit. Reverse mode (what meta-learning uses), or forward mode
    for the entries of FORWARD_MODE_ONLY (where reverse mode is checked to raise JAX's error)."""
    with jax.enable_x64(True):
        params, loss = make_problem(jnp.float64)
        lr0 = entry.parabola_lr
        tuned = lambda lr: entry.tuned(lr, 0.05)
        run = trained_loss(tuned, params, loss)
        if entry.name in FORWARD_MODE_ONLY:
            with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
                jax.jit(jax.grad(run))(jnp.float64(lr0))
            value_and_grad = jax.jit(lambda lr: jax.jvp(run, (lr,), (jnp.ones_like(lr),)))
        else:
            value_and_grad = jax.jit(jax.value_and_grad(run))
        _, hyper = value_and_grad(jnp.float64(lr0))
        # A step of 1e-3 relative: several rules keep float32 buffers or scalars (ASGD's eta and mu,
        # Adafactor's step size), whose rounding would swamp a smaller difference.
        h = 1e-3 * lr0
        fd = (value_and_grad(lr0 + h)[0] - value_and_grad(lr0 - h)[0]) / (2 * h)
        assert np.isfinite(float(hyper)), f"hypergradient {hyper}"
        # Muon's Newton-Schulz runs in bfloat16, its derivative too: 5e-4 relative off the slope.
        rtol = 1e-3 if entry.name.startswith("muon") else 1e-4
        np.testing.assert_allclose(float(hyper), float(fd), rtol=rtol, atol=1e-9)
