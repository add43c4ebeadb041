"""Input-stage fusion: the token layout of one sample (SPEC §1).

    image sample:      [prefix] [bos] "Image: " <visual token(s)> "\n" prompt " " answer [eos]
    text-only sample:  [prefix] [bos] "Image: N/A" "\n" prompt " " answer [eos]

With `prompt_layout="chat"` the same parts go through the LLM's chat template
(user turn: "Image: " <visual> "\n" prompt; assistant turn: the answer).

The visual tokens occupy placeholder positions in `input_ids`; the model writes
the method's visual embeddings over them (`image_slot` = first position). Methods
with a modality token (LaVIN, Bottleneck Adapter) have one more placeholder, the
prefix, before [bos]: the first real token of every sample.
Labels are -100 everywhere except on the answer and EOS.

`prompt_layout="official"` is the official ADEM-VL code's layout (`ademvl.official`), for its
released checkpoints: no "\n" after the image prefix, prompt and answer joined with
nothing between them and tokenised together (the answer's labels start after the
prompt's own tokens), and without a [cls] token no image prefix at all:

    image sample:      [bos] "Image: " <cls> prompt+answer [eos]
    text-only sample:  [bos] "Image: N/A" prompt+answer [eos]
    use_cls=False:     [bos] prompt+answer [eos]

This module owns the prompt contract: `PromptSpec` (template, layout, official task) is what a
model records in its config at construction; `conversation_prompt` is the one layout of a
conversation (AdemVLChat, `ademvl serve`, the processor and the harness adapters all use it);
`encode_for_model` / `encoder_settings` are the one way a model's prompt is tokenised.
"""
from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass

IMAGE_PREFIX = "Image: "
NO_IMAGE_PREFIX = "Image: N/A"
SEPARATOR = "\n"
IGNORE_INDEX = -100


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    image_slot: int  # -1 when the sample has no visual tokens


def pad_token_id(tokenizer) -> int:
    """The tokenizer's pad id, else its EOS id (LLaMA tokenizers have no pad token), else 0."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def placeholder_id(tokenizer) -> int:
    """Any real id works (its embedding is overwritten); pad/unk/eos in that order."""
    for token_id in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


PROMPT_LAYOUTS = ("plain", "chat", "official")
_MARK = "\ue000"  # a private-use character: where the image part ends inside a rendered chat template


def _plain_parts(tokenizer, prompt, answer, has_image, num_visual_tokens):
    """[bos] "Image: " <visual> | "\n" prompt | " " answer [eos]  (the paper's layout)."""
    ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    slot = -1
    if has_image:
        ids += _ids(tokenizer, IMAGE_PREFIX)
        if num_visual_tokens:
            slot = len(ids)
            ids += [placeholder_id(tokenizer)] * num_visual_tokens
    else:
        ids += _ids(tokenizer, NO_IMAGE_PREFIX)
    answer_ids: list[int] = []
    if answer is not None:
        answer_ids = _ids(tokenizer, " " + answer) if answer else []
        if tokenizer.eos_token_id is not None:
            answer_ids.append(tokenizer.eos_token_id)
    return ids, slot, _ids(tokenizer, SEPARATOR + prompt), answer_ids


def _chat_parts(tokenizer, prompt, answer, has_image, num_visual_tokens):
    """The LLM's own chat template: "Image: <visual>\n" prompt as the user turn, the answer as the
    assistant turn (its end-of-turn token included, so generation stops where training did)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt_layout 'chat' needs a tokenizer with a chat template; this one has none "
                         "(use prompt_layout 'plain')")
    user = [{"role": "user", "content": (IMAGE_PREFIX if has_image else NO_IMAGE_PREFIX) + _MARK + SEPARATOR + prompt}]
    text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    before, _, after = text.partition(_MARK)
    ids = _ids(tokenizer, before)
    slot = -1
    if has_image and num_visual_tokens:
        slot = len(ids)
        ids += [placeholder_id(tokenizer)] * num_visual_tokens
    answer_ids: list[int] = []
    if answer is not None:
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": answer}], tokenize=False)
        if not full.startswith(text):
            raise ValueError("this chat template renders the prompt differently once an answer follows; "
                             "use prompt_layout 'plain'")
        answer_ids = _ids(tokenizer, full[len(text):].rstrip())
    return ids, slot, _ids(tokenizer, after), answer_ids


def _official_parts(tokenizer, prompt, answer, has_image, num_visual_tokens):
    """The official layout (module docstring): the image prefix only with a [cls] token;
    prompt+answer tokenised as one text, as the official `tokenize(prompt, answer)` does."""
    ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    slot = -1
    if num_visual_tokens:
        if has_image:
            ids += _ids(tokenizer, IMAGE_PREFIX)
            slot = len(ids)
            ids += [placeholder_id(tokenizer)] * num_visual_tokens
        else:
            ids += _ids(tokenizer, NO_IMAGE_PREFIX)
    prompt_ids = _ids(tokenizer, prompt)
    answer_ids: list[int] = []
    if answer is not None:
        joint = _ids(tokenizer, prompt + answer)
        # The official labels start after as many tokens as the prompt alone has.
        prompt_ids, answer_ids = joint[:len(prompt_ids)], joint[len(prompt_ids):]
        if tokenizer.eos_token_id is not None:
            answer_ids.append(tokenizer.eos_token_id)
    return ids, slot, prompt_ids, answer_ids


def encode_sample(
    tokenizer,
    prompt: str,
    answer: str | None,
    has_image: bool,
    num_visual_tokens: int,
    max_length: int | None = None,
    num_prefix_tokens: int = 0,
    prompt_layout: str = "plain",
) -> EncodedSample:
    """Token ids, labels and image slot of one sample; `answer=None` for a generation prompt.

    `prompt_layout`: "plain" (the paper's, above), "chat" (through the LLM's chat template, for
    instruct LLMs) or "official" (the official code's, for its released checkpoints). Either
    way the method's prefix placeholders come first.
    """
    if prompt_layout not in PROMPT_LAYOUTS:
        raise ValueError(f"prompt_layout must be one of {', '.join(PROMPT_LAYOUTS)}, got {prompt_layout!r}")
    parts = {"plain": _plain_parts, "chat": _chat_parts, "official": _official_parts}[prompt_layout]
    head_ids, slot, prompt_ids, answer_ids = parts(tokenizer, prompt, answer, has_image, num_visual_tokens)
    ids: list[int] = [placeholder_id(tokenizer)] * num_prefix_tokens + head_ids
    slot = slot + num_prefix_tokens if slot >= 0 else -1
    head = len(ids)
    if max_length is not None and head + len(prompt_ids) + len(answer_ids) > max_length:
        # Keep the image prefix and the answer; cut the prompt's beginning (the question sits at its end).
        from transformers.utils import logging as hf_logging

        hf_logging.get_logger(__name__).warning_once(
            f"a prompt did not fit in {max_length} tokens (the LLM's context or train.max_length): its beginning "
            "was cut and its end kept")
        room = max(max_length - head - len(answer_ids), 0)
        prompt_ids = prompt_ids[len(prompt_ids) - room:] if room else []
        answer_ids = answer_ids[: max_length - head - len(prompt_ids)]
    ids += prompt_ids
    labels = [IGNORE_INDEX] * len(ids) + answer_ids
    return EncodedSample(input_ids=ids + answer_ids, labels=labels, image_slot=slot)


def check_template(template: str, name: str = "prompt_template") -> str:
    """`template`, if "{prompt}" is its only field (one line naming `name` otherwise, not a KeyError later)."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as error:  # a lone "{" or "}"
        raise ValueError(f"{name} {template!r} is not a valid template ({error}; write {{{{ }}}} for literal braces)") from None
    others = sorted({f"{{{field}}}" for field in fields if field != "prompt"})
    if others:
        raise ValueError(f"{name} {template!r} has unknown field(s) {', '.join(others)}: the only field is {{prompt}} "
                         "(write {{ }} for literal braces)")
    if "prompt" not in fields:
        raise ValueError(f"{name} must contain '{{prompt}}', got {template!r}")
    return template


# --- the prompt contract ------------------------------------------------------------------------
LIBRARY_LAYOUTS = ("plain", "chat")  # what a config records; "official" follows from `PromptSpec.official`


@dataclass(frozen=True)
class PromptSpec:
    """How a model is prompted, recorded in its config (`prompt_template`, `prompt_layout`, `official`).

    `template`: how training wrapped a bare question ("{prompt}" marks it), None for the bare prompt;
    `layout`: "plain" (the paper's) or "chat" (the LLM's chat template); `official`: None, or the
    official ADEM-VL task ("scienceqa", "caption", "instruction") whose layout a converted
    checkpoint expects (it overrides `layout`)."""

    template: str | None = None
    layout: str = "plain"
    official: str | None = None

    def __post_init__(self):
        if self.layout not in LIBRARY_LAYOUTS:
            raise ValueError(f"prompt_layout must be one of {', '.join(LIBRARY_LAYOUTS)}, got {self.layout!r}")

    @property
    def encoding_layout(self) -> str:
        """The layout `encode_sample` lays tokens out in: "official" for an official task, else `layout`."""
        return "official" if self.official is not None else self.layout

    def question_template(self, override: str | None = None, name: str = "prompt_template") -> str:
        """`override`, else the recorded template, else the bare prompt; checked (`check_template`)."""
        template = override if override is not None else (self.template or "{prompt}")
        return check_template(template, name)

    def replace(self, **changes) -> "PromptSpec":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_config(cls, config) -> "PromptSpec":
        """The spec a model config records (configs from before the keys existed: the defaults)."""
        official = getattr(config, "official", None)
        if official is not None:
            from .official.profiles import check_task

            check_task(official)
        return cls(getattr(config, "prompt_template", None), getattr(config, "prompt_layout", None) or "plain",
                   official)

    @classmethod
    def official_for(cls, dataset: str, layout: str = "plain") -> "PromptSpec":
        """The spec of the official ADEM-VL task that evaluates library `dataset` (`ademvl.official`):
        that task's template and layout, `layout` recorded beside it."""
        from .official.profiles import OFFICIAL_TASKS, task_for_dataset

        task = task_for_dataset(dataset)
        return cls(OFFICIAL_TASKS[task].prompt_template, layout, task)

    @classmethod
    def from_saved(cls, saved: dict) -> "PromptSpec":
        """The spec an adapter's JSON records (its keys: `prompt_template`, `prompt_layout`, `official`)."""
        return cls(saved.get("prompt_template"), saved.get("prompt_layout") or "plain", saved.get("official"))

    def record(self, config) -> None:
        """Write the spec into `config` under its keys (as the adapter JSON keeps them)."""
        config.prompt_template = self.template
        config.prompt_layout = self.layout
        config.official = self.official


def prompt_spec_of(model) -> PromptSpec:
    """The `PromptSpec` `model` records."""
    return PromptSpec.from_config(model.config)


def encoder_settings(model) -> dict:
    """The `encode_sample` settings of `model`: its method's placeholders and its layout."""
    return {"num_visual_tokens": model.method.num_input_tokens,
            "num_prefix_tokens": model.method.num_prefix_tokens,
            "prompt_layout": prompt_spec_of(model).encoding_layout}


def encode_for_model(model, tokenizer, prompt: str, answer: str | None, has_image: bool,
                     max_length: int | None = None) -> EncodedSample:
    """`encode_sample` with `model`'s placeholders and layout: the one way a model's prompt is tokenised."""
    settings = encoder_settings(model)
    return encode_sample(tokenizer, prompt, answer, has_image, settings["num_visual_tokens"], max_length,
                         settings["num_prefix_tokens"], settings["prompt_layout"])


# --- conversations ------------------------------------------------------------------------------
ROLES = ("system", "user", "assistant")


def conversation_prompt(template: str, turns) -> str:
    """The prompt for a conversation: ``[(role, text), ...]`` ending with a user turn.

    Earlier exchanges become ``template.format(prompt=question) + " " + answer + "\\n"`` (the
    multi-turn layout of `ademvl.data.llava_instruct`), the last question
    ``template.format(prompt=question)``. Consecutive user turns are one question, their texts
    joined by newlines (an unanswered turn gets no template of its own; an empty one adds nothing); system turns go first, each
    on its own line (empty ones are left out). Texts are taken as given, so a one-turn conversation
is exactly the prompt its question alone gives. A bare string is one user turn. Every caller that lays out a conversation
    (`AdemVLChat`, `ademvl serve`, `VLProcessor`, the harness adapters) uses this one rule.
    """
    if isinstance(turns, str):
        return template.format(prompt=turns)
    system, history, question = [], "", None
    for n, turn in enumerate(turns):
        try:
            role, text = turn
        except (TypeError, ValueError):
            raise ValueError(f"conversation turn {n} must be a (role, text) pair, not {turn!r}") from None
        if role not in ROLES or not isinstance(text, str):
            raise ValueError(f"conversation turn {n}: role must be one of {', '.join(ROLES)} and text a string, "
                             f"got ({role!r}, {type(text).__name__})")
        if role == "system":
            system.append(text)
        elif role == "user":
            question = "\n".join(part for part in (question, text) if part is not None and part.strip())
        elif question is None:
            raise ValueError(f"conversation turn {n}: an assistant turn must follow a user turn")
        else:
            history += f"{template.format(prompt=question)} {text}\n"
            question = None
    if question is None:
        raise ValueError("a conversation must end with a user turn (the question to answer)")
    prefix = "".join(f"{text}\n" for text in system if text.strip())
    return prefix + history + template.format(prompt=question)
