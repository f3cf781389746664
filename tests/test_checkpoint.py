"""Checkpoints: save (params, opt_state) with orbax, restore in a fresh process, train on: the result is
bit-identical to a run that was never interrupted. And the state's field names stay what they were.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests import checkpoint_cases as cc
from tests import reliability_common as rc
from tests.optimizer_table import CASES, WRAPPERS

ocp = pytest.importorskip("orbax.checkpoint")

REPO = pathlib.Path(__file__).resolve().parents[1]
SNAPSHOT = pathlib.Path(__file__).parent / "data" / "state_tree_paths.json"


def _uninterrupted_and_resumed(tmp, entries: tuple[str, ...] | None):
    """(uninterrupted, resumed): both trained STEPS_BEFORE + STEPS_AFTER steps, the second through a
    checkpoint saved here and restored by `tests/resume_from_checkpoint.py` in a fresh process."""
    saved = cc.start_training(entries)
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp / "ckpt", saved)
    checkpointer.wait_until_finished()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "tests.resume_from_checkpoint",
        str(tmp / "ckpt"),
        str(tmp / "out.npz"),
    ]
    proc = subprocess.run(
        command + list(entries or ()),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    uninterrupted = cc.continue_training(saved)
    with np.load(tmp / "out.npz") as resumed:
        return uninterrupted, dict(resumed)


@pytest.fixture(scope="module")
def runs_fast(tmp_path_factory):
    return _uninterrupted_and_resumed(tmp_path_factory.mktemp("checkpoint"), cc.FAST)


@pytest.fixture(scope="module")
def runs_all(tmp_path_factory):
    return _uninterrupted_and_resumed(tmp_path_factory.mktemp("checkpoint_all"), None)


@pytest.mark.parametrize(
    "entry",
    # A new interpreter (jax's import and fresh compiles): slow. In the default run the checkpoint
    # example's test (tests/test_examples.py) saves and restores with orbax in-process.
    [pytest.param(e, marks=pytest.mark.slow) for e in cc.optimizers()],
)
def test_resume_in_fresh_process_is_bit_identical(request, entry):
    uninterrupted, resumed = request.getfixturevalue(
        "runs_fast" if entry in cc.FAST else "runs_all"
    )
    n = 0
    for path, leaf in cc.leaves({entry: uninterrupted[entry]}):
        key = jax.tree_util.keystr(path)
        got, want = resumed[key], np.asarray(leaf)
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert got.tobytes() == want.tobytes(), (
            f"{key}: resumed run differs from the uninterrupted one"
        )
        n += 1
    assert n >= len(jax.tree.leaves(rc.make_params()))


def state_tree_paths(tx, params) -> list[str]:
    """Every field of the state as `path: dtype[shape]`, `None` fields included (their names count)."""
    state = jax.eval_shape(tx.init, params)
    flat = jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: x is None)[0]
    return [
        f"{jax.tree_util.keystr(path)}: "
        + ("None" if leaf is None else f"{leaf.dtype}{list(leaf.shape)}")
        for path, leaf in flat
    ]


def _all_optimizers() -> dict:
    return {**{case.id: case.build for case in CASES}, **WRAPPERS}


def current_snapshot() -> dict[str, list[str]]:
    params = {
        "w": jax.ShapeDtypeStruct((2, 3), np.float32),
        "b": jax.ShapeDtypeStruct((3,), np.float32),
    }
    return {name: state_tree_paths(make(), params) for name, make in _all_optimizers().items()}


@pytest.mark.parametrize("name", list(_all_optimizers()))
def test_state_field_names_are_stable(name):
    """A renamed, reordered or removed state field breaks every saved checkpoint: it must be a choice.

    Regenerate `tests/data/state_tree_paths.json` with `python -m tests.test_checkpoint` when it is.
    """
    snapshot = json.loads(SNAPSHOT.read_text())
    assert name in snapshot, f"{name} is not in {SNAPSHOT.name}; regenerate it"
    assert current_snapshot()[name] == snapshot[name]


def _assert_named(node, where: str) -> None:
    if isinstance(node, tuple):
        # A plain tuple is optax's chain, positional by design; every other tuple must name its fields.
        if type(node) is not tuple:
            assert hasattr(node, "_fields"), f"positional tuple {type(node).__name__} at {where}"
        for i, child in enumerate(node):
            _assert_named(child, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, child in node.items():
            _assert_named(child, f"{where}[{key!r}]")


@pytest.mark.parametrize("name", list(_all_optimizers()))
def test_state_fields_are_named(name):
    """Every tuple in the state is a NamedTuple, so a checkpoint's paths say what each buffer is."""
    _assert_named(_all_optimizers()[name]().init({"w": np.zeros((2, 3), np.float32)}), "state")


if __name__ == "__main__":
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(json.dumps(current_snapshot(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
