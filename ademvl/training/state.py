"""Checkpoints: trainable weights (the adapter format) + optimizer state, position, recipe and RNG states.

A checkpoint is written into a hidden temp directory and renamed into place in
one step, so a run killed while saving leaves the previous checkpoints intact
and never a half-written one that `--resume` would pick up. Nothing in it is a
pickle: weights, optimizer and RNG states are safetensors (`safestate`), the
position and the recipe JSON, so loading a checkpoint can never run code.

    step-00000012/
        ademvl_adapter.safetensors, ademvl_adapter.json  trainable weights (load_adapter)
        optimizer.safetensors                             AdamW moments and step counts
        trainer_state.json                                step, epoch, micro-batch, recipe, ...
        rng_state_<rank>.safetensors                      python / numpy / torch RNGs of each rank

The lr schedule is not stored: it is a function of the step and the recipe, rebuilt on resume.
"""
from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from ..atomic import remove_dir, replace_dir
from ..checkpoint import save_adapter
from .safestate import StateFileError, load_state, save_state
from .sharding import gathered_optimizer_state, gathered_trainable, shard_optimizer_state

STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.safetensors"
LEGACY_STATE_NAME = "training_state.pt"  # pickled state of earlier versions: recognised, never loaded
CHECKPOINTS = "checkpoints"
FORMAT_VERSION = 2
_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed (corrupt, old pickle format, other process count); the message says which."""


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


def rng_file(checkpoint: Path, rank: int) -> Path:
    return Path(checkpoint) / f"rng_state_{rank}.safetensors"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints (including ones in the old pickle format, which resume refuses), oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _STEP_DIR.match(p.name)) and ((p / STATE_NAME).is_file() or (p / LEGACY_STATE_NAME).is_file())]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(accelerator, model, optimizer, run_dir: Path, position: dict, keep_last: int) -> Path:
    """All ranks call this; rank 0 writes weights + shared state, every rank its own RNG state.
    A sharded (FSDP) model's weights and optimizer moments are gathered whole, so the files are the same."""
    root = Path(run_dir) / CHECKPOINTS
    final = root / f"step-{position['step']:08d}"
    tmp = root / f".step-{position['step']:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        save_state(rng_state(), rng_file(tmp, accelerator.process_index))
        unwrapped = accelerator.unwrap_model(model)
        weights = gathered_trainable(unwrapped)  # whole on every rank: gathering a sharded model is a collective
        optimizer_state = gathered_optimizer_state(optimizer)
        if accelerator.is_main_process:
            save_adapter(unwrapped, tmp, weights)
            save_state(optimizer_state, tmp / OPTIMIZER_NAME)
            (tmp / STATE_NAME).write_text(json.dumps({"format": FORMAT_VERSION, **position}, indent=2))
    except BaseException:  # a full disk, Ctrl-C: no half-written checkpoint is left behind
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_dir(tmp, final)
        for old in checkpoint_dirs(run_dir)[:-keep_last]:  # out of `checkpoint_dirs` in one rename, then deleted
            remove_dir(old)
    accelerator.wait_for_everyone()
    return final


def read_position(checkpoint: Path) -> dict:
    """The JSON part of a checkpoint (step, epoch, micro-batch, world size, recipe), checked for its format."""
    checkpoint = Path(checkpoint)
    if (checkpoint / LEGACY_STATE_NAME).is_file() and not (checkpoint / STATE_NAME).is_file():
        raise CheckpointError(
            f"checkpoint '{checkpoint}' is in the pickle format of earlier ademvl versions ({LEGACY_STATE_NAME}); "
            "it is not loaded because unpickling a file can run code hidden in it: start a new run "
            "(or --output-dir) to train from scratch")
    path = checkpoint / STATE_NAME
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint state '{path}' is unreadable: {error}") from error
    missing = [k for k in ("step", "epoch", "micro", "world_size") if k not in state] if isinstance(state, dict) else 1
    if missing or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint state '{path}' is not an ademvl trainer state (format {FORMAT_VERSION})")
    return state


def load_optimizer_state(optimizer, checkpoint: Path) -> None:
    """The saved per-parameter state (AdamW moments, step counts) into `optimizer`, keeping its own
    hyper-parameters (lr, betas, weight decay), which come from the recipe of the resumed run."""
    try:
        saved = load_state(Path(checkpoint) / OPTIMIZER_NAME)
    except StateFileError as error:
        raise CheckpointError(f"checkpoint '{checkpoint}': {error}") from error
    groups = optimizer.state_dict()["param_groups"]
    if (not isinstance(saved, dict) or "state" not in saved
            or [len(g["params"]) for g in saved.get("param_groups", [])] != [len(g["params"]) for g in groups]):
        raise CheckpointError(f"checkpoint '{checkpoint}': its optimizer state does not fit this model's trainable weights")
    merged = [{**group, "params": old["params"]} for group, old in zip(groups, saved["param_groups"])]
    state = shard_optimizer_state(optimizer, saved["state"], saved["param_groups"])  # whole on disk, sharded here
    optimizer.load_state_dict({"state": state, "param_groups": merged})


def load_checkpoint(accelerator, model, optimizer, checkpoint: Path) -> dict:
    """Restore weights, optimizer state and this rank's RNG; returns the saved position (JSON)."""
    checkpoint = Path(checkpoint)
    position = read_position(checkpoint)
    if position["world_size"] != accelerator.num_processes:
        raise CheckpointError(f"checkpoint '{checkpoint}' was written by {position['world_size']} process(es); "
                              f"resume it with the same number (now {accelerator.num_processes})")
    accelerator.unwrap_model(model).load_adapter(checkpoint)
    load_optimizer_state(optimizer, checkpoint)
    path = rng_file(checkpoint, accelerator.process_index)
    try:
        set_rng_state(load_state(path))
    except StateFileError as error:
        raise CheckpointError(f"checkpoint '{checkpoint}' has no usable RNG state for rank "
                              f"{accelerator.process_index}: {error}") from error
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"RNG state '{path}' does not hold python/numpy/torch generator states: {error}") from error
    return position
