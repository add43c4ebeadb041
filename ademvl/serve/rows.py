"""One request's row in a generation batch: its new tokens → text, stop strings, streamed deltas.

The text a row shows is the decoded new tokens, cut before the first stop string
and stripped (as `ademvl generate` and the evaluators strip). While a row is
still running, its visible text holds back what may still change: trailing
whitespace, a half-decoded character (U+FFFD) and a tail that could be the start
of a stop string. Each step's growth of the visible text is one streamed delta,
so the deltas add up to the final answer (decoding more tokens only extends the
text once no half character is pending, for byte-level BPE and SentencePiece alike).
"""
from __future__ import annotations

from collections.abc import Callable


class Row:
    """Decoding state of one request; `step(token)` is called once per generated token."""

    def __init__(self, tokenizer, max_tokens: int, stop: list[str], eos_token_id: int | None,
                 emit: Callable[[str], None], on_done: Callable[["Row"], None] = lambda row: None,
                 cancelled: Callable[[], bool] = lambda: False):
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.stop = stop
        self.eos_token_id = eos_token_id
        self.emit = emit
        self.on_done = on_done
        self.cancelled = cancelled
        self.ids: list[int] = []
        self.completion_tokens = 0
        self.sent = ""
        self.text = ""
        self.finish_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def step(self, token_id: int) -> bool:
        """Take one generated token; True once the row needs no more."""
        if self.finished:
            return True
        if self.cancelled():
            return self.finish("cancelled")
        self.completion_tokens += 1
        if token_id == self.eos_token_id:
            return self.finish("stop")
        self.ids.append(token_id)
        raw = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((i for i in (raw.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text = raw[:cut]
            return self.finish("stop")
        self.text = raw
        if self.completion_tokens >= self.max_tokens:
            return self.finish("length")
        self._send(self._visible())
        return False

    def finish(self, reason: str) -> bool:
        """Close the row (EOS, a stop string, its token budget, a client gone): send the rest, report done.

        Done is reported at once, not when the batch ends, so a short answer is not
        held back by a longer one generated beside it."""
        if not self.finished:
            self.finish_reason = reason
            self._send(self.text.strip())
            self.on_done(self)
        return True

    def _visible(self) -> str:
        text = self.text.lstrip()
        held = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[:len(text) - held].rstrip().rstrip("\ufffd").rstrip()

    def _send(self, visible: str) -> None:
        if len(visible) > len(self.sent) and visible.startswith(self.sent):
            self.emit(visible[len(self.sent):])
            self.sent = visible

    @property
    def content(self) -> str:
        return self.text.strip()
