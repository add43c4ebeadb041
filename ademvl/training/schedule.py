"""The paper's optimisation rule: lr scaling, warm-up + half-cosine, AdamW groups (SPEC §1)."""
from __future__ import annotations

import math

import torch


def scaled_lr(blr: float, effective_batch: int) -> float:
    """`lr = blr * effective_batch / 256` (9e-3 at batch 32 → 1.125e-3)."""
    return blr * effective_batch / 256


def lr_at(step: int, steps_per_epoch: int, epochs: int, warmup_epochs: float, lr: float, min_lr: float = 0.0) -> float:
    """lr before optimizer step `step` (0-based): linear warm-up per iteration, then half-cosine to `min_lr`."""
    epoch = step / steps_per_epoch
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = epochs - warmup_epochs
    if span <= 0:
        return lr
    progress = min(1.0, (epoch - warmup_epochs) / span)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """A LambdaLR multiplier (picklable, so the scheduler's state_dict round-trips)."""

    def __init__(self, steps_per_epoch: int, epochs: int, warmup_epochs: float, lr: float, min_lr: float = 0.0):
        self.steps_per_epoch, self.epochs, self.warmup_epochs = steps_per_epoch, epochs, warmup_epochs
        self.lr, self.min_lr = lr, min_lr

    def __call__(self, step: int) -> float:
        if self.lr == 0:
            return 0.0
        return lr_at(step, self.steps_per_epoch, self.epochs, self.warmup_epochs, self.lr, self.min_lr) / self.lr


def param_groups(named_params: dict[str, torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only: none on biases, norms or any 1-D tensor."""
    decay, no_decay = [], []
    for name, p in named_params.items():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model, lr: float, weight_decay: float, betas):
    """AdamW over the trainable parameters only."""
    return torch.optim.AdamW(param_groups(model.trainable_parameters(), weight_decay), lr=lr, betas=tuple(betas))


def build_scheduler(optimizer, steps_per_epoch: int, epochs: int, warmup_epochs: float, lr: float,
                    min_lr: float = 0.0, start_step: int = 0):
    """The per-step LambdaLR schedule, positioned before optimizer step `start_step`.

    The schedule is a pure function of the step and these settings, so a resumed
    run rebuilds it rather than loading one: the same settings give bit-identical
    lrs, changed ones (more epochs, another lr) take effect from `start_step` on.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(steps_per_epoch, epochs, warmup_epochs, lr, min_lr), last_epoch=start_step - 1)
