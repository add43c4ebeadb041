"""`ademvl serve`: an OpenAI-compatible chat-completions server and a web chat page.

    app/routes  `app.py`           FastAPI app: /v1/chat/completions, /v1/models, /info, the page
    schema      `schema.py`        the OpenAI request body, checked by pydantic
    gate        `guard.py`         API key (401) and body-size limit (413), before any route reads the body
    checks      `requests.py`      a request → the worker's example and limits, or a 4xx naming the problem
    replies     `responses.py`     OpenAI's completion, stream-chunk and usage shapes
    prompts     `conversation.py`  messages → one prompt (+ one image) in the adapter's layout
    images      `images.py`        data: URLs → PIL images, with size limits
    batching    `worker.py`        one thread owns the model; concurrent requests share a batch
    per-request `rows.py`          one request's tokens → text, stop strings, streamed deltas
    web page    `page.py`          a single HTML page that streams from the same endpoint

The model is loaded once and only the worker thread runs it, so that concurrent
requests are batched together; the visual inputs go with each call (nothing is
stored on the model between calls).
"""
from .app import create_app
from .errors import RequestError
from .requests import ServeSettings
from .worker import BatchWorker, Job

__all__ = ["create_app", "ServeSettings", "RequestError", "BatchWorker", "Job"]
