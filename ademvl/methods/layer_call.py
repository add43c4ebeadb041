"""How one LLM call's visual inputs reach the wrapped parts of each frozen decoder block.

The model passes them as a keyword argument of the LLM call, `visual_inputs=VisualInputs(...)`.
Transformers' decoder models forward extra keyword arguments to every decoder layer, and its
`GradientCheckpointingLayer` replays a layer's arguments when it recomputes the layer, so the
inputs travel with the call itself: nothing is stored on the model between calls.

Inside a block, though, the MLP and the norms are called with the hidden states alone. So each
decoder block is given a forward that takes `visual_inputs`, binds them (with the block's index)
in a thread-local slot for exactly the duration of that block's call, and runs the block's own
forward. The wrapped MLP / norm read them with `current_layer_call()`. The slot is per thread, so
two threads generating with one model never see each other's inputs, and a block call contains
no await, so asyncio tasks cannot interleave inside one. Dynamo traces `threading.local` without
a graph break (it cannot trace `contextvars.ContextVar.set/get`).

The block's class is swapped for a subclass (as FSDP2 does) rather than wrapped in a parent
module, so parameter names, state dicts and transformers' per-layer plans stay those of the
plain model. Being a subclass of a `GradientCheckpointingLayer`, the new forward - binding
included - is what a checkpoint recomputes.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .base import VisualInputs


@dataclass(frozen=True)
class LayerCall:
    """What the wrapped parts of decoder block `index` see during one call.

    `scratch` is this call's own: a wrapped part leaves a tensor there for a later part of the same
    block call (ADEM-VL's query, read at one point of the block and used at a later one). Being
    created per call, it is recreated when a checkpoint recomputes the block, and never shared
    between threads, decoding steps or blocks."""

    visual: VisualInputs
    index: int
    scratch: dict = field(default_factory=dict, compare=False, repr=False)


_CURRENT = threading.local()


def current_layer_call() -> LayerCall | None:
    """The visual inputs of the decoder-block call in progress (None outside one, or text only)."""
    return getattr(_CURRENT, "call", None)


_SUBCLASSES: dict[type, type] = {}


def _visual_subclass(block_class: type) -> type:
    """`block_class` with a forward that takes `visual_inputs` (one subclass per block class)."""
    if block_class in _SUBCLASSES.values():
        return block_class
    if block_class not in _SUBCLASSES:
        plain_forward = block_class.forward

        def forward(self, *args, visual_inputs: VisualInputs | None = None, **kwargs):
            outer = getattr(_CURRENT, "call", None)
            _CURRENT.call = None if visual_inputs is None else LayerCall(visual_inputs, self._ademvl_index)
            try:
                return plain_forward(self, *args, **kwargs)
            finally:
                _CURRENT.call = outer

        _SUBCLASSES[block_class] = type(f"Visual{block_class.__name__}", (block_class,), {"forward": forward})
    return _SUBCLASSES[block_class]


def accept_visual_inputs(blocks: nn.ModuleList) -> None:
    """Give every decoder block a forward that takes this call's `visual_inputs`."""
    for index, block in enumerate(blocks):
        if not isinstance(block, GradientCheckpointingLayer):
            raise TypeError(f"decoder block {type(block).__name__} is not a transformers GradientCheckpointingLayer")
        block.__class__ = _visual_subclass(type(block))
        block._ademvl_index = index
