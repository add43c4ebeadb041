"""The one record type every dataset loader produces.

Trainer, evaluator and scorers only ever see :class:`VLExample`, so adding a
dataset means writing one loader, not touching the training loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class VLExample:
    """One supervised (or evaluation-only) vision-language record.

    The model input is ``[bos] "Image: " <cls> prompt`` (or ``"Image: N/A"``
    for text-only records); the loss falls on ``answer`` + EOS only. ``prompt``
    ends exactly where the answer starts (e.g. ``"...\\nResponse:"``); how the
    two are joined (a single space is the convention) is the tokenizer's job.
    """

    id: str  # unique record id (ScienceQA pid, "cocoid_captionidx", ...)
    prompt: str  # text after the "Image: <cls>" prefix, up to where the answer starts
    answer: str  # target text; "" for pure-eval records when unknown
    image: str | None  # path to the image file, None for text-only
    meta: dict = field(default_factory=dict)  # dataset-specific info for scorers

    @property
    def has_image(self) -> bool:
        return self.image is not None
