"""Run a whole `VLModel` forward on the meta device.

The model's forward has a few data-dependent steps (`bool(has_image.any())`,
`nonzero` behind boolean indexing). Meta tensors hold no data, so inside
`assume_all_true()` every such question is answered "all true": correct for
the benchmark inputs, where every row has an image and every mask is full.
"""
from __future__ import annotations

import contextlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
_SCALAR_OPS = {_aten._local_scalar_dense.default, _aten.is_nonzero.default}


class _AllTrueScalars(TorchDispatchMode):
    """Answer `.item()` / `bool()` on a meta tensor with 1 instead of raising."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SCALAR_OPS and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            tensor = args[0]
            if tensor.dtype == torch.bool or func is _aten.is_nonzero.default:
                return True
            return 1.0 if tensor.is_floating_point() else 1
        return func(*args, **kwargs)


@contextlib.contextmanager
def assume_all_true():
    """Meta `nonzero` assumes every element is non-zero; meta `item()`/`bool()` return 1/True."""
    from torch.fx.experimental import _config as fx_config

    previous = fx_config.meta_nonzero_assume_all_nonzero
    fx_config.meta_nonzero_assume_all_nonzero = True
    try:
        with _AllTrueScalars():
            yield
    finally:
        fx_config.meta_nonzero_assume_all_nonzero = previous
