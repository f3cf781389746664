"""Porting PyTorch recipes: the same hyperparameters give the same steps.

Three recipes on a small MLP, each ported line by line (docs/porting_from_pytorch.md has the table):

1. AdamW(lr=3e-3, betas=(0.9, 0.99), weight_decay=0.05, amsgrad=True) with a LinearLR warmup;
2. SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4) with OneCycleLR, which also cycles the
   momentum (torch's default `cycle_momentum=True`): the schedule's `.momentum` goes to `sgd`;
3. Adam(lr=5e-2) with ReduceLROnPlateau on a validation loss evaluated after each epoch: the rate lives
   in the optimizer state (`reduce_lr_on_plateau` after `adam(1.0)`), stepped by `plateau_step`.

A torch scheduler stepped once per optimizer step is a schedule of the step count. When torch is
installed, both sides run from the same weights on the same batches and are compared.

    python examples/port_torch_recipe.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sharpax
from sharpax import lr_scheduler

STEPS = 30  # recipes 1 and 2: one batch per step
EPOCHS, BATCHES = 10, 3  # recipe 3: epochs of three batches, then a validation pass
LR, BETAS, WEIGHT_DECAY, WARMUP, START_FACTOR = 3e-3, (0.9, 0.99), 0.05, 10, 0.1
SGD_LR, SGD_MOMENTUM, SGD_DECAY = 0.1, 0.9, 5e-4
ADAM_LR, PLATEAU = 5e-2, dict(mode="min", factor=0.5, patience=1, threshold=1e-2)
RECIPES = ("adamw_linear_warmup", "sgd_nesterov_one_cycle", "adam_reduce_on_plateau")


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS, 16, 5)).astype(np.float32)  # STEPS batches of 16
    y = np.sin(x.sum(-1, keepdims=True)).astype(np.float32)
    w1 = rng.normal(scale=0.5, size=(5, 32)).astype(np.float32)
    w2 = rng.normal(scale=0.5, size=(32, 1)).astype(np.float32)
    params = {"w1": w1, "b1": np.zeros(32, np.float32), "w2": w2, "b2": np.zeros(1, np.float32)}
    return params, x, y


def validation_data(seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    return x, np.sin(x.sum(-1, keepdims=True)).astype(np.float32)


# -------------------------------------------------------------------------------------------- sharpax
def sharpax_recipe(name: str) -> optax.GradientTransformation:
    if name == "adamw_linear_warmup":
        # torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10)
        warmup = lr_scheduler.linear_lr(LR, start_factor=START_FACTOR, total_iters=WARMUP)
        b1, b2 = BETAS
        return sharpax.adamw(warmup, b1=b1, b2=b2, weight_decay=WEIGHT_DECAY, amsgrad=True)
    if name == "sgd_nesterov_one_cycle":
        # torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=30): rate and momentum.
        one_cycle = lr_scheduler.one_cycle_lr(max_lr=SGD_LR, total_steps=STEPS)
        return sharpax.sgd(
            one_cycle, momentum=one_cycle.momentum, nesterov=True, weight_decay=SGD_DECAY
        )
    # torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=1e-2): the
    # optimizer with rate 1, then the plateau rate.
    return optax.chain(sharpax.adam(1.0), lr_scheduler.reduce_lr_on_plateau(ADAM_LR, **PLATEAU))


def mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def mse(params, x, y):
    return jnp.mean((mlp(params, x) - y) ** 2)


def run_sharpax(params, x, y, name: str = RECIPES[0]):
    """Final params and the losses: per step (recipes 1, 2), or per epoch with the rates (recipe 3)."""
    tx = sharpax_recipe(name)
    params = jax.tree.map(jnp.asarray, params)
    state = tx.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(mse)(params, xb, yb)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    if name != "adam_reduce_on_plateau":
        for xb, yb in zip(x, y, strict=True):
            params, state, loss = step(params, state, xb, yb)
            losses.append(float(loss))
        return jax.tree.map(np.asarray, params), losses

    x_val, y_val = validation_data()
    plateau = jax.jit(lr_scheduler.plateau_step)
    rates = []
    for epoch in range(EPOCHS):
        for i in range(BATCHES):
            b = (epoch * BATCHES + i) % len(x)
            params, state, _ = step(params, state, x[b], y[b])
        val_loss = float(mse(params, x_val, y_val))  # evaluated after the epoch, as in torch
        state = plateau(state, val_loss)  # torch: scheduler.step(val_loss)
        losses.append(val_loss)
        rates.append(float(sharpax.current_learning_rate(state)))
    return jax.tree.map(np.asarray, params), (losses, rates)


# ---------------------------------------------------------------------------------------------- torch
def run_torch(params, x, y, name: str = RECIPES[0]):
    import torch

    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    schedulers = torch.optim.lr_scheduler
    if name == "adamw_linear_warmup":
        opt = torch.optim.AdamW(
            p.values(), lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY, amsgrad=True
        )
        sched = schedulers.LinearLR(opt, start_factor=START_FACTOR, total_iters=WARMUP)
    elif name == "sgd_nesterov_one_cycle":
        opt = torch.optim.SGD(
            p.values(), lr=SGD_LR, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=SGD_DECAY
        )
        sched = schedulers.OneCycleLR(opt, max_lr=SGD_LR, total_steps=STEPS)
    else:
        opt = torch.optim.Adam(p.values(), lr=ADAM_LR)
        sched = schedulers.ReduceLROnPlateau(opt, **PLATEAU)

    def train_step(xb, yb):
        opt.zero_grad()
        out = torch.tanh(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        loss = torch.mean((out - yb) ** 2)
        loss.backward()
        opt.step()
        return loss.item()

    xs, ys = torch.tensor(x), torch.tensor(y)
    losses = []
    if name != "adam_reduce_on_plateau":
        for xb, yb in zip(xs, ys, strict=True):
            losses.append(train_step(xb, yb))
            sched.step()
        return {k: v.detach().numpy() for k, v in p.items()}, losses

    x_val, y_val = (torch.tensor(a) for a in validation_data())
    rates = []
    for epoch in range(EPOCHS):
        for i in range(BATCHES):
            b = (epoch * BATCHES + i) % len(xs)
            train_step(xs[b], ys[b])
        with torch.no_grad():
            out = torch.tanh(x_val @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
            val_loss = torch.mean((out - y_val) ** 2).item()
        sched.step(val_loss)
        losses.append(val_loss)
        rates.append(opt.param_groups[0]["lr"])
    return {k: v.detach().numpy() for k, v in p.items()}, (losses, rates)


def main():
    """Run every recipe; returns `{recipe: (sharpax final params, torch final params or None)}` and
    the per-epoch (losses, rates) of the plateau recipe on both sides."""
    params, x, y = data()
    try:
        import torch  # noqa: F401
    except ImportError:
        torch = None
        print("torch is not installed: nothing to compare with")
    results, plateau = {}, {}
    for name in RECIPES:
        final, history = run_sharpax(params, x, y, name)
        torch_final = None
        if name == "adam_reduce_on_plateau":
            losses, rates = history
            rates = [round(r, 7) for r in rates]
            print(f"{name}: validation loss {losses[0]:.5f} -> {losses[-1]:.5f}, rates {rates}")
            plateau["sharpax"] = history
        else:
            print(f"{name}: loss {history[0]:.5f} -> {history[-1]:.5f} in {STEPS} steps")
        if torch is not None:
            torch_final, torch_history = run_torch(params, x, y, name)
            if name == "adam_reduce_on_plateau":
                plateau["torch"] = torch_history
                print(f"  torch rates {torch_history[1]}")
            gap = max(float(np.max(np.abs(final[k] - torch_final[k]))) for k in final)
            print(f"  max |sharpax - torch| over the final weights: {gap:.2e}")
        results[name] = (final, torch_final)
    return results, plateau


if __name__ == "__main__":
    main()
