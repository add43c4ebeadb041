"""The side-by-side benchmark scripts (`benchmarks/llava_fairness.py`, `benchmarks/precision_bench.py`)
run their --quick configuration on tiny backbones and write finite, positive times and ratios."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from ademvl.bench import timing

ROOT = Path(__file__).resolve().parents[1]

# 16×16 patch grid (ADEM-VL's default scales fit), 24 blocks (the necks' [cls] blocks exist); widths
# multiples of 64, as bitsandbytes' CPU 4-bit layout needs.
TINY = timing.SmallConfig(hidden=64, intermediate=128, layers=2, heads=2, vocab=128, vision_hidden=16,
                          vision_intermediate=32, vision_layers=24, vision_heads=2, image_size=32, patch_size=2,
                          batch_size=1, text_len=6, answer_len=2, new_tokens=2, repeats=1, warmup=0)


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_llava_fairness_quick(tmp_path, monkeypatch, capsys):
    script = load_script("llava_fairness")
    monkeypatch.setitem(timing.PROFILES, "quick", TINY)
    assert script.main(["--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "llava_fairness.json").read_text())
    (result,) = record["results"]
    assert set(result["rows"]) == set(script.MODELS)
    for row in result["rows"].values():
        assert positive(row["train"]) and positive(row["generate"]) and row["trainable"] > 0
    ours, hf = result["rows"]["ours-llava-lora"], result["rows"]["hf-llava-lora+adapters"]
    assert ours["trainable"] == hf["trainable"] and ours["sequence"] == hf["sequence"] == 6 + 256
    assert result["rows"]["hf-llava-lora"]["trainable"] == result["rows"]["ours-llava-lora-noadapters"]["trainable"]
    assert len(result["ratios"]) == 5
    for ratio in result["ratios"].values():  # wall-clock and CPU time, train and generate
        assert set(ratio) == {"train", "generate", "train_cpu", "generate_cpu"}
        assert all(positive(v) for v in ratio.values())
    assert result["ratios"]["ours ÷ HF (vision adapters)"]["train"] == pytest.approx(ours["train"] / hf["train"])
    for check in result["same_function"].values():  # same backbones, projector, LoRA: same logits
        assert check["max_abs_logit_diff"] < 1e-4
    md = (tmp_path / "llava_fairness.md").read_text()
    assert "| ours ÷ HF (vision adapters) |" in md and "| ADEM-VL ÷ HF LLaVA-LoRA + adapters |" in md

    # --append keeps another profile's results (here the first run, relabelled) and adds the new run
    record["results"][0]["profile"] = "small"
    (tmp_path / "llava_fairness.json").write_text(json.dumps(record))
    assert script.main(["--quick", "--threads", "1", "--out", str(tmp_path), "--append",
                        "--models", "ademvl", "ours-llava-lora"]) == 0
    merged = json.loads((tmp_path / "llava_fairness.json").read_text())
    assert [r["profile"] for r in merged["results"]] == ["small", "quick"]
    assert set(merged["results"][1]["ratios"]) == {"ADEM-VL ÷ ours LLaVA-LoRA"}
    assert "## small:" in (tmp_path / "llava_fairness.md").read_text()


def test_precision_bench_quick(tmp_path, monkeypatch, capsys):
    pytest.importorskip("bitsandbytes")
    script = load_script("precision_bench")
    monkeypatch.setattr(script, "QUICK", TINY)
    assert script.main(["--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "precision.json").read_text())["result"]
    assert set(result["rows"]) == {f"{m}/{p}" for m in ("ademvl", "llava-lora") for p in script.PRECISIONS}
    for row in result["rows"].values():
        assert all(positive(row[k]) for k in ("train", "generate", "train_cpu", "generate_cpu"))
        assert math.isfinite(row["loss"])
        assert row["peak_memory"] == "n/a on CPU"
    for ratios in result["ratios"].values():
        times = [k for k in ratios if "÷" in k]  # {train, generate} × {wall, CPU} × {bf16÷fp32, 4bit÷bf16}
        assert len(times) == 8 and all(positive(ratios[k]) for k in times)
        assert ratios["loss |bf16−fp32|"] < 0.1 and ratios["loss |4bit−fp32|"] < 0.5
    blocks = {p: b["decoder_blocks"] for p, b in result["llm_bytes"].items()}
    assert blocks["bf16"] * 2 == blocks["fp32"] and blocks["4bit"] < 0.2 * blocks["fp32"]
    assert [result["rows"][f"ademvl/{p}"]["block_linear_dtypes"] for p in script.PRECISIONS] == [
        ["torch.float32"], ["torch.bfloat16"], ["torch.uint8"]]
    md = (tmp_path / "precision.md").read_text()
    assert "| ademvl | 4bit |" in md and "n/a on CPU" in md


def test_bench_records_cpu_time_beside_wall_clock(tmp_path, monkeypatch, capsys):
    from ademvl.cli import main

    monkeypatch.setitem(timing.PROFILES, "quick", TINY)
    monkeypatch.setattr(timing, "QUICK", TINY)
    assert main(["bench", "--quick", "--no-flops", "--threads", "1", "--out", str(tmp_path),
                 "--methods", "ademvl", "llava-lora"]) == 0
    (clock,) = json.loads((tmp_path / "results.json").read_text())["wall_clock"]
    for row in clock["rows"].values():
        for kind in ("forward", "forward_llm", "train", "generate"):
            assert positive(row[kind + "_cpu"]) and len(row[kind + "_cpu_samples"]) == 1
    row = clock["rows"]["ademvl"]
    assert row["train_cpu_vs_llava-lora"] == pytest.approx(row["train_cpu"] / clock["rows"]["llava-lora"]["train_cpu"])
    assert "| method | forward CPU ms | LLM-side forward CPU ms |" in (tmp_path / "results.md").read_text()
