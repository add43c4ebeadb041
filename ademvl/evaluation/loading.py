"""Everything evaluation needs from a saved adapter: the model, its tokenizer, its image processor.

The adapter records where its backbones came from; the tokenizer is the LLM's
and the image processor the vision tower's, so both are loaded from those
same paths unless others are given.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from ..loading import _first_line, load_tokenizer
from ..loading import load_image_processor as _load_image_processor

if TYPE_CHECKING:
    from ..checkpoint import ResolvedAdapter


def load_image_processor(path: str | os.PathLike | None):
    """The vision tower's image processor (PIL backend), with an error that says what to do."""
    if not path:
        raise ValueError("no image-processor path: the adapter records no vision path; pass --image-processor")
    try:
        return _load_image_processor(path)
    except (OSError, ValueError, TypeError) as error:
        cause = _first_line(error)
        where = "" if cause.startswith("cannot load image processor") else f"cannot load an image processor from '{path}': "
        raise ValueError(f"{where}{cause} (save one there with image_processor.save_pretrained, "
                         "or pass --image-processor)") from error


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device '{device}': {_first_line(error)}") from error


def load_for_eval(checkpoint: str | os.PathLike | ResolvedAdapter, llm=None, vision=None, tokenizer=None,
                  image_processor=None, device: str | None = "auto", dtype=None, quantization: str | None = None,
                  official: str | bool | None = None):
    """`(model, tokenizer, image_processor)` from an adapter directory or Hub id (or a `ResolvedAdapter`,
    found and read once: `ademvl.hub.open_adapter`), model in eval mode.

    `llm` / `vision` override the backbone paths recorded in the adapter (e.g. on
    another machine); `tokenizer` / `image_processor` default to those backbone paths.
    `quantization="4bit"|"8bit"`: the frozen LLM through bitsandbytes, placed by the loader on the
    GPU when there is one, else on the CPU; the rest of the model joins it there.
    `official`: None keeps the layout the adapter records (`ademvl.official`); False switches
    to the library's; a task name ("scienceqa", "caption", "instruction") to that official one.
    A model in an official layout gets the official image processor (`image_processor` unused).
    """
    from ..checkpoint import AdapterError
    from ..hub import open_adapter
    from ..loading import quantization_config
    from ..model import VLModel
    from ..official import choose_task, image_processor_for
    from ..prompting import PromptSpec

    quantization_config(quantization)  # refuse early, before anything loads
    adapter = open_adapter(checkpoint)  # found and read once; VLModel.from_adapter takes it as it is
    saved = adapter.config
    task = choose_task(saved.get("official"), official)
    # Tokenizer and image processor first: they are cheap, and a missing one should fail before the backbones load.
    tok = load_tokenizer(tokenizer or (llm if isinstance(llm, (str, os.PathLike)) else None)
                         or saved.get("llm_name_or_path"))
    processor = None if task is not None else load_image_processor(  # else `image_processor_for` gives the task's
        image_processor or (vision if isinstance(vision, (str, os.PathLike)) else None)
        or saved.get("vision_name_or_path"))
    try:
        prompt = PromptSpec.from_saved(saved).replace(official=task)
    except ValueError as error:  # an unknown prompt_layout in the adapter's JSON: name the file
        raise AdapterError(f"adapter '{adapter}': {error}") from None
    model = VLModel.from_adapter(adapter, llm=llm, vision=vision, dtype=dtype, quantization=quantization,
                                 prompt=prompt)
    processor = image_processor_for(prompt, processor, model.vision)
    if quantization is None:  # a quantized LLM is already where bitsandbytes put it; its weights do not move
        model.to(resolve_device(device))
    else:  # the rest joins the LLM's device
        model.vision.to(model.method_device)
        model.method.to(model.method_device)
    return model.eval(), tok, processor
