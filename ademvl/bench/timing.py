"""Wall-clock of every method and of the bare frozen LLM, interleaved, medians over repeats.

Small "7B-like proportions" backbones are built in-process with random
weights (d_ff ≈ 2.7·d, vocab 32000, a 16×16 patch grid so ADEM-VL's N_v = 320).
Each repeat runs A B C … for every method and work unit, so slow drifts of a
shared machine spread over all of them instead of biasing one.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass, replace

import torch

from .inputs import extra_tokens, synthetic_batch
from .steps import BareSteps, VLSteps


@dataclass
class SmallConfig:
    hidden: int = 512
    intermediate: int = 1376
    layers: int = 4
    heads: int = 8
    vocab: int = 32000
    vision_hidden: int = 64
    vision_intermediate: int = 256
    vision_layers: int = 24     # as ViT-L, so that methods reading blocks 4…24 find them
    vision_heads: int = 4
    image_size: int = 64
    patch_size: int = 4         # 16×16 grid: 256 patches, N_v = 256 + 64 = 320
    batch_size: int = 2
    text_len: int = 128
    answer_len: int = 8
    new_tokens: int = 16
    repeats: int = 5
    warmup: int = 1
    dtype: str = "float32"      # frozen backbones' dtype; bfloat16 runs under autocast, adapters in fp32


QUICK = SmallConfig(hidden=64, intermediate=172, layers=2, heads=4, vocab=1000, vision_hidden=32,
                    vision_intermediate=64, vision_layers=24, vision_heads=2, image_size=32, patch_size=2,
                    batch_size=1, text_len=16, answer_len=4, new_tokens=3, repeats=2, warmup=0)

# LLaMA-7B's decoder layer (d 4096, d_ff 11008, 32 heads) and ViT-L/14's block (width 1024, 224 px,
# 16×16 grid), few of each so that a CPU runs them: the per-layer cost of the fusion against the
# frozen layer is then the 7B one (N_v/d = 320/4096), which no narrow model reproduces. Six vision
# blocks give LaVIN/Bottleneck their six [cls] tokens; vocab 8000 keeps the head's share of a
# 2-layer model near 7B's. Text 256 as in Table V; 8 new tokens ≈ a ScienceQA answer
# ("The answer is A." + EOS), the paper's inference setting.
SEVEN_B_WIDTH = SmallConfig(hidden=4096, intermediate=11008, layers=2, heads=32, vocab=8000, vision_hidden=1024,
                            vision_intermediate=4096, vision_layers=6, vision_heads=16, image_size=224,
                            patch_size=14, batch_size=1, text_len=256, answer_len=8, new_tokens=8, repeats=3,
                            warmup=1)

# The same widths with LLaMA-7B's 32 decoder layers to ViT-L/14's 24 vision blocks kept as 4 : 3, so
# the tower weighs in each wall-clock ratio what it weighs in the real model (7b-width's 6 blocks for 2
# layers weigh it 4× too much). With 3 blocks LaVIN/Bottleneck read 3 [cls] tokens instead of 6.
SEVEN_B_PROPORTIONAL = replace(SEVEN_B_WIDTH, layers=4, vision_layers=3, repeats=5)

PROFILES = {"small": SmallConfig(), "7b-width": SEVEN_B_WIDTH, "7b-proportional": SEVEN_B_PROPORTIONAL,
            "quick": QUICK}


def bench_method_config(method: str, cfg: SmallConfig) -> dict:
    """Method settings for the bench's tower: the necks read six [cls] tokens whatever its depth."""
    if method in ("lavin", "bottleneck"):
        return {"neck_every": max(cfg.vision_layers // 6, 1)}
    return {}


def share_frozen_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A structural copy whose parameters and buffers are the original's own tensors.

    Methods wrap modules in place, so each needs its own module tree; the frozen weights are
    never written, so one set serves every method (7B-width layers would not fit six times)."""
    memo = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, memo)


def build_backbones(cfg: SmallConfig, seed: int = 0):
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llm = LlamaForCausalLM(LlamaConfig(
        hidden_size=cfg.hidden, intermediate_size=cfg.intermediate, num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads, vocab_size=cfg.vocab,
        max_position_embeddings=max(1024, 2 * (cfg.text_len + cfg.new_tokens + 300)))).eval()
    vision = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=cfg.vision_hidden, intermediate_size=cfg.vision_intermediate,
        num_hidden_layers=cfg.vision_layers, num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size, patch_size=cfg.patch_size, hidden_act="quick_gelu")).eval()
    dtype = getattr(torch, cfg.dtype)
    return llm.to(dtype).requires_grad_(False), vision.to(dtype).requires_grad_(False)


class PeakMemory:
    """Peak memory of a block where the device reports it (CUDA max_memory_allocated), else None.

    On CPU there is no such counter: freed blocks are kept and reused by the allocator, so the
    growth of the process RSS says nothing about one step's peak; "n/a" is reported instead."""

    def __init__(self, device: torch.device):
        self.device = device
        self.value = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.value = torch.cuda.max_memory_allocated(self.device) - self._base
        return False


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _timed_with_cpu(fn, device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of `fn()`. On one torch thread the CPU time is the work done,
    whatever else a shared machine runs (the wall-clock also holds other processes' turns)."""
    cpu = time.process_time()
    wall = _timed(fn, device)
    return wall, time.process_time() - cpu


def _fusion_expectation(cfg: SmallConfig, ademvl_row: dict | None) -> dict | None:
    """The analytic overhead ADEM-VL's fusion adds to these decoder layers, to read the measured one against."""
    if not ademvl_row or not ademvl_row.get("num_visual"):
        return None
    from transformers import LlamaConfig

    from .flops import fusion_expectation

    llama = LlamaConfig(hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                        num_attention_heads=cfg.heads, num_key_value_heads=cfg.heads)
    return fusion_expectation(llama, cfg.text_len + ademvl_row["extra_tokens"], ademvl_row["num_visual"])


def _under_autocast(fn, device, dtype):
    def run(steps, optimizer):
        with torch.autocast(device.type, dtype=dtype):
            return fn(steps, optimizer)
    return run


def build_runners(cfg: SmallConfig, device, methods):
    """(name, steps, optimizer) per method, each on its own copy of the same backbones."""
    from ..model import VLModel

    llm, vision = build_backbones(cfg)
    runners, errors, info = [], {}, {}
    reference_inputs = None
    for name in methods:
        try:
            model = VLModel.from_backbones(share_frozen_copy(llm), share_frozen_copy(vision), method=name,
                                           method_config=bench_method_config(name, cfg)).to(device)
            for p in model.trainable_parameters().values():  # as the trainer keeps them
                p.data = p.data.float()
            model.train()
            inputs = synthetic_batch(model, cfg.batch_size, cfg.text_len, device)
            optimizer = torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-4)
            steps = VLSteps(model, inputs, cfg.answer_len)
        except Exception as error:  # a method that cannot be built is reported, not fatal
            errors[name] = f"{type(error).__name__}: {error}"
            continue
        info[name] = {"extra_tokens": extra_tokens(model),
                      "trainable": model.parameter_counts()["trainable"],
                      "num_visual": getattr(model.method, "num_visual", None)}
        runners.append((name, steps, optimizer))
        if reference_inputs is None:
            reference_inputs = (inputs, int(model.method.num_input_tokens), int(model.method.num_prefix_tokens))
    bare_llm = llm.to(device)
    if reference_inputs is None:
        reference_inputs = (synthetic_batch_text(cfg, device), 0, 0)
    bare = BareSteps(bare_llm, reference_inputs[0], reference_inputs[1], cfg.answer_len, prefix=reference_inputs[2])
    info["bare-llm"] = {"extra_tokens": 0, "trainable": 0, "num_visual": None}
    runners.insert(0, ("bare-llm", bare, None))
    return runners, errors, info


def synthetic_batch_text(cfg: SmallConfig, device):
    ids = torch.randint(3, cfg.vocab, (cfg.batch_size, cfg.text_len), device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def wall_clock(cfg: SmallConfig, methods=None, device=None, log=None, profile: str = "small") -> dict:
    """Interleaved medians (seconds) of forward / train step / generate per method, with ratios."""
    from ..methods import METHODS

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = list(methods) if methods is not None else list(METHODS)
    runners, errors, info = build_runners(cfg, device, names)
    kinds = {
        "forward": lambda s, o: (s.mode(False), s.forward()),
        "forward_llm": lambda s, o: (s.mode(False), s.forward_llm()),
        "train": lambda s, o: (s.mode(True), s.train(o)),
        "generate": lambda s, o: (s.mode(False), s.generate(cfg.new_tokens)),
    }
    if cfg.dtype != "float32":  # low-precision backbones run under autocast, as the trainer runs them
        kinds = {kind: _under_autocast(fn, device, getattr(torch, cfg.dtype)) for kind, fn in kinds.items()}
    samples = {name: {k: [] for k in kinds} for name, _, _ in runners}
    cpu_samples = {name: {k: [] for k in kinds} for name, _, _ in runners}
    peaks = {name: {} for name, _, _ in runners}
    for repeat in range(cfg.warmup + cfg.repeats):
        for name, steps, optimizer in runners:
            for kind, fn in kinds.items():
                if repeat == cfg.warmup:  # first measured repeat: also the peak memory
                    with PeakMemory(device) as peak:
                        seconds, cpu = _timed_with_cpu(lambda: fn(steps, optimizer), device)
                    peaks[name][kind] = peak.value
                else:
                    seconds, cpu = _timed_with_cpu(lambda: fn(steps, optimizer), device)
                if repeat >= cfg.warmup:
                    samples[name][kind].append(seconds)
                    cpu_samples[name][kind].append(cpu)
        if log:
            log(f"repeat {repeat + 1}/{cfg.warmup + cfg.repeats} done")
    rows = {}
    for name, _, _ in runners:
        rows[name] = {**info[name], "peak_bytes": peaks[name]}
        for kind in kinds:
            rows[name][kind] = statistics.median(samples[name][kind])
            rows[name][kind + "_samples"] = samples[name][kind]
            rows[name][kind + "_cpu"] = statistics.median(cpu_samples[name][kind])
            rows[name][kind + "_cpu_samples"] = cpu_samples[name][kind]
    for name, row in rows.items():
        for ref in ("bare-llm", "llava-lora"):
            if ref in rows:
                for kind in kinds:
                    row[f"{kind}_vs_{ref}"] = row[kind] / rows[ref][kind]
                    row[f"{kind}_cpu_vs_{ref}"] = row[kind + "_cpu"] / rows[ref][kind + "_cpu"]
    expectation = _fusion_expectation(cfg, rows.get("ademvl"))
    return {"device": str(device), "profile": profile, "config": asdict(cfg), "rows": rows, "errors": errors,
            **({"fusion_expectation": expectation} if expectation else {}),
            "peak_memory": "CUDA max_memory_allocated above the memory held before the step (first measured "
                           "repeat)" if device.type == "cuda" else
                           "n/a on CPU (no allocator peak counter; RSS growth does not measure a step's peak)"}
