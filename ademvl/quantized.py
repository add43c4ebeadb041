"""Frozen LLMs quantized by bitsandbytes (through transformers' `BitsAndBytesConfig`): what the rest
of the library needs to know about them.

bitsandbytes' 4-bit layer repacks its weight, on a CPU with AVX512-BF16, into an inference-only
layout the first time it runs in eval mode on an input that needs no gradient; a later input that
does need one then gets no gradient through that layer (its kernel has no backward). A frozen LLM is
in eval mode while the adapters train, so the 4-bit layers follow the training mode instead (they
have no dropout: the flag only chooses that path), and entering training mode restores the trainable
layout of any layer already repacked by earlier inference.
"""
from __future__ import annotations

import sys

import torch
from torch import nn


CPU_PACK_BLOCK = 32  # bitsandbytes' block of output rows in the CPU inference layout


def _bitsandbytes():
    """The bitsandbytes module if something already imported it (a quantized model cannot exist before)."""
    return sys.modules.get("bitsandbytes")


def quantized_linears(module: nn.Module) -> list[nn.Module]:
    """The bitsandbytes 4-bit and 8-bit linear layers in `module`."""
    bnb = _bitsandbytes()
    if bnb is None:
        return []
    kinds = (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    return [m for m in module.modules() if isinstance(m, kinds)]


def quantization_of(module: nn.Module) -> str | None:
    """"4bit", "8bit" or None: how `module`'s frozen linear layers are stored."""
    layers = quantized_linears(module)
    if not layers:
        return None
    return "4bit" if isinstance(layers[0], _bitsandbytes().nn.Linear4bit) else "8bit"


def _repacked_for_cpu_inference(layer: nn.Module) -> bool:
    state = getattr(getattr(layer, "weight", None), "quant_state", None)
    return bool(getattr(state, "packing_format_for_cpu", False))


def _fits_cpu_inference_layout(layer: nn.Module) -> bool:
    """The repacked kernel takes whole blocks of 32 output rows and of the quantization block size of
    inputs (real LLMs' widths always are); other layers keep the general path."""
    state = getattr(layer.weight, "quant_state", None)
    block = getattr(state, "blocksize", 64) or 64
    return layer.out_features % CPU_PACK_BLOCK == 0 and layer.in_features % block == 0


def follow_training_mode(module: nn.Module, mode: bool) -> None:
    """Set each 4-bit layer's own `training` flag to `mode`; in training mode, undo an inference repack.

    bitsandbytes restores the trainable layout whenever it writes a layer's state dict, so asking for
    the state dict of a repacked layer is the public way to get it back.
    """
    for layer in quantized_linears(module):
        if not isinstance(layer, _bitsandbytes().nn.Linear4bit):
            continue
        layer.training = mode or not _fits_cpu_inference_layout(layer)
        if mode and _repacked_for_cpu_inference(layer):
            layer.state_dict()


def logical_numel(parameter) -> int:
    """Weights a parameter stands for: a 4-bit one stores two per byte (its quant state keeps the shape)."""
    state = getattr(parameter, "quant_state", None)
    shape = getattr(state, "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else parameter.numel()
