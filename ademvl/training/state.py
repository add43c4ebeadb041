"""Checkpoints: trainable weights (the adapter format) + optimizer, scheduler, position and RNG states.

A checkpoint is written into a hidden temp directory and renamed into place in
one step, so a run killed while saving leaves the previous checkpoints intact
and never a half-written one that `--resume` would pick up.
"""
from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STATE_NAME = "training_state.pt"
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE_NAME).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(accelerator, model, optimizer, scheduler, run_dir: Path, position: dict, keep_last: int) -> Path:
    """All ranks call this; rank 0 writes weights + shared state, every rank its own RNG state."""
    root = Path(run_dir) / CHECKPOINTS
    final = root / f"step-{position['step']:08d}"
    tmp = root / f".step-{position['step']:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_state_{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_adapter(tmp)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), **position},
                   tmp / STATE_NAME)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in checkpoint_dirs(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, model, optimizer, scheduler, checkpoint: Path) -> dict:
    """Restore weights, optimizer, scheduler and this rank's RNG; returns the saved position."""
    checkpoint = Path(checkpoint)
    accelerator.unwrap_model(model).load_adapter(checkpoint)
    state = torch.load(checkpoint / STATE_NAME, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    rng_file = checkpoint / f"rng_state_{accelerator.process_index}.pt"
    if not rng_file.is_file():
        raise ValueError(f"checkpoint '{checkpoint}' has no RNG state for rank {accelerator.process_index} "
                         "(was it written with fewer processes?)")
    set_rng_state(torch.load(rng_file, weights_only=False))
    return state
