"""Property tests: every optimizer, random valid hyperparameters, random pytrees (nested containers,
None leaves, zero-size arrays, scalars): finite in gives finite out, jit equals no jit, init is pure.

The hyperparameters span each argument's whole documented range, edges included. One exception: eps is
kept > 0, since eps = 0 (allowed, as in torch) makes 0 / 0 of a zero gradient in every adaptive rule.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.optimizer_table import CASES

FACTORIES = list({case.make.__name__: case.make for case in CASES}.values())


def _closed(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([low, high]), st.floats(low, high))


# A decay rate must be below 1 in float32 (where the update runs), not only in Python's float64.
BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))


def _decay_rate() -> st.SearchStrategy[float]:
    """[0, 1): the upper edge itself is invalid, so its nearest neighbours stand in for it."""
    return st.one_of(st.sampled_from([0.0, 0.999, 0.9999, BELOW_ONE]), st.floats(0.0, BELOW_ONE))


# Valid values of every hyperparameter of the family, by argument name.
HYPERPARAMETERS: dict[str, st.SearchStrategy] = {
    "learning_rate": _closed(0.0, 1.0),
    "b1": _decay_rate(),
    "b2": _decay_rate(),
    "eps": st.sampled_from([1e-12, 1e-10, 1e-8, 1e-6, 1e-3, 0.1]),
    "weight_decay": _closed(0.0, 0.5),
    "momentum": _closed(0.0, 0.99),
    "dampening": _closed(0.0, 1.0),
    "nesterov": st.booleans(),
    "amsgrad": st.booleans(),
    "lr_decay": _closed(0.0, 1.0),
    "initial_accumulator_value": _closed(0.0, 1.0),
    "rho": _closed(0.0, 1.0),
    "decay": _closed(0.0, 1.0),
    "centered": st.booleans(),
    "momentum_decay": _closed(0.0, 0.1),
    "decoupled_weight_decay": st.booleans(),
    "threshold": _closed(4.0, 50.0),
    "degenerated_to_sgd": st.booleans(),
    "mu_dtype": st.sampled_from([None, jnp.float32, jnp.bfloat16]),
    "nu_dtype": st.sampled_from([None, jnp.float32, jnp.bfloat16]),
    "accumulator_dtype": st.sampled_from([None, jnp.float32, jnp.bfloat16]),
    # Adafactor
    "beta2_decay": st.one_of(st.sampled_from([-0.8, 0.0, -1.0]), st.floats(-2.0, 0.0)),
    "d": _closed(1.0, 10.0),
    # Muon (and its AdamW)
    "ns_coefficients": st.sampled_from([(3.4445, -4.775, 2.0315), (1.5, -0.5, 0.0)]),
    "ns_steps": st.integers(1, 6),
    "adjust_lr_fn": st.sampled_from([None, "original", "match_rms_adamw"]),
    "layout": st.sampled_from(["in_out", "out_in"]),
    "adamw_learning_rate": st.one_of(st.none(), _closed(0.0, 1.0)),
    "adamw_b1": _decay_rate(),
    "adamw_b2": _decay_rate(),
    "adamw_eps": st.sampled_from([1e-12, 1e-8, 1e-3]),
    "adamw_weight_decay": st.one_of(st.none(), _closed(0.0, 0.5)),
    # Rprop
    "etas": st.tuples(
        st.floats(0.0, 1.0, exclude_min=True, exclude_max=True),
        st.floats(1.0, 5.0, exclude_min=True),
    ),
    "step_sizes": st.tuples(_closed(0.0, 1e-3), _closed(1e-3, 50.0)),
    # ASGD
    "lambd": _closed(0.0, 0.1),
    "alpha": _closed(0.0, 1.0),
    "t0": st.one_of(st.sampled_from([0.0, 1e6]), st.floats(0.0, 5.0)),
}
# Where one name means another thing: Adafactor's eps is (epsilon_1 or None, epsilon_2). epsilon_1 is
# kept >= 1e-10: torch squares it in float64 and clamps a float32 estimate with it, and below ~1e-19
# the square is 0 in float32, so a zero gradient would give 0 * rsqrt(0) = NaN (in torch too).
BY_FACTORY: dict[str, dict[str, st.SearchStrategy]] = {
    "adafactor": {
        "eps": st.tuples(st.sampled_from([None, 1e-10, 1e-3]), st.sampled_from([0.0, 1e-3, 0.1]))
    },
}
UNDRAWN = {
    "mask",
    "muon_mask",
}  # covered elsewhere (docstrings and tests of adamw, muon_with_adamw)


@st.composite
def hyperparameters(draw, factory) -> dict:
    names = [n for n in inspect.signature(factory).parameters if n not in UNDRAWN]
    strategies = {**HYPERPARAMETERS, **BY_FACTORY.get(factory.__name__, {})}
    missing = set(names) - set(strategies)
    assert not missing, f"{factory.__name__}: no strategy for {missing}"
    kwargs = {name: draw(strategies[name]) for name in names}
    if kwargs.get("nesterov") and "dampening" in kwargs:
        # SGD (torch's rule): Nesterov needs momentum > 0 and no dampening
        kwargs["momentum"] = max(kwargs["momentum"], 0.1)
        kwargs["dampening"] = 0.0
    if kwargs.get("centered"):
        # Centered RMSprop's variance v - m^2 is about decay^t * g^2 for a steady gradient: with a small
        # decay it is a catastrophic cancellation (exactly 0 at decay 0), so the update is rounding noise
        # over eps and jit (FMA) and eager round it differently. Not a bug: keep decay >= 0.5, where
        # the cancellation amplifies rounding at most ~10x over these few steps.
        kwargs["decay"] = max(kwargs["decay"], 0.5)
    return kwargs


_SHAPES = st.sampled_from([(), (1,), (3,), (0,), (2, 3), (2, 0), (1, 1, 2)])
_LEAF = st.one_of(st.none(), _SHAPES.map(lambda s: ("leaf", s)))
SKELETONS = st.recursive(
    _LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from("abcd"), children, max_size=3),
    ),
    max_leaves=6,
).filter(lambda s: s is not None)  # a params tree that is None itself reads as "no params" in optax


def _fill(skeleton, rng: np.random.Generator, scale: float):
    """Arrays for the ("leaf", shape) markers of `skeleton`; containers and Nones kept."""
    if isinstance(skeleton, tuple) and skeleton[:1] == ("leaf",):
        return jnp.asarray(rng.normal(size=skeleton[1]) * scale, jnp.float32)
    if isinstance(skeleton, dict):
        return {k: _fill(v, rng, scale) for k, v in skeleton.items()}
    if isinstance(skeleton, (list, tuple)):
        return type(skeleton)(_fill(v, rng, scale) for v in skeleton)
    return skeleton


def _bits(tree) -> list[bytes]:
    return [np.asarray(x).tobytes() for x in jax.tree.leaves(tree)]


def _assert_finite(tree, what: str) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        assert np.all(np.isfinite(np.asarray(leaf, np.float32))), (
            f"{what}{jax.tree_util.keystr(path)}"
        )


def _assert_close(got, want, what: str, tol: float) -> None:
    for (path, g), w in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
        np.testing.assert_allclose(
            g, w, rtol=tol, atol=tol, err_msg=f"{what}{jax.tree_util.keystr(path)}"
        )


STEPS = 3


def check_properties(factory, kwargs, skeleton, seed, grad_scale) -> None:
    tx = factory(**kwargs)
    rng = np.random.default_rng(seed)
    params = _fill(skeleton, rng, 1.0)
    grads = [_fill(skeleton, rng, grad_scale) for _ in range(STEPS)]
    params_bits = _bits(params)

    # init is pure: deterministic, leaves its input alone, the same under jit and from shapes alone.
    state = tx.init(params)
    assert _bits(tx.init(params)) == _bits(state)
    assert _bits(params) == params_bits
    assert _bits(jax.jit(tx.init)(params)) == _bits(state)
    abstract = jax.eval_shape(tx.init, params)
    assert jax.tree.structure(abstract) == jax.tree.structure(state)

    # With a bfloat16 moment, XLA may keep a fused chain in float32 and round once where eager rounds
    # after each op: the two agree to bfloat16's precision, not float32's.
    low = jnp.bfloat16 in (
        kwargs.get("mu_dtype"),
        kwargs.get("nu_dtype"),
        kwargs.get("accumulator_dtype"),
    )
    tol = 2e-2 if low else 1e-5
    eager_state, jit_state = state, state
    update = jax.jit(tx.update)
    for g in grads:
        state_bits = _bits(eager_state)
        eager_updates, eager_state_next = tx.update(g, eager_state, params)
        assert _bits(eager_state) == state_bits and _bits(params) == params_bits  # inputs untouched
        eager_state = eager_state_next
        jit_updates, jit_state = update(g, jit_state, params)
        # finite in, finite out
        _assert_finite(eager_updates, "updates")
        _assert_finite(eager_state, "state")
        # jit == no jit
        _assert_close(jit_updates, eager_updates, "updates", tol)
        _assert_close(jit_state, eager_state, "state", tol)
        assert jax.tree.structure(eager_updates) == jax.tree.structure(g)


# No shrinking: each example compiles a program, and shrinking one failure costs minutes on CPU. The
# failing example is printed as found.
SETTINGS = dict(
    deadline=None,
    derandomize=True,  # the same examples on every run: CI must not turn red by chance
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _given(factory):
    return given(
        kwargs=hyperparameters(factory),
        skeleton=SKELETONS,
        seed=st.integers(0, 2**32 - 1),
        grad_scale=st.sampled_from([0.0, 1e-30, 1e-3, 1.0, 10.0]),
    )


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_properties(factory):
    settings(max_examples=4, **SETTINGS)(
        _given(factory)(lambda **kw: check_properties(factory, **kw))
    )()


@pytest.mark.slow
@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_properties_many_examples(factory):
    settings(max_examples=60, **SETTINGS)(
        _given(factory)(lambda **kw: check_properties(factory, **kw))
    )()
