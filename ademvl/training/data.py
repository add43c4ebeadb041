"""Records → per-rank micro-batches in a seeded, resumable order.

The order of epoch `e` is a permutation drawn from `seed + e` alone, so a
resumed run can skip straight to the micro-batch it stopped at without
touching any other random state. Every rank gets the same number of
micro-batches (the index list is padded by wrapping around, as
`DistributedSampler` does), so DDP never waits on a missing rank.
"""
from __future__ import annotations

import random
import logging
import math

import torch
from torch.utils.data import DataLoader, Dataset

from ..collate import VLCollator
from ..data import SPECS, VLExample, filter_loadable, load_dataset
from ..data import registry
from ..data.images import ImageError
from ..recipes import DataSection, RecipeError

logger = logging.getLogger(__name__)

# The data-section keys that are some dataset's option (each dataset's options dataclass says which it takes).
LOADER_KEYS = registry.flat_option_keys(DataSection)


def loader_kwargs(data: DataSection) -> dict:
    """The recipe's data options (flat `data.<key>` and `data.options`), checked by the dataset's
    options dataclass (`ademvl.data.registry`); a set key it does not take is an error."""
    if data.dataset not in SPECS:
        raise RecipeError(f"unknown data.dataset '{data.dataset}'; available: {', '.join(sorted(SPECS))}")
    try:
        _, options = registry.dataset_options(data)
    except registry.DatasetOptionError as error:
        raise RecipeError(str(error)) from None
    return registry.loader_kwargs(options)


def balanced_sample(
    examples: list[VLExample], key: str, limit: int | None, seed: int, weights: dict | None = None,
    within: list | tuple = (),
) -> list[VLExample]:
    """`limit` records spread over the values of `meta[key]`, evenly or in the shares `weights` gives.

    Useful when one kind dominates (74% of easy-VQA questions are yes/no): a small
    training budget then still sees every kind often; `weights` (e.g. {"yes/no": 2})
    spends more of it on the kind that is hardest to learn. Values left out of
    `weights` get share 1, values no record has are ignored, and a kind that runs
    out leaves its share to the others.

    `within` (meta keys) spreads each kind's share evenly over those keys' values in turn, so a
    label prior the source carries (88% of easy-VQA's "is there a <colour> shape?" are "no") is
    not learned as the answer: see docs/results.md. Besides meta keys, "answer" names the record's
    answer. A record missing one of the keys is refused.
    """
    groups: dict = {}
    for ex in examples:
        for name in (key, *within):
            if _facet(ex, name) is None:
                flag = "balance_by" if name == key else "balance_within"
                raise ValueError(f"data.{flag}: record '{ex.id}' has no meta key '{name}'")
        groups.setdefault(_facet(ex, key), []).append(ex)
    weights = dict(weights or {})
    shares = {str(value): float(weight) for value, weight in weights.items()}
    if any(share <= 0 for share in shares.values()):
        raise ValueError("data.balance_weights: every share must be positive")
    rng = random.Random(seed)
    queues, credit, share = [], [], []
    for value in sorted(groups, key=str):
        queues.append(_stratified_queue(groups[value], list(within), rng))
        share.append(shares.get(str(value), 1.0))
        credit.append(0.0)
    limit = len(examples) if limit is None else min(limit, len(examples))
    picked: list[VLExample] = []
    while len(picked) < limit:
        for i, queue in enumerate(queues):  # each round adds `share` credit; a whole credit buys one record
            credit[i] += share[i]
            while queue and credit[i] >= 1 and len(picked) < limit:
                picked.append(queue.pop())
                credit[i] -= 1
    return picked


def _facet(ex: VLExample, name: str):
    """`meta[name]`, or the answer itself for "answer"; None when the record has neither."""
    if name in ex.meta:
        return ex.meta[name]
    return ex.answer if name == "answer" else None


def _stratified_queue(members: list[VLExample], keys: list, rng: random.Random) -> list[VLExample]:
    """`members` shuffled, in an order whose every tail (the queue pops from the end) is spread
    evenly over the values of `keys[0]`, then of `keys[1]` inside each of those, and so on."""
    if not keys:
        members = members[:]
        rng.shuffle(members)
        return members
    strata: dict = {}
    for ex in members:
        strata.setdefault(_facet(ex, keys[0]), []).append(ex)
    queues = [_stratified_queue(strata[value], keys[1:], rng) for value in sorted(strata, key=str)]
    order: list[VLExample] = []
    while any(queues):
        for queue in queues:  # round robin: one record from each stratum that has one left
            if queue:
                order.append(queue.pop())
    return order[::-1]


def load_examples(data: DataSection) -> tuple[list[VLExample], int]:
    """Load the records and check their images once: fail naming the file and record, or skip and count."""
    kwargs = loader_kwargs(data)
    if data.balance_by:
        kwargs.pop("limit", None)  # the balanced draw applies the limit over the whole split
    try:
        examples = load_dataset(data.dataset, **kwargs)
    except (OSError, KeyError, TypeError) as error:
        raise ValueError(f"cannot load dataset '{data.dataset}': {error}") from error
    if data.balance_by:
        examples = balanced_sample(examples, data.balance_by, data.limit, data.sample_seed, data.balance_weights,
                                   data.balance_within or ())
    examples, skipped = filter_loadable(examples, skip_bad=data.skip_bad, decode=data.decode_check)
    if not examples:
        raise ValueError(f"dataset '{data.dataset}' has no usable records"
                         + (f" ({skipped} skipped for bad images)" if skipped else ""))
    return examples, skipped


class ExampleList(Dataset):
    def __init__(self, examples: list[VLExample]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> VLExample:
        return self.examples[index]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's micro-batches (lists of record indices) for `epoch`."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    per_rank = math.ceil(n / world)
    order = (order * math.ceil(per_rank * world / n))[: per_rank * world]  # wrap to equal shares
    mine = order[rank::world]
    return [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]


def micro_batches_per_epoch(n: int, batch_size: int, world: int) -> int:
    return math.ceil(math.ceil(n / world) / batch_size)


class BatchError:
    """What `SafeCollator` hands back instead of raising: an exception raised in a DataLoader worker
    reaches the main process with its whole traceback as its message; this carries one line."""

    def __init__(self, message: str):
        self.message = message


class SafeCollator:
    """The collator, with an image that breaks after the pre-check reported by file and record
    (as a `BatchError`, which `raise_if_error` turns back into `ImageError` in the training process)."""

    def __init__(self, collator: VLCollator, skip_bad: bool):
        self.collator, self.skip_bad = collator, skip_bad

    def __call__(self, examples: list[VLExample]):
        try:
            return self.collator(examples)
        except ImageError as error:
            if not self.skip_bad:
                return BatchError(str(error))
        good = []
        for ex in examples:  # find and drop the broken one(s)
            try:
                self.collator([ex])
                good.append(ex)
            except ImageError as error:
                logger.warning("skipping record during training: %s", error)
        if not good:
            return BatchError(f"every image of a batch failed to load (records {[e.id for e in examples]})")
        return self.collator(good)


def raise_if_error(batch):
    """`batch`, unless it is a `BatchError`: then the one-line `ImageError` it stands for."""
    if isinstance(batch, BatchError):
        raise ImageError(batch.message)
    return batch


def make_loader(examples, batches: list[list[int]], collator, num_workers: int, seed: int) -> DataLoader:
    """A loader over precomputed batches; its own generator keeps the global RNG untouched."""
    return DataLoader(ExampleList(examples), batch_sampler=batches, collate_fn=collator,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)
