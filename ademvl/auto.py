"""Make `ademvl` known to transformers' Auto classes (done on `import ademvl.model`).

After this, `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor` load a
directory written by `VLModel.save_pretrained` / `VLProcessor.save_pretrained`, as they do for
LLaVA: a whole model (frozen backbones included), unlike `save_adapter`'s trainable weights.

The registrar is given the classes: it imports nothing of ademvl, so the model module can call it
as soon as its class exists, and no import circle runs through here. Not on `import ademvl`:
harnesses import the package at every start-up and must stay light (no transformers).
"""
from __future__ import annotations


def register(config_class, model_class, processor_class) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    AutoModelForImageTextToText.register(config_class, model_class, exist_ok=True)
    AutoProcessor.register(config_class, processor_class, exist_ok=True)
