"""lmms-eval models for a trained ademvl adapter: ``python -m lmms_eval --model ademvl ...``.

Installing ademvl declares the entry point ``ademvl`` in lmms-eval's
``lmms_eval.models`` group (pyproject.toml); lmms-eval ≥ 0.6 reads that group
into its model registry (``MODEL_REGISTRY_V2``) at start-up, so no launcher or
registration call is needed. The manifest names two classes, as lmms-eval's own
models do:

- `AdemVLLmmsChat` (``is_simple = False``, what ``--model ademvl`` resolves to):
  reads each task's ``doc_to_messages`` (lmms-eval builds them from
  ``doc_to_visual``/``doc_to_text`` for older tasks), so chat-template tasks run.
- `AdemVLLmms` (``is_simple = True``, with ``--force_simple``): the legacy
  interface, ``generate_until`` and ``loglikelihood`` over ``(context,
  gen_kwargs | target, doc_to_visual, doc_id, task, split)``. lmms-eval builds
  log-likelihood requests (``output_type: multiple_choice``) only for simple
  models, so such tasks run with ``--force_simple``.

Both delegate to :class:`~ademvl.integrations.chat.AdemVLChat`, with the prompt
template and layout the adapter records unless ``prompt_template`` is given (the
run prints one line saying which). Several
processes (``accelerate launch`` / ``torchrun``) each load the model on their
own device (``cuda:{local_process_index}``); lmms-eval shards the documents by
`rank`/`world_size` and gathers the results. Nothing from lmms-eval is imported
until a class is asked for, so importing this module (lmms-eval does, for the
entry point) costs nothing.
"""
from __future__ import annotations

import json
import logging
import sys

MODEL_NAME = "ademvl"
SIMPLE_CLASS_PATH = f"{__name__}.AdemVLLmms"
CHAT_CLASS_PATH = f"{__name__}.AdemVLLmmsChat"
INSTALL_HINT = "pip install lmms-eval==0.7.3 (or pip install 'ademvl[harness]')"
DEFAULT_MAX_BATCH_SIZE = 64  # the largest batch `batch_size=auto` tries when lmms-eval gives no --max_batch_size
_CLASSES: dict[str, type] = {}
_log = logging.getLogger(__name__)

# Task generation options this adapter honours; anything else in a task's generation_kwargs is
# reported once (a warning naming it), not silently dropped.
KNOWN_GEN_KWARGS = {"max_new_tokens", "temperature", "do_sample", "top_p", "top_k", "num_beams", "until"}
_warned_gen_kwargs: set[str] = set()
_NO_CHAT_TEMPLATE = ("--apply_chat_template is not supported: ademvl lays out every prompt itself "
                     "(the prompt_template model argument)")


class AdemVLOptionError(ValueError):
    """A bad ``--model_args`` value: one line naming it."""


def _option_error(message: str):
    """`AdemVLOptionError`, or `SystemExit` under lmms-eval's CLI.

    lmms-eval's CLI catches every `Exception` from a run, prints its traceback and
    exits 0; a bad option must stop the run with a non-zero status instead, so
    under the CLI the one line goes out as `SystemExit` (exit status 1)."""
    if "lmms_eval.__main__" in sys.modules or "lmms_eval.cli.dispatch" in sys.modules:
        return SystemExit(f"ademvl (lmms-eval): {message}")
    return AdemVLOptionError(message)


def _import_lmms():
    try:
        from lmms_eval.api.model import lmms
    except ImportError as error:
        raise ImportError(f"the lmms-eval adapter needs lmms-eval: {INSTALL_HINT} ({error})") from None
    return lmms


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
    unknown = sorted(set(gen_kwargs) - KNOWN_GEN_KWARGS - _warned_gen_kwargs)
    if unknown:
        _warned_gen_kwargs.update(unknown)
        _log.warning("ademvl ignores the task generation option(s) %s (it uses: %s)", ", ".join(unknown),
                     ", ".join(sorted(KNOWN_GEN_KWARGS)))
    temperature = float(gen_kwargs.get("temperature", 0) or 0)
    kwargs = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens") or default_max_new_tokens),
              "do_sample": bool(gen_kwargs.get("do_sample", False)) or temperature > 0}
    if kwargs["do_sample"]:
        kwargs["temperature"] = temperature or 1.0
        for key, cast in (("top_p", float), ("top_k", int)):
            if gen_kwargs.get(key) is not None:
                kwargs[key] = cast(gen_kwargs[key])
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


def parse_batch_size(batch_size, max_batch_size=None) -> tuple[int, bool]:
    """lmms-eval's ``--batch_size`` (N, "auto" or "auto:N") → (starting batch size, auto?)."""
    text = str(batch_size).strip().lower()
    if text == "auto" or text.startswith("auto:"):
        start = DEFAULT_MAX_BATCH_SIZE if max_batch_size is None else max_batch_size
        try:
            start = int(start)
        except (TypeError, ValueError):
            start = 0
        if start < 1:
            raise _option_error(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
        return start, True
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1 or str(size) != text:
        raise _option_error(f"batch_size must be a positive integer, 'auto' or 'auto:N', got {batch_size!r}")
    return size, False


def parse_max_new_tokens(value) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise _option_error(f"max_new_tokens must be a positive integer, got {value!r}")
    return int(text)


def _resolve_device(device, accelerator) -> str:
    """One device per process: with several processes, "auto"/"cuda" become cuda:{local_process_index}."""
    device = "auto" if device in (None, "") else str(device)
    if accelerator is None or accelerator.num_processes == 1:
        return device
    if device == "auto":
        return str(accelerator.device)  # cuda:{local_process_index}, or cpu without GPUs
    if device == "cuda":
        return f"cuda:{accelerator.local_process_index}"
    return device


class LmmsMixin:
    """The request handling of the lmms-eval classes (lmms-eval's `lmms` supplies the rest)."""

    def _setup(self, chat, batch_size=1, max_batch_size=None, max_new_tokens=128, accelerator=None, device=None):
        import torch

        self.chat = chat
        self.batch_size_per_gpu, self._auto_batch = parse_batch_size(batch_size, max_batch_size)
        self.max_new_tokens = parse_max_new_tokens(max_new_tokens)
        self.accelerator = accelerator
        self._device = torch.device(device) if device is not None else next(chat.model.parameters()).device
        if accelerator is not None and accelerator.num_processes > 1:
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes

    # -- lmms-eval's model attributes ----------------------------------------------------------
    @property
    def batch_size(self):
        return self.batch_size_per_gpu

    @property
    def device(self):
        return self._device

    @property
    def rank(self):
        return self._rank

    @property
    def world_size(self):
        return self._world_size

    @property
    def model(self):
        return self.chat.model

    @property
    def tokenizer(self):
        return self.chat.tokenizer

    @property
    def eot_token_id(self):
        return self.chat.tokenizer.eos_token_id

    # lmms-eval reads these two only under --apply_chat_template, which ademvl refuses: it lays out
    # every prompt itself (the prompt_template model argument).
    @property
    def chat_template(self):
        raise _option_error(_NO_CHAT_TEMPLATE)

    def apply_chat_template(self, chat_history, *args, **kwargs):
        raise _option_error(_NO_CHAT_TEMPLATE)

    # -- requests ---------------------------------------------------------------------------------
    def _doc(self, task, split, doc_id):
        return self.task_dict[task][split][doc_id]

    def _progress(self, total: int):
        from tqdm import tqdm

        return tqdm(total=total, disable=self.rank != 0, desc="ademvl responding")

    def _answer_chunk(self, items, kwargs):
        return self.chat.answer_batch([item[0] for item in items], [item[1] for item in items],
                                      batch_size=len(items), **kwargs)

    def _generate(self, items) -> list[str]:
        """`items`: ``(image, question or [(role, text), ...], task gen_kwargs)`` → answers in order.

        Requests with the same generation options run together, `batch_size` at a time;
        ``batch_size=auto`` starts at `max_batch_size` and halves on running out of memory."""
        from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size

        groups: dict[str, tuple[dict, list[int]]] = {}
        for i, (_, _, gen_kwargs) in enumerate(items):
            kwargs = harness_generation_kwargs(gen_kwargs, self.max_new_tokens)
            groups.setdefault(json.dumps(kwargs, sort_keys=True), (kwargs, []))[1].append(i)
        out: list[str | None] = [None] * len(items)
        progress = self._progress(len(items))
        for kwargs, indices in groups.values():
            done = 0
            while done < len(indices):
                chunk = indices[done:done + self.batch_size_per_gpu]
                try:
                    answers = self._answer_chunk([items[i] for i in chunk], kwargs)
                except Exception as error:
                    if not (self._auto_batch and len(chunk) > 1 and should_reduce_batch_size(error)):
                        raise
                    self.batch_size_per_gpu = len(chunk) // 2
                    _log.warning("ademvl: out of memory at batch size %d; trying %d", len(chunk),
                                 self.batch_size_per_gpu)
                    clear_device_cache(garbage_collection=True)
                    continue
                for i, answer in zip(chunk, answers):
                    out[i] = _stop_at(answer, items[i][2].get("until"))
                done += len(chunk)
                progress.update(len(chunk))
        progress.close()
        return out

    def generate_until(self, requests) -> list[str]:
        items = []
        for request in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            image = _first_image(doc_to_visual(self._doc(task, split, doc_id)))
            items.append((image, context, dict(gen_kwargs or {})))
        return self._generate(items)

    def loglikelihood(self, requests) -> list:
        """``GenerationResult(text=(negative log-likelihood of the continuation, greedy?))`` per request.

        lmms-eval 0.7.3's evaluator passes every model output through
        `unwrap_generation_output`, which turns a bare ``(float, bool)`` pair into its
        string; a `GenerationResult` comes out as its ``text`` untouched, so the pair
        reaches the task's ``process_results`` as it expects it.
        lmms-eval scores ``multiple_choice`` by the *smallest* returned value
        (`np.argmin`, its own LLaVA returns the loss), so the adapter returns the summed
        negative log-probability of the continuation's tokens: its ``acc`` is then
        lm-eval-harness's (most likely choice), ``acc_norm`` the same per character.
        Two-element requests ``("", continuation)`` (``acc_mutual_info``) are scored
        unconditionally: no image, no prompt template."""
        from lmms_eval.api.instance import GenerationResult

        out = []
        progress = self._progress(len(requests))
        for request in requests:
            args = request.args
            if len(args) == 2:
                context, continuation = args
                logprob, greedy = self.chat.loglikelihood(None, context, continuation, template=False)
            else:
                context, target, doc_to_visual, doc_id, task, split = args
                doc = self._doc(task, split, doc_id)
                continuation = target if isinstance(target, str) else target(doc)
                if not isinstance(continuation, str):
                    raise ValueError(f"task {task}: the loglikelihood target of doc {doc_id} is "
                                     f"{type(continuation).__name__}, not text")
                logprob, greedy = self.chat.loglikelihood(_first_image(doc_to_visual(doc)), context, continuation)
            out.append(GenerationResult(text=(-logprob, greedy)))
            progress.update(1)
        progress.close()
        return out

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError("ademvl answers one round per request; lmms-eval multi-round tasks are not supported")


def chat_messages_to_turns(messages) -> list[tuple[str, str]]:
    """lmms-eval chat messages (`role`, `content` parts) → ``[(role, text), ...]`` for `AdemVLChat`, which
    lays them out (`ademvl.prompting.conversation_prompt`); a message's text parts are joined by newlines."""
    return [(message.role, "\n".join(part.text for part in message.content if part.type == "text"))
            for message in messages]


class LmmsChatMixin(LmmsMixin):
    """``generate_until`` over lmms-eval's chat requests ``(ctx, doc_to_messages, gen_kwargs, doc_id, task, split)``."""

    def generate_until(self, requests) -> list[str]:
        from lmms_eval.protocol import ChatMessages

        items = []
        for request in requests:
            _, doc_to_messages, gen_kwargs, doc_id, task, split = request.args
            messages = ChatMessages(messages=doc_to_messages(self._doc(task, split, doc_id)))
            images, videos, audios = messages.extract_media()
            if videos or audios:
                raise ValueError(f"task {task}: ademvl takes images and text, not "
                                 f"{'video' if videos else 'audio'} (doc {doc_id})")
            turns = chat_messages_to_turns(messages.messages)
            items.append((_first_image(images), turns, dict(gen_kwargs or {})))
        return self._generate(items)


def _load_chat(checkpoint, llm, vision, device, dtype, prompt_template, quantization):
    """`AdemVLChat` for the adapter; without `prompt_template`, the template and layout the adapter records."""
    from .chat import AdemVLChat, check_template

    if not checkpoint:
        raise _option_error("--model_args needs checkpoint=DIR (the adapter directory)")
    template = None
    if prompt_template is not None:
        template = str(prompt_template).replace("\\n", "\n")  # model_args cannot carry a real newline
        try:
            check_template(template)
        except ValueError as error:
            raise _option_error(str(error)) from None
    try:
        return AdemVLChat.from_checkpoint(checkpoint, llm=llm, vision=vision, device=device, dtype=dtype,
                                          quantization=quantization, prompt_template=template)
    except (ValueError, FileNotFoundError, ImportError) as error:
        raise _option_error(str(error).strip().splitlines()[0]) from error


def prompt_line(chat, from_model_args: bool) -> str:
    """The one line saying which prompt the run uses: the template, where it came from, the layout.

    A model answers best in the layout it was trained with, so the run says which one it got."""
    from ..prompting import prompt_spec_of

    spec = prompt_spec_of(chat.model)
    source = ("from --model_args prompt_template" if from_model_args else
              "the adapter's own" if spec.template is not None else
              "the adapter records none: the bare question")
    layout = f"official {spec.official}" if spec.official is not None else spec.layout
    return f"ademvl: prompt template {chat.prompt_template!r} ({source}), layout {layout}"


def _build_classes():
    lmms = _import_lmms()

    known = ("checkpoint", "llm", "vision", "device", "dtype", "batch_size", "max_batch_size", "max_new_tokens",
             "prompt_template", "quantization")

    class AdemVLLmms(LmmsMixin, lmms):
        """lmms-eval model: ``--model ademvl --model_args checkpoint=DIR[,dtype=bfloat16,...]``."""

        is_simple = True

        def __init__(self, checkpoint: str | None = None, llm=None, vision=None, device=None, dtype=None,
                     batch_size=1, max_batch_size=None, max_new_tokens=128, prompt_template=None,
                     quantization=None, **unknown):
            lmms.__init__(self)
            if unknown:
                raise _option_error(f"unknown model_args {', '.join(sorted(unknown))} (ademvl takes: "
                                    f"{', '.join(known)})")
            parse_batch_size(batch_size, max_batch_size)  # bad options fail before anything loads
            parse_max_new_tokens(max_new_tokens)
            from accelerate import Accelerator

            accelerator = Accelerator()
            device = _resolve_device(device, accelerator)
            chat = _load_chat(checkpoint, llm, vision, device, dtype, prompt_template, quantization)
            self._setup(chat, batch_size, max_batch_size, max_new_tokens, accelerator)
            if accelerator.is_main_process:
                print(prompt_line(chat, prompt_template is not None), file=sys.stderr, flush=True)
            if accelerator.num_processes > 1 and accelerator.is_local_main_process:
                _log.info("ademvl: %d processes, data parallel", accelerator.num_processes)

    class AdemVLLmmsChat(LmmsChatMixin, AdemVLLmms):
        """lmms-eval chat model (``is_simple = False``): reads ``doc_to_messages``."""

        is_simple = False

    for cls in (AdemVLLmms, AdemVLLmmsChat):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return {"AdemVLLmms": AdemVLLmms, "AdemVLLmmsChat": AdemVLLmmsChat}


def model_class(chat: bool = False):
    """The lmms-eval model class (built on first use, importing lmms-eval)."""
    if not _CLASSES:
        _CLASSES.update(_build_classes())
    return _CLASSES["AdemVLLmmsChat" if chat else "AdemVLLmms"]


def __getattr__(name):
    # lmms-eval resolves the manifest's class paths by getattr on this module.
    if name in ("AdemVLLmms", "AdemVLLmmsChat"):
        return model_class(chat=name == "AdemVLLmmsChat")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def manifest():
    """The ``lmms_eval.models`` entry point: ``--model ademvl`` (chat class; simple with --force_simple)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path=SIMPLE_CLASS_PATH, chat_class_path=CHAT_CLASS_PATH)


def register(name: str = MODEL_NAME):
    """Register ``name`` in lmms-eval's model registry by hand (the installed entry point already does)."""
    _import_lmms()
    from lmms_eval.models import MODEL_REGISTRY_V2
    from lmms_eval.models.registry_v2 import ModelManifest

    MODEL_REGISTRY_V2.register_manifest(ModelManifest(model_id=name, simple_class_path=SIMPLE_CLASS_PATH,
                                                      chat_class_path=CHAT_CLASS_PATH), overwrite=True)
    return model_class(chat=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m ademvl.integrations.lmms_eval_model ARGS`` = ``python -m lmms_eval ARGS`` with ``ademvl`` registered
    (for an ademvl that is not pip-installed, so its entry point is not declared)."""
    register()
    from lmms_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
