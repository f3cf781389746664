"""No host sync on a GPU: the SAM family's steps, lowered for CUDA (no GPU needed), hold no branch decided
at run time. XLA:GPU runs a `lax.cond` by copying its branch index to the host and waiting for the stream
(`ConditionalThunk`), and a `while` by reading its predicate the same way, so a conditional in every step
stalls the GPU once per step. The members that skip a second pass (LookSAM, periodic SAM, AE-SAM) and
Lookahead's sync need their branch; the rest must have none."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import pytest

import sharpax
from tests.optimizer_table import WRAPPERS

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
# Members whose step branches by design: a SAM step or not, a sync or not.
BRANCHING = {"lookahead(adamw)", "lookahead(sam(radam))", "ae_sam(adamw)"}


def _loss(params):
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))


def _runtime_branches(lowered) -> list[str]:
    """The control-flow ops of a lowering whose branch is decided at run time: every `while`, and every
    `case`/`if` whose index is not a constant (`lax.platform_dependent` selects its branch with a
    constant index, or a `case` of constants, which XLA folds away)."""

    def constant(value) -> bool:
        op = value.owner
        if op.name == "stablehlo.constant":
            return True
        if op.name == "stablehlo.case":
            returns = [
                block.operations[len(block.operations) - 1]
                for r in op.regions
                for block in r.blocks
            ]
            return constant(op.operands[0]) and all(
                ret.operands[0].owner.name == "stablehlo.constant" for ret in returns
            )
        return False

    found: list[str] = []

    def walk(op) -> None:
        for region in op.regions:
            for block in region.blocks:
                for inner in block.operations:
                    inner = inner.operation
                    if inner.name == "stablehlo.while" or (
                        inner.name in ("stablehlo.case", "stablehlo.if")
                        and not constant(inner.operands[0])
                    ):
                        found.append(inner.name)
                    walk(inner)

    walk(lowered.compiler_ir("stablehlo").operation)
    return found


def _lower_step(tx, platform):
    def step(params, state):
        grads = jax.grad(_loss)(params)
        updates, state = tx.update(grads, state, params, grad_fn=jax.grad(_loss))
        return optax.apply_updates(params, updates), state

    return jax.jit(step).trace(PARAMS, tx.init(PARAMS)).lower(lowering_platforms=(platform,))


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_a_step_lowered_for_cuda_has_no_runtime_branch(name):
    found = _runtime_branches(_lower_step(WRAPPERS[name](), "cuda"))
    if name in BRANCHING:
        assert found, f"{name}: expected its by-design branch (the detector must see it)"
    else:
        assert found == [], f"{name}: a conditional in every step is a host sync on a GPU: {found}"


@pytest.mark.parametrize(
    "make",
    [
        lambda: sharpax.sam_value_and_grad(_loss, rho=0.05),
        lambda: sharpax.sam_value_and_grad(_loss, rho=0.05, adaptive=True),
        lambda: sharpax.gsam_value_and_grad(_loss, rho=0.05),
    ],
    ids=["sam", "asam", "gsam"],
)
def test_the_gradient_forms_lowered_for_cuda_have_no_runtime_branch(make):
    lowered = jax.jit(make()).trace(PARAMS).lower(lowering_platforms=("cuda",))
    assert _runtime_branches(lowered) == []


def test_rwp_lowered_for_cuda_has_no_runtime_branch():
    loss = lambda p, x: jnp.mean(jnp.square(x @ p["w"] + p["b"][None]))
    rwp = sharpax.rwp_value_and_grad(loss, gamma=0.01)
    args = (PARAMS, jnp.ones((4, 3)))
    lowered = jax.jit(rwp).trace(*args, key=jax.random.key(0)).lower(lowering_platforms=("cuda",))
    assert _runtime_branches(lowered) == []


def test_esam_lowered_for_cuda_has_no_runtime_branch():
    per_example = lambda p, x: jnp.sum(jnp.square(x @ p["w"] + p["b"][None]), axis=1)
    esam = sharpax.esam_value_and_grad(per_example, rho=0.05, beta=0.5, gamma=0.5)
    args = (PARAMS, jnp.ones((4, 3)))
    lowered = jax.jit(esam).trace(*args, key=jax.random.key(0)).lower(lowering_platforms=("cuda",))
    assert _runtime_branches(lowered) == []


def test_the_cpu_lowering_keeps_its_rescaling_branch():
    # On CPU a conditional is cheap, and the norm's plain sum of squares is faster than Blue's three
    # sums: the CPU path keeps it (this also shows the detector sees a `lax.cond`).
    assert _runtime_branches(_lower_step(WRAPPERS["sam(adam)"](), "cpu")) == ["stablehlo.case"]
