"""`AdemVLChat`: one image (or none) + one prompt in, one answer out.

The plain interface that external harnesses (lmms-eval, VLMEvalKit) and demos
call; the harness adapters in this package only translate their request
formats into it. The prompt is the text after the image prefix, exactly as in
training (e.g. ``"Instruction: What is shown?\\nResponse:"``); `prompt_template`
wraps a bare question into that shape. A conversation (a list of
``(role, text)`` turns) is laid out by `ademvl.prompting.conversation_prompt`,
as LLaVA-instruct training lays out its multi-turn records (the same layout
`ademvl serve` and `VLProcessor` use).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from PIL import Image

from ..data.example import VLExample
from ..data.images import load_image
from ..data.llava_instruct import QUESTION_TEMPLATE as LLAVA_QUESTION_TEMPLATE
from ..context import prompt_token_limit
from ..evaluation.generation import GenerationCollator, generate_batch, model_device
from ..prompting import ROLES, check_template, conversation_prompt, encode_for_model, prompt_spec_of

__all__ = ["AdemVLChat", "DEFAULT_TEMPLATE", "INSTRUCT_TEMPLATE", "ROLES", "check_template", "conversation_prompt",
           "resolve_template"]

DEFAULT_TEMPLATE = "{prompt}"
INSTRUCT_TEMPLATE = LLAVA_QUESTION_TEMPLATE  # the LLaVA-instruct training layout


def resolve_template(model, template: str | None, name: str = "prompt_template") -> str:
    """The template asked for, else the one the adapter was trained with, else the bare prompt.

    `name` is how the caller's user knows the option, for the error when the template is malformed."""
    return prompt_spec_of(model).question_template(template, name)


def _image(image):
    """A path (loaded now, so a bad file is named), a PIL image, or None for text-only."""
    if image is None or isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(os.fspath(image))
    raise ValueError(f"image must be a file path, a PIL image or None, not {type(image).__name__}")


class AdemVLChat:
    """Answer questions about images with a trained model (greedy unless told otherwise)."""

    def __init__(self, model, tokenizer, image_processor, max_new_tokens: int = 64,
                 prompt_template: str | None = None, max_length: int | None = None, **gen_kwargs):
        prompt_template = resolve_template(model, prompt_template)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_new_tokens = max_new_tokens
        self.prompt_template = prompt_template
        self.max_length = max_length
        self.gen_kwargs = gen_kwargs

    @classmethod
    def from_checkpoint(cls, checkpoint, llm=None, vision=None, tokenizer=None, image_processor=None,
                        device: str | None = "auto", dtype=None, quantization: str | None = None,
                        **kwargs) -> "AdemVLChat":
        """Load a saved adapter (and the backbones, tokenizer, image processor it records).

        `quantization` ("4bit" / "8bit", bitsandbytes on the GPU or the CPU) is passed on to
        `load_for_eval`, which refuses an unknown value or a missing bitsandbytes in one line before
        anything is loaded."""
        from ..evaluation.loading import load_for_eval

        model, tok, processor = load_for_eval(checkpoint, llm=llm, vision=vision, tokenizer=tokenizer,
                                              image_processor=image_processor, device=device, dtype=dtype,
                                              quantization=quantization)
        return cls(model, tok, processor, **kwargs)

    def prompt(self, prompt_or_turns) -> str:
        """The full prompt the model sees for a question (str) or a conversation ([(role, text), ...])."""
        return conversation_prompt(self.prompt_template, prompt_or_turns)

    def _example(self, image, prompt, index: int = 0) -> VLExample:
        return VLExample(id=str(index), prompt=self.prompt(prompt), answer="", image=_image(image))

    def answer(self, image, prompt, **gen_kwargs) -> str:
        """The model's answer to `prompt` about `image` (path, PIL image, or None for text-only).

        `prompt` is a question, or a conversation ``[(role, text), ...]`` ending with a user turn."""
        return self.answer_batch([image], [prompt], **gen_kwargs)[0]

    def answer_batch(self, images: list, prompts: list, batch_size: int = 8, **gen_kwargs) -> list[str]:
        """Answers for parallel lists of images and prompts (questions or conversations), `batch_size` at a time."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        kwargs = {"max_new_tokens": self.max_new_tokens, **self.gen_kwargs, **gen_kwargs}
        max_new_tokens = kwargs.pop("max_new_tokens")
        answers: list[str] = []
        for start in range(0, len(prompts), batch_size):
            chunk = [self._example(images[i], prompts[i], i) for i in range(start, min(start + batch_size, len(prompts)))]
            answers += generate_batch(self.model, self.tokenizer, self.image_processor, chunk, max_new_tokens,
                                      self.max_length, **kwargs)
        return answers

    @torch.no_grad()
    def loglikelihood(self, image, prompt, continuation: str, template: bool = True) -> tuple[float, bool]:
        """`(sum of log-probabilities of continuation's tokens, would greedy decoding produce them?)`.

        The continuation's tokens follow the prompt's directly (give its leading space,
        as harnesses do: ``" yes"``). `template=False` scores after `prompt` as given, not
        wrapped in the prompt template (``prompt=""``: the continuation's unconditional likelihood).
        """
        if template:
            example = self._example(image, prompt)
        else:
            if not isinstance(prompt, str):
                raise ValueError("template=False takes the prompt as a string")
            example = VLExample(id="0", prompt=prompt, answer="", image=_image(image))
        target = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        if not target:
            raise ValueError(f"continuation {continuation!r} has no tokens")
        limit = prompt_token_limit(self.model, reserve=len(target), cap=self.max_length, option="continuation length")
        encoded = encode_for_model(self.model, self.tokenizer, example.prompt, None, example.has_image, limit)
        ids = torch.tensor([encoded.input_ids + target], device=model_device(self.model))
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                 "has_image": torch.tensor([int(example.has_image)], device=ids.device),
                 "image_slot": torch.tensor([encoded.image_slot], device=ids.device)}
        collator = GenerationCollator.for_model(self.model, self.tokenizer, self.image_processor)
        pixels = collator.pixels([example])
        if pixels is not None:
            batch["pixel_values"] = pixels.to(ids.device)
        logits = self.model(**batch).logits[0, len(encoded.input_ids) - 1:-1].float()
        target_t = torch.tensor(target, device=logits.device)
        logprobs = F.log_softmax(logits, dim=-1).gather(-1, target_t[:, None]).squeeze(-1)
        return float(logprobs.sum()), bool((logits.argmax(-1) == target_t).all())
