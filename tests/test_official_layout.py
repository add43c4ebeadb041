"""The official preprocessing and prompt layout, each against a reference written from the
official code (util/datasets.py, util/base_prompt.py, eval_sqa.py, adem/model.py); the
vision adapter's official init; the official ScienceQA answer parsing."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from official_fixtures import processor, sentencepiece_model
from official_reference import official_transform

from ademvl.collate import VLCollator
from ademvl.data.scienceqa import load_scienceqa
from ademvl.evaluation.generation import GenerationCollator
from ademvl.layers import ParallelAdapter
from ademvl.official import official_image_processor
from ademvl.official.protocol import parse_official_letter, prepare_examples
from ademvl.prompting import IGNORE_INDEX

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def test_official_preprocessing_equals_util_datasets_on_a_non_square_image():
    pixels = np.random.default_rng(0).integers(0, 256, (37, 61, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    ours = official_image_processor("scienceqa", 224)([image], return_tensors="pt")["pixel_values"][0]
    reference = official_transform(image, 224)
    assert ours.shape == reference.shape == (3, 224, 224)
    assert (ours - reference).abs().max().item() <= 1e-6  # measured: 0.0
    # The squash is not the library's shortest-edge resize + centre crop, and the statistics are ImageNet's:
    cropped = official_transform(image.resize((224 * 61 // 37, 224), Image.BICUBIC).crop((61, 0, 285, 224)), 224)
    assert (ours - cropped).abs().max() > 0.1
    caption = official_image_processor("caption", 224)([image], return_tensors="pt")["pixel_values"][0]
    assert (caption - official_transform(image, 224, CLIP_MEAN, CLIP_STD)).abs().max().item() <= 1e-6
    assert (caption - ours).abs().max() > 0.05


# --- prompts: util/base_prompt.py (build_prompt → create_training_example) + sentencepiece ------
def official_prompt(problem, prompt_format, use_caption, options="ABCDE"):
    question = problem["question"]
    context = " ".join([problem["hint"], problem["caption"] if use_caption else ""]).strip() or "N/A"
    choice = " ".join("({}) {}".format(options[i], c) for i, c in enumerate(problem["choices"]))
    answer = options[problem["answer"]]
    if prompt_format == "CQM-A":
        text = f"Context: {context}\nQuestion: {question}\nOptions: {choice}\n"
    else:  # QCM-A
        text = f"Question: {question}\nContext: {context}\nOptions: {choice}\n"
    text = "\n" + text + "Response:"
    return text.replace("  ", " ").strip(), f"The answer is {answer}.".replace("  ", " ").strip()


PROBLEMS = {  # 2 to 5 choices, empty hint, no image
    str(100 + n): {"question": f"Which of these {n} words comes first in the dictionary?",
                   "choices": ["dune", "zebra", "apple", "moth", "kite"][:n], "answer": n - 1, "hint": "",
                   "image": None, "subject": "language science", "grade": "grade4", "lecture": "", "solution": "",
                   "split": "test"}
    for n in (2, 3, 4, 5)
}
CAPTIONS = {"102": "A page of a dictionary."}


@pytest.fixture(scope="module")
def official_world(tmp_path_factory):
    from transformers import LlamaTokenizer

    root = tmp_path_factory.mktemp("layout")
    model_file = sentencepiece_model(root / "spm")
    tokenizer = LlamaTokenizer.from_pretrained(str(root / "spm"))
    sqa = root / "sqa"
    sqa.mkdir()
    (sqa / "problems.json").write_text(json.dumps(PROBLEMS))
    (sqa / "pid_splits.json").write_text(json.dumps({"test": list(PROBLEMS)}))
    (sqa / "captions.json").write_text(json.dumps({"captions": CAPTIONS}))
    return dict(sp=processor(model_file), tokenizer=tokenizer, sqa=sqa)


def _rows(batch):
    return [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]


@pytest.mark.parametrize("use_cls", [True, False])
def test_official_training_tokens_equal_the_official_dataset(official_world, use_cls):
    """ScienceQADataSet.tokenize + Transformer.insert_image_embeds (prefix_nonimg after bos)."""
    sp, tok = official_world["sp"], official_world["tokenizer"]
    examples = load_scienceqa(official_world["sqa"], "test", prompt_format="CQM-A")
    batch = VLCollator(tok, None, 1 if use_cls else 0, prompt_layout="official")(examples)
    for row, ex in enumerate(examples):
        problem = dict(PROBLEMS[ex.id], caption="")
        prompt, answer = official_prompt(problem, "CQM-A", use_caption=False)
        assert (ex.prompt, ex.answer) == (prompt, answer)
        example = [sp.bos_id()] + sp.encode(prompt + answer) + [sp.eos_id()]
        n_prompt = len([sp.bos_id()] + sp.encode(prompt))
        labels = [0] * n_prompt + example[n_prompt:]
        prefix = sp.encode("Image: N/A") if use_cls else []
        official_ids = example[:1] + prefix + example[1:]
        official_labels = labels[:1] + [0] * len(prefix) + labels[1:]
        n = len(official_ids)
        assert batch["input_ids"][row, :n].tolist() == official_ids
        ours = batch["labels"][row, :n].tolist()
        assert [t if t != IGNORE_INDEX else 0 for t in ours] == official_labels
        assert batch["attention_mask"][row].sum() == n


@pytest.mark.parametrize("use_cls", [True, False])
def test_official_eval_tokens_equal_eval_sqa(official_world, use_cls):
    """eval_sqa.py: QCM-A with captions, + 'The answer is', then Transformer.generate's tokens."""
    sp, tok = official_world["sp"], official_world["tokenizer"]
    examples = load_scienceqa(official_world["sqa"], "test", prompt_format="QCM-A",
                              captions=official_world["sqa"] / "captions.json")
    examples = prepare_examples("scienceqa", examples)
    batch = GenerationCollator(tok, None, 1 if use_cls else 0, prompt_layout="official")(examples)
    for ids, ex in zip(_rows(batch), examples):
        prompt, _ = official_prompt(dict(PROBLEMS[ex.id], caption=CAPTIONS.get(ex.id, "")), "QCM-A", True)
        prompt += "The answer is"
        if use_cls:
            expected = [sp.bos_id()] + sp.encode("Image: N/A") + sp.encode(prompt)
        else:
            expected = [sp.bos_id()] + sp.encode(prompt)
        assert ids == expected
    assert "Context: A page of a dictionary." in examples[0].prompt  # pid 102


def test_library_layout_differs_from_the_official_one(official_world):
    tok = official_world["tokenizer"]
    examples = load_scienceqa(official_world["sqa"], "test")
    ours = VLCollator(tok, None, 1)(examples)["input_ids"]
    official = VLCollator(tok, None, 1, prompt_layout="official")(examples)["input_ids"]
    assert ours.shape != official.shape or not torch.equal(ours, official)


def test_official_answer_parsing_is_eval_sqa_s():
    assert parse_official_letter("B", 3) == 1
    assert parse_official_letter("(C) frog", 3) == 2
    assert parse_official_letter("D", 3) is None       # names no choice: wrong
    assert parse_official_letter("The", 3) is None     # first capital T: wrong, as official
    assert parse_official_letter("", 2) is None
    assert parse_official_letter("a E", 5) == 4


def test_vision_adapter_fc1_keeps_pytorch_default_init():
    torch.manual_seed(0)
    adapter = ParallelAdapter(1024, 12)
    bound = 1 / math.sqrt(1024)  # kaiming_uniform_(a=√5): U(-1/√fan_in, 1/√fan_in); xavier's would be 0.076
    weight = adapter.fc1.weight
    assert weight.abs().max() <= bound and weight.abs().max() > 0.95 * bound
    assert torch.count_nonzero(adapter.fc2.weight) == 0
