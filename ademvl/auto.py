"""Make `ademvl` known to transformers' Auto classes (done on `import ademvl.model`).

After this, `AutoConfig`, `AutoModel`, `AutoModelForImageTextToText` and `AutoProcessor` load a
directory written by `VLModel.save_pretrained` / `VLProcessor.save_pretrained`, as they do for
LLaVA: a whole model (frozen backbones included), unlike `save_adapter`'s trainable weights.
"""
from __future__ import annotations


def register() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from .config import VLConfig
    from .model import VLModel
    from .processing import VLProcessor

    AutoConfig.register(VLConfig.model_type, VLConfig, exist_ok=True)
    AutoModel.register(VLConfig, VLModel, exist_ok=True)
    AutoModelForImageTextToText.register(VLConfig, VLModel, exist_ok=True)
    AutoProcessor.register(VLConfig, VLProcessor, exist_ok=True)
