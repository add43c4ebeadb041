"""`/metrics`: the server's counters in Prometheus' text format (prometheus_client, one registry per app).

Requests by endpoint and status, prompt and completion tokens, batch sizes (rows
per `generate` call), request latency (until the last byte, streams included)
and the queue depth (requests waiting for a batch). Each app has its own
registry, so two servers in one process (tests) count apart.
"""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

ENDPOINTS = ("/v1/chat/completions", "/v1/completions")


class ServeMetrics:
    def __init__(self, queue_depth):
        self.registry = CollectorRegistry()
        self.requests = Counter("ademvl_requests", "Requests answered, by endpoint and HTTP status",
                                ("endpoint", "status"), registry=self.registry)
        self.prompt_tokens = Counter("ademvl_prompt_tokens", "Prompt tokens of answered requests",
                                     ("endpoint",), registry=self.registry)
        self.completion_tokens = Counter("ademvl_completion_tokens", "Tokens generated, all choices",
                                         ("endpoint",), registry=self.registry)
        self.batch_size = Histogram("ademvl_batch_size_rows", "Rows per generate call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        self.latency = Histogram("ademvl_request_latency_seconds", "Time from request to last byte",
                                 ("endpoint",), registry=self.registry,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.queue = Gauge("ademvl_queue_depth", "Requests waiting for a batch", registry=self.registry)
        self.queue.set_function(queue_depth)

    def tokens(self, endpoint: str, prompt: int, completion: int) -> None:
        self.prompt_tokens.labels(endpoint).inc(prompt)
        self.completion_tokens.labels(endpoint).inc(completion)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware: each generation endpoint's status and latency, taken when its last byte is sent."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in ENDPOINTS:
            return await self.app(scope, receive, send)
        endpoint, start, status = scope["path"], time.perf_counter(), [500]

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
                self.metrics.requests.labels(endpoint, str(status[0])).inc()

        await self.app(scope, receive, counted_send)
