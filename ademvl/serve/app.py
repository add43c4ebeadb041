"""The FastAPI app: OpenAI's chat-completions, completions and models routes, server info, Prometheus
metrics, and the web page.

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
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .errors import RequestError, error_body
from .guard import Guard
from .page import render_page
from .grammar import Grammars
from .metrics import MetricsMiddleware, ServeMetrics
from .requests import (Prepared, ServeSettings, check_model, context_length, from_validation_error, max_token_chars,
                       prepare, prepare_completion, vocab_size)
from .responses import Reply, generation_error, sse
from .schema import ChatRequest, CompletionRequest
from .worker import BatchWorker, Job


def create_app(chat, settings: ServeSettings | None = None) -> FastAPI:
    """An app serving `chat` (an `ademvl.integrations.AdemVLChat`: model, tokenizer, processor, template).

    The worker thread starts with the app and stops with it.
    """
    settings = settings or ServeSettings()
    model, tokenizer = chat.model, chat.tokenizer
    context = settings.context_length or context_length(model)
    worker = BatchWorker(model, tokenizer, chat.image_processor, max_length=context,
                         max_batch=settings.max_batch, batch_wait=settings.batch_wait,
                         on_batch=lambda rows: metrics.batch_size.observe(rows))
    metrics = ServeMetrics(lambda: worker.queue_depth)
    grammars = Grammars(tokenizer, vocab_size(model))
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
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: refusals by the guard count too

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

    async def answer(prepared: Prepared, reply: Reply, endpoint: str, stream: bool, include_usage: bool):
        """Queue `prepared` for the worker and relay its events: one reply with every choice, or a stream."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        job = Job(example=prepared.example, max_tokens=prepared.max_tokens, stop=prepared.stop,
                  sampling=prepared.sampling, n=prepared.n,
                  on_event=lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        worker.submit(job)

        if not stream:
            done: dict[int, tuple] = {}
            try:
                while len(done) < prepared.n:
                    event = await events.get()
                    if event[0] == "error":
                        return JSONResponse(generation_error(event[1]), status_code=500)
                    if event[0] == "done":
                        _, reason, tokens, content, choice, entries = event
                        done[choice] = (content, reason, entries, tokens)
            finally:
                job.cancelled = True  # a client that hung up frees its rows
            completion_tokens = sum(d[3] for d in done.values())
            metrics.tokens(endpoint, prepared.prompt_tokens, completion_tokens)
            return reply.completion([done[i][:3] for i in range(prepared.n)], completion_tokens)

        async def chunks():
            try:
                if reply.chat:
                    for choice in range(prepared.n):
                        yield reply.chunk({"role": "assistant", "content": ""}, choice=choice)
                finished, completion_tokens = 0, 0
                while finished < prepared.n:
                    event = await events.get()
                    if event[0] == "error":
                        yield sse(generation_error(event[1]))
                        return
                    if event[0] == "delta":
                        _, text, choice, entries = event
                        yield reply.chunk({"content": text}, choice=choice, entries=entries)
                    else:
                        _, reason, tokens, _, choice, _ = event
                        finished, completion_tokens = finished + 1, completion_tokens + tokens
                        yield reply.chunk({} if reply.chat else {"content": ""}, reason, choice=choice)
                metrics.tokens(endpoint, prepared.prompt_tokens, completion_tokens)
                if include_usage:
                    yield reply.chunk(None, usage=reply.usage(completion_tokens))  # OpenAI's usage chunk: no choices
                yield sse("[DONE]")
            finally:
                job.cancelled = True

        return StreamingResponse(chunks(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def include_usage(req) -> bool:
        return req.stream_options is not None and req.stream_options.include_usage

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest):
        prepared = await run_in_threadpool(prepare, req, chat, settings, context, token_chars, grammars)
        reply = Reply(settings.model_name, prepared.prompt_tokens, chat=True, logprobs=bool(req.logprobs))
        return await answer(prepared, reply, "/v1/chat/completions", req.stream, include_usage(req))

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest):
        prepared = await run_in_threadpool(prepare_completion, req, chat, settings, context, token_chars,
                                           grammars.vocab_size)
        reply = Reply(settings.model_name, prepared.prompt_tokens, chat=False, logprobs=req.logprobs is not None)
        return await answer(prepared, reply, "/v1/completions", req.stream, include_usage(req))

    @app.get("/metrics")
    async def prometheus_metrics():
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app
