"""On the real SmolLM2-135M (slow: converts the GGUF once, ~1 min): fusion off = the plain model."""
import copy

import pytest
import torch

pytestmark = pytest.mark.slow


def test_alpha_zero_equals_plain_smollm2_and_generation_is_cached_exactly():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ademvl.backbones import smollm2_path
    from ademvl.model import VLModel
    from tiny import tiny_vision

    path = smollm2_path()
    plain = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    model = VLModel.from_backbones(copy.deepcopy(plain), tiny_vision(), alpha=0.0, use_cls=False, scales=(16,)).eval()
    ids = tok(["The capital of France is"], return_tensors="pt").input_ids
    with torch.no_grad():
        assert (model(input_ids=ids).logits - plain(input_ids=ids).logits).abs().max().item() <= 1e-5
    out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False)
    assert tok.decode(out[0, ids.shape[1]:]).strip().startswith("Paris")
