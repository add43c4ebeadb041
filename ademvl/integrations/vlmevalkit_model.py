"""VLMEvalKit model class for a trained ademvl adapter (MME, MMBench, ScienceQA, MMMU, ...).

VLMEvalKit (package `vlmeval`) is not on PyPI: it is installed from its
repository (``git clone https://github.com/open-compass/VLMEvalKit && pip
install -e VLMEvalKit``); see docs/harnesses.md. It is imported only when the
class is first asked for.

`AdemVLVLMEval` subclasses `vlmeval.vlm.base.BaseModel` and implements its two
hooks:

- ``generate_inner(message, dataset)`` for ``BaseModel.generate``: `message`
  is a list of ``{"type": "image" | "text", "value": ...}``. ADEM-VL takes one
  image (``INTERLEAVE = False``), so `BaseModel.message_to_promptimg` gives the
  first image and the texts joined by newlines.
- ``chat_inner(messages, dataset)`` for ``BaseModel.chat`` (multi-turn
  benchmarks): `messages` is a list of ``{"role": "user" | "assistant" |
  "system", "content": [items as above]}``; the turns are laid out as
  LLaVA-instruct training lays out a conversation (`conversation_prompt`), with
  the first image of the conversation.

Prompts are VLMEvalKit's defaults for every dataset (no `use_custom_prompt`),
wrapped in the adapter's prompt template.
"""
from __future__ import annotations

import sys
from functools import partial

MODEL_NAME = "ademvl"
INSTALL_HINT = ("VLMEvalKit is not on PyPI; install it from its repository: git clone "
                "https://github.com/open-compass/VLMEvalKit && pip install -e VLMEvalKit")
_CLASS = None


def message_to_prompt_image(message) -> tuple[str, str | None]:
    """VLMEvalKit message → (texts joined by newlines, first image or None), as `BaseModel.message_to_promptimg`."""
    if isinstance(message, str):
        return message, None
    texts = [item["value"] for item in message if item["type"] == "text"]
    images = [item["value"] for item in message if item["type"] == "image"]
    return "\n".join(texts), (images[0] if images else None)


def messages_to_turns(messages) -> tuple[list[tuple[str, str]], object]:
    """VLMEvalKit chat messages → (``[(role, text), ...]``, the conversation's first image or None)."""
    turns, image = [], None
    for n, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "value": content}]
        texts = []
        for item in content or []:
            if item["type"] == "text":
                texts.append(item["value"])
            elif item["type"] == "image":
                image = item["value"] if image is None else image
            else:
                raise ValueError(f"message {n}: ademvl takes images and text, not {item['type']!r}")
        turns.append((role, "\n".join(texts)))
    return turns, image


def _check_generation_options(options: dict) -> dict:
    """`options`, if each is a `transformers.GenerationConfig` field (one line naming the first that is not)."""
    from transformers import GenerationConfig

    config = GenerationConfig()
    for key in options:
        if key in ("max_new_tokens", "pad_token_id", "eos_token_id") or not hasattr(config, key):
            raise ValueError(f"unknown ademvl model option {key!r} (give a checkpoint, llm, vision, device, dtype, "
                             "max_new_tokens, prompt_template, quantization, or a generation option such as "
                             "do_sample, temperature, top_p, num_beams)")
    return options


class VLMEvalMixin:
    """The request handling of the VLMEvalKit class (VLMEvalKit's `BaseModel` supplies the rest)."""

    def _setup(self, checkpoint=None, llm=None, vision=None, device="auto", dtype=None, max_new_tokens=128,
               prompt_template=None, quantization=None, model=None, **gen_kwargs):
        """`model`: an `AdemVLChat` to use instead of loading `checkpoint`."""
        from .chat import INSTRUCT_TEMPLATE, AdemVLChat, check_template

        self.gen_kwargs = _check_generation_options(gen_kwargs)
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.max_new_tokens = int(max_new_tokens)
        template = check_template(INSTRUCT_TEMPLATE if prompt_template is None else prompt_template)
        if model is None:
            if not checkpoint:
                raise ValueError("the ademvl VLMEvalKit model needs checkpoint=DIR (the adapter directory)")
            model = AdemVLChat.from_checkpoint(checkpoint, llm=llm, vision=vision, device=device, dtype=dtype,
                                               quantization=quantization)
        model.prompt_template = template
        # Not `self.chat`: that name is BaseModel.chat(), the multi-turn entry point.
        self.ademvl = model

    def _answer(self, image, prompt) -> str:
        return self.ademvl.answer(image, prompt, max_new_tokens=self.max_new_tokens, **self.gen_kwargs)

    def generate_inner(self, message, dataset=None) -> str:
        prompt, image = self.message_to_promptimg(message, dataset=dataset)
        return self._answer(image, prompt)

    def chat_inner(self, message, dataset=None) -> str:
        turns, image = messages_to_turns(message)
        return self._answer(image, turns)


def model_class():
    """The VLMEvalKit model class (built on first use, importing vlmeval)."""
    global _CLASS
    if _CLASS is None:
        try:
            from vlmeval.vlm.base import BaseModel
        except ImportError as error:
            raise ImportError(f"the VLMEvalKit adapter needs VLMEvalKit. {INSTALL_HINT} ({error})") from None

        class AdemVLVLMEval(VLMEvalMixin, BaseModel):
            """VLMEvalKit model: ``AdemVLVLMEval(checkpoint=DIR, device="auto", max_new_tokens=128, ...)``."""

            INTERLEAVE = False

            def __init__(self, checkpoint: str | None = None, **kwargs):
                BaseModel.__init__(self)
                self._setup(checkpoint, **kwargs)

        AdemVLVLMEval.__module__ = __name__
        AdemVLVLMEval.__qualname__ = "AdemVLVLMEval"
        _CLASS = AdemVLVLMEval
    return _CLASS


def __getattr__(name):
    if name == "AdemVLVLMEval":
        return model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(checkpoint: str, name: str = MODEL_NAME, **kwargs):
    """Add ``name`` to VLMEvalKit's `supported_VLM`, bound to `checkpoint` (and model options)."""
    cls = model_class()
    from vlmeval.config import supported_VLM

    supported_VLM[name] = partial(cls, checkpoint=checkpoint, **kwargs)
    return supported_VLM[name]


def main(argv: list[str] | None = None) -> None:
    """``python -m ademvl.integrations.vlmevalkit_model CHECKPOINT --data MME --model ademvl [run.py options]``.

    Run from the VLMEvalKit checkout (its ``run.py`` must be importable).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m ademvl.integrations.vlmevalkit_model CHECKPOINT [VLMEvalKit run.py options]")
    register(argv[0])
    try:
        from run import main as run_main
    except ImportError as error:
        raise SystemExit(f"VLMEvalKit's run.py is not importable: run this from the VLMEvalKit checkout ({error})")
    sys.argv = [sys.argv[0], *argv[1:]]
    run_main()


if __name__ == "__main__":
    main()
