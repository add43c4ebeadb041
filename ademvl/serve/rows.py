"""One request's row in a generation batch: its new tokens → text, stop strings, streamed deltas.

The text a row shows is the decoded new tokens, cut before the first stop string
and stripped (as `ademvl generate` and the evaluators strip). While a row is
still running, its visible text holds back what may still change: trailing
whitespace, a half-decoded character (U+FFFD) and a tail that could be the start
of a stop string. Each step's growth of the visible text is one streamed delta,
so the deltas add up to the final answer (decoding more tokens only extends the
text once no half character is pending, for byte-level BPE and SentencePiece alike).

A row asked for log-probabilities gets one entry per token (`step(token, entry)`);
each delta carries the entries of the tokens its text has reached, and a stop
string's tokens are dropped with its text, so the entries streamed add up to the
entries of the whole answer (`logprobs`).
"""
from __future__ import annotations

from collections.abc import Callable


class Row:
    """Decoding state of one request; `step(token)` is called once per generated token."""

    def __init__(self, tokenizer, max_tokens: int, stop: list[str], eos_token_id: int | None,
                 emit: Callable[[str, list[dict]], None], on_done: Callable[["Row"], None] = lambda row: None,
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
        self.raw = ""  # the decoded new tokens, uncut
        self.entries: list[tuple[int, dict]] = []  # (where the token's text starts in `raw`, its logprobs entry)
        self.cut: int | None = None  # where a stop string starts in `raw`
        self.flushed = 0  # entries already sent with a delta

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def step(self, token_id: int, entry: dict | None = None) -> bool:
        """Take one generated token (and its logprobs entry, if asked); True once the row needs no more."""
        if self.finished:
            return True
        if self.cancelled():
            return self.finish("cancelled")
        self.completion_tokens += 1
        if token_id == self.eos_token_id:
            return self.finish("stop")
        self.ids.append(token_id)
        if entry is not None:
            self.entries.append((len(self.raw), entry))
        raw = self.raw = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        cut = min((i for i in (raw.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.cut = raw[:cut], cut
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
            self._send(self.text.strip(), final=True)
            self.on_done(self)
        return True

    def _visible(self) -> str:
        text = self.text.lstrip()
        held = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[:len(text) - held].rstrip().rstrip("\ufffd").rstrip()

    def _send(self, visible: str, final: bool = False) -> None:
        grew = len(visible) > len(self.sent) and visible.startswith(self.sent)
        if final:
            reached = len(self.logprobs)  # a prefix of `entries`
        else:  # the entries of tokens that start before the end of the visible text
            end = len(self.text) - len(self.text.lstrip()) + len(visible)
            reached = next((k for k, (start, _) in enumerate(self.entries) if start >= end), len(self.entries))
        entries = [entry for _, entry in self.entries[self.flushed:reached]] if reached > self.flushed else []
        if grew or entries:
            self.emit(visible[len(self.sent):] if grew else "", entries)
            self.flushed = max(self.flushed, reached)
        if grew:
            self.sent = visible

    @property
    def logprobs(self) -> list[dict]:
        """The entries of the answer's tokens (a stop string's tokens dropped with its text)."""
        return [entry for start, entry in self.entries if self.cut is None or start < self.cut]

    @property
    def content(self) -> str:
        return self.text.strip()
