"""The FastAPI app: OpenAI's chat-completions and models routes, server info, and the web page.

Every request is checked here (model name, messages, image, context length)
before it reaches the worker, so bad input costs no forward and gets a 4xx with
OpenAI's error body; the worker only ever sees requests it can run.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..data.example import VLExample
from ..prompting import encode_sample
from .conversation import conversation_prompt
from .errors import RequestError, error_body
from .images import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, decode_image_url
from .page import render_page
from .schema import ChatRequest
from .worker import BatchWorker, Job


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


def context_length(model) -> int:
    """Positions the LLM has for input + answer, less the method's prefix tokens."""
    positions = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if not positions:
        raise ValueError("the LLM's config has no max_position_embeddings; pass --context-length")
    return positions - getattr(model.method, "num_prefix_tokens", 0)


def _validation_message(error: RequestValidationError) -> RequestError:
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


def create_app(chat, settings: ServeSettings | None = None) -> FastAPI:
    """An app serving `chat` (an `ademvl.integrations.AdemVLChat`: model, tokenizer, processor, template).

    The worker thread starts with the app and stops with it.
    """
    settings = settings or ServeSettings()
    model, tokenizer = chat.model, chat.tokenizer
    context = settings.context_length or context_length(model)
    worker = BatchWorker(model, tokenizer, chat.image_processor, max_length=context,
                         max_batch=settings.max_batch, batch_wait=settings.batch_wait)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(title="ademvl serve", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.worker = worker
    app.state.settings = settings

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        bad = _validation_message(error)
        return JSONResponse(bad.body(), status_code=bad.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {error.detail}", None,
                                       f"http_{error.status_code}"), status_code=error.status_code)

    def info() -> dict:
        return {"model": settings.model_name, "method": model.config.method, "checkpoint": settings.checkpoint,
                "llm": model.config.llm_name_or_path, "vision": model.config.vision_name_or_path,
                "prompt_template": chat.prompt_template, "context_length": context,
                "default_max_tokens": settings.max_tokens, "max_batch": settings.max_batch,
                "requires_image": settings.require_image,
                "batches": {str(size): n for size, n in sorted(worker.batch_sizes.items())}}

    def model_card() -> dict:
        return {"id": settings.model_name, "object": "model", "created": created, "owned_by": "ademvl"}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return render_page(info())

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def server_info():
        return info()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def one_model(model_id: str):
        check_model(model_id)
        return model_card()

    def check_model(name: str) -> None:
        if name != settings.model_name:
            raise RequestError(f"model '{name}' not found: this server serves '{settings.model_name}'",
                               "model", "model_not_found", 404)

    def prepare(req: ChatRequest) -> tuple[VLExample, int, int]:
        """The request as the worker's example, its prompt tokens and its answer budget (or RequestError)."""
        prompt, image_ref = conversation_prompt(req.messages, chat.prompt_template)
        image = None
        if image_ref is not None:
            image = decode_image_url(image_ref[0], settings.max_image_bytes, settings.max_image_pixels, image_ref[1])
        elif settings.require_image:
            raise RequestError("messages: this adapter answers questions about an image; add an image_url part "
                               "(data:image/...;base64) to a user message", "messages", "image_required")
        example = VLExample(id=uuid.uuid4().hex, prompt=prompt, answer="", image=image)
        prompt_tokens = len(encode_sample(tokenizer, prompt, None, example.has_image,
                                          model.method.num_input_tokens).input_ids)
        asked = req.requested_max_tokens()
        max_tokens = asked if asked is not None else min(settings.max_tokens, context - prompt_tokens)
        if prompt_tokens + max(max_tokens, 1) > context:
            param = "max_tokens" if asked is not None and prompt_tokens < context else "messages"
            raise RequestError(f"this model's context is {context} tokens; the messages take {prompt_tokens} "
                               f"and max_tokens asks for {max(max_tokens, 1)} more: shorten the conversation "
                               "or lower max_tokens", param, "context_length_exceeded")
        return example, prompt_tokens, max_tokens

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        check_model(req.model)
        example, prompt_tokens, max_tokens = await run_in_threadpool(prepare, req)
        temperature = req.temperature or 0.0  # omitted or 0: greedy, as the adapter was evaluated
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job = Job(example=example, max_tokens=max_tokens, stop=req.stop_strings(),
                  sampling=(temperature, req.top_p or 1.0) if temperature > 0 else None,
                  on_event=lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        worker.submit(job)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": settings.model_name}

        def usage(completion_tokens: int) -> dict:
            return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens}

        if not req.stream:
            try:
                while (event := await events.get())[0] == "delta":
                    pass
            finally:
                job.cancelled = True  # a client that hung up frees its row
            if event[0] == "error":
                return JSONResponse(error_body(event[1], None, "generation_failed", "server_error"), status_code=500)
            _, finish_reason, completion_tokens, content = event
            return {**meta, "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "logprobs": None, "finish_reason": finish_reason}],
                    "usage": usage(completion_tokens)}

        def chunk(delta: dict | None, finish_reason: str | None = None, **extra) -> str:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish_reason}]
            return f"data: {json.dumps({**meta, 'object': 'chat.completion.chunk', 'choices': choices, **extra})}\n\n"

        async def stream():
            try:
                yield chunk({"role": "assistant", "content": ""})
                while (event := await events.get())[0] == "delta":
                    yield chunk({"content": event[1]})
                if event[0] == "error":
                    yield f"data: {json.dumps(error_body(event[1], None, 'generation_failed', 'server_error'))}\n\n"
                    return
                yield chunk({}, event[1])
                if req.stream_options is not None and req.stream_options.include_usage:
                    yield chunk(None, usage=usage(event[2]))  # OpenAI's usage chunk: no choices
                yield "data: [DONE]\n\n"
            finally:
                job.cancelled = True

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
