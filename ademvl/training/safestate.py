"""Nested training state ↔ one safetensors file: tensors in its body, the rest as JSON in its header.

Optimizer and RNG states are dicts, lists and tuples of numbers, strings, tensors
and numpy arrays. `torch.save` would pickle them, and unpickling a file can run
any code it carries; safetensors + JSON can only ever give data back.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

_META_KEY = "ademvl_state"


class StateFileError(ValueError):
    """A state file is missing, corrupt or not one this module wrote; the message names it."""


def _encode(value, tensors: dict):
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"__ndarray__": key}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} in a training state file")


def _decode(value, tensors):
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors.get_tensor(value["__tensor__"])
    if "__ndarray__" in value:
        return tensors.get_tensor(value["__ndarray__"]).numpy()
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__items__" in value:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in value["__items__"]}
    return {k: _decode(v, tensors) for k, v in value.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def save_state(state, path: str | Path) -> None:
    """Write `state` to `path` (not atomically: callers write into a temp dir or temp file)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, tensors)
    save_file(tensors, str(path), metadata={_META_KEY: json.dumps(skeleton)})


def load_state(path: str | Path):
    """Read back what `save_state` wrote; any other file gives `StateFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise StateFileError(f"state file '{path}' is missing")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as tensors:
            metadata = tensors.metadata() or {}
            if _META_KEY not in metadata:
                raise StateFileError(f"state file '{path}' is a safetensors file but not an ademvl training state")
            return _decode(json.loads(metadata[_META_KEY]), tensors)
    except StateFileError:
        raise
    except Exception as error:  # safetensors raises its own types for a corrupt header or body
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StateFileError(f"state file '{path}' is unreadable (corrupt or not safetensors): {first}") from error
