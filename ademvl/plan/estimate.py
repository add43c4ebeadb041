"""Per-device memory of one training configuration, and the switches that would make it fit."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .activations import Activations, activation_bytes
from .shape import ModelShape

GIB = 1024 ** 3
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
# bitsandbytes, bytes per quantized weight: NF4 packs two 4-bit codes per byte, one 8-bit absmax per
# 64-weight block (double quantization) and one fp32 absmax per 256 such blocks; LLM.int8 stores
# int8 weights plus one fp32 scale per output row (counted per row, not per weight).
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
NF4_STATE_PER_TENSOR = 16 * 4 + 256 * 4 + 64  # the NF4 code table, the nested code table, offsets
TRAINABLE_BYTES = 4 + 4 + 8  # fp32 weight, fp32 gradient, AdamW's two fp32 moments
CUDA_CONTEXT = int(1.0 * GIB)  # CUDA context + cuBLAS/cuDNN workspaces loaded by PyTorch (typ. 0.5-1.5 GiB)
FRAGMENTATION = 0.10           # caching-allocator fragmentation and backward's transient buffers


@dataclass(frozen=True)
class PlanInput:
    llm: str = "llama-7b"
    vision: str = "clip-vit-l-14"
    method: str = "ademvl"
    batch: int = 4
    seq_len: int = 512           # text tokens per sample (the method's extra input tokens come on top)
    answer_tokens: int | None = None  # tokens with a loss (logits kept for backward); None = seq_len
    precision: str = "bf16"      # frozen backbones; trainable weights always fp32
    quantization: str = "none"   # none / 4bit / 8bit of the frozen LLM's linear layers
    sharding: str = "none"       # none / fsdp
    checkpointing: bool = False
    gpus: int = 1
    gpu_gb: float = 80.0         # GiB of memory per GPU, as marketed (an "80 GB" A100 has 80 GiB)
    grad_accum: int = 1
    method_config: dict = field(default_factory=dict)

    def check(self) -> None:
        if self.precision not in DTYPE_BYTES:
            raise ValueError(f"unknown precision '{self.precision}'; use fp32, bf16 or fp16")
        if self.quantization not in ("none", "4bit", "8bit"):
            raise ValueError(f"unknown quantization '{self.quantization}'; use none, 4bit or 8bit")
        if self.sharding not in ("none", "fsdp"):
            raise ValueError(f"unknown sharding '{self.sharding}'; use none or fsdp")
        for name in ("batch", "seq_len", "gpus", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.gpu_gb <= 0:
            raise ValueError(f"--gpu-gb must be positive, got {self.gpu_gb}")
        if self.answer_tokens is not None and not 1 <= self.answer_tokens <= self.seq_len:
            raise ValueError(f"--answer-tokens must be between 1 and --seq-len ({self.seq_len}), got {self.answer_tokens}")


@dataclass(frozen=True)
class Estimate:
    """Bytes per device. `activations` is the chosen mode; both modes are kept for the table."""

    inputs: PlanInput
    frozen_weights: int
    trainable_state: int
    trainable_params: int
    activations_plain: Activations
    activations_checkpointed: Activations
    overhead: int
    capacity: int

    @property
    def activations(self) -> Activations:
        return self.activations_checkpointed if self.inputs.checkpointing else self.activations_plain

    @property
    def total(self) -> int:
        return self.frozen_weights + self.trainable_state + self.activations.total + self.overhead

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity


def frozen_bytes(s: ModelShape, p: PlanInput) -> float:
    e = DTYPE_BYTES[p.precision]
    if p.quantization == "4bit":
        quantized = s.frozen_quantizable * NF4_BYTES_PER_WEIGHT + s.frozen_quant_tensors * NF4_STATE_PER_TENSOR
    elif p.quantization == "8bit":
        quantized = s.frozen_quantizable * 1 + s.frozen_quant_rows * 4
    else:
        quantized = s.frozen_quantizable * e
    return quantized + s.frozen_other * e


def plan(s: ModelShape, p: PlanInput) -> Estimate:
    p.check()
    e = DTYPE_BYTES[p.precision]
    shards = p.gpus if p.sharding == "fsdp" else 1
    frozen = frozen_bytes(s, p)
    answer = p.seq_len if p.answer_tokens is None else p.answer_tokens
    acts = {flag: activation_bytes(s, p.batch, p.seq_len, answer, e, flag) for flag in (False, True)}
    gathered = 0
    if shards > 1:  # FSDP gathers a block's full weights before using it, and prefetches the next one
        gathered = 2 * s.largest_block_frozen * frozen / max(s.frozen_quantizable + s.frozen_other, 1)
    sized = frozen / shards + s.trainable * TRAINABLE_BYTES / shards + acts[p.checkpointing].total + gathered
    return Estimate(
        inputs=p, frozen_weights=int(frozen / shards), trainable_state=int(s.trainable * TRAINABLE_BYTES / shards),
        trainable_params=s.trainable, activations_plain=acts[False], activations_checkpointed=acts[True],
        overhead=int(CUDA_CONTEXT + FRAGMENTATION * sized + gathered), capacity=int(p.gpu_gb * GIB))


def _batch_split(s: ModelShape, p: PlanInput):
    """Halve the per-device batch (doubling grad_accum, so the effective batch stays) until it fits."""
    batch, accum = p.batch, p.grad_accum
    while batch > 1:
        batch, accum = (batch + 1) // 2, accum * 2
        trial = dataclasses.replace(p, batch=batch, grad_accum=accum)
        if plan(s, trial).fits:
            return trial
    return dataclasses.replace(p, batch=1, grad_accum=p.grad_accum * p.batch)


def _more_gpus(s: ModelShape, p: PlanInput, limit: int = 64):
    gpus = max(p.gpus, 1)
    while gpus < limit:
        gpus *= 2
        trial = dataclasses.replace(p, sharding="fsdp", gpus=gpus)
        if plan(s, trial).fits:
            return trial
    return dataclasses.replace(p, sharding="fsdp", gpus=limit)


SWITCHES = ("gradient checkpointing", "bf16", "4bit", "smaller batch + grad_accum", "fsdp")


def _apply(s: ModelShape, p: PlanInput, switch: str) -> PlanInput | None:
    """The configuration with one more switch on, or None when it is already on (or cannot help)."""
    if switch == "gradient checkpointing":
        return None if p.checkpointing else dataclasses.replace(p, checkpointing=True)
    if switch == "bf16":
        return None if p.precision != "fp32" else dataclasses.replace(p, precision="bf16")
    if switch == "4bit":
        return None if p.quantization == "4bit" else dataclasses.replace(p, quantization="4bit")
    if switch == "smaller batch + grad_accum":
        return None if p.batch == 1 else _batch_split(s, p)
    return _more_gpus(s, p)


def suggest(s: ModelShape, p: PlanInput) -> tuple[list[str], PlanInput | None]:
    """Switches, in the order checkpointing → bf16 → 4bit → smaller batch → FSDP, turned on one after
    another until the plan fits; then any that the later ones made unnecessary are dropped again.
    Returns the switches and the configuration that fits, or ([], None) when nothing does."""
    if plan(s, p).fits:
        return [], p
    current, used = p, []
    for switch in SWITCHES:
        trial = _apply(s, current, switch)
        if trial is None:
            continue
        current, used = trial, used + [switch]
        if plan(s, current).fits:
            break
    else:
        return [], None
    for switch in list(used[:-1]):  # prune: rebuild without this switch, keeping the others
        rest = [u for u in used if u != switch]
        trial = p
        for other in rest:
            trial = _apply(s, trial, other) or trial
        if plan(s, trial).fits:
            used, current = rest, trial
    return used, current


def describe(p: PlanInput) -> str:
    """One line with every setting of a configuration (what to pass to re-plan it)."""
    return (f"--precision {p.precision} --quantization {p.quantization}"
            f"{' --checkpointing' if p.checkpointing else ''} --batch {p.batch} --grad-accum {p.grad_accum}"
            f" --sharding {p.sharding} --gpus {p.gpus}")
