"""What `--resume` may change: the recipe of the checkpoint against the recipe given now.

A checkpoint's position (epoch, micro-batch) only means something for the same
data, order and model, so those settings are fixed for the life of a run and a
change is refused, naming every changed key. Settings of the optimisation that
goes on from here (epochs, max_steps, lr, ...) may change; the trainer then
rebuilds the lr schedule for them and says so in one line.
"""
from __future__ import annotations

import json

from .errors import TrainingError

# Settings that define what a checkpoint's position means: whole sections or single keys.
FIXED = ("model", "data", "train.batch_size", "train.grad_accum", "train.seed", "train.max_length")
# Not settings of the run at all.
IGNORED = ("name", "source", "train.output_dir")
# Changes that act through the lr schedule or the optimizer's hyper-parameters.
SCHEDULE = ("train.epochs", "train.lr", "train.blr", "train.min_lr", "train.warmup_epochs", "train.weight_decay",
            "train.betas")


def _flatten(tree, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _under(key: str, names) -> bool:
    return any(key == n or key.startswith(n + ".") for n in names)


def changed_settings(saved: dict, current: dict) -> dict[str, tuple]:
    """{dotted key: (saved value, current value)} for every setting that differs (JSON-normalised)."""
    old = _flatten(json.loads(json.dumps(saved)))
    new = _flatten(json.loads(json.dumps(current)))
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k) and not _under(k, IGNORED)}


def describe(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{k} {json.dumps(a)}→{json.dumps(b)}" for k, (a, b) in changes.items())


def check_resumable(saved: dict, current: dict, checkpoint) -> dict[str, tuple]:
    """Refuse (one line naming each key) a change that cannot apply mid-run; return the ones that can."""
    changes = changed_settings(saved, current)
    fixed = {k: v for k, v in changes.items() if _under(k, FIXED)}
    if fixed:
        raise TrainingError(
            f"--resume: {describe(fixed)} cannot change in the middle of a run (checkpoint '{checkpoint}'); "
            "resume with the saved values, or start a new run with another --output-dir")
    return changes


def schedule_changed(changes: dict) -> bool:
    return any(_under(k, SCHEDULE) for k in changes)
