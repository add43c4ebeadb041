"""`ademvl bench` on tiny configs writes a JSON record and a Markdown table with a row per method."""
import json
from dataclasses import replace

import pytest
from transformers import CLIPVisionConfig, LlamaConfig

from ademvl import presets
from ademvl.bench import timing
from ademvl.cli import main
from ademvl.methods import METHODS


@pytest.fixture
def tiny_presets(monkeypatch):
    monkeypatch.setitem(presets.LLM_PRESETS, "tiny-llama", lambda: LlamaConfig(
        hidden_size=32, intermediate_size=86, num_hidden_layers=2, num_attention_heads=4, vocab_size=100))
    monkeypatch.setitem(presets.VISION_PRESETS, "tiny-clip", lambda: CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=24, num_attention_heads=2, image_size=32,
        patch_size=2))  # 16×16 grid: the default scales (256, 64) fit
    monkeypatch.setattr(timing, "QUICK", timing.SmallConfig(
        hidden=32, intermediate=86, layers=2, heads=4, vocab=100, vision_hidden=16, vision_intermediate=32,
        vision_layers=24, vision_heads=2, image_size=32, patch_size=2, batch_size=1, text_len=6,
        answer_len=2, new_tokens=2, repeats=2, warmup=0))


# ADEM-VL and, when registered, the reference of the ratio columns (all methods would be slow here).
CHOSEN = ["ademvl"] + [m for m in ("llava-lora",) if m in METHODS]


def test_bench_writes_json_and_markdown(tmp_path, tiny_presets, capsys):
    rc = main(["bench", "--quick", "--threads", "1", "--llm", "tiny-llama", "--vision", "tiny-clip",
               "--text-len", "8", "--out", str(tmp_path), "--note", "test run", "--methods", *CHOSEN])
    assert rc == 0
    record = json.loads((tmp_path / "results.json").read_text())
    assert {"cpu", "cores", "torch"} <= set(record["machine"])
    assert record["note"] == "test run"

    (table,) = record["flops"]
    assert table["llm"] == "tiny-llama" and table["text_len"] == 8
    assert set(table["rows"]) == {"bare-llm", *CHOSEN}
    ademvl = table["rows"]["ademvl"]
    assert ademvl["extra_tokens"] == 1
    assert ademvl["counted_fusion"]["forward"] == ademvl["analytic_fusion"]["forward"] > 0
    assert ademvl["forward"] > table["rows"]["bare-llm"]["forward"]

    (clock,) = record["wall_clock"]
    assert clock["profile"] == "quick"
    assert set(clock["rows"]) == {"bare-llm", *CHOSEN} and not clock["errors"]
    row = clock["rows"]["ademvl"]
    for kind in ("forward", "forward_llm", "train", "generate"):
        assert row[kind] > 0 and len(row[kind + "_samples"]) == 2
        assert row[f"{kind}_vs_bare-llm"] == pytest.approx(row[kind] / clock["rows"]["bare-llm"][kind])
    assert clock["rows"]["bare-llm"]["forward_vs_bare-llm"] == 1.0
    if "llava-lora" in CHOSEN:
        assert row["train_vs_llava-lora"] == pytest.approx(row["train"] / clock["rows"]["llava-lora"]["train"])

    md = (tmp_path / "results.md").read_text()
    assert "| method | extra input tokens | trainable | forward TFLOPs (prompt) |" in md
    assert "| method | extra input tokens | forward ms | LLM-side forward ms |" in md
    for name in ("bare-llm", *clock["rows"]):
        assert f"| {name} |" in md


def test_bench_rejects_an_unknown_method(tmp_path, capsys):
    assert main(["bench", "--methods", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method(s) ['nope']" in capsys.readouterr().err


def test_depth_extrapolation_equals_the_full_depth_count(tiny_presets, monkeypatch):
    from ademvl.bench.flops import flops_table

    monkeypatch.setitem(presets.LLM_PRESETS, "tiny-llama-4", lambda: LlamaConfig(
        hidden_size=32, intermediate_size=86, num_hidden_layers=4, num_attention_heads=4, vocab_size=100))
    fast = flops_table("tiny-llama-4", "tiny-clip", 8, ["ademvl"])["rows"]
    exact = flops_table("tiny-llama-4", "tiny-clip", 8, ["ademvl"], exact=True)["rows"]
    for name in ("bare-llm", "ademvl"):
        assert {k: fast[name][k] for k in ("forward", "decode", "train")} == \
               {k: exact[name][k] for k in ("forward", "decode", "train")}


def test_method_copies_share_the_frozen_weights_and_leave_the_original_unwrapped():
    """The bench gives each method its own module tree over one set of frozen tensors."""
    import torch

    from ademvl.bench.timing import QUICK, bench_method_config, build_backbones, share_frozen_copy
    from ademvl.methods.ademvl import FusedMLP
    from ademvl.model import VLModel

    llm, vision = build_backbones(QUICK)
    ids = torch.randint(3, QUICK.vocab, (1, 6))
    with torch.no_grad():
        before = llm(input_ids=ids).logits
    models = [VLModel.from_backbones(share_frozen_copy(llm), share_frozen_copy(vision), method=m,
                                     method_config=bench_method_config(m, QUICK)) for m in ("ademvl", "memvp")]
    for model in models:
        assert model.llm.model.embed_tokens.weight is llm.model.embed_tokens.weight
        assert model.llm.model.layers[0] is not llm.model.layers[0]
    assert isinstance(models[0].llm.model.layers[0].mlp, FusedMLP)
    assert not isinstance(llm.model.layers[0].mlp, FusedMLP)  # the bare LLM stays bare
    with torch.no_grad():
        assert torch.equal(llm(input_ids=ids).logits, before)
    assert bench_method_config("lavin", QUICK) == {"neck_every": 4}  # 24 blocks: 4, 8, …, 24 as ViT-L
    assert bench_method_config("bottleneck", replace(QUICK, vision_layers=6)) == {"neck_every": 1}
