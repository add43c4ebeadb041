"""Fig. 3 end to end: generate an answer, capture the fusion once, draw the maps."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .capture import capture_fusion_scores, select_maps, split_by_scales
from .fusion_map import FigureInfo, draw_fusion_map


@dataclass
class FusionFigure:
    answer: str
    figure: FigureInfo
    positions: list[int]     # the sequence positions whose scores were drawn (averaged)
    captured: dict           # capture_fusion_scores' arrays for the whole sequence


def model_view(pixel_values: torch.Tensor, image_processor) -> Image.Image:
    """The processed (resized, cropped) image, de-normalised: the view the patch grid covers."""
    pixels = pixel_values[0].float().cpu().numpy()  # (3, H, W)
    mean = np.asarray(getattr(image_processor, "image_mean", None) or [0.0, 0.0, 0.0]).reshape(3, 1, 1)
    std = np.asarray(getattr(image_processor, "image_std", None) or [1.0, 1.0, 1.0]).reshape(3, 1, 1)
    rgb = np.clip(pixels * std + mean, 0.0, 1.0).transpose(1, 2, 0)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def _token_positions(token: int | str, prompt_length: int, length: int) -> list[int]:
    if token == "answer":
        if prompt_length >= length:
            raise ValueError("the model generated no answer tokens to average over: pick one with --token IDX")
        return list(range(prompt_length, length))
    index = int(token)
    if not -length <= index < length:
        raise ValueError(f"token index {index} is outside the {length}-token sequence (prompt + answer)")
    return [index % length]


@torch.no_grad()
def render_fusion_figure(
    model, tokenizer, image_processor, image_path: str, prompt: str, output: str | Path,
    layer: int | str = "mean", token: int | str = "answer", max_new_tokens: int = 32, dpi: int = 100,
    question: str | None = None,
) -> FusionFigure:
    """Answer `prompt` about the image greedily, then draw per-scale fusion maps for `layer`/`token`.

    `question`: what the title shows (the user's question without the template around it).
    """
    from ..collate import VLCollator
    from ..data.example import VLExample

    example = VLExample(id="viz", prompt=prompt, answer="", image=str(image_path))
    from ..context import prompt_token_limit
    from ..prompting import pad_token_id

    collator = VLCollator.for_model(model, tokenizer, image_processor,
                                    max_length=prompt_token_limit(model, reserve=max_new_tokens), for_generation=True)
    batch = collator([example])
    device = model.method_device
    batch = {k: v.to(device) for k, v in batch.items()}
    prompt_length = batch["input_ids"].shape[1]
    sequence = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=pad_token_id(tokenizer),
                              eos_token_id=tokenizer.eos_token_id)
    answer = tokenizer.decode(sequence[0, prompt_length:], skip_special_tokens=True).strip()

    full = {"input_ids": sequence, "attention_mask": torch.ones_like(sequence), "pixel_values": batch["pixel_values"],
            "has_image": batch["has_image"], "image_slot": batch["image_slot"]}
    captured = capture_fusion_scores(model, full)
    positions = _token_positions(token, prompt_length, sequence.shape[1])
    scores, kept = select_maps(captured, layer, positions)
    scales = tuple(model.method.settings.scales)

    layer_label = "mean of layers" if layer == "mean" else f"layer {layer}"
    if token == "answer":
        token_label = "mean of answer"
    else:
        token_label = f"token {positions[0]} {tokenizer.decode(sequence[0, positions[0]:positions[0] + 1])!r}"
    titles = [f"scale {s} ({int(np.sqrt(s))}×{int(np.sqrt(s))})\n{layer_label} · {token_label}" for s in scales]
    figure = draw_fusion_map(model_view(batch["pixel_values"], image_processor), split_by_scales(scores, scales),
                             split_by_scales(kept, scales), titles, output, dpi=dpi,
                             suptitle=f"Q: {(question or prompt)[:80]}  A: {answer[:80]}")
    return FusionFigure(answer=answer, figure=figure, positions=positions, captured=captured)
