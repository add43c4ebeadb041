"""lmms-eval model class for a trained ademvl adapter (MME, MMBench, MMMU, GQA, VQAv2, ...).

lmms-eval is imported only when the class is first asked for, so ademvl never
depends on it. The class is an lmms-eval "simple" model: `generate_until` and
`loglikelihood` read each request's ``(context, gen_kwargs | target,
doc_to_visual, doc_id, task, split)`` and delegate to :class:`AdemVLChat`.
Register it with :func:`register` (or the launcher ``python -m
ademvl.integrations.lmms_eval_model``); see docs/harnesses.md.
"""
from __future__ import annotations

import sys

from .chat import INSTRUCT_TEMPLATE, AdemVLChat

MODEL_NAME = "ademvl"
CLASS_PATH = "ademvl.integrations.lmms_eval_model.AdemVLLmms"
_CLASS = None


def _import_lmms():
    try:
        from lmms_eval.api.model import lmms
    except ImportError as error:
        raise ImportError(f"the lmms-eval adapter needs lmms-eval: pip install lmms-eval ({error})") from None
    return lmms


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "y")


def _stop_at(text: str, until) -> str:
    """Cut `text` at the first of the harness's stop strings."""
    if isinstance(until, str):
        until = [until]
    for stop in until or []:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()


def harness_generation_kwargs(gen_kwargs: dict, default_max_new_tokens: int) -> dict:
    """lmms-eval's per-task options → `model.generate` options (temperature 0 means greedy)."""
    temperature = float(gen_kwargs.get("temperature", 0) or 0)
    kwargs = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens", default_max_new_tokens)),
              "do_sample": bool(gen_kwargs.get("do_sample", False)) or temperature > 0}
    if kwargs["do_sample"]:
        kwargs["temperature"] = temperature or 1.0
        if gen_kwargs.get("top_p") is not None:
            kwargs["top_p"] = float(gen_kwargs["top_p"])
    if int(gen_kwargs.get("num_beams", 1) or 1) > 1:
        kwargs["num_beams"] = int(gen_kwargs["num_beams"])
    return kwargs


def _first_image(visuals):
    """The first image of a request (ADEM-VL takes one image per sample), or None."""
    if visuals is None:
        return None
    if not isinstance(visuals, (list, tuple)):
        return visuals
    for item in visuals:
        if item is not None:
            return item
    return None


class LmmsMixin:
    """The request handling of the lmms-eval class, free of lmms-eval itself (tested here)."""

    def _setup(self, checkpoint, llm=None, vision=None, device="auto", dtype=None, batch_size=1,
               max_new_tokens=128, prompt_template=INSTRUCT_TEMPLATE, chat=None):
        template = str(prompt_template).replace("\\n", "\n")  # model_args cannot carry a real newline
        self.chat = chat or AdemVLChat.from_checkpoint(checkpoint, llm=llm, vision=vision, device=device,
                                                       dtype=dtype, prompt_template=template)
        self.chat.prompt_template = template
        self.batch_size_per_gpu = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)

    def _doc(self, task, split, doc_id):
        return self.task_dict[task][split][doc_id]

    def generate_until(self, requests) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            image = _first_image(doc_to_visual(self._doc(task, split, doc_id)))
            gen_kwargs = dict(gen_kwargs or {})
            text = self.chat.answer(image, context, **harness_generation_kwargs(gen_kwargs, self.max_new_tokens))
            out.append(_stop_at(text, gen_kwargs.get("until")))
        return out

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        out = []
        for request in requests:
            context, target, doc_to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            continuation = target if isinstance(target, str) else target(doc)
            out.append(self.chat.loglikelihood(_first_image(doc_to_visual(doc)), context, continuation))
        return out

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("ademvl answers one round per request; multi-round tasks are not supported")


def model_class():
    """The lmms-eval model class (built on first use, importing lmms-eval)."""
    global _CLASS
    if _CLASS is None:
        lmms = _import_lmms()

        class AdemVLLmms(LmmsMixin, lmms):
            """lmms-eval model: ``--model ademvl --model_args checkpoint=DIR[,device=cuda,batch_size=1,...]``."""

            is_simple = True

            def __init__(self, checkpoint: str, llm=None, vision=None, device="auto", dtype=None, batch_size=1,
                         max_new_tokens=128, prompt_template=INSTRUCT_TEMPLATE, **unused):
                lmms.__init__(self)
                self._setup(checkpoint, llm, vision, device, dtype, batch_size, max_new_tokens, prompt_template)

            @property
            def batch_size(self):
                return self.batch_size_per_gpu

            @property
            def tokenizer(self):
                return self.chat.tokenizer

            @property
            def eot_token_id(self):
                return self.chat.tokenizer.eos_token_id

        AdemVLLmms.__module__ = __name__
        _CLASS = AdemVLLmms
    return _CLASS


def __getattr__(name):
    # `lmms_eval` resolves "ademvl.integrations.lmms_eval_model.AdemVLLmms" by getattr on this module.
    if name == "AdemVLLmms":
        return model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def manifest():
    """Entry point payload for lmms-eval's ``lmms_eval.models`` group (newer lmms-eval)."""
    _import_lmms()
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=CLASS_PATH)


def register(name: str = MODEL_NAME):
    """Make ``--model ademvl`` known to the installed lmms-eval (old and new registries)."""
    cls = model_class()
    try:  # lmms-eval ≥ 0.4: manifest registry
        from lmms_eval.models import MODEL_REGISTRY_V2
        from lmms_eval.models.registry_v2 import ModelManifest

        MODEL_REGISTRY_V2.register_manifest(ModelManifest(model_id=name, simple_class_path=CLASS_PATH), overwrite=True)
    except ImportError:
        pass
    from lmms_eval.api.registry import register_model

    register_model(name)(cls)
    return cls


def main(argv: list[str] | None = None) -> None:
    """``python -m ademvl.integrations.lmms_eval_model --model ademvl --model_args checkpoint=DIR --tasks mme``."""
    register()
    from lmms_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
