"""The vision towers beyond CLIP/SigLIP: SigLIP 2 (its fixed patch grid), DINOv2 with and without
register tokens, and towers recognised by CLIP's module names, each under every method."""
import copy

import pytest
import torch
from PIL import Image

from ademvl.architectures import VISION_LAYOUTS, UnsupportedArchitecture, derive_vision_layout, vision_layout
from ademvl.model import VLModel
from ademvl.vision import VisionTower
from tiny import tiny_llm, tiny_vision
from tiny_methods import ALL_METHODS, TINY, inputs, liven

NEW = ["siglip2", "dinov2", "dinov2_reg"]


def build(method, kind, **settings):
    tiny = TINY.get(method, {"scales": (16, 4)})
    return VLModel.from_backbones(tiny_llm(), tiny_vision(kind), method=method, **{**tiny, **settings}).eval()


def image(seed=0, size=40):
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray(torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy())


@pytest.mark.parametrize("kind", NEW)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_every_method_sees_the_image_through_the_tower(method, kind):
    model = liven(build(method, kind))
    batch = inputs(method)
    other = {**batch, "pixel_values": torch.randn_like(batch["pixel_values"])}
    with torch.no_grad():
        one, two = model(**batch).logits, model(**other).logits
    assert torch.isfinite(one).all()
    assert (one[0] - two[0]).abs().max() > 1e-4  # the image row reads the pixels
    assert (one[1] - two[1]).abs().max() == 0    # the text-only row does not


@pytest.mark.parametrize("kind", NEW)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_parameter_counts(method, kind):
    """Same widths, depth and grid as the tiny CLIP: the same trainable parts; frozen = LLM + the whole tower."""
    model, reference = build(method, kind), build(method, "clip")
    tower = sum(p.numel() for p in tiny_vision(kind).parameters())
    llm = sum(p.numel() for p in tiny_llm().parameters())
    counts = model.parameter_counts()
    assert counts["trainable"] == reference.parameter_counts()["trainable"]
    assert counts["frozen"] == llm + tower


def upstream_states(model, kind, pixels):
    """The Hugging Face model's own hidden states and final output for 32×32 images."""
    with torch.no_grad():
        if kind == "siglip2":  # the NaFlex processor's layout of a full 4×4 grid, built independently
            rows = pixels.unfold(2, 8, 8).unfold(3, 8, 8).permute(0, 2, 3, 4, 5, 1).reshape(len(pixels), 16, -1)
            out = model(pixel_values=rows, pixel_attention_mask=torch.ones(len(pixels), 16, dtype=torch.long),
                        spatial_shapes=torch.tensor([[4, 4]] * len(pixels)), output_hidden_states=True)
        else:
            out = model(pixel_values=pixels, output_hidden_states=True)
    return out


@pytest.mark.parametrize("kind", NEW)
def test_feature_layers_and_post_norm_are_the_upstream_ones(kind):
    raw = tiny_vision(kind)
    tower = VisionTower(copy.deepcopy(raw))
    pixels = torch.randn(2, 3, 32, 32)
    out = upstream_states(raw, kind, pixels)
    with torch.no_grad():
        ours = tower(pixels, [1, -2, -1])
        last = tower.post_norm(ours[-1])
    assert torch.equal(ours[1], out.hidden_states[1])
    assert torch.equal(ours[-2], out.hidden_states[2]) and torch.equal(ours[-1], out.hidden_states[3])
    assert torch.allclose(last, out.last_hidden_state, atol=1e-6)
    with pytest.raises(ValueError, match="vision block 4 does not exist in a 3-block tower"):
        tower.block_index(4)


@pytest.mark.parametrize("kind, has_cls, registers", [("siglip2", False, 0), ("dinov2", True, 0),
                                                       ("dinov2_reg", True, 2)])
def test_cls_and_register_tokens(kind, has_cls, registers):
    raw = tiny_vision(kind)
    tower = VisionTower(copy.deepcopy(raw))
    assert (tower.has_cls, tower.num_registers, tower.grid, tower.num_tokens) == (has_cls, registers, 4,
                                                                                   16 + has_cls + registers)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = tower.post_norm(tower(pixels, [-1])[-1])
    assert hidden.shape[1] == tower.num_tokens
    cls, patches = tower.split_cls(hidden)
    assert patches.shape == (2, 16, 32)
    assert torch.equal(patches, hidden[:, -16:])  # registers (after [cls]) are in neither
    if has_cls:  # DINOv2's own pooled output is its normed [cls]
        assert torch.allclose(cls, upstream_states(raw, kind, pixels).pooler_output, atol=1e-6)
    else:
        assert torch.allclose(cls, patches.mean(dim=1))


def test_siglip2_fixed_grid_matches_its_naflex_processor_on_square_images():
    """SigLIP 2 at its position grid: the fixed-size processor plus the tower's patch rows give the
    upstream NaFlex processor + model result exactly (a square image fills the whole grid)."""
    from transformers import Siglip2ImageProcessorPil

    raw = tiny_vision("siglip2")
    tower = VisionTower(copy.deepcopy(raw))
    naflex = Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)
    images = [image(0), image(1)]
    upstream = naflex(images, return_tensors="pt")
    assert upstream["spatial_shapes"].tolist() == [[4, 4], [4, 4]] and upstream["pixel_attention_mask"].all()
    fixed = tower.fit_image_processor(naflex)
    assert type(fixed).__name__ == "SiglipImageProcessorPil"
    pixels = fixed(images, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (2, 3, 32, 32)
    assert torch.allclose(tower.model_inputs(pixels)["pixel_values"], upstream["pixel_values"], atol=1e-6)
    with torch.no_grad():
        reference = raw(**upstream, output_hidden_states=True).hidden_states[2]
        assert torch.allclose(tower(pixels, [2])[2], reference, atol=1e-5)


def test_wrong_inputs_are_one_line():
    siglip2, dinov2 = VisionTower(tiny_vision("siglip2")), VisionTower(tiny_vision("dinov2"))
    with pytest.raises(ValueError, match="SigLIP 2 NaFlex inputs .* are not supported: feed 32x32 images") as info:
        siglip2(torch.randn(2, 16, 192), [-1])
    assert "\n" not in str(info.value)
    # DINOv2 would interpolate its position embeddings to any size: the methods' grid would not match.
    with pytest.raises(ValueError, match=r"takes 32x32 images \(4x4 patches of 8 px\), got pixel_values of "
                                         r"shape \(1, 3, 48, 48\)"):
        dinov2(torch.randn(1, 3, 48, 48), [-1])


def test_image_processors_load_offline_and_feed_the_model(tmp_path):
    """What `AutoImageProcessor` gives for each tower's directory (PIL backends), through the collator."""
    from transformers import BitImageProcessorPil, Siglip2ImageProcessorPil

    from ademvl.collate import VLCollator
    from ademvl.data.example import VLExample
    from ademvl.loading import load_image_processor
    from tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    saved = {"dinov2": BitImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
             "siglip2": Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)}
    for kind, processor in saved.items():
        tiny_vision(kind).save_pretrained(tmp_path / kind)
        processor.save_pretrained(tmp_path / kind)
        model = VLModel.from_backbones(tiny_llm(vocab=len(tok)), tmp_path / kind, scales=(16, 4)).eval()
        loaded = load_image_processor(tmp_path / kind)
        assert type(loaded) is type(processor)
        examples = [VLExample(id="0", prompt="what is it?", answer="", image=image(0, size=50))]
        fed = model.vision.fit_image_processor(loaded)
        batch = VLCollator.for_model(model, tok, fed, for_generation=True)(examples)
        assert batch["pixel_values"].shape == (1, 3, 32, 32)
        with torch.no_grad():
            assert torch.isfinite(model(**batch).logits).all()
        # The collator asks the model which processor feeds it (ademvl.official.image_processor_for),
        # so the NaFlex processor given as is still yields the tower's fixed grid.
        raw = VLCollator.for_model(model, tok, loaded, for_generation=True)(examples)
        assert torch.equal(raw["pixel_values"], batch["pixel_values"])
        # An adapter on this tower saves and loads back to the same logits.
        model.save_adapter(tmp_path / f"{kind}-adapter")
        again = VLModel.from_adapter(tmp_path / f"{kind}-adapter", llm=tiny_llm(vocab=len(tok)), vision=tmp_path / kind).eval()
        with torch.no_grad():
            assert torch.allclose(again(**batch).logits, model(**batch).logits, atol=1e-6)


def test_dinov2_adapter_beside_the_mlp_is_under_its_layer_scale():
    """ADEM-VL's vision adapter wraps `mlp`: DINOv2 then scales MLP + adapter by γ2, as it scales its MLP."""
    model = liven(build("ademvl", "dinov2"))
    plain = VisionTower(tiny_vision("dinov2"))
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert (model.vision(pixels, [-1])[-1] - plain(pixels, [-1])[-1]).abs().max() > 1e-4
        for tower in (model.vision, plain):
            for block in tower.blocks:
                block.layer_scale2.lambda1.zero_()
        assert torch.allclose(model.vision(pixels, [-1])[-1], plain(pixels, [-1])[-1], atol=1e-6)


def tiny_full(name):
    import transformers

    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                  image_size=32, patch_size=8)
    if name.startswith("Siglip2"):
        vision = {**{k: v for k, v in vision.items() if k != "image_size"}, "num_patches": 16}
    model_cls = getattr(transformers, name)
    if "VisionModel" in name:
        return model_cls(model_cls.config_class(**vision)).eval()
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=99,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return model_cls(model_cls.config_class(vision_config=vision, text_config=text)).eval()


@pytest.mark.parametrize("name, root, has_cls, pixels", [
    ("CLIPVisionModel", "", True, "image"), ("CLIPModel", "vision_model", True, "image"),
    ("SiglipModel", "vision_model", False, "image"), ("Siglip2VisionModel", "", False, "patches"),
    ("Siglip2Model", "vision_model", False, "patches"),
])
def test_table_entries_are_what_the_structure_says(name, root, has_cls, pixels):
    model = tiny_full(name)
    derived = derive_vision_layout(model)
    assert derived == VISION_LAYOUTS[model.config.model_type]
    assert (derived.root, derived.has_cls, derived.pixels) == (root, has_cls, pixels)


@pytest.mark.parametrize("name", ["AltCLIPVisionModel", "MetaClip2Model", "Siglip2Model"])
def test_towers_with_clip_names_run_by_their_structure(name):
    """Towers with no table entry (AltCLIP, MetaCLIP 2: [cls], the full model's `vision_model`) and the full
    SigLIP 2 model: fusion off = the plain LLM; fusion on reads the tower's penultimate block."""
    vision = tiny_full(name)
    assert vision_layout(vision) == derive_vision_layout(vision)
    llm = tiny_llm()
    reference = copy.deepcopy(llm)
    model = VLModel.from_backbones(llm, vision, alpha=0.0, use_cls=False, scales=(16, 4)).eval()
    assert model.vision.has_cls == (name != "Siglip2Model") and model.vision.grid == 4
    batch = inputs("ademvl")
    with torch.no_grad():
        model.method.pos_values.normal_()
        assert (model(**batch).logits - reference(input_ids=batch["input_ids"]).logits).abs().max() <= 1e-5
        features = model.vision(batch["pixel_values"], [-2])[-2]
    assert features.shape == (2, 16 + model.vision.has_cls, 32)


def test_tower_without_known_names_is_one_line():
    from transformers import ViTConfig, ViTModel

    vit = ViTModel(ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                             image_size=32, patch_size=8))
    with pytest.raises(UnsupportedArchitecture, match="vision tower architecture 'vit' is not supported") as info:
        VLModel.from_backbones(tiny_llm(), vit, scales=(16,))
    assert "\n" not in str(info.value)


def test_plan_reads_a_dinov2_config_directory(tmp_path):
    """DINOv2 configs give the MLP width as a ratio; the plan counts its [cls] and register tokens."""
    from ademvl.plan.shape import shape_for

    tiny_llm().config.save_pretrained(tmp_path / "llm")
    tiny_vision("dinov2_reg").config.save_pretrained(tmp_path / "vision")
    shape = shape_for(str(tmp_path / "llm"), str(tmp_path / "vision"), "ademvl", {"scales": [16, 4]})
    assert (shape.vision_intermediate, shape.vision_tokens, shape.vision_blocks_run) == (64, 16 + 1 + 2, 2)


@pytest.mark.parametrize("kind", NEW)
def test_feature_layer_indexes_the_blocks(kind):
    """feature_layer=-3 of a 3-block tower is block 1 (same logits); block 2 differs; 3 is refused in one line."""
    def logits(layer):
        torch.manual_seed(0)
        model = liven(build("ademvl", kind, feature_layer=layer))
        with torch.no_grad():
            return model(**inputs("ademvl")).logits

    first = logits(1)
    assert torch.equal(first, logits(-3))
    assert (first - logits(2)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="'feature_layer' = 3 is not a block of the vision tower") as info:
        build("ademvl", kind, feature_layer=3)
    assert "\n" not in str(info.value)
