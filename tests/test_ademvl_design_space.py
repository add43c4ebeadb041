"""ADEM-VL's design space (paper Tables VIII and IX): the projection φ and the prompt's pooling and scales.

Each setting: the default is bit for bit the code path before the settings existed; α = 0 is the plain
LLM; a non-default value changes the logits; cached generation equals recomputing the whole sequence.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import ademvl.methods.ademvl as ademvl_module
from ademvl.fusion import FEATURE_MAPS, adaptive_drop_, feature_map
from ademvl.model import VLModel
from ademvl.vision import multiscale_pool
from test_generation import PAD, greedy_by_recomputing
from tiny import batch, tiny_llm, tiny_model, tiny_vision

NON_DEFAULT = [("feature_map", name) for name in FEATURE_MAPS if name != "silu"] + [("pooling", "max")]


# --- the code path as it was before `feature_map` and `pooling` (silu and average pooling written out) ---

def _old_adaptive_fusion(query, keys, values, gamma, *_):
    scores = torch.matmul(F.silu(query), keys.to(query.dtype).transpose(-1, -2))
    return torch.matmul(adaptive_drop_(scores, gamma), values.to(query.dtype))


def _old_multiscale_pool(patches, scales, *_):
    batch_size, num, dim = patches.shape
    grid = math.isqrt(num)
    grid_map = patches.transpose(1, 2).reshape(batch_size, dim, grid, grid)
    levels = [patches if math.isqrt(s) == grid else
              F.adaptive_avg_pool2d(grid_map, math.isqrt(s)).flatten(2).transpose(1, 2) for s in scales]
    return torch.cat(levels, dim=1)


def _logits(model, image_rows=(1, 0)):
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=image_rows)
    with torch.no_grad():
        return model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits


def test_defaults_are_bit_identical_to_the_old_code_path(monkeypatch):
    model = tiny_model("llama", alpha=0.5, gamma=0.2)
    assert (model.method.settings.feature_map, model.method.settings.pooling) == ("silu", "avg")
    now = _logits(model)
    monkeypatch.setattr(ademvl_module, "adaptive_fusion", _old_adaptive_fusion)
    monkeypatch.setattr(ademvl_module, "multiscale_pool", _old_multiscale_pool)
    monkeypatch.setattr(ademvl_module, "feature_map", lambda x, *_: F.silu(x))
    assert torch.equal(now, _logits(model))


@pytest.mark.parametrize("key, value", NON_DEFAULT)
def test_alpha_zero_is_the_plain_llm(key, value):
    llm = tiny_llm("llama")
    reference = copy.deepcopy(llm)
    model = VLModel.from_backbones(llm, tiny_vision(), alpha=0.0, use_cls=False, scales=(16, 4), **{key: value})
    with torch.no_grad():
        model.method.pos_values.normal_()  # the fusion path is live, only α silences it
    ids, *_ = batch()
    with torch.no_grad():
        plain = reference(input_ids=ids).logits
    assert (_logits(model.eval()) - plain).abs().max().item() <= 1e-5


@pytest.mark.parametrize("key, value", NON_DEFAULT)
def test_a_non_default_value_changes_the_logits(key, value):
    default = _logits(tiny_model("llama", alpha=0.5))
    other = _logits(tiny_model("llama", alpha=0.5, **{key: value}))
    assert (other[0] - default[0]).abs().max().item() > 1e-4  # the image row
    if key == "pooling":  # a text-only row pools no image (its keys are φ(E1) alone, which φ does change)
        torch.testing.assert_close(other[1], default[1])


@pytest.mark.parametrize("key, value", NON_DEFAULT)
def test_cached_generation_equals_recomputing(key, value):
    model = tiny_model("llama", alpha=0.5, **{key: value})
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 1))
    cached = model.generate(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot,
                            max_new_tokens=6, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    assert torch.equal(cached, greedy_by_recomputing(model, ids, pixels, has_image, slot, 6))


def test_each_feature_map_is_its_formula_on_each_tokens_features():
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    expected = {"silu": F.silu(x), "none": x, "softmax": torch.softmax(x, -1), "relu": F.relu(x), "elu": F.elu(x),
                "silu_positive": F.silu(x) - x.min(dim=-1, keepdim=True).values}
    assert set(expected) == set(FEATURE_MAPS)
    for name, want in expected.items():
        torch.testing.assert_close(feature_map(x, name), want)
        # one token's φ reads that token only: changing the other tokens leaves it as it was (causal)
        other = x.clone()
        other[:, 1:] = torch.randn_like(other[:, 1:])
        torch.testing.assert_close(feature_map(other, name)[:, 0], feature_map(x, name)[:, 0])
    torch.testing.assert_close(feature_map(x, "softmax").sum(-1), torch.ones(2, 5, dtype=torch.float64))


def test_the_keys_go_through_the_same_feature_map():
    model = tiny_model("llama", feature_map="elu")
    n_v = model.method.num_visual
    visual = model.method.encode(None, torch.zeros(2), 2)  # no image: V = 0, K = φ(E1)
    torch.testing.assert_close(visual.keys, F.elu(model.method.pos_keys).expand(2, n_v, -1))


def test_max_pooling_takes_each_cells_maximum():
    patches = torch.randn(2, 16, 3)  # a 4×4 grid
    pooled = multiscale_pool(patches, (16, 4, 1), "max")
    grid = patches.view(2, 4, 4, 3)
    blocks = grid.view(2, 2, 2, 2, 2, 3).amax(dim=(2, 4)).reshape(2, 4, 3)  # 2×2 cells of 2×2 patches
    torch.testing.assert_close(pooled, torch.cat([patches, blocks, patches.amax(1, keepdim=True)], dim=1))
    avg = multiscale_pool(patches, (4,))
    torch.testing.assert_close(avg, grid.view(2, 2, 2, 2, 2, 3).mean(dim=(2, 4)).reshape(2, 4, 3))


@pytest.mark.parametrize("scales", [(16,), (4,), (1,), (4, 1), (16, 1), (16, 4, 1)])
@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_any_scale_set_that_fits_the_grid(scales, pooling):
    model = tiny_model("llama", alpha=0.5, scales=scales, pooling=pooling)
    assert model.method.num_visual == sum(scales)
    assert torch.isfinite(_logits(model)).all()


@pytest.mark.parametrize("key, value, message", [
    ("feature_map", "gelu", "feature_map must be one of silu, none, softmax, relu, elu, silu_positive, got 'gelu'"),
    ("pooling", "median", "pooling must be one of avg, max, got 'median'"),
])
def test_an_unknown_choice_is_one_line_naming_the_choices(key, value, message):
    with pytest.raises(ValueError) as error:
        tiny_model("llama", **{key: value})
    assert message in str(error.value) and "\n" not in str(error.value)
