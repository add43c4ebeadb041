"""Per-request decoding inside one batched `model.generate`: sampling, seeds, penalties, grammars, logprobs.

HF's `generate` samples a whole batch alike, from the global RNG. A server batches
requests that asked for different things (a temperature, a seed, OpenAI's
penalties, a JSON grammar, log-probabilities), and a seed must give the same
sample whatever else shares the batch. So one `LogitsProcessor`
(`RowsLogitsProcessor`) decides every row's next token itself, with that
request's settings and its own `torch.Generator`, and hands `generate` a score
row that is 0 at the chosen token and -inf elsewhere; `generate` runs greedy and
takes exactly that token. A greedy row with no extras picks the argmax of the
model's logits, i.e. what plain greedy `generate` picks.

Order per row and step, as OpenAI and HF define them: log-probabilities of the
model's own distribution (before anything changes it), then `logit_bias`, the penalties, the
grammar mask (xgrammar's transformers processor), temperature and top-p (HF's
warpers), then the pick.
"""
from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, TemperatureLogitsWarper, TopPLogitsWarper


@dataclass(frozen=True)
class SamplingParams:
    """What one request asked of its decoding (OpenAI's parameters, checked by `requests.prepare`)."""

    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int | None = None  # None: a fresh random seed, still a generator of its own
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: object | None = None  # an xgrammar CompiledGrammar: the answer must match it
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit), OpenAI's logit_bias

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class OpenAIPenalties:
    """OpenAI's presence and frequency penalties: logit[j] -= count[j] * frequency + (count[j] > 0) * presence,
    where count[j] is how often token j was generated so far in this answer (the prompt does not count).

    transformers' `RepetitionPenaltyLogitsProcessor` divides logits and counts the prompt, which is another
    definition, so this one is written out."""

    def __init__(self, presence: float, frequency: float):
        self.presence = presence
        self.frequency = frequency

    def __call__(self, scores: torch.Tensor, generated: list[int]) -> torch.Tensor:
        if not generated or (self.presence == 0 and self.frequency == 0):
            return scores
        ids = torch.tensor(generated, device=scores.device)
        counts = torch.zeros(scores.shape[-1], device=scores.device, dtype=scores.dtype)
        counts.index_add_(0, ids, torch.ones(len(generated), device=scores.device, dtype=scores.dtype))
        return scores - counts * self.frequency - (counts > 0).to(scores.dtype) * self.presence


@functools.cache
def _byte_level_table() -> dict[str, int]:
    """Byte-level BPE's character → byte table (GPT-2's, which transformers' converters use)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def token_text(tokenizer, token_id: int) -> tuple[str, list[int]]:
    """OpenAI's `token` and `bytes` for one token: its decoded text and the bytes it stands for.

    A token holding part of a character decodes to U+FFFD; its `bytes` are then the token's own
    (SentencePiece's byte fallback ``<0xE2>``, or byte-level BPE's one character per byte), so that
    the bytes of consecutive tokens join into the answer's UTF-8, as OpenAI's do."""
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    if "\ufffd" in text:
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if isinstance(piece, str) and re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
            return text, [int(piece[3:5], 16)]
        table = _byte_level_table()
        if isinstance(piece, str) and piece and all(char in table for char in piece):
            return text, [table[char] for char in piece]
    return text, list(text.encode("utf-8", "backslashreplace"))


class RowSampler:
    """One row's (one choice's) decoding state: its settings, generator, tokens so far and grammar matcher."""

    def __init__(self, params: SamplingParams, generator: torch.Generator, tokenizer):
        self.params = params
        self.generator = generator
        self.tokenizer = tokenizer
        self.penalties = OpenAIPenalties(params.presence_penalty, params.frequency_penalty)
        self.warpers = [] if params.greedy else [TemperatureLogitsWarper(float(params.temperature))]
        if not params.greedy and params.top_p < 1.0:  # as HF's generate: top_p=1 keeps all, no sort needed
            self.warpers.append(TopPLogitsWarper(float(params.top_p)))
        self.grammar = None
        if params.grammar is not None:
            from xgrammar.contrib.hf import LogitsProcessor as GrammarProcessor

            self.grammar = GrammarProcessor(params.grammar)  # one per row: it tracks that row's matcher
        self.generated: list[int] = []
        self.entry: dict | None = None  # the last token's logprobs entry (OpenAI's shape)

    def pick(self, input_ids: torch.Tensor, scores: torch.Tensor) -> int:
        """The next token for this row; `input_ids`, `scores`: this row's, shaped (1, ...)."""
        if self.params.logprobs:
            logprobs = torch.log_softmax(scores[0].float(), dim=-1)
        if self.params.logit_bias:  # index_add_: two keys for one id ("5", "05") both count
            ids, bias = zip(*self.params.logit_bias)
            scores = scores.clone()
            scores[0].index_add_(0, torch.tensor(ids, device=scores.device),
                                 torch.tensor(bias, dtype=scores.dtype, device=scores.device))
        scores = self.penalties(scores, self.generated)
        if self.grammar is not None:
            scores = self.grammar(input_ids, scores.clone())
        if self.params.greedy:
            token = int(scores[0].argmax())
        else:
            for warper in self.warpers:
                scores = warper(input_ids, scores)
            probs = torch.softmax(scores[0].float(), dim=-1).cpu()  # the generator is a CPU one: see below
            token = int(torch.multinomial(probs, 1, generator=self.generator))
        self.generated.append(token)
        if self.params.logprobs:
            self.entry = self._entry(token, logprobs)
        return token

    def _entry(self, token: int, logprobs: torch.Tensor) -> dict:
        def one(token_id: int, value: float) -> dict:
            text, raw = token_text(self.tokenizer, token_id)
            return {"token": text, "logprob": value, "bytes": raw}

        entry = one(token, float(logprobs[token]))
        top = []
        if self.params.top_logprobs:
            values, ids = logprobs.topk(min(self.params.top_logprobs, logprobs.shape[-1]))
            top = [one(int(i), float(v)) for v, i in zip(values.tolist(), ids.tolist())]
        return {**entry, "top_logprobs": top}

    def take_entry(self) -> dict | None:
        entry, self.entry = self.entry, None
        return entry


def request_generator(seed: int | None) -> torch.Generator:
    """A generator of the request's own: `seed` makes its samples repeatable, whoever shares the batch.

    On the CPU, whichever device holds the logits (a model split over GPUs has them on its last one):
    one seed then gives one sample on any device."""
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else secrets.randbits(63))
    return generator


class RowsLogitsProcessor(LogitsProcessor):
    """Every row's next token chosen by its `RowSampler`; rows that are done (`done(i)`) are left alone."""

    def __init__(self, samplers: list[RowSampler], done):
        self.samplers = samplers
        self.done = done

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        chosen = torch.full_like(scores, float("-inf"))
        for i, sampler in enumerate(self.samplers):
            token = int(scores[i].argmax()) if self.done(i) else sampler.pick(input_ids[i:i + 1], scores[i:i + 1])
            chosen[i, token] = 0.0
        return chosen
