"""`ademvl serve`: an OpenAI-compatible chat-completions (and completions) server and a web chat page.

    app/routes  `app.py`           FastAPI app: /v1/chat/completions, /v1/completions, /v1/models, /info,
                                   /metrics, the page
    schema      `schema.py`        the OpenAI request bodies, checked by pydantic; what is refused, and why
    gate        `guard.py`         API key (401), JSON content type (415) and body-size limit (413), before
                                   any route reads the body
    checks      `requests.py`      a request → the worker's example, limits and decoding settings, or a 4xx
                                   naming the problem
    grammars    `grammar.py`       response_format → an xgrammar grammar the answer is decoded under
    decoding    `sampling.py`      each row's next token: temperature, top-p, its own seeded generator,
                                   OpenAI's penalties, logit_bias, the grammar, logprobs
    replies     `responses.py`     OpenAI's completion, stream-chunk, logprobs and usage shapes
    metrics     `metrics.py`       /metrics in Prometheus' text format
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
