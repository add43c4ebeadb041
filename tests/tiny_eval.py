"""Tiny on-disk artefacts for the evaluation tests: backbones + tokenizer + image processor
saved with save_pretrained, an adapter saved with save_adapter, and datasets in their real layouts."""
from __future__ import annotations

import json

import torch

from ademvl.model import VLModel
from tiny import tiny_image_processor, tiny_llm, tiny_tokenizer, tiny_vision, write_image


def make_checkpoint(root, seed: int = 0):
    """root/llm (LLM + tokenizer), root/vision (tower + image processor), root/adapter."""
    tok = tiny_tokenizer()
    llm = tiny_llm("llama", seed, vocab=len(tok))
    llm.save_pretrained(root / "llm")
    tok.save_pretrained(root / "llm")
    tiny_vision("clip", seed + 1).save_pretrained(root / "vision")
    tiny_image_processor(32).save_pretrained(root / "vision")
    model = VLModel.from_backbones(root / "llm", root / "vision", scales=(16, 4), alpha=0.5)
    torch.manual_seed(seed + 2)
    with torch.no_grad():  # make the zero-initialised parts non-zero so the image matters
        for name, p in model.trainable_parameters().items():
            if name.endswith("pos_values") or "adapter.fc2" in name:
                p.normal_(0, 0.5)
    model.save_adapter(root / "adapter")
    return root / "adapter"


SQA_PROBLEMS = {
    "10": {"question": "Which animal is a mammal?", "choices": ["frog", "dog", "eel"], "answer": 1,
           "hint": "Look at the picture.", "image": "image.png", "subject": "natural science", "grade": "grade3",
           "lecture": "", "solution": "", "split": "test"},
    "11": {"question": "What is the capital of France?", "choices": ["Paris", "Rome"], "answer": 0, "hint": "",
           "image": None, "subject": "social science", "grade": "grade8", "lecture": "", "solution": "",
           "split": "test"},
    "12": {"question": "Which word is a noun?", "choices": ["run", "quickly", "table", "blue"], "answer": 2,
           "hint": "A noun names a thing.", "image": None, "subject": "language science", "grade": "grade2",
           "lecture": "", "solution": "", "split": "test"},
    "13": {"question": "Which is a solid?", "choices": ["ice", "steam"], "answer": 0, "hint": "",
           "image": "image.png", "subject": "natural science", "grade": "grade10", "lecture": "", "solution": "",
           "split": "test"},
    "14": {"question": "Which ocean is largest?", "choices": ["Atlantic", "Pacific", "Indian"], "answer": 1,
           "hint": "Think of area.", "image": None, "subject": "social science", "grade": "grade12",
           "lecture": "", "solution": "", "split": "test"},
    "15": {"question": "Which is a reptile?", "choices": ["lizard", "cat"], "answer": 0, "hint": "",
           "image": "image.png", "subject": "natural science", "grade": "grade5", "lecture": "", "solution": "",
           "split": "train"},
}


def make_scienceqa(root):
    """The official layout: problems.json, pid_splits.json, images/{split}/{pid}/image.png."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(SQA_PROBLEMS))
    (root / "pid_splits.json").write_text(json.dumps({"train": ["15"], "test": ["10", "11", "12", "13", "14"]}))
    colors = [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    for i, (pid, prob) in enumerate(SQA_PROBLEMS.items()):
        if prob["image"]:
            write_image(root / "images" / prob["split"] / pid / "image.png", colors[i % 3])
    return root


KARPATHY = {"images": [
    {"filepath": "val2014", "filename": "COCO_val2014_000000000073.jpg", "split": "test", "cocoid": 73,
     "sentences": [{"raw": "A red square."}, {"raw": "A red block on white."}]},
    {"filepath": "val2014", "filename": "COCO_val2014_000000000074.jpg", "split": "test", "cocoid": 74,
     "sentences": [{"raw": "A blue square."}, {"raw": "Something blue."}, {"raw": "A blue tile."}]},
    {"filepath": "val2014", "filename": "COCO_val2014_000000000075.jpg", "split": "test", "cocoid": 75,
     "sentences": [{"raw": "A green square."}]},
    {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "split": "train", "cocoid": 9,
     "sentences": [{"raw": "A plate of food."}]},
]}


def make_coco(root):
    """A Karpathy dataset_coco.json and its images under root/images/{filepath}/{filename}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_coco.json").write_text(json.dumps(KARPATHY))
    colors = {73: (255, 0, 0), 74: (0, 0, 255), 75: (0, 255, 0), 9: (90, 90, 90)}
    for img in KARPATHY["images"]:
        write_image(root / "images" / img["filepath"] / img["filename"], colors[img["cocoid"]])
    return root / "dataset_coco.json", root / "images"
