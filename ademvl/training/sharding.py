"""FSDP2 sharding of a VLModel (`train.sharding=fsdp`): for backbones that do not fit one device.

Each decoder block of the LLM becomes its own FSDP unit (gathered just before it runs, freed after),
then the root takes the rest (embeddings, LM head, vision tower, the method's own modules), so every
rank stores about 1/N of the model. FSDP2 shards each parameter on its own along dim 0, which is why
frozen and trainable parameters of different dtypes can share a unit. No MixedPrecisionPolicy: the
trainable weights keep their fp32 storage and bf16 comes from autocast, exactly as on the DDP path,
so both paths compute the same thing.

What leaves a sharded model leaves it whole: the adapter and the optimizer moments are gathered
(`DTensor.full_tensor`, a collective: every rank calls) into the same files an unsharded run writes,
and a resumed run cuts its own shards out of them again (`distribute_tensor` with each parameter's
mesh and placements). Only public torch APIs are used: `fully_shard`, `DTensor`, `distribute_tensor`.
"""
from __future__ import annotations

import torch
from torch import nn


def _dtensor():
    from torch.distributed.tensor import DTensor

    return DTensor


def shard(model: nn.Module, device: torch.device) -> nn.Module:
    """`fully_shard` each decoder block of `model.llm`, then the root; returns the same (now FSDP) module."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from ..architectures import decoder_blocks

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    for block in decoder_blocks(model.llm):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor (gathered from every rank when it is a DTensor; then all ranks must call)."""
    DTensor = _dtensor()
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def gathered_trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable weights by name, whole. Unsharded: the live parameters themselves."""
    return {name: full(p.detach()) for name, p in model.named_parameters() if p.requires_grad}


def gathered_optimizer_state(optimizer) -> dict:
    """`optimizer.state_dict()` with its sharded moments gathered: the format an unsharded run saves."""
    state = optimizer.state_dict()
    return {**state, "state": {index: {key: full(value) if isinstance(value, torch.Tensor) else value
                                       for key, value in entry.items()}
                               for index, entry in state["state"].items()}}


def shard_like(param: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` (whole, on every rank) as `param` is laid out: its own shard of it when `param` is a DTensor."""
    DTensor = _dtensor()
    if not isinstance(param, DTensor):
        return tensor
    from torch.distributed.tensor import distribute_tensor

    # src_data_rank=None: every rank read the same file, so each cuts its shard locally (no scatter).
    return distribute_tensor(tensor.to(param.device), param.device_mesh, param.placements, src_data_rank=None)


def shard_optimizer_state(optimizer, state: dict, saved_groups: list[dict]) -> dict:
    """Saved whole per-parameter state (keyed by the saved param ids) → laid out like this optimizer's params."""
    sharded = dict(state)
    for group, saved in zip(optimizer.param_groups, saved_groups):
        for param, index in zip(group["params"], saved["params"]):
            if index not in state:  # no step taken for it yet (never got a gradient)
                continue
            sharded[index] = {name: shard_like(param, value) if isinstance(value, torch.Tensor)
                              and value.shape == param.shape else value for name, value in state[index].items()}
    return sharded


def parameter_bytes(module: nn.Module) -> dict[str, int]:
    """Bytes of `module`'s parameters this rank stores (its shards) and their whole size, measured from
    the live tensors (a DTensor's local shard, counted once per storage)."""
    DTensor = _dtensor()
    local, total, seen = 0, 0, set()
    for p in module.parameters():
        here = p.to_local() if isinstance(p, DTensor) else p
        storage = here.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            local += storage.nbytes()
        total += p.numel() * p.element_size()
    return {"local_bytes": local, "total_bytes": total}
