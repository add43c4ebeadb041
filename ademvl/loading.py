"""Loading frozen backbones from a local directory or hub id (or taking built modules)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM


class BackboneLoadError(ValueError):
    """A backbone could not be loaded; the message names the path and the cause."""


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _resolve_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"unknown dtype '{dtype}'; use one of {sorted(names)}")
    return names[dtype]


QUANTIZATIONS = ("4bit", "8bit")


def quantized_device_map() -> dict | str:
    """Where bitsandbytes places a quantized LLM: the current GPU, else the CPU (its weights never move later)."""
    return {"": torch.cuda.current_device()} if torch.cuda.is_available() else "cpu"


def quantization_config(quantization: str | None):
    """`"4bit"` (NF4, double quantisation, bf16 compute: the Bottleneck Adapter recipe) or `"8bit"`
    → a bitsandbytes config (transformers' `BitsAndBytesConfig`). bitsandbytes runs on a CUDA GPU and,
    more slowly, on the CPU, so the only requirement is the package (`pip install 'ademvl[quant]'`)."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization '{quantization}'; use 4bit or 8bit")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ImportError(f"{quantization} loading of the LLM needs the bitsandbytes package: "
                          "pip install 'ademvl[quant]'") from error
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_llm(name_or_path: str | os.PathLike | nn.Module, dtype=None, quantization: str | None = None,
             **kwargs) -> nn.Module:
    """A causal LM from `from_pretrained` (local dir or hub id), or the module itself.

    `quantization="4bit"|"8bit"` loads the frozen linear layers through bitsandbytes, on the GPU when
    there is one, else on the CPU; embeddings, norms and the LM head stay in `dtype`.
    """
    if isinstance(name_or_path, nn.Module):
        if quantization is not None:
            raise ValueError("quantization applies when the LLM is loaded from a path, not to a built module")
        return name_or_path
    config = quantization_config(quantization)
    if config is not None:
        kwargs = {**kwargs, "quantization_config": config, "device_map": kwargs.get("device_map", quantized_device_map())}
    try:
        return AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=_resolve_dtype(dtype), **kwargs)
    except (OSError, ValueError) as error:
        raise BackboneLoadError(f"cannot load LLM from '{name_or_path}': {_first_line(error)}") from error


_VISION_ONLY = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel", "siglip2": "Siglip2VisionModel"}


def load_vision_tower(name_or_path: str | os.PathLike | nn.Module, dtype=None, **kwargs) -> nn.Module:
    """A vision tower; a full CLIP/SigLIP checkpoint loads only its vision half."""
    if isinstance(name_or_path, nn.Module):
        return name_or_path
    import transformers

    try:
        config = AutoConfig.from_pretrained(str(name_or_path))
        model_cls = AutoModel
        if config.model_type in _VISION_ONLY:
            model_cls = getattr(transformers, _VISION_ONLY[config.model_type])
        return model_cls.from_pretrained(str(name_or_path), dtype=_resolve_dtype(dtype), **kwargs)
    except (OSError, ValueError) as error:
        raise BackboneLoadError(f"cannot load vision tower from '{name_or_path}': {_first_line(error)}") from error


def load_image_processor(name_or_path: str | os.PathLike):
    """The tower's Hugging Face image processor, on its PIL backend (no torchvision here)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(name_or_path), backend="pil")
    except TypeError:
        return AutoImageProcessor.from_pretrained(str(name_or_path))
    except (OSError, ValueError) as error:
        raise BackboneLoadError(f"cannot load image processor from '{name_or_path}': {_first_line(error)}") from error


def load_tokenizer(path: str | os.PathLike | None, hint: str = "pass --tokenizer"):
    """`AutoTokenizer` at `path`; pad token falls back to EOS (the collator pads left itself).
    `hint`: how the caller's user names another tokenizer, for the error."""
    if not path:
        raise ValueError(f"no tokenizer path: the adapter records no LLM path; {hint} (or --llm)")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"cannot load a tokenizer from '{path}': {_first_line(error)} "
                         f"(save one there with tokenizer.save_pretrained, or {hint})") from error
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def name_or_path_of(module: nn.Module) -> str | None:
    path = getattr(module.config, "_name_or_path", None) or getattr(module, "name_or_path", None)
    return str(Path(path)) if path else None
