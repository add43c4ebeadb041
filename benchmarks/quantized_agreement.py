"""Does a 4-bit (or 8-bit) frozen LLM answer as the fp32 one does? The demo's adapter on the real
SmolLM2-135M-Instruct, the first N easy-VQA test questions, greedy answers through `ademvl eval`
(the command a user runs) in fp32, then with `--quantization 4bit` / `8bit`.

Reported per precision: exact-match accuracy, the share of questions whose answer text equals the
fp32 answer (agreement), and the eval's wall-clock on this machine.

    ademvl demo                                             # trains runs/demo/ademvl/adapter once
    python benchmarks/quantized_agreement.py --checkpoint runs/demo/ademvl/adapter --out benchmarks
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS = ("fp32", "4bit", "8bit")


def evaluate(checkpoint: Path, precision: str, questions: int, output: Path, threads: int | None) -> dict:
    command = [sys.executable, "-m", "ademvl.cli", "eval", "--checkpoint", str(checkpoint), "--dataset", "easyvqa",
               "--split", "test", "--limit", str(questions), "--max-new-tokens", "8", "--device", "cpu",
               "--no-progress", "--output", str(output)]
    if precision != "fp32":
        command += ["--quantization", precision]
    env = None
    if threads:
        import os

        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ademvl eval ({precision}) failed: {proc.stderr.strip().splitlines()[-1]}")
    result = json.loads(output.read_text())
    return {"seconds": seconds, "result": result}


def answers(result: dict) -> dict[str, str]:
    return {str(p["id"]): p["generated"] for p in result["predictions"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/ademvl/adapter", help="the demo's adapter directory")
    parser.add_argument("--questions", type=int, default=200, help="first N easy-VQA test questions")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="fp32 first, then the quantized ones")
    parser.add_argument("--threads", type=int, default=None, help="OMP threads of each eval")
    parser.add_argument("--out", default="benchmarks", help="folder for quantized_agreement.json/.md")
    args = parser.parse_args(argv)
    checkpoint = Path(args.checkpoint)
    if not (checkpoint / "ademvl_adapter.json").is_file():
        raise SystemExit(f"no adapter at '{checkpoint}': run `ademvl demo` first (or pass --checkpoint)")
    precisions = args.precisions.split(",")
    if precisions[0] != "fp32":
        raise SystemExit("--precisions must start with fp32 (the reference)")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in precisions:
            print(f"evaluating {args.questions} questions in {precision} …", flush=True)
            rows[precision] = evaluate(checkpoint, precision, args.questions, Path(tmp) / f"{precision}.json",
                                       args.threads)
    reference = answers(rows["fp32"]["result"])
    table = []
    for precision, row in rows.items():
        mine = answers(row["result"])
        same = sum(mine.get(key) == value for key, value in reference.items())
        metrics = row["result"]["metrics"]
        table.append({"precision": precision, "questions": len(mine), "accuracy": metrics.get("overall"),
                      "agreement_with_fp32": same / len(reference), "seconds": row["seconds"]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"date": time.strftime("%Y-%m-%d"), "checkpoint": str(checkpoint), "questions": args.questions,
              "rows": table}
    (out / "quantized_agreement.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# 4-bit and 8-bit frozen LLM against fp32 ({record['date']})", "",
             f"The demo adapter (`{checkpoint}`) on SmolLM2-135M-Instruct, the first {args.questions} easy-VQA "
             "test questions, greedy answers through `ademvl eval` on this machine's CPU "
             "(bitsandbytes NF4 with double quantisation / int8; the LLM's linear layers only).", "",
             "| precision | accuracy | answers equal to fp32's | eval seconds |", "|---|---|---|---|"]
    for row in table:
        accuracy = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.1f}"
        lines.append(f"| {row['precision']} | {accuracy} | {100 * row['agreement_with_fp32']:.1f} % | "
                     f"{row['seconds']:.0f} |")
    (out / "quantized_agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
