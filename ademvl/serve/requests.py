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
from ..prompting import encode_for_model
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
    max_body_bytes: int | None = None  # None: the image limit in base64 + 4 MB (`body_limit`)
    api_key: str | None = None  # when set, /v1/* and /info need "Authorization: Bearer KEY"

    def body_limit(self) -> int:
        """Largest request body read: the largest image as base64 (4/3 of its bytes) and room for text."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_image_bytes * 4 // 3 + 4 * 1024 * 1024


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


MIN_TEMPERATURE = 1e-3  # below this, sampling is greedy decoding (its limit); 1e-300 would divide logits into inf


def check_model(name: str, settings: ServeSettings) -> None:
    if name != settings.model_name:
        shown = name if len(name) <= 80 else name[:80] + "…"
        raise RequestError(f"model {shown!r} not found: this server serves '{settings.model_name}'",
                           "model", "model_not_found", 404)


def max_token_chars(tokenizer) -> int:
    """The most characters one token of `tokenizer` stands for (its longest vocabulary entry: a byte-level
    entry has one character per byte, and text has at most one character per byte), so a text of C
    characters is at least C / max_token_chars tokens."""
    return max((len(token) for token in tokenizer.get_vocab()), default=1) or 1


def check_prompt_length(prompt: str, tokenizer, context: int, token_chars: int) -> None:
    """Refuse a prompt that cannot fit the context before the whole of it is tokenized: one over
    `context` x `token_chars` characters cannot be fewer tokens (a 20 MB message is refused in
    microseconds), and one whose first 8 x `context` characters already take more than the context
    (plus a margin for the cut) is refused after tokenizing only those."""
    def refuse(what: str) -> RequestError:
        return RequestError(f"this model's context is {context} tokens; the messages take {what}: shorten the "
                            "conversation", "messages", "context_length_exceeded")

    if len(prompt) > context * token_chars:
        raise refuse(f"{len(prompt)} characters, which no tokenization fits in {context} tokens")
    window = 8 * context
    if len(prompt) > window:
        head = len(tokenizer(prompt[:window], add_special_tokens=False)["input_ids"])
        if head > context + 16:
            raise refuse(f"more than {context} tokens ({head} in their first {window} characters)")


def prepare(req: ChatRequest, chat, settings: ServeSettings, context: int, token_chars: int = 1 << 30) -> Prepared:
    """The request in the worker's terms, or a `RequestError` naming what is wrong with it.

    `token_chars`: `max_token_chars` of the tokenizer (the app computes it once)."""
    check_model(req.model, settings)
    prompt, image_ref = conversation_prompt(req.messages, chat.prompt_template)
    check_prompt_length(prompt, chat.tokenizer, context, token_chars)  # before the image is decoded, too
    image = None
    if image_ref is not None:
        image = decode_image_url(image_ref[0], settings.max_image_bytes, settings.max_image_pixels, image_ref[1])
    elif settings.require_image:
        raise RequestError("messages: this adapter answers questions about an image; add an image_url part "
                           "(data:image/...;base64) to a user message", "messages", "image_required")
    example = VLExample(id=uuid.uuid4().hex, prompt=prompt, answer="", image=image)
    prompt_tokens = len(encode_for_model(chat.model, chat.tokenizer, prompt, None, example.has_image).input_ids)
    asked = req.requested_max_tokens()
    max_tokens = asked if asked is not None else min(settings.max_tokens, context - prompt_tokens)
    if prompt_tokens + max(max_tokens, 1) > context:
        param = "max_tokens" if asked is not None and prompt_tokens < context else "messages"
        raise RequestError(f"this model's context is {context} tokens; the messages take {prompt_tokens} "
                           f"and max_tokens asks for {max(max_tokens, 1)} more: shorten the conversation "
                           "or lower max_tokens", param, "context_length_exceeded")
    temperature = req.temperature or 0.0  # omitted or 0: greedy, as the adapter was evaluated
    sampling = (temperature, req.top_p or 1.0) if temperature >= MIN_TEMPERATURE else None
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
    loc = [part for part in loc if not part.startswith(("str", "list[", "function-", "constrained-"))]
    loc = [part for i, part in enumerate(loc) if i == 0 or part != loc[i - 1]]  # a part's tag: image_url.image_url
    field = ".".join(loc) or "body"
    return RequestError(f"{field}: {first.get('msg', 'invalid value')}", field, "invalid_value")
