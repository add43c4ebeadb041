"""What every request passes before any route runs: the API key and the body-size limit (ASGI middleware).

A route's body is read and parsed whole before its handler runs, so the size
limit must sit in front of it: a body whose Content-Length is over the limit is
refused (413) without being read into memory, and one sent without a length
(chunked) is counted as it arrives and refused once it passes the limit. The
refused body is drained (read and dropped, up to `DRAIN_FACTOR` times the
limit) before the answer, so clients that write their whole body before reading
get the 413 instead of a reset connection.

A POST to `/v1/*` must say its body is JSON (`Content-Type: application/json`,
what OpenAI clients send); another type is a 415 that says so, before any parsing.

With an API key, `/v1/*`, `/info` and `/metrics` need `Authorization: Bearer KEY` (what
OpenAI clients send); the page (`/`) and `/health` stay open, and the page asks
for the key when the API answers 401.
"""
from __future__ import annotations

import hmac
import json

from starlette.exceptions import HTTPException

from .errors import error_body

PROTECTED = ("/v1/", "/info", "/metrics")
DRAIN_FACTOR = 4  # a refused body up to 4x the limit is read and dropped; a larger one is cut off


async def _answer(send, status: int, body: dict, headers: tuple = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": data})


async def _drain(receive, limit: int) -> None:
    """Read and drop the rest of a refused body, at most `limit` bytes (then the connection is cut)."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class Guard:
    """ASGI middleware: 401 without the API key (when one is set), 415 for a /v1/ POST that is not JSON,
    413 for a body over `max_body_bytes`."""

    def __init__(self, app, max_body_bytes: int, api_key: str | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"")
        return hmac.compare_digest(given, b"Bearer " + self.api_key.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"  # body not sent yet
        drain_limit = 0 if expects_continue else DRAIN_FACTOR * self.max_body_bytes
        if self.api_key and scope["path"].startswith(PROTECTED) and not self._authorized(headers):
            await _drain(receive, drain_limit)
            return await _answer(send, 401, error_body(
                "missing or wrong API key: send 'Authorization: Bearer KEY' (the key given to ademvl serve "
                "--api-key; OpenAI clients send their api_key so)", None, "invalid_api_key"),
                ((b"www-authenticate", b"Bearer"),))
        if scope.get("method") == "POST" and scope["path"].startswith("/v1/"):
            given = headers.get(b"content-type", b"").decode("latin-1")
            if given.split(";")[0].strip().lower() != "application/json":
                await _drain(receive, drain_limit)
                shown = repr(given[:80]) if given else "none"
                return await _answer(send, 415, error_body(
                    f"Content-Type must be application/json (got {shown}): send the body as JSON with "
                    "'Content-Type: application/json'", None, "unsupported_media_type"))
        try:
            length = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await _answer(send, 400, error_body("malformed Content-Length header", None, "invalid_request"))
        if length > self.max_body_bytes:
            if length <= drain_limit:
                await _drain(receive, drain_limit)
            return await _answer(send, 413, self._too_large(length))

        received = 0

        async def counted_receive():
            """A chunked body is counted as it comes; past the limit, the rest is drained and a 413 raised
            (FastAPI turns other errors while reading a body into a 400; an HTTPException passes through)."""
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, drain_limit)
                    raise HTTPException(413, self._too_large(received)["error"]["message"])
            return message

        await self.app(scope, counted_receive, send)

    def _too_large(self, size: int) -> dict:
        return error_body(f"request body too large: {size} bytes, the limit is "
                          f"{self.max_body_bytes} (ademvl serve --max-body-mb)", None, "request_too_large")
