"""`ademvl viz` end to end on tiny saved backbones: answer, capture, PNG with the planted feature."""
import numpy as np
import pytest
import torch
from PIL import Image

from ademvl.cli import main
from ademvl.model import VLModel
from ademvl.visualize.fusion_figure import render_fusion_figure
from test_viz_fusion_map import cyan_fraction, heat
from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision, write_image


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    tokenizer = tiny_tokenizer()
    tiny_llm("llama", vocab=len(tokenizer)).save_pretrained(root / "llm")
    tokenizer.save_pretrained(root / "llm")
    tiny_vision("clip").save_pretrained(root / "vision")
    tiny_image_processor(32).save_pretrained(root / "vision")
    return root / "llm", root / "vision", tokenizer


def test_render_shows_a_planted_feature_in_its_cell(backbones, tmp_path):
    llm, vision, tokenizer = backbones
    model = VLModel.from_backbones(str(llm), str(vision), scales=(16, 4), gamma=0.25).eval()
    with torch.no_grad():
        model.method.pos_keys[6] = 50.0      # feature 6 = row 1, column 2 of the 4×4 scale
        model.method.pos_keys[16 + 3] = 50.0  # feature 3 of the 2×2 scale = row 1, column 1
    image = write_image(tmp_path / "black.png", (0, 0, 0), size=40)
    result = render_fusion_figure(model, tokenizer, tiny_image_processor(32), image, "what colour is the shape?",
                                  tmp_path / "map.png", layer=0, token=-1, max_new_tokens=4)
    assert result.captured["scores"].shape[0] == 2 and result.captured["scores"].shape[2] == 20
    png = np.asarray(Image.open(result.figure.path).convert("RGB"))
    assert Image.open(result.figure.path).size == result.figure.size
    fine = heat(png, result.figure.panel_boxes[1], 4)
    assert np.unravel_index(fine.argmax(), fine.shape) == (1, 2)
    coarse = heat(png, result.figure.panel_boxes[2], 2)
    assert np.unravel_index(coarse.argmax(), coarse.shape) == (1, 1)
    # γ = 0.25 of 20 features: 5 dropped for the chosen token and layer, each hatched where it lies.
    kept = result.captured["kept"][0, result.positions[0]]
    assert (~kept).sum() == 5
    for index in np.flatnonzero(~kept):
        panel, side, local = (1, 4, index) if index < 16 else (2, 2, index - 16)
        assert cyan_fraction(png, result.figure.panel_boxes[panel], side, *divmod(local, side)) > 0.1


def test_cli_untrained_model_writes_a_png(backbones, tmp_path, capsys):
    llm, vision, _ = backbones
    image = write_image(tmp_path / "red.png", (255, 0, 0), size=48)
    out = tmp_path / "viz.png"
    rc = main(["viz", "--image", image, "--prompt", "Question: what colour is the shape?", "--llm", str(llm),
               "--vision", str(vision), "--set", "scales=[16,4,1]", "--max-new-tokens", "3", "--output", str(out),
               "--dpi", "40"])
    assert rc == 0
    assert Image.open(out).size == (round(3.0 * 4.4 * 40), round(3.0 * 1.25 * 40))  # image + 3 scales
    assert "answer:" in capsys.readouterr().out


def test_cli_checkpoint_round_trip_and_bad_inputs(backbones, tmp_path, capsys):
    llm, vision, _ = backbones
    model = VLModel.from_backbones(str(llm), str(vision), scales=(4,), gamma=0.5)
    model.save_adapter(tmp_path / "adapter")
    image = write_image(tmp_path / "blue.png", (0, 0, 255))
    out = tmp_path / "ckpt.png"
    assert main(["viz", "--image", image, "--prompt", "hi", "--checkpoint", str(tmp_path / "adapter"),
                 "--layer", "1", "--token", "answer", "--max-new-tokens", "2", "--output", str(out), "--dpi", "40"]) == 0
    assert Image.open(out).size == (round(3.0 * 2.4 * 40), round(3.0 * 1.25 * 40))  # image + 1 scale

    assert main(["viz", "--image", str(tmp_path / "missing.png"), "--prompt", "hi", "--llm", str(llm),
                 "--vision", str(vision)]) == 2
    assert "image not found" in capsys.readouterr().err
    assert main(["viz", "--image", image, "--prompt", "hi", "--llm", str(llm)]) == 2
    assert "give both --llm and --vision" in capsys.readouterr().err
    assert main(["viz", "--image", image, "--prompt", "hi", "--checkpoint", str(tmp_path / "adapter"),
                 "--layer", "7", "--output", str(out)]) == 2
    assert "layer 7" in capsys.readouterr().err
