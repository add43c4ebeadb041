"""capture_fusion_scores on a tiny model: shapes, and scores/mask identical to what the fusion used."""
import numpy as np
import pytest
import torch

from ademvl.fusion import adaptive_drop_, cross_attention_scores
from ademvl.methods.ademvl import FusedMLP
from ademvl.methods.layer_call import current_layer_call
from ademvl.vision import multiscale_pool
from ademvl.visualize import capture_fusion_scores, kept_mask, select_maps, split_by_scales
from tiny import batch, tiny_model


def inputs(batch_size=1, image_rows=(1,)):
    ids, pixels, has_image, slot = batch(batch_size=batch_size, length=9, image_rows=image_rows)
    return {"input_ids": ids, "pixel_values": pixels, "has_image": has_image, "image_slot": slot}


def test_shapes_are_layers_by_tokens_by_visual_features():
    model = tiny_model("llama")  # 2 decoder layers, scales (16, 4)
    captured = capture_fusion_scores(model, inputs())
    assert captured["scores"].shape == (2, 9, 20) and captured["scores"].dtype == np.float32
    assert captured["kept"].shape == (2, 9, 20) and captured["kept"].dtype == bool


@pytest.mark.parametrize("arch, gamma", [("llama", 0.3), ("gpt2", 0.1), ("qwen2", 0.0)])
def test_capture_matches_ademvl_fusion_on_the_same_inputs(arch, gamma):
    model = tiny_model(arch, gamma=gamma, alpha=0.5)
    seen = []  # independent record of each layer's query, memory and actual fused contribution

    def spy(module, args, output):
        n, visual = args[0], current_layer_call().visual
        seen.append((n[0], visual.keys[0], visual.values[0],
                     (output - module.base_layer(n))[0] / module.alpha))

    handles = [m.register_forward_hook(spy) for m in model.llm.modules() if isinstance(m, FusedMLP)]
    captured = capture_fusion_scores(model, inputs())
    for h in handles:
        h.remove()
    assert len(seen) == captured["scores"].shape[0] == 2
    n_visual = 20
    for layer, (n, keys, values, fused) in enumerate(seen):
        expected = cross_attention_scores(n[None], keys[None])[0]
        np.testing.assert_allclose(captured["scores"][layer], expected.numpy(), rtol=1e-5, atol=1e-6)
        dropped_by_fusion = adaptive_drop_(expected.clone(), gamma) == 0
        assert np.array_equal(captured["kept"][layer], ~dropped_by_fusion.numpy())
        assert (captured["kept"][layer].sum(-1) == n_visual - int(gamma * n_visual)).all()
        # The kept mask reproduces the layer's real fused output: F(n) = (M ⊙ S) U.
        recomputed = (torch.from_numpy(captured["scores"][layer] * captured["kept"][layer])) @ values
        torch.testing.assert_close(recomputed, fused, rtol=1e-4, atol=1e-5)


def test_kept_mask_agrees_with_adaptive_drop_on_random_scores():
    scores = torch.randn(3, 7, 50)
    for gamma in (0.0, 0.1, 0.5, 0.98):
        assert torch.equal(kept_mask(scores, gamma), adaptive_drop_(scores.clone(), gamma) != 0)


def test_a_planted_huge_key_dominates_the_captured_scores():
    model = tiny_model("llama", gamma=0.25)
    with torch.no_grad():
        model.method.pos_keys[6] = 50.0  # K_6 = silu(V + E1) ≈ 50·1: score = 50·Σ silu(n) ≫ the rest
    captured = capture_fusion_scores(model, inputs())
    assert (captured["scores"].argmax(-1) == 6).mean() > 0.9
    assert captured["kept"][:, :, 6].all()
    scores, kept = select_maps(captured, "mean", slice(None))
    fine, coarse = split_by_scales(scores, (16, 4))
    assert np.unravel_index(fine.argmax(), fine.shape) == (1, 2)  # index 6 of a row-major 4×4 grid


def test_row_selects_the_sample_and_text_only_rows_still_have_scores():
    model = tiny_model("llama")
    both = inputs(batch_size=2, image_rows=(1, 0))
    first = capture_fusion_scores(model, both, row=0)
    second = capture_fusion_scores(model, both, row=1)
    single = capture_fusion_scores(model, {k: v[:1] for k, v in both.items()})
    np.testing.assert_allclose(first["scores"], single["scores"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(first["scores"], second["scores"])


def test_model_without_fusion_layers_is_refused():
    with pytest.raises(ValueError, match="no ADEM-VL fusion layers"):
        capture_fusion_scores(tiny_model("llama", fusion=False), inputs())


def test_select_maps_reduces_layers_and_tokens():
    scores = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    kept = np.zeros((2, 3, 4), bool)
    kept[1, 2] = True
    captured = {"scores": scores, "kept": kept}
    s, k = select_maps(captured, 1, 2)
    assert np.array_equal(s, scores[1, 2]) and np.array_equal(k, np.ones(4))
    s, k = select_maps(captured, "mean", [1, 2])
    assert np.allclose(s, scores[:, 1:3].mean(axis=(0, 1))) and np.allclose(k, 0.25)
    s, _ = select_maps(captured, -1, -1)
    assert np.array_equal(s, scores[1, 2])
    with pytest.raises(ValueError, match="layer 2"):
        select_maps(captured, 2, 0)
    with pytest.raises(ValueError, match="empty"):
        select_maps(captured, 0, [])


def test_split_by_scales_follows_the_pooling_layout():
    # Patch value = its row in a 4×4 grid: the pooled 2×2 scale has rows 0.5 and 2.5, in that order.
    rows = torch.arange(4.0).repeat_interleave(4).view(1, 16, 1)
    pooled = multiscale_pool(rows, (16, 4))[0, :, 0].numpy()
    fine, coarse = split_by_scales(pooled, (16, 4))
    assert np.array_equal(fine[:, 0], [0, 1, 2, 3]) and np.array_equal(fine[0], [0, 0, 0, 0])
    assert np.allclose(coarse, [[0.5, 0.5], [2.5, 2.5]])
    with pytest.raises(ValueError, match="do not match scales"):
        split_by_scales(pooled, (16,))
