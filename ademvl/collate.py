"""Batches of `VLExample`s → model inputs: token ids, labels, pixels, image slots.

Training batches are right-padded; generation batches are left-padded (so that
every row's next token is at the end), with each image slot shifted to match.
A model set to the official ADEM-VL layout (its `PromptSpec.official`) gets it from
`for_model`, with the official image preprocessing in place of the given processor.
"""
from __future__ import annotations

import torch
from PIL import Image

from .data.example import VLExample
from .data.images import load_image
from .prompting import IGNORE_INDEX, encode_sample, encoder_settings, pad_token_id, prompt_spec_of


def prompt_layout_of(model) -> str:
    """The layout `model` was trained with: "official" for a converted official checkpoint,
    else the one its config records ("plain" or "chat") (`PromptSpec.encoding_layout`)."""
    return prompt_spec_of(model).encoding_layout


class VLCollator:
    def __init__(self, tokenizer, image_processor, num_visual_tokens: int, max_length: int = 512,
                 for_generation: bool = False, num_prefix_tokens: int = 0, prompt_layout: str = "plain"):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.num_visual_tokens = num_visual_tokens
        self.num_prefix_tokens = num_prefix_tokens
        self.prompt_layout = prompt_layout
        self.max_length = max_length
        self.for_generation = for_generation
        self.pad_id = pad_token_id(tokenizer)

    @classmethod
    def for_model(cls, model, tokenizer, image_processor, **kwargs):
        """A collator with the placeholders `model`'s method needs (visual tokens, prefix) and the
        prompt layout it was trained with; for a converted official checkpoint, the official layout
        and the official preprocessing (whatever processor is passed)."""
        from .official import image_processor_for

        image_processor = image_processor_for(prompt_spec_of(model), image_processor, model.vision)
        settings = encoder_settings(model)
        kwargs.setdefault("prompt_layout", settings["prompt_layout"])
        return cls(tokenizer, image_processor, settings["num_visual_tokens"],
                   num_prefix_tokens=settings["num_prefix_tokens"], **kwargs)

    def pixels(self, examples: list[VLExample]) -> torch.Tensor | None:
        """One processed image per row; text-only rows get a blank image of the same shape.

        `VLExample.image` is a file path, or an in-memory PIL image (what harnesses and servers hand over)."""
        images = {i: ex.image.convert("RGB") if isinstance(ex.image, Image.Image) else load_image(ex.image, ex.id)
                  for i, ex in enumerate(examples) if ex.has_image}
        if not images:
            return None
        processed = self.image_processor(list(images.values()), return_tensors="pt")["pixel_values"]
        out = processed.new_zeros(len(examples), *processed.shape[1:])
        out[list(images)] = processed
        return out

    def __call__(self, examples: list[VLExample]) -> dict[str, torch.Tensor]:
        encoded = [
            encode_sample(self.tokenizer, ex.prompt, None if self.for_generation else ex.answer,
                          ex.has_image, self.num_visual_tokens, self.max_length, self.num_prefix_tokens,
                          self.prompt_layout)
            for ex in examples
        ]
        width = max(len(e.input_ids) for e in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        slots = torch.full((len(encoded),), -1, dtype=torch.long)
        for row, e in enumerate(encoded):
            n = len(e.input_ids)
            start = width - n if self.for_generation else 0
            ids[row, start:start + n] = torch.tensor(e.input_ids)
            labels[row, start:start + n] = torch.tensor(e.labels)
            mask[row, start:start + n] = 1
            if e.image_slot >= 0:
                slots[row] = e.image_slot + start
        batch = {
            "input_ids": ids,
            "attention_mask": mask,
            "has_image": torch.tensor([ex.has_image for ex in examples], dtype=torch.long),
            "image_slot": slots,
        }
        if not self.for_generation:
            batch["labels"] = labels
        pixels = self.pixels(examples)
        if pixels is not None:
            batch["pixel_values"] = pixels
        return batch
