"""On-disk fixtures for the training tests: tiny backbones saved with save_pretrained, an easy-VQA
layout of solid-colour images, and a recipe YAML naming them (all in a tmp dir, no downloads)."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision, write_image

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def write_backbones(root: Path, llm_arch: str = "llama") -> tuple[str, str]:
    """`root/llm` (a tiny `llm_arch` LLM, LLaMA by default, + tokenizer) and `root/vision` (CLIP + image
    processor)."""
    tok = tiny_tokenizer()
    llm_dir, vision_dir = root / "llm", root / "vision"
    tiny_llm(llm_arch, seed=0, vocab=len(tok)).save_pretrained(llm_dir)
    tok.save_pretrained(llm_dir)
    tiny_vision("clip", seed=1).save_pretrained(vision_dir)
    tiny_image_processor(32).save_pretrained(vision_dir)
    return str(llm_dir), str(vision_dir)


def write_easyvqa(root: Path, n_images: int = 12) -> str:
    """easy-VQA layout: the answer is the image's colour, so the task is learnable only by looking."""
    data = root / "easyvqa"
    questions = []
    names = list(COLOURS)
    for i in range(n_images):
        colour = names[i % len(names)]
        write_image(data / "train" / "images" / f"{i}.png", COLOURS[colour], size=36)
        questions.append(["what colour is the shape?", colour, i])
    (data / "train" / "questions.json").write_text(json.dumps(questions))
    (data / "answers.txt").write_text("\n".join(names) + "\n")
    return str(data)


def write_recipe(root: Path, train: dict | None = None, data: dict | None = None, name: str = "tiny",
                 llm_arch: str = "llama") -> Path:
    """A recipe over the tiny fixtures (built once per root; `llm_arch` picks the tiny LLM's family)."""
    if not (root / "llm").exists():
        write_backbones(root, llm_arch)
        write_easyvqa(root)
    recipe = {
        "model": {"llm": str(root / "llm"), "vision": str(root / "vision"), "method": "ademvl",
                  "method_config": {"scales": [16, 4]}},
        "data": {"dataset": "easyvqa", "split": "train", "val_fraction": 0.0, "data_dir": str(root / "easyvqa"),
                 **(data or {})},
        "train": {"epochs": 2, "batch_size": 4, "grad_accum": 1, "blr": 9e-3, "lr": 3e-3, "warmup_epochs": 0,
                  "max_length": 96, "mixed_precision": "no", "seed": 0, "output_dir": str(root / "run"),
                  "keep_last": 2, **(train or {})},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# Answers of very different token lengths, so that weighting by tokens and by micro-batch differ.
VARIED_ANSWERS = ["red", "a dark green square drawn with thin diagonal stripes on a white page", "blue sky",
                  "no", "the small yellow circle sitting in the lower left corner", "teal"]


def write_varied_easyvqa(root: Path, n_images: int = 8) -> str:
    """easy-VQA layout whose answers run from one token to dozens."""
    data = root / "varied"
    questions = []
    for i in range(n_images):
        colour = list(COLOURS)[i % len(COLOURS)]
        write_image(data / "train" / "images" / f"{i}.png", COLOURS[colour], size=36)
        questions.append(["what is in the image?", VARIED_ANSWERS[i % len(VARIED_ANSWERS)], i])
    (data / "train" / "questions.json").write_text(json.dumps(questions))
    (data / "answers.txt").write_text("\n".join(VARIED_ANSWERS) + "\n")
    return str(data)


def nan_loss_on_call(monkeypatch, n: int) -> None:
    """Make the `n`-th `VLModel.forward` from now on (counting from 1) return a NaN loss."""
    from ademvl.model import VLModel

    forward = VLModel.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(VLModel, "forward", poisoned)


def corrupt_png_body(path) -> None:
    """Keep a PNG's structure and checksums but garble its pixel data: PIL's cheap `verify()` (the
    pre-check) passes, decoding (in a DataLoader worker) fails."""
    import struct
    import zlib

    data = Path(path).read_bytes()
    at = data.index(b"IDAT")
    n = struct.unpack(">I", data[at - 4:at])[0]
    body = bytes([0x78, 0x9C]) + bytes((i * 37 + 11) % 256 for i in range(n - 2))
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + body))
    Path(path).write_bytes(data[:at + 4] + body + crc + data[at + 8 + n:])


def write_easyvqa_splits(root: Path, train_images: int = 24, test_images: int = 9, yes_no: bool = False) -> str:
    """easy-VQA train and test splits of solid-colour images: a colour question per image, and with
    `yes_no` also "is the shape <colour>?" (yes for its own colour, no for the next one)."""
    data = root / "easyvqa"
    names = list(COLOURS)
    for split, n_images in (("train", train_images), ("test", test_images)):
        questions = []
        for i in range(n_images):
            colour = names[i % len(names)]
            write_image(data / split / "images" / f"{i}.png", COLOURS[colour], size=36)
            questions.append(["what color is the shape?", colour, i])
            if yes_no:
                other = names[(i + 1) % len(names)]
                questions += [[f"is the shape {colour}?", "yes", i], [f"is the shape {other}?", "no", i]]
        (data / split / "questions.json").write_text(json.dumps(questions))
    (data / "answers.txt").write_text("\n".join([*names, "yes", "no"]) + "\n")
    return str(data)
