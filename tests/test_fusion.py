"""The fusion arithmetic against a straightforward, loop-based reading of SPEC §1."""
import math

import pytest
import torch
import torch.nn.functional as F

from ademvl.fusion import adaptive_fusion
from tiny import batch, tiny_model


def reference_fusion(n, K, U, gamma):
    """Per token: S = silu(n)Kᵀ; sort ascending; threshold = sorted[int(γ·N)]; zero S < threshold; S·U."""
    out = torch.zeros(n.shape[0], n.shape[1], U.shape[-1], dtype=torch.float64)
    n, K, U = n.double(), K.double(), U.double()
    for b in range(n.shape[0]):
        for t in range(n.shape[1]):
            s = F.silu(n[b, t]) @ K[b].T
            threshold = torch.sort(s).values[int(gamma * s.numel())]
            s = torch.where(s < threshold, torch.zeros_like(s), s)
            out[b, t] = s @ U[b]
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.25, 0.5, 0.95])
@pytest.mark.parametrize("num_visual", [20, 7, 1])  # 7: γ·N_v not an integer
def test_matches_reference(gamma, num_visual):
    g = torch.Generator().manual_seed(0)
    n, K, U = (torch.randn(2, 5, 12, generator=g), torch.randn(2, num_visual, 12, generator=g),
               torch.randn(2, num_visual, 12, generator=g))
    ours = adaptive_fusion(n, K, U, gamma)
    torch.testing.assert_close(ours.double(), reference_fusion(n, K, U, gamma), rtol=1e-5, atol=1e-5)


def test_gamma_zero_keeps_everything():
    g = torch.Generator().manual_seed(1)
    n, K, U = torch.randn(1, 3, 8, generator=g), torch.randn(1, 10, 8, generator=g), torch.randn(1, 10, 8, generator=g)
    dense = (F.silu(n) @ K.transpose(1, 2)) @ U
    torch.testing.assert_close(adaptive_fusion(n, K, U, 0.0), dense)


def test_ties_at_the_threshold_are_kept():
    # Identical keys give identical scores: nothing is strictly below the threshold.
    n = torch.randn(1, 2, 4)
    K = torch.ones(1, 6, 4)
    U = torch.randn(1, 6, 4)
    dense = (F.silu(n) @ K.transpose(1, 2)) @ U
    torch.testing.assert_close(adaptive_fusion(n, K, U, 0.5), dense)
    # Two tied lowest scores with index 1: the threshold equals them, both stay.
    K2 = torch.stack([torch.full((4,), v) for v in (1.0, 1.0, 2.0, 3.0)]).unsqueeze(0)
    n2 = torch.ones(1, 1, 4)
    U2 = torch.eye(4).unsqueeze(0)
    s = (F.silu(n2) @ K2.transpose(1, 2))[0, 0]
    torch.testing.assert_close(adaptive_fusion(n2, K2, U2, 0.25)[0, 0], s)  # int(0.25·4)=1 → threshold s[1]
    kept = adaptive_fusion(n2, K2, U2, 0.5)[0, 0]                             # int(0.5·4)=2 → s[0], s[1] dropped
    torch.testing.assert_close(kept, torch.tensor([0.0, 0.0, s[2].item(), s[3].item()]))


def test_gamma_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="gamma"):
        adaptive_fusion(torch.randn(1, 1, 2), torch.randn(1, 3, 2), torch.randn(1, 3, 2), 1.0)


def _manual_memory(model, pixels, has_image):
    """V, K, U and the [cls] token of each sample, computed by hand from SPEC §1."""
    s, tower, method = model.method.settings, model.vision, model.method
    hidden = tower.model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    hidden = tower.post_norm(hidden)
    cls, patches = hidden[:, 0], hidden[:, 1:]
    grid = math.isqrt(patches.shape[1])
    levels = []
    for scale in s.scales:
        side = math.isqrt(scale)
        step = grid // side
        for i in range(side):
            for j in range(side):
                cells = [patches[:, (i * step + a) * grid + (j * step + c)] for a in range(step) for c in range(step)]
                levels.append(torch.stack(cells).mean(0))
    pooled = torch.stack(levels, dim=1)
    V = s.beta * method.patch_projector(pooled) * has_image.view(-1, 1, 1).float()
    K = F.silu(V + method.pos_keys)
    U = V + method.pos_values
    return K, U, method.cls_projector(cls)


def test_every_layer_adds_alpha_times_the_reference_fusion_in_a_mixed_batch():
    model = tiny_model("llama", alpha=0.3, gamma=0.2)
    ids, pixels, has_image, slot = batch(batch_size=3, image_rows=(1, 0, 1))
    captured = []
    for block in model.llm.model.layers:
        block.mlp.register_forward_hook(lambda mod, args, out: captured.append((args[0], out, mod.base_layer(args[0]))))
    with torch.no_grad():
        model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot)
        K, U, cls = _manual_memory(model, pixels, has_image)
    assert len(captured) == len(model.llm.model.layers)
    for n, out, base in captured:
        expected = base.double() + 0.3 * reference_fusion(n, K, U, 0.2)
        torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-5)


def test_cls_token_goes_in_at_the_slot_and_only_for_image_rows():
    model = tiny_model("llama")
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(1, 0))
    seen = []
    model.llm.model.layers[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    with torch.no_grad():
        model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot)
        _, _, cls = _manual_memory(model, pixels, has_image)
        plain = model.llm.get_input_embeddings()(ids)
    embeds = seen[0]
    torch.testing.assert_close(embeds[0, 2], cls[0])
    mask = torch.ones_like(embeds[..., 0], dtype=torch.bool)
    mask[0, 2] = False
    torch.testing.assert_close(embeds[mask], plain[mask])  # text-only row and other positions untouched


def test_rows_do_not_leak_into_each_other():
    model = tiny_model("qwen2")
    ids, pixels, has_image, slot = batch(batch_size=3, image_rows=(1, 0, 1))
    with torch.no_grad():
        together = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
        for row in range(3):
            alone = model(input_ids=ids[row:row + 1], pixel_values=pixels[row:row + 1],
                          has_image=has_image[row:row + 1], image_slot=slot[row:row + 1]).logits
            torch.testing.assert_close(alone[0], together[row], rtol=1e-4, atol=1e-5)


def test_text_only_rows_ignore_their_pixels():
    model = tiny_model("llama")
    ids, pixels, has_image, slot = batch(batch_size=2, image_rows=(0, 0))
    with torch.no_grad():
        a = model(input_ids=ids, pixel_values=pixels, has_image=has_image, image_slot=slot).logits
        b = model(input_ids=ids, pixel_values=torch.randn_like(pixels), has_image=has_image, image_slot=slot).logits
        c = model(input_ids=ids).logits  # no pixels at all: the same text-only path
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_scales_must_fit_the_grid():
    with pytest.raises(ValueError, match="scale 64"):
        tiny_model("llama", scales=(64,))
