"""The chat template a `VLProcessor` carries: Hugging Face chat messages → the model's prompt.

It renders a conversation as `ademvl.prompting` lays one out, so that
`processor.apply_chat_template(messages)` and `pipeline("image-text-to-text", text=messages)` prompt
the model exactly as training, `AdemVLChat` and `ademvl serve` do:

- the messages become one question (`conversation_prompt`'s rule, written once more in Jinja because
  a chat template is Jinja: system/developer lines first, consecutive user turns one question joined
  by newlines, earlier exchanges ``template(question) + " " + answer + "\\n"``, the last question in
  the adapter's template); a message's text parts are joined by newlines, its image parts mark the
  conversation as having the image;
- then the layout the adapter was trained in: plain ``[bos] "Image: " <image> "\\n" prompt``, chat
  (that user turn through the LLM's own chat template, the generation prompt added), or official.

`<image>` stands where the method's visual tokens go. The processor reads a rendered prompt back
(`read_rendered`) and tokenises it through `encode_sample`, piece by piece as training did, so a
rendered conversation is token-identical to the project's prompt builder; the test in
tests/test_prompt_contract.py holds the two renderings of the contract together.
"""
from __future__ import annotations

import json

from .prompting import IMAGE_PREFIX, NO_IMAGE_PREFIX, SEPARATOR, check_template

IMAGE_TOKEN = "<image>"
SIGNATURE = "{#- ademvl prompt layout "  # first characters of every template made here
_MARK = "\ue001"  # a private-use character: where the question goes in a rendered shell

_CONVERSATION = """\
{%- set ns = namespace(system="", history="", question=none, images=0, text="") -%}
{%- for message in messages -%}
{%- if message['content'] is string -%}
{%- set ns.text = message['content'] -%}
{%- else -%}
{%- set ns.text = none -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'text' -%}
{%- set ns.text = part['text'] if ns.text is none else ns.text ~ '\\n' ~ part['text'] -%}
{%- elif part['type'] == 'image' -%}
{%- set ns.images = ns.images + 1 -%}
{%- else -%}
{{- raise_exception("ademvl takes images and text, not " ~ part['type']) -}}
{%- endif -%}
{%- endfor -%}
{%- set ns.text = "" if ns.text is none else ns.text -%}
{%- endif -%}
{%- if message['role'] in ('system', 'developer') -%}
{%- if ns.text | trim -%}{%- set ns.system = ns.system ~ ns.text ~ '\\n' -%}{%- endif -%}
{%- elif message['role'] == 'user' -%}
{%- set keep_question = ns.question is not none and (ns.question | trim) != "" -%}
{%- set keep_text = (ns.text | trim) != "" -%}
{%- set ns.question = (ns.question if keep_question else "") ~ ('\\n' if keep_question and keep_text else "")
    ~ (ns.text if keep_text else "") -%}
{%- elif message['role'] == 'assistant' -%}
{%- if ns.question is none -%}
{{- raise_exception("conversation turn " ~ loop.index0 ~ ": an assistant turn must follow a user turn") -}}
{%- endif -%}
{%- set ns.history = ns.history ~ (ask | join(ns.question)) ~ ' ' ~ ns.text ~ '\\n' -%}
{%- set ns.question = none -%}
{%- else -%}
{{- raise_exception("conversation turn " ~ loop.index0 ~ ": role must be one of system, user, assistant") -}}
{%- endif -%}
{%- endfor -%}
{%- if ns.question is none -%}
{{- raise_exception("a conversation must end with a user turn (the question to answer)") -}}
{%- endif -%}
{%- set prompt = ns.system ~ ns.history ~ (ask | join(ns.question)) -%}
{%- set head = image_prefix ~ image_token if ns.images else no_image_prefix -%}
{%- set bos = bos_token if bos_token is defined and bos_token else "" -%}
"""


def _literal(value) -> str:
    return json.dumps(value)  # a JSON string / list of strings is a Jinja literal too


def chat_template_for(layout: str, prompt_template: str | None, tokenizer, num_visual_tokens: int = 0) -> str:
    """The Jinja chat template of a model trained in `layout` ("plain", "chat", "official") with
    `prompt_template` ("{prompt}" marks the question; None: the bare question)."""
    template = check_template(prompt_template or "{prompt}")
    ask = template.format(prompt=_MARK).split(_MARK)  # template.format(prompt=q) == q.join(ask)
    head = (f"{SIGNATURE}{layout} -#}}\n{{%- set ask = {_literal(ask)} -%}}\n"
            f"{{%- set image_prefix = {_literal(IMAGE_PREFIX)} -%}}\n{{%- set image_token = {_literal(IMAGE_TOKEN)} -%}}\n"
            f"{{%- set no_image_prefix = {_literal(NO_IMAGE_PREFIX)} -%}}\n") + _CONVERSATION
    if layout == "plain":
        return head + f"{{{{- bos ~ head ~ {_literal(SEPARATOR)} ~ prompt -}}}}"
    if layout == "official":
        body = "bos ~ head ~ prompt" if num_visual_tokens else "bos ~ prompt"
        return head + f"{{{{- {body} -}}}}"
    if layout == "chat":
        llm_template = getattr(tokenizer, "chat_template", None)
        if not isinstance(llm_template, str) or not llm_template:
            raise ValueError("prompt_layout 'chat' needs a tokenizer with a chat template; this one has none")
        return head + (f"{{%- set messages = [{{'role': 'user', 'content': head ~ {_literal(SEPARATOR)} ~ prompt}}] -%}}"
                       "{%- set add_generation_prompt = true %}") + llm_template
    raise ValueError(f"prompt_layout must be one of plain, chat, official, got {layout!r}")


def is_ademvl_template(template) -> bool:
    return isinstance(template, str) and template.startswith(SIGNATURE)


def _shells(layout: str, tokenizer, num_visual_tokens: int):
    """`(text before the prompt, text after it, has_image)` of every rendering the layout gives
    (has_image None: the rendering does not say)."""
    bos = tokenizer.bos_token if tokenizer.bos_token_id is not None and tokenizer.bos_token else ""
    if layout == "official" and not num_visual_tokens:
        yield bos, "", None
        return
    for has_image, head in ((True, IMAGE_PREFIX + IMAGE_TOKEN), (False, NO_IMAGE_PREFIX)):
        if layout == "plain":
            yield bos + head + SEPARATOR, "", has_image
        elif layout == "official":
            yield bos + head, "", has_image
        elif layout == "chat":
            text = tokenizer.apply_chat_template([{"role": "user", "content": head + SEPARATOR + _MARK}],
                                                 tokenize=False, add_generation_prompt=True)
            before, _, after = text.partition(_MARK)
            yield before, after, has_image


def read_rendered(text: str, layout: str, tokenizer, num_visual_tokens: int = 0):
    """`(prompt, has_image)` when `text` is a prompt this layout's chat template rendered, else None
    (a bare question, which the processor wraps in the adapter's template itself)."""
    if not isinstance(text, str):
        return None
    for before, after, has_image in _shells(layout, tokenizer, num_visual_tokens):
        if not before and not after:
            return None  # nothing marks a rendering (official layout, no visual tokens, no bos)
        if text.startswith(before) and text.endswith(after) and len(text) >= len(before) + len(after):
            return text[len(before):len(text) - len(after)], has_image
    return None


def generation_prompt_ids(layout: str, tokenizer) -> list[int]:
    """Token ids that end every chat-layout prompt (the LLM's generation prompt, e.g.
    ``<|im_end|>\\n<|im_start|>assistant\\n``), where the answer starts; [] for other layouts."""
    if layout != "chat":
        return []
    _, after, _ = next(_shells(layout, tokenizer, 0))
    return tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
