"""OpenAI's response shapes: chat completions and (legacy) text completions, whole or as stream chunks
(server-sent events), with n choices, log-probabilities and usage."""
from __future__ import annotations

import json
import time
import uuid

from .errors import error_body


class Reply:
    """The id, timestamp and model every part of one answer carries, and its prompt's token count.

    `chat=False` gives the completions shapes (`text_completion`, `text`, its logprobs layout)."""

    def __init__(self, model_name: str, prompt_tokens: int, chat: bool = True, logprobs: bool = False):
        prefix = "chatcmpl" if chat else "cmpl"
        self.meta = {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}
        self.prompt_tokens = prompt_tokens
        self.chat = chat
        self.logprobs = logprobs  # whether choices carry log-probabilities (else logprobs: null)
        self.offsets: dict[int, int] = {}  # completions: each choice's text offset so far

    def usage(self, completion_tokens: int) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": self.prompt_tokens + completion_tokens}

    def _logprobs(self, entries: list[dict], choice: int) -> dict | None:
        if not self.logprobs:
            return None
        if self.chat:
            return {"content": entries, "refusal": None}
        offset = self.offsets.get(choice, 0)
        offsets = []
        for entry in entries:
            offsets.append(offset)
            offset += len(entry["token"])
        self.offsets[choice] = offset
        return {"tokens": [e["token"] for e in entries], "token_logprobs": [e["logprob"] for e in entries],
                "top_logprobs": [top_dict(e["top_logprobs"]) for e in entries],
                "text_offset": offsets}

    def completion(self, choices: list[tuple[str, str, list[dict]]], completion_tokens: int) -> dict:
        """The whole answer: `choices` are (content, finish_reason, logprobs entries) in choice order."""
        if self.chat:
            body = [{"index": i, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": self._logprobs(entries, i), "finish_reason": reason}
                    for i, (content, reason, entries) in enumerate(choices)]
            kind = "chat.completion"
        else:
            body = [{"index": i, "text": content, "logprobs": self._logprobs(entries, i), "finish_reason": reason}
                    for i, (content, reason, entries) in enumerate(choices)]
            kind = "text_completion"
        return {**self.meta, "object": kind, "choices": body, "usage": self.usage(completion_tokens)}

    def chunk(self, delta: dict | None, finish_reason: str | None = None, choice: int = 0,
              entries: list[dict] | None = None, **extra) -> str:
        """One server-sent event; `delta=None` gives the choice-less usage chunk. `delta` is chat's
        ({"content": ...}); completions chunks carry its content as `text`."""
        if delta is None:
            choices = []
        else:
            logprobs = self._logprobs(entries or [], choice) if entries or finish_reason is None else None
            if self.chat:
                choices = [{"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]
            else:
                choices = [{"index": choice, "text": delta.get("content", ""), "logprobs": logprobs,
                            "finish_reason": finish_reason}]
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return sse({**self.meta, "object": kind, "choices": choices, **extra})


def top_dict(top: list[dict]) -> dict[str, float]:
    """Completions' {token text: logprob}; two tokens with one text (e.g. halves of a character) keep the
    likelier's value (`top` is sorted most likely first)."""
    out: dict[str, float] = {}
    for entry in top:
        out.setdefault(entry["token"], entry["logprob"])
    return out


def sse(data) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def generation_error(message: str) -> dict:
    return error_body(message, None, "generation_failed", "server_error")
