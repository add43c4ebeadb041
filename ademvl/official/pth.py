"""Reading a released official checkpoint without running any code it could hold.

Format (official `util/misc.py` `save_model`): a torch pickle
`{'model': {name: tensor}, 'optimizer', 'epoch', 'scaler', 'args': argparse.Namespace}`,
`model` holding every parameter whose name contains "adapter" (names start with
"module." when the run was distributed). Loaded with `weights_only=True`, only
`argparse.Namespace` added to what may be rebuilt: anything else is refused.
"""
from __future__ import annotations

import argparse
import os
import re

import torch


class OfficialCheckpointError(ValueError):
    """The file is not a loadable official checkpoint; the message (one line) says why."""


def _unsafe_detail(error: Exception) -> str:
    found = re.search(r"GLOBAL\s+([\w.]+)", str(error))
    if found:
        return f"it would import {found.group(1)}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def read_official_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """`(state, args)`: the adapter tensors by official name ("module." removed) and the training args."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise OfficialCheckpointError(f"official checkpoint '{path}' not found")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError for refused globals; others for corrupt files
        if "weights only load failed" in str(error).lower():
            raise OfficialCheckpointError(
                f"refusing '{path}': it holds objects beyond tensors and training arguments "
                f"({_unsafe_detail(error)}), and loading it would run code") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OfficialCheckpointError(f"'{path}' is not a readable torch checkpoint: {first}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise OfficialCheckpointError(f"'{path}' is not an official ADEM-VL checkpoint: no 'model' dictionary of tensors")
    state = {}
    for name, tensor in data["model"].items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise OfficialCheckpointError(f"'{path}': entry {name!r} of 'model' is not a named tensor")
        state[name[len("module."):] if name.startswith("module.") else name] = tensor
    args = data.get("args")
    if args is not None and not isinstance(args, argparse.Namespace):
        raise OfficialCheckpointError(f"'{path}': 'args' is a {type(args).__name__}, not the training arguments")
    return state, (vars(args) if args is not None else {})
