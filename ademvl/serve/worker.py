"""The batching worker: one thread owns the model and runs every generation.

Each call carries its own visual inputs (`ademvl.methods.layer_call`: the
model stores nothing between calls), so concurrent forwards would be safe;
one thread runs them all so that concurrent requests share a batch instead of
competing for the device and its memory. Requests queue here; when the model
is free, the worker takes the oldest requests, up to `max_batch` rows (a request
asking for n choices is n rows), waiting at most `batch_wait` seconds for
company. Requests with different decoding settings share a batch: each row's
next token is chosen by its request's own `sampling.RowSampler` (temperature,
top-p, seed, penalties, grammar, logprobs). The batch
is left-padded by the evaluators' `GenerationCollator` and decoded by one
`model.generate` call, as `ademvl eval` does.

Per-request limits and streaming ride on one stopping criterion: after every
step it hands each row its new token (`rows.Row`: decode, cut at a stop string,
emit the visible growth as a streamed delta) and tells `generate` which rows are
done (their own `max_tokens`, a stop string, EOS, a client gone); a done row's
request is answered at once, while the rest of its batch goes on. A streamer
would see the same tokens, but the criterion must look at every row each step
anyway, so one hook does both. `generate` runs to the longest budget in the
batch and stops as soon as every row is done.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from ..data.example import VLExample
from ..evaluation.generation import GenerationCollator, generation_kwargs, model_device
from .rows import Row
from .sampling import RowSampler, RowsLogitsProcessor, SamplingParams, request_generator

logger = logging.getLogger(__name__)

# ("delta", text, choice, logprobs entries) | ("done", finish_reason, completion_tokens, content, choice,
#  logprobs entries) | ("error", message). A request gets one "done" per choice.
Event = tuple


@dataclass(eq=False)  # jobs are compared by identity
class Job:
    """One request: its example, its limits, and where its events go (called from the worker thread)."""

    example: VLExample
    max_tokens: int
    on_event: Callable[[Event], None]
    stop: list[str] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    n: int = 1  # choices: rows of the batch
    cancelled: bool = False


class _RowsCriteria(StoppingCriteria):
    def __init__(self, rows: list[Row], samplers: list[RowSampler]):
        self.rows = rows
        self.samplers = samplers

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        tokens = input_ids[:, -1].tolist()
        return torch.tensor([row.step(t, sampler.take_entry())
                             for row, sampler, t in zip(self.rows, self.samplers, tokens)], device=input_ids.device)


class BatchWorker:
    """Queue of `Job`s served by one thread, up to `max_batch` rows (choices) per `model.generate` call."""

    def __init__(self, model, tokenizer, image_processor, max_length: int, max_batch: int = 8,
                 batch_wait: float = 0.005, on_batch: Callable[[int], None] = lambda rows: None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model = model
        self.tokenizer = tokenizer
        self.collator = GenerationCollator.for_model(model, tokenizer, image_processor, max_length=max_length)
        self.max_batch = max_batch
        self.batch_wait = batch_wait
        self.batch_sizes: Counter[int] = Counter()  # how many batches of each size (rows) ran (shown by /info)
        self.on_batch = on_batch  # told each batch's rows (the metrics)
        self._pending: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="ademvl-serve-worker", daemon=True)

    def start(self) -> "BatchWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Finish the batch in flight; requests still queued are told the server is going away."""
        with self._cond:
            self._stopping = True
            left, self._pending = self._pending, []
            self._cond.notify_all()
        for job in left:
            job.on_event(("error", "the server is shutting down"))
        if self._thread.is_alive():
            self._thread.join()

    def submit(self, job: Job) -> None:
        with self._cond:
            self._pending.append(job)
            self._cond.notify()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch."""
        return len(self._pending)

    def _take(self) -> list[Job]:
        """The next batch, oldest first, up to `max_batch` rows (blocks until there is one); [] when stopping."""
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            deadline = time.monotonic() + self.batch_wait
            while sum(job.n for job in self._pending) < self.max_batch and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._stopping:
                return []
            batch, rows = [], 0
            for job in self._pending:
                if batch and rows + job.n > self.max_batch:
                    break
                batch.append(job)
                rows += job.n
            self._pending = self._pending[len(batch):]
            return batch

    def _loop(self) -> None:
        while batch := self._take():
            batch = [job for job in batch if not job.cancelled]
            if batch:
                self._run(batch)

    def _run(self, jobs: list[Job]) -> None:
        rows: list[Row] = []
        owners = [job for job in jobs for _ in range(job.n)]  # a request's choices are consecutive rows
        try:
            self.batch_sizes[len(owners)] += 1
            self.on_batch(len(owners))
            inputs = self.collator([job.example for job in owners])
            device = model_device(self.model)
            inputs = {key: value.to(device) for key, value in inputs.items()}
            kwargs = generation_kwargs(self.tokenizer, max(job.max_tokens for job in jobs))  # greedy: see sampling
            generators = {id(job): request_generator(job.sampling.seed) for job in jobs}
            samplers = [RowSampler(job.sampling, generators[id(job)], self.tokenizer) for job in owners]
            choices = [i - owners.index(job) for i, job in enumerate(owners)]
            rows = [Row(self.tokenizer, job.max_tokens, job.stop, kwargs["eos_token_id"],
                        emit=lambda text, entries, job=job, c=c: job.on_event(("delta", text, c, entries)),
                        on_done=lambda row, job=job, c=c: job.on_event(
                            ("done", row.finish_reason, row.completion_tokens, row.content, c, row.logprobs)),
                        cancelled=lambda job=job: job.cancelled) for job, c in zip(owners, choices)]
            self.model.generate(**inputs, **kwargs,
                                logits_processor=LogitsProcessorList([RowsLogitsProcessor(
                                    samplers, lambda i: rows[i].finished)]),
                                stopping_criteria=StoppingCriteriaList([_RowsCriteria(rows, samplers)]))
            for row in rows:
                row.finish("length")  # no-op for rows already done; the rest ran to the batch's budget
        except Exception as error:  # the server keeps serving; the unfinished requests get the error
            logger.exception("generation failed")
            message = f"generation failed: {type(error).__name__}: {error}"
            failed = {id(job): job for i, job in enumerate(owners) if i >= len(rows) or not rows[i].finished}
            for job in failed.values():
                job.on_event(("error", message))
