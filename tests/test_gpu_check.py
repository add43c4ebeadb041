"""The GPU check script's CPU dry run: every step it takes on a GPU runs here at tiny sizes and
lands in its report, so the day a GPU is at hand the script runs through."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_writes_every_section(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "gpu_results.json").read_text())
    assert record["dry_run"] is True
    rows = record["bf16"]["rows"]
    assert set(rows) == {"bare-llm", "ademvl", "bottleneck", "lavin", "memvp", "llava-lora"}
    for name, row in rows.items():
        for kind in ("train", "generate", "forward_llm"):
            assert math.isfinite(row[kind]) and row[kind] > 0, (name, kind)
    assert record["bf16"]["fusion_expectation"]["ratio"] > 1
    quantized = record["4bit"]
    assert quantized["4bit"]["llm_parameter_bytes"] < quantized["bf16"]["llm_parameter_bytes"]
    assert abs(quantized["4bit"]["loss"] - quantized["bf16"]["loss"]) < 0.5
    assert re.search(r"\b[1-9]\d* tests? collected", record["cuda_tests"]["summary"])  # pytest -m cuda finds them
    report = (tmp_path / "gpu_results.md").read_text()
    assert "DRY RUN" in report and "| ademvl |" in report and "4-bit ÷ bf16" in report


def test_without_a_gpu_the_real_run_says_so_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("gpu_check: no CUDA GPU here; use --dry-run to exercise the "
                                                    "steps on the CPU")
    assert not (tmp_path / "gpu_results.md").exists()
