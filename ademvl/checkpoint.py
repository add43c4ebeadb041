"""Saving and loading only the trainable weights (safetensors) and the config that built them.

Files: `ademvl_adapter.safetensors` + `ademvl_adapter.json` (and, for transformers' Auto classes,
a weightless `config.json` + `processor_config.json`: `ademvl.auto`). They are names of the
project's own: an ademvl adapter is not a peft adapter (peft's `adapter_config.json`
would promise a `peft_type`); LLaVA-LoRA's LoRA part exports to real peft format with
`ademvl export peft`. Directories written before under peft's file names still load.
Writes are atomic (`ademvl.atomic`), so an interrupted save never
destroys the previous checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_write_bytes, atomic_write_json  # noqa: F401  (also imported from here)

WEIGHTS_NAME = "ademvl_adapter.safetensors"
CONFIG_NAME = "ademvl_adapter.json"
LEGACY_NAMES = {WEIGHTS_NAME: "adapter_model.safetensors", CONFIG_NAME: "adapter_config.json"}
FORMAT = "ademvl-adapter"


def adapter_file(directory: str | os.PathLike, name: str) -> Path:
    """`directory/name`, or the file's name from before the rename where only that one exists."""
    path = Path(directory) / name
    legacy = Path(directory) / LEGACY_NAMES[name]
    return legacy if not path.exists() and legacy.exists() else path


class AdapterError(ValueError):
    """An adapter directory is missing, corrupt or made for another model; the message says which."""


def _llm_signature(model) -> dict:
    cfg = model.llm.config.get_text_config()
    return {"model_type": cfg.model_type, "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers, "vocab_size": cfg.vocab_size}


def _vision_signature(model) -> dict:
    cfg, tower = model.vision.config, model.vision
    return {"model_type": cfg.model_type, "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers, "image_size": tower.image_size,
            "patch_size": tower.patch_size}


def adapter_config(model) -> dict:
    from .prompting import prompt_spec_of

    prompt = prompt_spec_of(model)
    return {
        "format": FORMAT,
        "method": model.config.method,
        "method_config": dataclasses.asdict(model.method.settings),
        "llm": _llm_signature(model),
        "vision": _vision_signature(model),
        "llm_name_or_path": model.config.llm_name_or_path,
        "vision_name_or_path": model.config.vision_name_or_path,
        "prompt_template": prompt.template,
        "prompt_layout": prompt.layout,
        "official": prompt.official,
    }


def save_adapter(model, directory: str | os.PathLike, weights: dict | None = None) -> Path:
    """`weights`: the trainable weights to write, by name (default: the model's own); a sharded model's
    are gathered by every rank first (`ademvl.training.sharding.gathered_trainable`)."""
    directory = Path(directory)
    weights = model.trainable_parameters() if weights is None else weights
    state = {name: p.detach().to("cpu").contiguous() for name, p in weights.items()}
    atomic_write_bytes(directory / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write_json(directory / CONFIG_NAME, adapter_config(model))
    from .auto import write_auto_files  # config.json + processor_config.json: the Auto classes load the directory

    write_auto_files(model, directory)
    return directory


@dataclasses.dataclass(frozen=True)
class ResolvedAdapter:
    """An adapter directory found (a Hub id downloaded) and its config read, once: the loading steps
    (`VLModel.from_adapter`, `load_adapter`, `load_for_eval`) pass it down instead of reading it again."""
    directory: Path
    config: dict

    def __str__(self) -> str:  # how messages name it
        return str(self.directory)


def read_adapter(directory: str | os.PathLike) -> ResolvedAdapter:
    """A local adapter directory and its config (no Hub look-up)."""
    return ResolvedAdapter(Path(directory), read_adapter_config(directory))


def read_adapter_config(directory: str | os.PathLike) -> dict:
    path = adapter_file(directory, CONFIG_NAME)
    if not path.is_file():
        raise AdapterError(f"no {CONFIG_NAME} in '{directory}': not an ademvl adapter directory")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterError(f"adapter config '{path}' is not valid JSON ({error})") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise AdapterError(f"adapter config '{path}' is not an {FORMAT} config")
    return config


def _mismatch(kind: str, saved: dict, current: dict) -> str | None:
    keys = [k for k in saved if k in current and saved[k] != current[k]]
    if not keys:
        return None
    was = ", ".join(f"{k}={saved[k]}" for k in keys)
    now = ", ".join(f"{k}={current[k]}" for k in keys)
    return f"it was trained for a {kind} with {was}; this model's {kind} has {now}"


def check_compatible(model, config: dict, directory) -> None:
    """Refuse an adapter made for another method, LLM size or vision width, naming the mismatch."""
    if config["method"] != model.config.method:
        raise AdapterError(
            f"adapter '{directory}' is for method '{config['method']}'; this model uses '{model.config.method}'"
        )
    for kind, saved, current in (
        ("LLM", config["llm"], _llm_signature(model)),
        ("vision tower", config["vision"], _vision_signature(model)),
    ):
        problem = _mismatch(kind, saved, current)
        if problem:
            raise AdapterError(f"adapter '{directory}' does not fit: {problem}")
    current = json.loads(json.dumps(dataclasses.asdict(model.method.settings)))  # tuples → lists, as saved
    problem = _mismatch("method", config["method_config"], current)
    if problem:
        raise AdapterError(
            f"adapter '{directory}' settings differ: {problem.replace('method with', 'method with settings')} "
            "(build the model with VLModel.from_adapter to use the saved settings)"
        )


def load_adapter(model, directory: str | os.PathLike | ResolvedAdapter) -> None:
    """Load saved trainable weights into `model` after checking they were made for it."""
    adapter = directory if isinstance(directory, ResolvedAdapter) else read_adapter(directory)
    directory, config = adapter.directory, adapter.config
    check_compatible(model, config, directory)
    path = adapter_file(directory, WEIGHTS_NAME)
    if not path.is_file():
        raise AdapterError(f"adapter weights '{path}' are missing")
    try:
        state = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for corrupt files
        raise AdapterError(f"adapter weights '{path}' are unreadable (corrupt or not safetensors): "
                           f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
    params = model.trainable_parameters()
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise AdapterError(
            f"adapter weights '{path}' do not match this model: missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}"
        )
    for name, tensor in state.items():
        if tensor.shape != params[name].shape:
            raise AdapterError(
                f"adapter weight '{name}' has shape {tuple(tensor.shape)}; this model expects {tuple(params[name].shape)}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):  # it would answer nothing
            raise AdapterError(f"adapter weights '{path}': '{name}' holds NaN or inf; a diverged run's weights "
                               "cannot answer (use an earlier checkpoint)")
    from .training.sharding import shard_like  # a sharded (FSDP) model's parameter takes its own shard

    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(shard_like(params[name], tensor.to(params[name].device, params[name].dtype)))
