"""The official image preprocessing, as a transformers image processor.

Official: `Resize((224, 224), BICUBIC)` (a squash: no aspect kept, no centre crop; torchvision
resizes PIL images with PIL itself), `ToTensor`, `Normalize(mean, std)`. transformers'
PIL-backed CLIP processor does exactly this when told to resize to height×width without
cropping: the test against a reference written from `util/datasets.py` finds a difference of 0.
"""
from __future__ import annotations

from PIL import Image

from .profiles import OFFICIAL_TASKS, check_task


def official_image_processor(task: str, size: int = 224):
    """The processor of official `task` for a tower of `size` px (224 for ViT-L/14)."""
    from transformers import CLIPImageProcessorPil

    spec = OFFICIAL_TASKS[check_task(task)]
    return CLIPImageProcessorPil(
        do_resize=True, size={"height": size, "width": size}, resample=Image.BICUBIC, do_center_crop=False,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=list(spec.image_mean),
        image_std=list(spec.image_std), do_convert_rgb=True)


def image_processor_for(spec, default_processor, vision):
    """The image processor a model prompted as `spec` (`ademvl.prompting.PromptSpec`) is fed with: for an
    official task, that task's official preprocessing at the size of `vision` (the model's vision tower;
    `default_processor` unused, may be None); else `default_processor`. The one place the choice is
    made: the collator and evaluation loading ask here."""
    if spec.official is None:
        return default_processor if default_processor is None else vision.fit_image_processor(default_processor)
    return official_image_processor(spec.official, vision.image_size)
