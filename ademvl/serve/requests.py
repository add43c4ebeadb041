"""A validated request → what the worker runs: example, prompt tokens, budget, stops, decoding settings.

Everything that can be wrong with a request is found here, before it reaches
the worker, so bad input costs no forward: the model name, a parameter this
server refuses, the messages, the image, the context length, a response format's
schema. Also turns pydantic's complaints into one line.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from fastapi.exceptions import RequestValidationError

from ..data.example import VLExample
from ..prompting import encode_for_model
from .conversation import conversation_prompt, valid_unicode
from .errors import RequestError
from .grammar import Grammars
from .images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image_url
from .sampling import SamplingParams
from .schema import ChatRequest, CompletionRequest


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
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1


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


def check_parameters(req: ChatRequest | CompletionRequest, settings: ServeSettings) -> None:
    """A 400 naming the first parameter this server refuses (or OpenAI does not have)."""
    refused = req.refused_parameters()
    if refused:
        name, why = refused[0]
        raise RequestError(f"{name}: {why}" + ("" if why.startswith("unrecognized") else "; leave it out"),
                           name, "unrecognized_parameter" if why.startswith("unrecognized") else
                           "unsupported_parameter")
    if req.n > settings.max_batch:
        raise RequestError(f"n: this server generates at most {settings.max_batch} choices at once "
                           f"(--max-batch), got {req.n}", "n", "invalid_value")


def sampling_params(req: ChatRequest | CompletionRequest, vocab_size: int, logprobs: bool, top_logprobs: int,
                    grammar=None) -> SamplingParams:
    """OpenAI's decoding parameters as the worker's `SamplingParams` (temperature 0 or omitted: greedy)."""
    bias = []
    for key, value in (req.logit_bias or {}).items():
        if not (key.isascii() and key.strip().isdigit() and len(key) <= 20) or not 0 <= int(key) < vocab_size:
            shown = key if len(key) <= 40 else key[:40] + "…"
            raise RequestError(f"logit_bias: {shown!r} is not a token id of this model (0 to {vocab_size - 1})",
                               "logit_bias", "invalid_value")
        bias.append((int(key), float(value)))
    temperature = req.temperature or 0.0  # omitted or 0: greedy, as the adapter was evaluated
    return SamplingParams(temperature=temperature if temperature >= MIN_TEMPERATURE else 0.0,
                          top_p=req.top_p or 1.0, seed=req.seed,
                          presence_penalty=req.presence_penalty or 0.0,
                          frequency_penalty=req.frequency_penalty or 0.0,
                          logprobs=logprobs, top_logprobs=top_logprobs, grammar=grammar, logit_bias=tuple(bias))


def prepare(req: ChatRequest, chat, settings: ServeSettings, context: int, token_chars: int = 1 << 30,
            grammars: Grammars | None = None) -> Prepared:
    """The chat request in the worker's terms, or a `RequestError` naming what is wrong with it.

    `token_chars`: `max_token_chars` of the tokenizer (the app computes it once)."""
    check_model(req.model, settings)
    check_parameters(req, settings)
    prompt, image_ref = conversation_prompt(req.messages, chat.prompt_template)
    grammars = grammars or Grammars(chat.tokenizer, vocab_size(chat.model))
    sampling = sampling_params(req, grammars.vocab_size, bool(req.logprobs), req.top_logprobs or 0)
    prepared = _prepared(prompt, image_ref, req, chat, settings, context, token_chars, sampling)
    if req.response_format is not None:  # compiled last: the costliest check
        prepared.sampling = replace(sampling, grammar=grammars.compile(req.response_format))
    return prepared


def prepare_completion(req: CompletionRequest, chat, settings: ServeSettings, context: int,
                       token_chars: int = 1 << 30, vocab: int | None = None) -> Prepared:
    """A completions request: its prompt continued as is (no template), its image in the image slot."""
    check_model(req.model, settings)
    check_parameters(req, settings)
    prompt = valid_unicode(req.text(), "prompt")
    if not prompt.strip():
        raise RequestError("prompt: there is no text to continue", "prompt")
    image_ref = (req.image_url.url, "image_url") if req.image_url is not None else None
    sampling = sampling_params(req, vocab or vocab_size(chat.model), req.logprobs is not None, req.logprobs or 0)
    return _prepared(prompt, image_ref, req, chat, settings, context, token_chars, sampling)


def vocab_size(model) -> int:
    """Width of the LLM's logits (what `logit_bias` ids and grammars index)."""
    head = model.get_output_embeddings()
    return int(getattr(head, "out_features", 0) or head.weight.shape[0])


def _prepared(prompt: str, image_ref, req, chat, settings: ServeSettings, context: int, token_chars: int,
              sampling: SamplingParams) -> Prepared:
    check_prompt_length(prompt, chat.tokenizer, context, token_chars)  # before the image is decoded, too
    image = None
    if image_ref is not None:
        image = decode_image_url(image_ref[0], settings.max_image_bytes, settings.max_image_pixels, image_ref[1])
    elif settings.require_image:
        if isinstance(req, CompletionRequest):
            raise RequestError("image_url: this adapter answers questions about an image; add \"image_url\": "
                               "{\"url\": \"data:image/...;base64,...\"}", "image_url", "image_required")
        raise RequestError("messages: this adapter answers questions about an image; add an image_url part "
                           "(data:image/...;base64) to a user message", "messages", "image_required")
    example = VLExample(id=uuid.uuid4().hex, prompt=prompt, answer="", image=image)
    prompt_tokens = len(encode_for_model(chat.model, chat.tokenizer, prompt, None, example.has_image).input_ids)
    asked = req.requested_max_tokens()
    max_tokens = asked if asked is not None else min(settings.max_tokens, context - prompt_tokens)
    if prompt_tokens + max(max_tokens, 1) > context:
        text = "prompt" if isinstance(req, CompletionRequest) else "messages"
        param = "max_tokens" if asked is not None and prompt_tokens < context else text
        raise RequestError(f"this model's context is {context} tokens; the {text} take {prompt_tokens} "
                           f"and max_tokens asks for {max(max_tokens, 1)} more: shorten the conversation "
                           "or lower max_tokens", param, "context_length_exceeded")
    return Prepared(example, prompt_tokens, max_tokens, req.stop_strings(), sampling, req.n)


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
