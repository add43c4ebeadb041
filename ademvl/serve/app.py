"""The FastAPI app: OpenAI's chat-completions and models routes, server info, and the web page.

A request is checked (`requests.prepare`) before it is queued for the worker,
so bad input gets a 4xx with OpenAI's error body and costs no forward; the
route then relays the worker's events as one reply or as a stream.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .errors import RequestError, error_body
from .guard import Guard
from .page import render_page
from .requests import ServeSettings, check_model, context_length, from_validation_error, max_token_chars, prepare
from .responses import Reply, generation_error, sse
from .schema import ChatRequest
from .worker import BatchWorker, Job


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
    token_chars = max_token_chars(tokenizer)  # bounds what a prompt's length check has to tokenize

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
    app.add_middleware(Guard, max_body_bytes=settings.body_limit(), api_key=settings.api_key)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError):
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError):
        bad = from_validation_error(error)
        return JSONResponse(bad.body(), status_code=bad.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {error.detail}", None,
                                       f"http_{error.status_code}"), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):  # a bug: still OpenAI's error body, not plain text
        return JSONResponse(error_body(f"internal error: {type(error).__name__}: {str(error)[:200]}", None,
                                       "internal_error", "server_error"), status_code=500)

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
        check_model(model_id, settings)
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        prepared = await run_in_threadpool(prepare, req, chat, settings, context, token_chars)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job = Job(example=prepared.example, max_tokens=prepared.max_tokens, stop=prepared.stop,
                  sampling=prepared.sampling,
                  on_event=lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        worker.submit(job)
        reply = Reply(settings.model_name, prepared.prompt_tokens)

        if not req.stream:
            try:
                while (event := await events.get())[0] == "delta":
                    pass
            finally:
                job.cancelled = True  # a client that hung up frees its row
            if event[0] == "error":
                return JSONResponse(generation_error(event[1]), status_code=500)
            _, finish_reason, completion_tokens, content = event
            return reply.completion(content, finish_reason, completion_tokens)

        async def stream():
            try:
                yield reply.chunk({"role": "assistant", "content": ""})
                while (event := await events.get())[0] == "delta":
                    yield reply.chunk({"content": event[1]})
                if event[0] == "error":
                    yield sse(generation_error(event[1]))
                    return
                yield reply.chunk({}, event[1])
                if req.stream_options is not None and req.stream_options.include_usage:
                    yield reply.chunk(None, usage=reply.usage(event[2]))  # OpenAI's usage chunk: no choices
                yield sse("[DONE]")
            finally:
                job.cancelled = True

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app
