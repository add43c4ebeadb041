"""A validated chat request → what the worker runs: example, prompt tokens, budget, stops, sampling.

Everything that can be wrong with a request is found here, before it reaches
the worker, so bad input costs no forward: the model name, the messages, the
image, the context length. Also turns pydantic's complaints into one line.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fastapi.exceptions import RequestValidationError

from ..data.example import VLExample
from ..collate import prompt_layout_of
from ..prompting import encode_sample
from .conversation import conversation_prompt
from .errors import RequestError
from .images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image_url
from .schema import ChatRequest


@dataclass
class ServeSettings:
    """What `ademvl serve`'s options set; defaults suit the demo model."""

    model_name: str = "ademvl"
    checkpoint: str | None = None
    max_batch: int = 8
    batch_wait: float = 0.005  # seconds the worker waits for company before a batch starts
    max_tokens: int = 64  # when a request gives none (capped by what the context leaves)
    context_length: int | None = None  # None: the LLM's max_position_embeddings
    require_image: bool = False
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class Prepared:
    example: VLExample
    prompt_tokens: int  # image placeholders included: what usage reports
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    sampling: tuple[float, float] | None = None  # (temperature, top_p); None = greedy


def context_length(model) -> int:
    """Positions the LLM has for input + answer (the method's placeholders are in the input)."""
    from ..context import llm_context_length

    positions = llm_context_length(model)
    if not positions:
        raise ValueError("the LLM's config names no context length; pass --context-length")
    return positions


def check_model(name: str, settings: ServeSettings) -> None:
    if name != settings.model_name:
        raise RequestError(f"model '{name}' not found: this server serves '{settings.model_name}'",
                           "model", "model_not_found", 404)


def prepare(req: ChatRequest, chat, settings: ServeSettings, context: int) -> Prepared:
    """The request in the worker's terms, or a `RequestError` naming what is wrong with it."""
    check_model(req.model, settings)
    prompt, image_ref = conversation_prompt(req.messages, chat.prompt_template)
    image = None
    if image_ref is not None:
        image = decode_image_url(image_ref[0], settings.max_image_bytes, settings.max_image_pixels, image_ref[1])
    elif settings.require_image:
        raise RequestError("messages: this adapter answers questions about an image; add an image_url part "
                           "(data:image/...;base64) to a user message", "messages", "image_required")
    example = VLExample(id=uuid.uuid4().hex, prompt=prompt, answer="", image=image)
    prompt_tokens = len(encode_sample(chat.tokenizer, prompt, None, example.has_image,
                                      chat.model.method.num_input_tokens,
                                      num_prefix_tokens=chat.model.method.num_prefix_tokens,
                                      prompt_layout=prompt_layout_of(chat.model)).input_ids)
    asked = req.requested_max_tokens()
    max_tokens = asked if asked is not None else min(settings.max_tokens, context - prompt_tokens)
    if prompt_tokens + max(max_tokens, 1) > context:
        param = "max_tokens" if asked is not None and prompt_tokens < context else "messages"
        raise RequestError(f"this model's context is {context} tokens; the messages take {prompt_tokens} "
                           f"and max_tokens asks for {max(max_tokens, 1)} more: shorten the conversation "
                           "or lower max_tokens", param, "context_length_exceeded")
    temperature = req.temperature or 0.0  # omitted or 0: greedy, as the adapter was evaluated
    sampling = (temperature, req.top_p or 1.0) if temperature > 0 else None
    return Prepared(example, prompt_tokens, max_tokens, req.stop_strings(), sampling)


def from_validation_error(error: RequestValidationError) -> RequestError:
    """Pydantic's most specific complaint as one line naming the field (or the JSON syntax error).

    A union field (content: a string or a list of parts) fails once per branch; the
    deepest location is the branch the client meant (a list with one bad part)."""
    first = max(error.errors(), key=lambda e: len(e.get("loc", ())))
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", first.get("msg", ""))
        return RequestError(f"malformed JSON body: {detail}", None, "invalid_json")
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    # Unions (str | list[part]) prefix the branch tried; keep the request's own field path.
    loc = [part for part in loc if not part.startswith(("str", "list[", "function-"))]
    loc = [part for i, part in enumerate(loc) if i == 0 or part != loc[i - 1]]  # a part's tag: image_url.image_url
    field = ".".join(loc) or "body"
    return RequestError(f"{field}: {first.get('msg', 'invalid value')}", field, "invalid_value")
