"""What the Hugging Face model contract buys, measured side by side in one run:

1. activation memory a training step keeps for backward, with and without gradient
   checkpointing, at LLaMA-7B's decoder-layer width and ViT-L/14's block width;
2. Dynamo graph breaks of the LLM-side forward (visual inputs already encoded) and the CPU
   speed ratio torch.compile / eager on it.

    python benchmarks/model_contract.py [--methods ademvl lavin] [--text-len 512] [--out benchmarks]

Memory is counted, not sampled: every tensor the autograd graph saves for the backward pass is
seen by `torch.autograd.graph.saved_tensors_hooks` (unique storages, frozen weights excluded),
plus, with checkpointing, the one input each checkpointed block keeps for its recompute. Depth
is extrapolated from 1- and 2-block models (the per-block cost is constant), as `ademvl bench`
does for FLOPs. Writes model_contract.json and model_contract.md into --out.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from ademvl.bench.inputs import synthetic_batch
from ademvl.bench.timing import SEVEN_B_WIDTH, bench_method_config, build_backbones, share_frozen_copy
from ademvl.model import VLModel

METHODS = ["ademvl", "bottleneck", "lavin", "memvp", "llava-lora"]


def build(method: str, cfg, llm, vision) -> VLModel:
    return VLModel.from_backbones(share_frozen_copy(llm), share_frozen_copy(vision), method=method,
                                  method_config=bench_method_config(method, cfg))


def saved_for_backward(model: VLModel, batch: dict, checkpointing: bool) -> int:
    """Bytes the LLM side of one training forward keeps for backward (visual inputs encoded before)."""
    model.train()
    if checkpointing:
        model.activation_checkpointing_enable()
    else:
        model.activation_checkpointing_disable()
    frozen = {p.untyped_storage().data_ptr() for p in model.parameters() if not p.requires_grad}
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in frozen:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    labels = batch["input_ids"].clone()
    labels[:, :-8] = -100  # an 8-token answer
    visual = model.encode_images(batch["pixel_values"], batch["has_image"], batch["input_ids"].shape[0])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     image_slot=batch["image_slot"], labels=labels, **visual.as_model_kwargs()).loss
    loss.backward()
    kept = sum(seen.values())
    if checkpointing:  # each checkpointed block holds its input hidden states for the recompute
        b, t = batch["input_ids"].shape
        kept += model.llm.config.num_hidden_layers * b * t * model.llm.config.hidden_size * 4
    model.zero_grad(set_to_none=True)
    return kept


def memory_table(methods, text_len: int, batch_size: int) -> dict:
    """Per method: bytes kept at 1 and 2 blocks → per block and at LLaMA-7B's 32 blocks."""
    rows = {}
    per_depth = {}
    for layers in (1, 2):
        cfg = replace(SEVEN_B_WIDTH, layers=layers, text_len=text_len, batch_size=batch_size)
        llm, vision = build_backbones(cfg)
        for method in methods:
            model = build(method, cfg, llm, vision)
            batch = synthetic_batch(model, cfg.batch_size, cfg.text_len)
            per_depth[(method, layers, False)] = saved_for_backward(model, batch, checkpointing=False)
            per_depth[(method, layers, True)] = saved_for_backward(model, batch, checkpointing=True)
            del model
        del llm, vision
    for method in methods:
        row = {}
        for flag, key in ((False, "plain"), (True, "checkpointed")):
            one, two = per_depth[(method, 1, flag)], per_depth[(method, 2, flag)]
            block = two - one
            row[key] = {"per_block": block, "rest": one - block, "at_32_blocks": one - block + 32 * block}
        row["saved_at_32_blocks"] = 1 - row["checkpointed"]["at_32_blocks"] / row["plain"]["at_32_blocks"]
        rows[method] = row
    return rows


def llm_side_inputs(model: VLModel, batch: dict) -> dict:
    with torch.no_grad():
        visual = model.encode_images(batch["pixel_values"], batch["has_image"], batch["input_ids"].shape[0])
    return dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], image_slot=batch["image_slot"],
                logits_to_keep=1, **visual.as_model_kwargs())


def compile_table(methods, text_len: int, repeats: int) -> dict:
    """Graph breaks of the LLM-side forward, and compiled ÷ eager wall-clock (interleaved medians)."""
    cfg = replace(SEVEN_B_WIDTH, layers=2, text_len=text_len, batch_size=1)
    llm, vision = build_backbones(cfg)
    rows, runners = {}, []
    for method in methods:  # every method explained first: reset() drops all compiled code
        model = build(method, cfg, llm, vision).eval()
        inputs = llm_side_inputs(model, synthetic_batch(model, 1, cfg.text_len))
        torch._dynamo.reset()
        with torch.no_grad():
            explained = torch._dynamo.explain(model)(**inputs)
        rows[method] = {"graph_breaks": explained.graph_break_count, "graphs": explained.graph_count}
        runners.append((method, model, inputs))
    torch._dynamo.reset()
    compiled_runners = []
    for method, model, inputs in runners:
        compiled = torch.compile(model)
        with torch.no_grad():
            start = time.perf_counter()
            out = compiled(**inputs).logits
            rows[method]["compile_s"] = time.perf_counter() - start
            assert torch.allclose(out, model(**inputs).logits, atol=1e-3)
            compiled(**inputs)  # warm
        compiled_runners.append((method, model, compiled, inputs))
    times = {m: {"eager": [], "compiled": []} for m in methods}
    with torch.no_grad():
        for _ in range(repeats):
            for method, model, compiled, inputs in compiled_runners:
                for key, fn in (("eager", model), ("compiled", compiled)):
                    start = time.perf_counter()
                    fn(**inputs)
                    times[method][key].append(time.perf_counter() - start)
    for method in methods:
        eager, compiled = (statistics.median(times[method][k]) for k in ("eager", "compiled"))
        rows[method].update(eager_s=eager, compiled_s=compiled, compiled_over_eager=compiled / eager)
    return rows


def markdown(result: dict) -> str:
    mb = 1024 ** 2
    lines = [f"# Model contract: checkpointing memory and torch.compile ({result['machine']})", "",
             f"Activation memory kept for backward by the LLM side of one training step (batch "
             f"{result['batch_size']}, {result['text_len']} text tokens, answer 8, fp32, LLaMA-7B layer width), "
             "extrapolated to LLaMA-7B's 32 blocks:", "",
             "| method | per block, plain | per block, checkpointed | 32 blocks, plain | 32 blocks, checkpointed | saved |",
             "|---|---|---|---|---|---|"]
    for method, row in result["memory"].items():
        p, c = row["plain"], row["checkpointed"]
        lines.append(f"| {method} | {p['per_block'] / mb:.0f} MiB | {c['per_block'] / mb:.0f} MiB | "
                     f"{p['at_32_blocks'] / mb:,.0f} MiB | {c['at_32_blocks'] / mb:,.0f} MiB | "
                     f"{100 * row['saved_at_32_blocks']:.0f} % |")
    lines += ["", f"LLM-side forward (visual inputs encoded, batch 1, {result['compile_text_len']} text tokens, "
              f"2 LLaMA-7B-width blocks), torch.compile (inductor) against eager on this CPU, medians of "
              f"{result['repeats']} interleaved repeats:", "",
              "| method | graph breaks | graphs | compile (s) | eager (s) | compiled (s) | compiled ÷ eager |",
              "|---|---|---|---|---|---|---|"]
    for method, row in result["compile"].items():
        lines.append(f"| {method} | {row['graph_breaks']} | {row['graphs']} | {row['compile_s']:.0f} | "
                     f"{row['eager_s']:.3f} | {row['compiled_s']:.3f} | {row['compiled_over_eager']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--text-len", type=int, default=512, help="text tokens of the memory measurement")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--compile-text-len", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks")
    parser.add_argument("--only", choices=["memory", "compile"], default=None,
                        help="re-measure one part, keeping the other from --out's model_contract.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from ademvl.bench.machine import machine_info

    machine = machine_info()
    out = Path(args.out)
    previous = json.loads((out / "model_contract.json").read_text()) if args.only else {}
    result = {**previous, "machine": f"{machine.get('cpu', 'cpu')}, {args.threads} threads, torch {torch.__version__}"}
    if args.only != "compile":
        result.update(text_len=args.text_len, batch_size=args.batch_size,
                      memory=memory_table(args.methods, args.text_len, args.batch_size))
    if args.only != "memory":
        result.update(compile_text_len=args.compile_text_len, repeats=args.repeats,
                      compile=compile_table(args.methods, args.compile_text_len, args.repeats))
    (out / "model_contract.json").write_text(json.dumps(result, indent=2))
    (out / "model_contract.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
