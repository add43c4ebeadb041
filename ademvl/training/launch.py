"""What the launcher gave this run: how many processes, and whether that is fewer than were asked for.

`accelerate launch --num_processes 2` on a machine without GPUs starts ONE process (its CPU launcher
only honours the count with `--multi_gpu`, which then runs torchrun with gloo); nothing fails, the run
is just silently smaller. The trainer states what it got in one line and warns in one line when the
launcher's environment shows it was asked for more.
"""
from __future__ import annotations

import os

# where the process count comes from, as accelerate reads it (torchrun, MPI launchers)
WORLD_SIZE_VARIABLES = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]
MORE_PROCESSES = ("torchrun --nproc_per_node N -m ademvl.cli train ... "
                  "or accelerate launch --multi_gpu --num_processes N -m ademvl.cli train ...")


def launched_processes() -> int:
    """The process count the launcher set up (1 for a plain `python` / `ademvl` run)."""
    for name in WORLD_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def fewer_than_asked(world: int) -> str | None:
    """Why the environment shows more processes were wanted than the `world` we got, or None.

    accelerate's single-process launcher sets ACCELERATE_USE_CPU always, and MASTER_ADDR only when
    `--num_processes` (or its config) asked for more than one, yet starts one process, without WORLD_SIZE."""
    env = os.environ
    if world == 1 and "ACCELERATE_USE_CPU" in env and "MASTER_ADDR" in env and "WORLD_SIZE" not in env:
        return ("accelerate launch was asked for several processes but started 1 (without --multi_gpu it "
                f"starts one on a machine without GPUs); for N processes use {MORE_PROCESSES}")
    return None


def describe(world: int, backend: str | None, device: str, sharding: str) -> str:
    """One line: `[train] 2 processes (gloo, cpu), sharding fsdp`."""
    how = f"{backend}, {device}" if world > 1 and backend else device
    return f"[train] {world} process{'es' if world != 1 else ''} ({how}), sharding {sharding}"


def check_sharding(sharding: str) -> None:
    """`train.sharding=fsdp` in a single process has nothing to shard over: refused before anything is written."""
    if sharding == "fsdp" and launched_processes() < 2:
        from ..recipes import RecipeError

        why = " (accelerate launch without --multi_gpu starts one on a machine without GPUs)" \
            if fewer_than_asked(1) else ""
        raise RecipeError(f"train.sharding=fsdp shards the model over several processes, but this run has 1{why}: "
                          f"launch it with {MORE_PROCESSES}")
