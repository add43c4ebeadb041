"""The checks only a CUDA GPU can make, in one run of a few minutes on one H100; writes gpu_results.md/.json.

1. bf16 (frozen backbones bf16, autocast, adapters fp32) train step, generate and peak memory of all five
   methods and the bare LLM at LLaMA-7B's layer width and ViT-L/14's block width, 8 decoder layers and 6
   vision blocks (the real 32 : 24 depth ratio), batch 4 × 512 text tokens, random weights, interleaved,
   medians: ADEM-VL ÷ LLaVA-LoRA (train, generate) and the LLM-side forward ÷ the bare LLM against the
   analytic fusion overhead (×1.013 at 7B).
2. A 4-bit NF4 frozen LLM on CUDA (transformers' BitsAndBytesConfig) against the same LLM in bf16: its
   bytes on the GPU, a training step's time and peak memory, the loss of one batch in both.
3. Every CUDA-only test (`pytest -m cuda`).

    bash benchmarks/gpu_check.sh              # on a machine with a CUDA GPU
    bash benchmarks/gpu_check.sh --dry-run    # on a CPU: the same steps at tiny sizes (what the tests run)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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
from ademvl.bench.steps import VLSteps  # noqa: E402
from ademvl.bench.timing import PROFILES, PeakMemory, _timed, build_backbones, wall_clock  # noqa: E402

METHODS = ["ademvl", "bottleneck", "lavin", "memvp", "llava-lora"]
# 8 LLaMA-7B-width decoder layers to 6 ViT-L/14-width blocks (32 : 24), the paper's batch 4 and 512
# text tokens, vocab 32000 as LLaMA's; 8 new tokens ≈ a ScienceQA answer.
GPU_7B = replace(PROFILES["7b-width"], layers=8, vision_layers=6, vocab=32000, batch_size=4, text_len=512,
                 answer_len=8, new_tokens=8, repeats=5, warmup=2, dtype="bfloat16")
# d_ff 192 and hidden 64: bitsandbytes' CPU layout needs 4-bit layers' widths in blocks of 64 inputs.
DRY_RUN = replace(PROFILES["quick"], intermediate=192, repeats=1, warmup=0, dtype="bfloat16")


def bf16_methods(cfg, device, log) -> dict:
    return wall_clock(cfg, METHODS, device, log=log, profile="gpu-7b")


def four_bit(cfg, device, log) -> dict:
    """The same LLM saved and loaded back in bf16 and in 4-bit; ADEM-VL on each, timed interleaved."""
    from ademvl.model import VLModel

    llm, vision = build_backbones(cfg)
    rows, models = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        llm.save_pretrained(Path(tmp) / "llm")
        vision.save_pretrained(Path(tmp) / "vision")
        del llm
        for precision in ("bf16", "4bit"):
            if device.type == "cuda":
                torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
            model = VLModel.from_backbones(str(Path(tmp) / "llm"), str(Path(tmp) / "vision"),
                                           dtype=torch.bfloat16, quantization="4bit" if precision == "4bit" else None)
            if precision == "bf16":
                model.to(device)
            else:  # bitsandbytes placed the LLM; the rest joins it
                model.vision.to(device)
                model.method.to(device)
            for p in model.trainable_parameters().values():
                p.data = p.data.float()
            llm_bytes = sum(t.numel() * t.element_size() for t in (*model.llm.parameters(), *model.llm.buffers()))
            rows[precision] = {"llm_parameter_bytes": llm_bytes,
                               "gpu_bytes_after_load": (torch.cuda.memory_allocated(device) - before
                                                        if before is not None else None)}
            models[precision] = model
        log("4-bit: models loaded")
        reference = models["bf16"].trainable_parameters()
        models["4bit"].load_state_dict(reference, strict=False)  # same adapters, so the losses compare
        inputs = synthetic_batch(models["bf16"], cfg.batch_size, cfg.text_len, device)
        steps = {precision: VLSteps(model.train(), inputs, cfg.answer_len) for precision, model in models.items()}
        for precision, step in steps.items():  # same batch, same adapter weights: the losses compare
            with torch.autocast(device.type, dtype=torch.bfloat16):
                rows[precision]["loss"] = float(step.train())
        samples = {precision: [] for precision in steps}
        for repeat in range(cfg.warmup + cfg.repeats):
            for precision, step in steps.items():
                with torch.autocast(device.type, dtype=torch.bfloat16), PeakMemory(device) as peak:
                    seconds = _timed(step.train, device)
                if repeat >= cfg.warmup:
                    samples[precision].append(seconds)
                    rows[precision]["train_peak_bytes"] = peak.value
        for precision in steps:
            rows[precision]["train"] = statistics.median(samples[precision])
    rows["4bit_vs_bf16"] = {key: rows["4bit"][key] / rows["bf16"][key]
                            for key in ("train", "llm_parameter_bytes") if rows["bf16"][key]}
    return rows


def cuda_tests(dry_run: bool) -> dict:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py", "-p", "no:cacheprovider"]
    if dry_run:
        command.append("--collect-only")
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return {"command": " ".join(command[2:]), "returncode": proc.returncode, "summary": lines[-1] if lines else ""}


def gib(value) -> str:
    return "n/a" if value is None else f"{value / 2**30:.3g}"


def markdown(record: dict) -> str:
    t, q, c = record["bf16"], record["4bit"], record["cuda_tests"]
    rows = t["rows"]
    lines = [f"# GPU check ({record['date']}, {record['device_name']})", "",
             f"torch {record['machine'].get('torch')}; {'DRY RUN on a CPU at tiny sizes: no GPU figure below' if record['dry_run'] else 'one GPU'}.",
             "", f"## bf16: {t['config']['layers']} decoder layers of width {t['config']['hidden']}, "
             f"{t['config']['vision_layers']} vision blocks of width {t['config']['vision_hidden']}, "
             f"batch {t['config']['batch_size']} × {t['config']['text_len']} tokens", "",
             "| method | train step (s) | generate (s) | LLM-side forward ÷ bare | train ÷ LLaVA-LoRA | generate ÷ LLaVA-LoRA "
             "| train peak (GiB) |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['train']:.4f} | {row['generate']:.4f} | "
                     f"{row.get('forward_llm_vs_bare-llm', float('nan')):.3f} | "
                     f"{row.get('train_vs_llava-lora', float('nan')):.3f} | "
                     f"{row.get('generate_vs_llava-lora', float('nan')):.3f} | {gib(row['peak_bytes'].get('train'))} |")
    expected = t.get("fusion_expectation", {}).get("ratio")
    if expected:
        measured = rows["ademvl"].get("forward_llm_vs_bare-llm")
        lines += ["", f"Fusion overhead: ADEM-VL's LLM-side forward ÷ bare LLM = {measured:.3f} against the analytic "
                  f"×{expected:.3f}."]
    lines += ["", "## 4-bit NF4 frozen LLM against bf16 (ADEM-VL)", "",
              "| precision | LLM bytes | GPU bytes after load | train step (s) | train peak (GiB) | loss |",
              "|---|---|---|---|---|---|"]
    for precision in ("bf16", "4bit"):
        row = q[precision]
        lines.append(f"| {precision} | {gib(row['llm_parameter_bytes'])} GiB | {gib(row['gpu_bytes_after_load'])} | "
                     f"{row['train']:.4f} | {gib(row.get('train_peak_bytes'))} | {row['loss']:.4f} |")
    ratio = q["4bit_vs_bf16"]
    lines += ["", f"4-bit ÷ bf16: train step {ratio.get('train', float('nan')):.2f}, "
              f"LLM bytes {ratio.get('llm_parameter_bytes', float('nan')):.2f}.", "",
              "## CUDA-only tests", "", f"`{c['command']}` → exit {c['returncode']}: {c['summary']}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU at tiny sizes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks"), help="folder for gpu_results.md/.json")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; use --dry-run to exercise the steps on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    cfg = DRY_RUN if args.dry_run else GPU_7B
    start = time.perf_counter()

    def log(message):
        print(f"[gpu_check {time.perf_counter() - start:5.0f} s] {message}", flush=True)

    record = {"date": time.strftime("%Y-%m-%d %H:%M"), "dry_run": args.dry_run, "machine": machine_info(),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
              "config": asdict(cfg)}
    log("bf16 wall-clock of the five methods and the bare LLM …")
    record["bf16"] = bf16_methods(cfg, device, log)
    log("4-bit against bf16 …")
    record["4bit"] = four_bit(cfg, device, log)
    log("CUDA-only tests …")
    record["cuda_tests"] = cuda_tests(args.dry_run)
    record["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "gpu_results.md").write_text(markdown(record))
    print(markdown(record))
    log(f"wrote {out / 'gpu_results.md'}")
    return 0 if record["cuda_tests"]["returncode"] in (0, 5) else 1


if __name__ == "__main__":
    sys.exit(main())
