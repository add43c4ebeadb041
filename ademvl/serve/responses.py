"""OpenAI's response shapes: a whole chat completion, stream chunks (server-sent events), usage."""
from __future__ import annotations

import json
import time
import uuid

from .errors import error_body


class Reply:
    """The id, timestamp and model every part of one answer carries, and its prompt's token count."""

    def __init__(self, model_name: str, prompt_tokens: int):
        self.meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}
        self.prompt_tokens = prompt_tokens

    def usage(self, completion_tokens: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    def completion(self, content: str, finish_reason: str, completion_tokens: int) -> dict:
        return {**self.meta, "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "logprobs": None, "finish_reason": finish_reason}],
                "usage": self.usage(completion_tokens)}

    def chunk(self, delta: dict | None, finish_reason: str | None = None, **extra) -> str:
        """One server-sent event; `delta=None` gives the choice-less usage chunk."""
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish_reason}]
        return sse({**self.meta, "object": "chat.completion.chunk", "choices": choices, **extra})


def sse(data) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def generation_error(message: str) -> dict:
    return error_body(message, None, "generation_failed", "server_error")
