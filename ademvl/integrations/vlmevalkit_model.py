"""VLMEvalKit model class for a trained ademvl adapter (MME, MMBench, MMMU, GQA, ...).

VLMEvalKit (`vlmeval`) is imported only when the class is first asked for.
Its models subclass `vlmeval.vlm.base.BaseModel` and implement
`generate_inner(message, dataset)`, where `message` is a list of
``{"type": "image" | "text", "value": ...}``; ADEM-VL takes one image, so the
first image and the joined texts are used. See docs/harnesses.md.
"""
from __future__ import annotations

import sys
from functools import partial

from .chat import INSTRUCT_TEMPLATE, AdemVLChat

MODEL_NAME = "ademvl"
_CLASS = None


def message_to_prompt_image(message) -> tuple[str, str | None]:
    """VLMEvalKit message → (texts joined by newlines, first image path or None)."""
    if isinstance(message, str):
        return message, None
    texts = [item["value"] for item in message if item["type"] == "text"]
    images = [item["value"] for item in message if item["type"] == "image"]
    return "\n".join(texts), (images[0] if images else None)


class VLMEvalMixin:
    """The request handling of the VLMEvalKit class, free of VLMEvalKit itself (tested here)."""

    def _setup(self, checkpoint, llm=None, vision=None, device="auto", dtype=None, max_new_tokens=128,
               prompt_template=INSTRUCT_TEMPLATE, chat=None, **gen_kwargs):
        self.chat = chat or AdemVLChat.from_checkpoint(checkpoint, llm=llm, vision=vision, device=device, dtype=dtype,
                                                       prompt_template=prompt_template)
        self.chat.prompt_template = prompt_template
        self.max_new_tokens = int(max_new_tokens)
        self.gen_kwargs = gen_kwargs

    def generate_inner(self, message, dataset=None) -> str:
        prompt, image = message_to_prompt_image(message)
        return self.chat.answer(image, prompt, max_new_tokens=self.max_new_tokens, **self.gen_kwargs)


def model_class():
    """The VLMEvalKit model class (built on first use, importing vlmeval)."""
    global _CLASS
    if _CLASS is None:
        try:
            from vlmeval.vlm.base import BaseModel
        except ImportError as error:
            raise ImportError("the VLMEvalKit adapter needs VLMEvalKit: pip install vlmeval "
                              f"(or pip install -e a clone of open-compass/VLMEvalKit) ({error})") from None

        class AdemVLVLMEval(VLMEvalMixin, BaseModel):
            """VLMEvalKit model: ``AdemVLVLMEval(checkpoint=DIR, device="cuda", max_new_tokens=128)``."""

            INTERLEAVE = False

            def __init__(self, checkpoint: str, **kwargs):
                self._setup(checkpoint, **kwargs)

        AdemVLVLMEval.__module__ = __name__
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
        raise ImportError(f"VLMEvalKit's run.py is not importable: run this from the VLMEvalKit checkout ({error})") from None
    sys.argv = [sys.argv[0], *argv[1:]]
    run_main()


if __name__ == "__main__":
    main()
