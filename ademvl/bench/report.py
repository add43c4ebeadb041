"""The benchmark's JSON record and its Markdown tables."""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_write_text

FLOP_COLUMNS = ["method", "extra input tokens", "trainable", "forward TFLOPs (prompt)", "÷ ADEM-VL",
                "paper TFLOPs", "paper ÷ ADEM-VL", "decode GFLOPs (1 new token)", "train-step TFLOPs"]
TIME_COLUMNS = ["method", "extra input tokens", "forward ms", "LLM-side forward ms", "LLM-side ÷ bare", "train step ms", "generate ms",
                "forward ÷ bare", "train ÷ bare", "generate ÷ bare", "train ÷ LLaVA-LoRA",
                "generate ÷ LLaVA-LoRA", "peak mem (fwd / train / gen)"]


CPU_TIME_COLUMNS = ["method", "forward CPU ms", "LLM-side forward CPU ms", "LLM-side ÷ bare", "train step CPU ms",
                    "generate CPU ms", "forward ÷ bare", "train ÷ LLaVA-LoRA", "generate ÷ LLaVA-LoRA"]


def _fmt(value, scale=1.0, digits=2) -> str:
    return "—" if value is None else f"{value / scale:.{digits}f}"


def _mem(value) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def flops_markdown(table: dict) -> list[str]:
    lines = [f"### FLOPs: {table['llm']} + {table['vision']}, text length {table['text_len']}, batch 1", "",
             _row(FLOP_COLUMNS), _row(["---"] * len(FLOP_COLUMNS))]
    for name, row in table["rows"].items():
        if "error" in row:
            lines.append(_row([name, "error: " + row["error"]] + [""] * (len(FLOP_COLUMNS) - 2)))
            continue
        lines.append(_row([
            name, row["extra_tokens"], f"{row['trainable']:,}", _fmt(row["forward"], 1e12, 3),
            _fmt(row.get("forward_vs_ademvl"), digits=3), _fmt(row.get("paper_tflops")),
            _fmt(row.get("paper_vs_ademvl"), digits=3), _fmt(row["decode"], 1e9, 2), _fmt(row["train"], 1e12, 3),
        ]))
    ademvl = table["rows"].get("ademvl", {})
    if "analytic_fusion" in ademvl:
        a, c, e = ademvl["analytic_fusion"], ademvl["counted_fusion"], ademvl["expected_overhead"]
        lines += ["", "ADEM-VL fusion (all layers): analytic 4·T·N_v·d·L vs the counter's fusion-on − fusion-off "
                  "difference (train: 3× forward; the counted difference also holds the patch projector's "
                  "backward, which a fusion-off step skips):", "",
                  _row(["", "analytic GFLOPs", "counted GFLOPs"]), _row(["---"] * 3)]
        for kind in ("forward", "decode", "train"):
            lines.append(_row([kind, _fmt(a[kind], 1e9), _fmt(c[kind], 1e9)]))
        lines += ["", f"Expected decoder-layer overhead of the fusion at this size: ×{e['ratio']:.4f} "
                  f"(layer {e['layer_flops'] / 1e9:.1f} GFLOPs + fusion {e['fusion_flops'] / 1e9:.2f} GFLOPs)."]
    return lines + [""]


def timing_markdown(result: dict) -> list[str]:
    cfg = result["config"]
    lines = [f"### Wall-clock, {result.get('profile', 'small')} backbones, on {result['device']}: LLaMA d={cfg['hidden']}, d_ff={cfg['intermediate']}, "
             f"{cfg['layers']} layers, vocab {cfg['vocab']}; CLIP width {cfg['vision_hidden']}, "
             f"{cfg['vision_layers']} blocks, {cfg['image_size'] // cfg['patch_size']}² grid; batch {cfg['batch_size']}, "
             f"text {cfg['text_len']} tokens, answer {cfg['answer_len']}, {cfg['new_tokens']} new tokens; "
             f"median of {cfg['repeats']} interleaved repeats", "",
             _row(TIME_COLUMNS), _row(["---"] * len(TIME_COLUMNS))]
    for name, row in result["rows"].items():
        peaks = row.get("peak_bytes") or {}
        lines.append(_row([
            name, row["extra_tokens"], _fmt(row["forward"], 1e-3, 1), _fmt(row["forward_llm"], 1e-3, 1),
            _fmt(row.get("forward_llm_vs_bare-llm")), _fmt(row["train"], 1e-3, 1),
            _fmt(row["generate"], 1e-3, 1), _fmt(row.get("forward_vs_bare-llm")), _fmt(row.get("train_vs_bare-llm")),
            _fmt(row.get("generate_vs_bare-llm")), _fmt(row.get("train_vs_llava-lora")),
            _fmt(row.get("generate_vs_llava-lora")),
            " / ".join(_mem(peaks.get(k)) for k in ("forward", "train", "generate")),
        ]))
    for name, error in result.get("errors", {}).items():
        lines.append(f"- {name}: not measured ({error})")
    if result["device"] == "cpu" and all("train_cpu" in row for row in result["rows"].values()):
        lines += ["", "Process CPU time of the same runs (medians; with one torch thread this is the work done, "
                  "whatever else the machine runs, the steadier measure on a shared CPU; with more threads it also "
                  "counts their waiting):", "", _row(CPU_TIME_COLUMNS), _row(["---"] * len(CPU_TIME_COLUMNS))]
        for name, row in result["rows"].items():
            lines.append(_row([
                name, _fmt(row["forward_cpu"], 1e-3, 1), _fmt(row["forward_llm_cpu"], 1e-3, 1),
                _fmt(row.get("forward_llm_cpu_vs_bare-llm")), _fmt(row["train_cpu"], 1e-3, 1),
                _fmt(row["generate_cpu"], 1e-3, 1), _fmt(row.get("forward_cpu_vs_bare-llm")),
                _fmt(row.get("train_cpu_vs_llava-lora")), _fmt(row.get("generate_cpu_vs_llava-lora")),
            ]))
    if "fusion_expectation" in result:
        e = result["fusion_expectation"]
        lines += ["", f"ADEM-VL forward ÷ bare at this size, analytic (decoder layers, FLOPs): ×{e['ratio']:.3f}; "
                  "the LLM-side forward (visual inputs encoded beforehand) is what it predicts; the full forward also "
                  "holds the vision tower and the method's encoder."]
    lines += ["", "forward = the whole prompt (vision tower included); LLM-side forward = the same with the visual "
              "inputs encoded beforehand; train step = forward + answer loss + backward + AdamW step (bare LLM: "
              "back-propagation to the input embeddings, no optimizer); generate = greedy decoding "
              f"of {cfg['new_tokens']} tokens, prefill included.",
              "", f"Peak memory: {result['peak_memory']}.", ""]
    return lines


def markdown(record: dict) -> str:
    m = record["machine"]
    lines = ["# `ademvl bench` results", "",
             f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
             f"torch {m['torch']}" + (f", GPU {m['gpu']}" if "gpu" in m else "") +
             f"; load average at the start {m.get('load_average')}. Written {record['date']}.", ""]
    if record.get("note"):
        lines += [record["note"], ""]
    lines += ["FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on the meta device (matrix "
              "products only). *forward* = the whole prompt: the text + the method's extra input tokens + the "
              "vision tower (the reading the paper's Table V fits); *decode* = one incremental token with the "
              "prompt in the KV cache; *train step* = forward + loss on the answer + backward.", ""]
    for table in record.get("flops", []):
        lines += flops_markdown(table)
    for result in record.get("wall_clock") or []:
        lines += timing_markdown(result)
    return "\n".join(lines)


def write_results(record: dict, out_dir) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    for path, text in ((json_path, json.dumps(record, indent=2) + "\n"), (md_path, markdown(record))):
        atomic_write_text(path, text, encoding="utf-8")
    return json_path, md_path
