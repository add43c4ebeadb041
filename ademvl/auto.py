"""Make `ademvl` known to transformers' Auto classes, and an adapter directory loadable by them.

After registration, `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText`, `AutoProcessor` and
`pipeline("image-text-to-text")` load either kind of ademvl directory:

- an adapter directory (`save_adapter`, training, `push_adapter_to_hub`; a few MB): the trainable
  weights, plus a `config.json` (model type `ademvl`) and a `processor_config.json` written beside
  them (`write_auto_files`). The Auto classes then rebuild the model from the backbones the adapter
  records (`VLModel.from_adapter`), as they load a peft adapter on the base model its config names;
- a whole model (`VLModel.save_pretrained` + `VLProcessor.save_pretrained`), backbones included.

When registration happens: `import ademvl.model` registers the classes (3.1 s from cold on this
2-core machine: torch and transformers' modelling code). `import ademvl` stays at 3 ms and imports
no transformers (lmms-eval imports the package at every start-up, whatever model it runs): it enters
stand-ins in AutoConfig's and AutoProcessor's tables the moment transformers loads them
(`register_when_transformers_loads`), and the first ademvl config or processor transformers reads
imports `ademvl.model`, which registers the real classes (0.04 s once transformers' modelling code
is loaded, as it is by then). So `import ademvl` is enough before `AutoModel...`, `AutoProcessor` or `pipeline`,
in either import order. Nothing in an adapter directory names code to run (no `auto_map`, no
`trust_remote_code`).

The registrar is given the classes: it imports nothing of ademvl, so the model module can call it
as soon as its class exists, and no import circle runs through here.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")  # a whole model's
PROCESSOR_CONFIG = "processor_config.json"
TRANSFORMERS_CONFIG = "config.json"


def register(config_class, model_class, processor_class) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    AutoModelForImageTextToText.register(config_class, model_class, exist_ok=True)
    AutoProcessor.register(config_class, processor_class, exist_ok=True)


def _real(module: str, name: str):
    importlib.import_module("ademvl.model")  # registers the real classes (`register`, at its end)
    return getattr(importlib.import_module(module), name)


class _DeferredConfig:
    """Stands for `VLConfig` in AutoConfig's table until first used: then imports `ademvl.model`
    (which registers the real classes over the stand-ins) and hands over."""

    model_type = "ademvl"

    def __new__(cls, *args, **kwargs):
        return _real("ademvl.config", "VLConfig")(*args, **kwargs)

    @classmethod
    def from_dict(cls, *args, **kwargs):
        return _real("ademvl.config", "VLConfig").from_dict(*args, **kwargs)


class _DeferredProcessor:
    """Stands for `VLProcessor` in AutoProcessor's table (found there by class name) until first used."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        return _real("ademvl.processing", "VLProcessor").from_pretrained(*args, **kwargs)


_DeferredProcessor.__name__ = _DeferredProcessor.__qualname__ = "VLProcessor"


def _enter_config(module) -> None:
    if "ademvl" not in module.CONFIG_MAPPING:  # the real one may be there already
        module.CONFIG_MAPPING.register("ademvl", _DeferredConfig, exist_ok=True)


def _enter_processor(module) -> None:
    # Once `ademvl.model` is importing, `register` enters the real processor when it finishes; a
    # stand-in entered beside it would only delegate to it.
    if "ademvl.model" not in sys.modules:
        module.PROCESSOR_MAPPING.register(_DeferredConfig, _DeferredProcessor, exist_ok=True)


# transformers module → what to add to its table once it has loaded. Each touches only that module,
# which has finished loading: nothing is imported in the middle of transformers' own imports.
_TABLES = {"transformers.models.auto.configuration_auto": _enter_config,
           "transformers.models.auto.processing_auto": _enter_processor}


class _AfterImport:
    """An import hook: runs `_TABLES[name](module)` right after each of those modules has executed."""

    def __init__(self):
        self._looking = threading.local()  # the look-up below must not find this finder again

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _TABLES or getattr(self._looking, "active", False):
            return None
        self._looking.active = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._looking.active = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run, enter = spec.loader.exec_module, _TABLES[fullname]

        def exec_module(module):
            run(module)
            enter(module)

        spec.loader.exec_module = exec_module
        return spec


def register_when_transformers_loads() -> None:
    """Enter ademvl in transformers' AutoConfig and AutoProcessor tables as soon as they load (now, for
    those already loaded), as stand-ins that import `ademvl.model` on first use. AutoModel needs no
    stand-in: it always reads the config first."""
    for name, enter in _TABLES.items():
        if name in sys.modules:
            enter(sys.modules[name])
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())


# --- adapter directories ---------------------------------------------------------------------------
def write_auto_files(model, directory) -> None:
    """What makes an adapter directory load through the Auto classes: the model's `config.json`
    (`model_type: ademvl`, the backbone configs and paths) and the processor's settings. Neither holds
    a weight; loading reads the backbones from the paths the adapter records."""
    import json

    from .atomic import atomic_write_json
    from .context import prompt_token_limit
    from .prompting import encoder_settings, prompt_spec_of

    config = json.loads(model.config.to_json_string(use_diff=False))
    config["architectures"] = [type(model).__name__]
    settings = encoder_settings(model)
    processor = {"processor_class": "VLProcessor", "num_visual_tokens": settings["num_visual_tokens"],
                 "num_prefix_tokens": settings["num_prefix_tokens"], "prompt_layout": settings["prompt_layout"],
                 "prompt_template": prompt_spec_of(model).template, "max_length": prompt_token_limit(model)}
    atomic_write_json(f"{directory}/{TRANSFORMERS_CONFIG}", config)
    atomic_write_json(f"{directory}/{PROCESSOR_CONFIG}", processor)


def adapter_at(name_or_path, *, revision: str | None = None, whole: tuple[str, ...] = MODEL_FILES, **hub_kwargs):
    """The `ResolvedAdapter` at a local directory or Hub id when it is an ademvl adapter (its
    `ademvl_adapter.json` present, none of the `whole`-model files beside it), else None."""
    import os
    from pathlib import Path

    from .checkpoint import CONFIG_NAME, adapter_file, read_adapter

    path = Path(os.fspath(name_or_path))
    if path.is_dir():
        if not adapter_file(path, CONFIG_NAME).is_file() or any((path / name).exists() for name in whole):
            return None
        return read_adapter(path)
    from transformers.utils.hub import cached_file

    keep = {k: v for k, v in hub_kwargs.items() if k in ("cache_dir", "token", "local_files_only", "force_download")}
    try:
        found = cached_file(str(name_or_path), CONFIG_NAME, revision=revision, _raise_exceptions_for_gated_repo=False,
                            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
                            **keep)
    except (OSError, ValueError):  # not a repo id either: transformers' own loader says so
        found = None
    if found is None:
        return None
    from .hub import open_adapter

    return open_adapter(str(name_or_path), revision, **keep)
