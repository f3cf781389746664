"""ReduceLROnPlateau on the host: a small object whose `step(metric)` returns the new rate."""

from __future__ import annotations

from typing import Any

from sharpax.lr_scheduler._plateau_rule import plateau_config, plateau_step, worst


def _where(condition: Any, if_true: Any, if_false: Any) -> Any:
    return if_true if condition else if_false


class ReduceLROnPlateau:
    r"""torch's `ReduceLROnPlateau` on the host, in float64 as torch: `step(metric)` returns the rate.

    For loops that evaluate on the host (a validation pass after each epoch): build the optimizer with
    `sharpax.inject_hyperparams`, and after each evaluation set the rate this returns with
    `sharpax.set_hyperparams` (a new value, the same dtype and shape: the jitted step is not
    recompiled). The decision is torch's, expression for expression, in Python floats; the in-graph
    twin is `reduce_lr_on_plateau` (float32 comparisons).

    .. math::
        \eta \leftarrow \max(f \eta, \eta_{min}) \text{ after more than } P \text{ steps without an
        improvement beyond the threshold (unless that changes } \eta \text{ by } \le \epsilon)

    Args:
        lr: the initial rate, finite and >= 0.
        mode: "min" (a metric to lower) or "max".
        factor: the reduction, in [0, 1).
        patience: steps without improvement tolerated, an integer >= 0.
        threshold: the improvement that counts, >= 0.
        threshold_mode: "rel" (relative to the best) or "abs".
        cooldown: steps after a reduction during which bad steps are not counted, an integer >= 0.
        min_lr: the lowest rate, >= 0.
        eps: a reduction changing the rate by `eps` or less is skipped, >= 0.

    References:
        PyTorch 2.13, `torch.optim.lr_scheduler.ReduceLROnPlateau`.

    Example:
        >>> import jax.numpy as jnp, sharpax
        >>> from sharpax import lr_scheduler
        >>> tx = sharpax.inject_hyperparams(sharpax.adam)(learning_rate=1e-3)
        >>> state = tx.init(jnp.zeros(2))
        >>> plateau = lr_scheduler.ReduceLROnPlateau(1e-3, patience=0)
        >>> for val_loss in [0.5, 0.7]:  # after each epoch
        ...     state = sharpax.set_hyperparams(state, learning_rate=plateau.step(val_loss))
        >>> plateau.lr, sharpax.current_learning_rate(state)
        (0.0001, Array(1.e-04, dtype=float32))
    """

    def __init__(
        self,
        lr: float,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        self.config = plateau_config(
            "ReduceLROnPlateau",
            lr,
            mode,
            factor,
            patience,
            threshold,
            threshold_mode,
            cooldown,
            min_lr,
            eps,
        )
        self.lr = float(lr)
        self.best = worst(self.config)
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def step(self, metrics: Any) -> float:
        """Take one plateau step with `metrics` (a number or a 0-d array) and return the new rate."""
        current = float(metrics)  # as torch: a 0-d array (jax, numpy) becomes a float
        self.last_epoch += 1
        self.lr, self.best, self.num_bad_epochs, self.cooldown_counter, _ = plateau_step(
            self.config,
            _where,
            current,
            self.lr,
            self.best,
            self.num_bad_epochs,
            self.cooldown_counter,
            self.lr * self.config.factor,
        )
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        """The mutable state, to checkpoint (the arguments are rebuilt by the constructor)."""
        keys = ("lr", "best", "num_bad_epochs", "cooldown_counter", "last_epoch")
        return {key: getattr(self, key) for key in keys}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        for key, value in state_dict.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau(lr={self.lr!r}, best={self.best!r}, {self.config})"
