"""Porting a PyTorch recipe: the same hyperparameters give the same steps.

The recipe: AdamW(lr=3e-3, betas=(0.9, 0.99), weight_decay=0.05, amsgrad=True) with a LinearLR warmup,
on a small MLP. sharpax's `adamw` has torch.optim.AdamW's update rule and defaults, and a torch scheduler
that is stepped once per optimizer step is a schedule of the step count, so the port is line by line.
When torch is installed, both run from the same weights on the same batches and are compared.

    python examples/port_torch_recipe.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax

STEPS = 30
LR, BETAS, WEIGHT_DECAY, WARMUP, START_FACTOR = 3e-3, (0.9, 0.99), 0.05, 10, 0.1


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS, 16, 5)).astype(np.float32)  # STEPS batches of 16
    y = np.sin(x.sum(-1, keepdims=True)).astype(np.float32)
    w1 = rng.normal(scale=0.5, size=(5, 32)).astype(np.float32)
    w2 = rng.normal(scale=0.5, size=(32, 1)).astype(np.float32)
    params = {"w1": w1, "b1": np.zeros(32, np.float32), "w2": w2, "b2": np.zeros(1, np.float32)}
    return params, x, y


# -------------------------------------------------------------------------------------------- sharpax
def sharpax_recipe() -> optax.GradientTransformation:
    # torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10), stepped every step.
    warmup = sharpax.linear_warmup(LR, WARMUP, init_value=START_FACTOR * LR)
    return sharpax.adamw(warmup, b1=BETAS[0], b2=BETAS[1], weight_decay=WEIGHT_DECAY, amsgrad=True)


def mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def run_sharpax(params, x, y):
    tx = sharpax_recipe()
    params = jax.tree.map(jnp.asarray, params)
    state = tx.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((mlp(p, xb) - yb) ** 2))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for xb, yb in zip(x, y, strict=True):
        params, state, loss = step(params, state, xb, yb)
        losses.append(float(loss))
    return jax.tree.map(np.asarray, params), losses


# ---------------------------------------------------------------------------------------------- torch
def run_torch(params, x, y):
    import torch

    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.AdamW(p.values(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, amsgrad=True)
    sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=START_FACTOR, total_iters=WARMUP)
    losses = []
    for xb, yb in zip(torch.tensor(x), torch.tensor(y), strict=True):
        opt.zero_grad()
        out = torch.tanh(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        loss = torch.mean((out - yb) ** 2)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return {k: v.detach().numpy() for k, v in p.items()}, losses


def main():
    params, x, y = data()
    final, losses = run_sharpax(params, x, y)
    print(f"sharpax: loss {losses[0]:.5f} -> {losses[-1]:.5f} in {STEPS} steps")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: nothing to compare with")
        return final, None
    torch_final, torch_losses = run_torch(params, x, y)
    print(f"torch:   loss {torch_losses[0]:.5f} -> {torch_losses[-1]:.5f}")
    gap = max(float(np.max(np.abs(final[k] - torch_final[k]))) for k in final)
    print(f"max |sharpax - torch| over the final weights: {gap:.2e}")
    return final, torch_final


if __name__ == "__main__":
    main()
