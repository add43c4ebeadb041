"""easy-VQA tiny CLIP tower: labels, cache logic and round-trip on a tiny
recipe (fast); the full build + linear probes (slow)."""
import json
import time

import numpy as np
import pytest
import torch

from ademvl.backbones import _cache, tiny_clip_path
from ademvl.backbones.pretrain import tiny_clip
from ademvl.backbones.pretrain.tiny_clip import (COLORS, SHAPES, BackboneNotAvailableError,
                                                 TinyClipRecipe, derive_candidates, derive_labels)

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("easy_vqa") is None, reason="easy-vqa not installed")

TINY = TinyClipRecipe(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                      text_hidden_size=16, text_layers=1, projection_dim=16,
                      max_steps=3, batch_size=16, n_images=40, holdout=8)


def _files(p):
    return {f.name: f.stat().st_mtime_ns for f in p.iterdir()}


@pytest.fixture
def count_builds(monkeypatch):
    calls = []
    real = tiny_clip.build_tower

    def spy(out_dir, r, seed, progress):
        calls.append((r, seed))
        return real(out_dir, r, seed, progress)
    monkeypatch.setattr(tiny_clip, "build_tower", spy)
    return calls


def test_derive_labels_rules():
    qs = [["what shape is in the image?", "circle", 0],
          ["is there not a red shape?", "yes", 0],       # not red
          ["is no blue shape present?", "no", 0],        # blue!
          ["what is the teal shape?", "triangle", 1],    # teal triangle
          ["does the image not contain a circle?", "no", 2],  # circle
          ["is there a green shape?", "no", 2],          # colour ambiguous
          ["what color is the shape?", "red", 3],
          ["is there a circle?", "no", 3],
          ["is there not a rectangle in the image?", "no", 3],  # red rectangle
          ["what color is the shape?", "red", 4],
          ["is there a blue shape?", "yes", 4]]          # contradiction
    lab = derive_labels(qs)
    assert lab == {0: (0, COLORS.index("blue")), 1: (2, COLORS.index("teal")),
                   3: (1, COLORS.index("red"))}
    cands = derive_candidates(qs)
    assert cands[4] is None and cands[2][0] == {"circle"} and len(cands[2][1]) == 7


def test_train_labels_and_pixel_colour_agree():
    ids, imgs, shape, color, st = tiny_clip.load_train_set(n_images=200, return_stats=True)
    assert imgs.dtype == torch.uint8 and tuple(imgs.shape[1:]) == (64, 64, 3)
    assert len(ids) == 200 and int(shape.max()) < 3 and int(color.max()) < 8
    assert st["pixel_agrees"] == st["questions_fix_colour"] > 150


def test_augment_keeps_shape_in_frame_and_fills_background():
    _, imgs, _, _ = tiny_clip.load_train_set(n_images=12)
    x = tiny_clip.to_pixel_values(imgs)
    boxes = tiny_clip.foreground_boxes(imgs)
    ops = tiny_clip.parse_augment("translate,scale,hflip,vflip,transpose")
    a = tiny_clip.augment_batch(x, boxes, ops, torch.Generator().manual_seed(0), 0.2)
    b = tiny_clip.augment_batch(x, boxes, ops, torch.Generator().manual_seed(0), 0.2)
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    bg = x[:, :, 0, 0]
    for i in range(len(x)):
        # the border is pure background (the shape was kept in frame) ...
        border = torch.cat([a[i, :, 0], a[i, :, -1], a[i, :, :, 0], a[i, :, :, -1]], 1)
        y0, y1, x0, x1 = boxes[i].tolist()
        touches = y0 == 0 or x0 == 0 or y1 == 64 or x1 == 64
        if not touches:
            assert torch.allclose(border, bg[i][:, None].expand_as(border), atol=0.05)
        # ... and the shape's own colour is still there (~ same area under +-20% scale)
        fg = (x[i] - bg[i][:, None, None]).abs().amax(0) > 0.3
        fga = (a[i] - bg[i][:, None, None]).abs().amax(0) > 0.3
        assert 0.5 * fg.sum() <= fga.sum() <= 1.6 * fg.sum() + 4
    assert torch.equal(tiny_clip.augment_batch(x, boxes, (), None), x)
    with pytest.raises(ValueError, match="rotate"):
        tiny_clip.parse_augment("translate,rotate")


def test_supervised_heads_and_augment_train(tmp_path):
    r = TinyClipRecipe(**{**TINY.__dict__, "augment": "translate,scale,hflip",
                          "sup_weight": 1.0, "sup_layers": "both", "label_smoothing": 0.1})
    p = tiny_clip_path(tmp_path / "c", seed=0, progress=False, recipe=r)
    res = tiny_clip.probe_tower(p, seed=0, recipe=r)
    assert {"penultimate_ln_cls/shape", "penultimate_ln_patch_mean/color",
            "cls/shape"} <= set(res)
    with pytest.raises(ValueError, match="sup_layers"):
        tiny_clip_path(tmp_path / "d", progress=False,
                       recipe=TinyClipRecipe(**{**r.__dict__, "sup_layers": "first"}))


def test_build_roundtrip_processor_and_reuse(tmp_path, count_builds, monkeypatch, capsys):
    from PIL import Image
    from transformers import AutoImageProcessor, CLIPVisionModel

    captured = {}
    real_extract = tiny_clip.extract_vision_model
    monkeypatch.setattr(tiny_clip, "extract_vision_model",
                        lambda clip: captured.setdefault("vm", real_extract(clip)))
    cache = tmp_path / "clip"
    p = tiny_clip_path(cache, seed=0, progress=False, recipe=TINY)
    assert p == cache and len(count_builds) == 1
    said = capsys.readouterr().err  # the one-off build is announced even without progress bars
    assert "building easy-VQA tiny CLIP tower" in said and "tiny CLIP tower ready in" in said
    assert {"config.json", "model.safetensors", "preprocessor_config.json",
            _cache.RECIPE_FILE} <= set(_files(p))
    stamp = json.loads((p / _cache.RECIPE_FILE).read_text())
    assert stamp["seed"] == 0 and stamp["recipe"]["max_steps"] == 3

    # round trip: identical outputs to the in-memory model before saving
    vm = CLIPVisionModel.from_pretrained(p).eval()
    assert vm.config.image_size == 64 and vm.config.patch_size == 8
    _, imgs, _, _ = tiny_clip.load_train_set(n_images=6)
    x = tiny_clip.to_pixel_values(imgs)
    with torch.no_grad():
        a = captured["vm"](pixel_values=x)
        b = vm(pixel_values=x)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.equal(a.pooler_output, b.pooler_output)
    assert b.last_hidden_state.shape == (6, 65, 32)  # 8x8 patches + [cls]

    # the saved (PIL-backend) image processor matches the training preprocessing
    proc = AutoImageProcessor.from_pretrained(p, backend="pil")
    pv = proc(images=[Image.fromarray(im.numpy()) for im in imgs],
              return_tensors="pt")["pixel_values"]
    assert pv.shape == x.shape and torch.allclose(pv, x, atol=1e-5)

    # second call: cache hit, nothing rewritten
    before = _files(p)
    assert tiny_clip_path(cache, seed=0, progress=False, recipe=TINY) == p
    assert len(count_builds) == 1 and _files(p) == before
    assert "building" not in capsys.readouterr().err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["clip"]


def test_changed_recipe_or_seed_rebuilds(tmp_path, count_builds):
    cache = tmp_path / "clip"
    tiny_clip_path(cache, seed=0, progress=False, recipe=TINY)
    w0 = (cache / "model.safetensors").read_bytes()
    tiny_clip_path(cache, seed=1, progress=False, recipe=TINY)
    assert len(count_builds) == 2
    assert json.loads((cache / _cache.RECIPE_FILE).read_text())["seed"] == 1
    assert (cache / "model.safetensors").read_bytes() != w0
    r2 = TinyClipRecipe(**{**TINY.__dict__, "max_steps": 4})
    tiny_clip_path(cache, seed=1, progress=False, recipe=r2)
    assert len(count_builds) == 3
    assert json.loads((cache / _cache.RECIPE_FILE).read_text())["recipe"]["max_steps"] == 4
    tiny_clip_path(cache, seed=1, progress=False, recipe=r2)
    assert len(count_builds) == 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["clip"]


def test_same_seed_is_reproducible(tmp_path):
    from safetensors.torch import load_file

    a = load_file(tiny_clip_path(tmp_path / "a", seed=3, progress=False, recipe=TINY)
                  / "model.safetensors")
    b = load_file(tiny_clip_path(tmp_path / "b", seed=3, progress=False, recipe=TINY)
                  / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_build_leaves_no_cache(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("interrupted")
    monkeypatch.setattr(tiny_clip, "train_clip", boom)
    with pytest.raises(RuntimeError):
        tiny_clip_path(tmp_path / "c" / "clip", progress=False, recipe=TINY)
    assert list((tmp_path / "c").iterdir()) == []


def test_missing_package_error(tmp_path, monkeypatch):
    monkeypatch.setattr(tiny_clip, "_candidate_dirs", lambda: [tmp_path / "nope"])
    with pytest.raises(BackboneNotAvailableError) as e:
        tiny_clip_path(tmp_path / "c", progress=False, recipe=TINY)
    assert "pip install --no-deps easy-vqa" in str(e.value) and "\n" not in str(e.value)


def test_default_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ADEMVL_CACHE", str(tmp_path / "env"))
    assert tiny_clip_path(progress=False, recipe=TINY) == tmp_path / "env" / "easyvqa-clip-64"


@pytest.mark.slow
def test_full_tower_build_and_linear_probe():
    """Builds the default tower into $ADEMVL_CACHE (or ~/.cache/ademvl) once,
    then checks linear probes on frozen features of held-out TRAIN images."""
    t0 = time.perf_counter()
    p = tiny_clip_path(seed=0, progress=True)
    print(f"tiny_clip_path: {time.perf_counter() - t0:.1f} s -> {p}")
    info = json.loads((p / "ademvl_build_info.json").read_text())
    print("build info:", info)
    results = [tiny_clip.probe_tower(p, seed=0, fit_on=f) for f in ("pretrain", "holdout")]
    for res in results:
        print("probe:", res)
    # measured for the default recipe (30 epochs, seed 0): shape 0.93, colour 0.99-1.0
    for feat in ("cls", "patch_mean"):
        for lab, floor in (("shape", 0.9), ("color", 0.97)):
            best = max(res[f"{feat}/{lab}"] for res in results)
            assert best >= floor, (feat, lab, results)
