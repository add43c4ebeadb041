"""Precision of the frozen backbones, side by side: fp32, bf16 and 4-bit NF4 (bitsandbytes), per method.

A small random LLaMA and CLIP tower are saved with `save_pretrained` into a temporary folder and
loaded back through `VLModel.from_backbones(llm_dir, vision_dir, method=…, dtype=…, quantization=…)`
as a user loads them:

- fp32: `dtype=None`, no autocast;
- bf16: `dtype=torch.bfloat16`, trainable weights cast to fp32 (as `ademvl.training.trainer.build_model`
  does), steps under `torch.autocast("cpu", dtype=torch.bfloat16)`;
- 4bit: the same with `quantization="4bit"` (NF4, double quantisation, bf16 compute; the LLM's linear
  layers only: embeddings, norms, the LM head and the vision tower stay bf16).

Every model of a method starts from the same trainable weights (copied from its fp32 model). Each
repeat runs every method × precision × {train step, generate}; medians over repeats. Reported:
the times and the ratios bf16 ÷ fp32 and 4bit ÷ bf16, the loss of the same batch in each precision
before any step (eval mode: no dropout), and the bytes of the frozen LLM as loaded (parameters,
buffers and the 4-bit quantisation state). Peak memory is n/a on a CPU (no allocator peak counter;
RSS growth does not measure a step's peak).

bitsandbytes repacks a 4-bit layer into an inference-only layout on CPUs with AVX512-BF16 the first
time it runs without gradients, and the library restores the trainable layout when training mode
comes back (`ademvl.quantized`); that switch is timed separately ("switch"), not inside the steps.

    python benchmarks/precision_bench.py --out benchmarks
    python benchmarks/precision_bench.py --quick --out /tmp/precision     # tiny, seconds (tests)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ademvl.bench.inputs import synthetic_batch  # noqa: E402
from ademvl.bench.machine import machine_info  # noqa: E402
from ademvl.bench.steps import VLSteps, _loss  # noqa: E402
from ademvl.bench.timing import PROFILES, bench_method_config, build_backbones  # noqa: E402

PRECISIONS = ("fp32", "bf16", "4bit")
METHODS = ("ademvl", "bottleneck", "lavin", "memvp", "llava-lora")
# The small profile's widths with a 8000-token vocabulary (as the 7b-width profile), so that the
# decoder blocks, which 4-bit stores, are most of the LLM rather than its embedding and head; d_ff
# 1408 instead of 1376: bitsandbytes' faster CPU inference layout takes whole 64-weight blocks of a
# layer's inputs (LLaMA-7B's 11008 fits; at 1376 the down projections would keep the general path).
PRECISION_SMALL = replace(PROFILES["small"], intermediate=1408, vocab=8000, text_len=64, new_tokens=8, repeats=3)
QUICK = replace(PROFILES["quick"], intermediate=192, repeats=1, warmup=0)


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of `fn()` (on one torch thread, CPU time = the work done)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def autocast(precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def build(method: str, precision: str, llm_dir: Path, vision_dir: Path, cfg):
    from ademvl.model import VLModel

    extra = {"quantization": "4bit"} if precision == "4bit" else {}
    model = VLModel.from_backbones(str(llm_dir), str(vision_dir), method=method,
                                   method_config=bench_method_config(method, cfg),
                                   dtype=None if precision == "fp32" else torch.bfloat16, **extra)
    for p in model.trainable_parameters().values():  # as ademvl.training.trainer.build_model
        if p.dtype != torch.float32:
            p.data = p.data.float()
    return model


def copy_trainable(src, dst) -> None:
    a, b = src.trainable_parameters(), dst.trainable_parameters()
    if a.keys() != b.keys():
        raise RuntimeError(f"trainable weights differ between precisions: {sorted(set(a) ^ set(b))[:4]}")
    with torch.no_grad():
        for name, p in b.items():
            p.copy_(a[name])


def _tensor_bytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def frozen_llm_bytes(model) -> dict:
    """Bytes of the frozen LLM as loaded: parameters, buffers and 4-bit quantisation state."""
    total = blocks = 0
    for name, p in model.llm.named_parameters():
        if p.requires_grad:
            continue
        size = _tensor_bytes(p)
        state = getattr(p, "quant_state", None)
        if state is not None:
            size += sum(_tensor_bytes(t) for t in state.as_dict(packed=True).values())
        total += size
        blocks += size if ".layers." in name else 0
    buffers = sum(_tensor_bytes(b) for name, b in model.llm.named_buffers())
    return {"total": total + buffers, "decoder_blocks": blocks}


def block_linear_dtypes(model) -> list[str]:
    """Storage dtypes of the frozen linear weights in the LLM's decoder blocks (4-bit: packed uint8)."""
    return sorted({str(p.dtype) for name, p in model.llm.named_parameters()
                   if not p.requires_grad and ".layers." in name and name.endswith("proj.weight")})


def warm_inference_layout(model) -> None:
    """Run each 4-bit layer once without gradients (one row of zeros): bitsandbytes repacks it then."""
    from ademvl.quantized import quantized_linears

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for layer in quantized_linears(model.llm):
            layer(torch.zeros(1, layer.in_features, dtype=torch.bfloat16))


def eval_loss(steps: VLSteps, precision: str) -> float:
    steps.mode(False)
    with torch.no_grad(), autocast(precision):
        logits = steps.model(**steps.inputs, logits_to_keep=steps.answer_len).logits
        return float(_loss(logits, steps.targets))


def run(cfg, methods, log) -> dict:
    import transformers

    with tempfile.TemporaryDirectory(prefix="ademvl-precision-") as tmp:
        llm, vision = build_backbones(cfg)
        llm_dir, vision_dir = Path(tmp) / "llm", Path(tmp) / "vision"
        llm.save_pretrained(llm_dir)
        vision.save_pretrained(vision_dir)
        del llm, vision
        log(f"saved a random LLaMA (d={cfg.hidden}, {cfg.layers} layers, vocab {cfg.vocab}) and CLIP tower "
            f"(width {cfg.vision_hidden}, {cfg.vision_layers} blocks) to {tmp}")
        runners, info = {}, {}
        for method in methods:
            for precision in PRECISIONS:
                torch.manual_seed(0)
                model = build(method, precision, llm_dir, vision_dir, cfg)
                if precision != "fp32":
                    copy_trainable(runners[(method, "fp32")][0].model, model)
                steps = VLSteps(model, synthetic_batch(model, cfg.batch_size, cfg.text_len), cfg.answer_len)
                optimizer = torch.optim.AdamW(model.trainable_parameters().values(), lr=1e-4)
                info[(method, precision)] = {"loss": eval_loss(steps, precision), "llm_bytes": frozen_llm_bytes(model),
                                             "block_linear_dtypes": block_linear_dtypes(model)}
                runners[(method, precision)] = (steps, optimizer)
                log(f"  built {method} {precision}: loss {info[(method, precision)]['loss']:.5f}, frozen LLM "
                    f"{info[(method, precision)]['llm_bytes']['total'] / 2**20:.1f} MiB")
    kinds = ("train", "generate", "switch")
    samples = {key: {k + c: [] for k in kinds for c in ("", "_cpu")} for key in runners}
    for repeat in range(cfg.warmup + cfg.repeats):
        for key, (steps, optimizer) in runners.items():
            method, precision = key
            model = steps.model

            def to_inference():
                steps.mode(False)
                if precision == "4bit":
                    warm_inference_layout(model)

            def to_training():
                steps.mode(True)

            times = {"switch": timed(to_training)}
            with autocast(precision):
                times["train"] = timed(lambda: steps.train(optimizer))
            back = timed(to_inference)
            times["switch"] = (times["switch"][0] + back[0], times["switch"][1] + back[1])
            with autocast(precision):
                times["generate"] = timed(lambda: steps.generate(cfg.new_tokens))
            if repeat >= cfg.warmup:
                for kind in kinds:
                    samples[key][kind].append(times[kind][0])
                    samples[key][kind + "_cpu"].append(times[kind][1])
        log(f"  repeat {repeat + 1}/{cfg.warmup + cfg.repeats} done")
    rows = {}
    for (method, precision), s in samples.items():
        row = {"method": method, "precision": precision, **info[(method, precision)],
               **{k: statistics.median(v) for k, v in s.items()}, **{k + "_samples": v for k, v in s.items()},
               "peak_memory": "n/a on CPU"}
        rows[f"{method}/{precision}"] = row
    ratios = {}
    for method in methods:
        fp32, bf16, q4 = (rows[f"{method}/{p}"] for p in PRECISIONS)
        ratios[method] = {f"{kind}{c} {a}÷{b}": x[kind + c] / y[kind + c]
                          for c in ("", "_cpu") for kind in ("train", "generate")
                          for (a, x), (b, y) in ((("bf16", bf16), ("fp32", fp32)), (("4bit", q4), ("bf16", bf16)))}
        ratios[method].update({
                          "loss |bf16−fp32|": abs(bf16["loss"] - fp32["loss"]),
                          "loss |4bit−fp32|": abs(q4["loss"] - fp32["loss"])})
    first = methods[0]
    llm_bytes = {p: rows[f"{first}/{p}"]["llm_bytes"] for p in PRECISIONS}
    return {"config": asdict(cfg), "methods": list(methods), "rows": rows, "ratios": ratios, "llm_bytes": llm_bytes,
            "transformers": transformers.__version__}


def markdown(record: dict) -> str:
    import bitsandbytes

    m, r, cfg = record["machine"], record["result"], record["result"]["config"]
    lines = ["# Precision: fp32, bf16 and 4-bit frozen backbones", "",
             f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), torch {m['torch']}, "
             f"transformers {r['transformers']}, bitsandbytes {bitsandbytes.__version__}; load average at the start "
             f"{m.get('load_average')}. Written {record['date']}.", ""]
    if record.get("note"):
        lines += [record["note"], ""]
    lines += [f"Random LLaMA d={cfg['hidden']}, d_ff={cfg['intermediate']}, {cfg['layers']} layers, vocab {cfg['vocab']}; "
              f"CLIP width {cfg['vision_hidden']}, {cfg['vision_layers']} blocks, "
              f"{cfg['image_size'] // cfg['patch_size']}² grid; saved and loaded with from_pretrained. Batch "
              f"{cfg['batch_size']}, text {cfg['text_len']}, answer {cfg['answer_len']}, {cfg['new_tokens']} new tokens; "
              f"median of {cfg['repeats']} interleaved repeats (wall-clock and process CPU time; on one torch thread the "
              "CPU time is the work done whatever else the machine runs). fp32: no autocast; bf16 and 4bit: frozen weights "
              "bf16 (4bit: NF4 linear layers in the LLM), trainable weights fp32, steps under "
              "`torch.autocast('cpu', dtype=torch.bfloat16)`. *train* = forward + answer loss + backward + AdamW "
              "step; *generate* = greedy decoding, prefill included; *switch* = train ↔ inference mode changes "
              "(4bit: bitsandbytes' CPU repacking), outside the other two. Loss = the same batch before any step, "
              "eval mode.", "",
              "| method | precision | train step ms | generate ms | switch ms | train CPU ms | generate CPU ms | loss | "
              "peak memory |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"].values():
        lines.append(f"| {row['method']} | {row['precision']} | {row['train'] * 1e3:.1f} | {row['generate'] * 1e3:.1f} | "
                     f"{row['switch'] * 1e3:.1f} | {row['train_cpu'] * 1e3:.1f} | {row['generate_cpu'] * 1e3:.1f} | "
                     f"{row['loss']:.5f} | {row['peak_memory']} |")
    for c, label in (("", "wall-clock"), ("_cpu", "CPU time")):
        lines += ["", f"Ratios, {label}:", "",
                  "| method | train bf16 ÷ fp32 | generate bf16 ÷ fp32 | train 4bit ÷ bf16 | generate 4bit ÷ bf16 |",
                  "| --- | --- | --- | --- | --- |"]
        for method, q in r["ratios"].items():
            lines.append(f"| {method} | {q[f'train{c} bf16÷fp32']:.2f} | {q[f'generate{c} bf16÷fp32']:.2f} | "
                         f"{q[f'train{c} 4bit÷bf16']:.2f} | {q[f'generate{c} 4bit÷bf16']:.2f} |")
    lines += ["", "Loss of the same batch before any step (eval mode), difference to fp32:", "",
              "| method | \\|bf16 − fp32\\| | \\|4bit − fp32\\| |", "| --- | --- | --- |"]
    for method, q in r["ratios"].items():
        lines.append(f"| {method} | {q['loss |bf16−fp32|']:.2e} | {q['loss |4bit−fp32|']:.2e} |")
    lines += ["", "Frozen LLM as loaded (parameters + buffers + quantisation state; measured on the modules):", "",
              "| precision | whole LLM MiB | decoder blocks MiB | ÷ fp32 (blocks) |", "| --- | --- | --- | --- |"]
    base = r["llm_bytes"]["fp32"]["decoder_blocks"]
    for precision, b in r["llm_bytes"].items():
        lines.append(f"| {precision} | {b['total'] / 2**20:.2f} | {b['decoder_blocks'] / 2**20:.2f} | "
                     f"{b['decoder_blocks'] / base:.3f} |")
    lines += ["", "Peak memory: n/a on CPU (no allocator peak counter; RSS growth does not measure a step's peak).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks", help="folder for precision.json and precision.md")
    parser.add_argument("--quick", action="store_true", help="tiny backbones, ademvl and llava-lora, 1 repeat (tests)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--text-len", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = QUICK if args.quick else PRECISION_SMALL
    cfg = replace(cfg, **{k: v for k, v in (("repeats", args.repeats), ("text_len", args.text_len)) if v is not None})
    methods = args.methods or (["ademvl", "llava-lora"] if args.quick else list(METHODS))
    record = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(), "note": args.note}
    start = time.perf_counter()
    record["result"] = run(cfg, methods, lambda message: print(message, flush=True))
    record["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    text = markdown(record)
    (out / "precision.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out / 'precision.json'} and {out / 'precision.md'} in {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
