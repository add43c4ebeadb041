"""`ademvl convert official`: a checkpoint in the official layout becomes an adapter whose
logits equal an independent re-implementation of the official forward (official_reference.py);
bad checkpoints are refused in one line with nothing written."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from official_fixtures import (VISION_HEADS, VISION_LAYERS, hf_backbones, official_adapters, official_args,
                               openai_layout, processor, sentencepiece_model, meta_layout,
                               write_official_checkpoint)
from official_reference import official_generate_logits, official_transform

from ademvl.checkpoint import read_adapter_config
from ademvl.cli import main
from ademvl.data.example import VLExample
from ademvl.evaluation import load_for_eval
from ademvl.evaluation.generation import GenerationCollator
from ademvl.official.convert import convert_official, resolve_official_args
from ademvl.official.pth import OfficialCheckpointError

PROMPTS = [
    "Context: N/A\nQuestion: Which is a mammal?\nOptions: (A) cat (B) fish (C) frog\nResponse:The answer is",
    "Question: What is the capital of France?\nContext: The map shows Europe.\nOptions: (A) Paris (B) Rome\n"
    "Response:The answer is",
    "a picture of",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    model_file = sentencepiece_model(root / "sp")
    llm_dir, vision_dir, llm, vision = hf_backbones(root, model_file)
    images = []
    for i, (w, h) in enumerate([(50, 30), (23, 41)]):  # non-square: the official squash matters
        pixels = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        images.append(root / f"image{i}.png")
        Image.fromarray(pixels).save(images[-1])
    meta, params = meta_layout(llm)
    return dict(root=root, sp=processor(model_file), llm_dir=llm_dir, vision_dir=vision_dir, meta=meta,
                params=params, clip=openai_layout(vision), images=images)


def _library_logits(adapter_dir, rows):
    model, tokenizer, image_processor = load_for_eval(adapter_dir, device="cpu")
    examples = [VLExample(id=str(i), prompt=p, answer="", image=str(img) if img else None)
                for i, (p, img) in enumerate(rows)]
    batch = GenerationCollator.for_model(model, tokenizer, image_processor)(examples)
    with torch.no_grad():
        return model(**batch).logits, batch


def _reference_logits(world, args, adapters, rows):
    images = torch.stack([official_transform(Image.open(img), 32) if img else torch.zeros(3, 32, 32)
                          for _, img in rows])
    with torch.no_grad():
        return official_generate_logits(world["meta"], world["params"], world["clip"], adapters, args, world["sp"],
                                        [p for p, _ in rows], images, [int(img is not None) for _, img in rows],
                                        VISION_LAYERS, VISION_HEADS)


@pytest.mark.parametrize("changes", [
    {},                                                            # README settings (tiny grid: scales 16, 4)
    {"no_cls": True, "down_sample_num": [16], "drop_ratio": 0.25, "alpha": 0.3, "beta": 0.05, "adapter_dim": 5},
])
def test_converted_checkpoint_gives_the_official_logits(world, tmp_path, changes):
    args = official_args(**changes)
    adapters = official_adapters(args)
    checkpoint = write_official_checkpoint(tmp_path / "checkpoint-19.pth", adapters, args)
    out = convert_official(checkpoint, world["llm_dir"], world["vision_dir"], tmp_path / "adapter")
    saved = read_adapter_config(out)
    assert saved["official"] == "scienceqa"
    settings = saved["method_config"]
    assert (settings["alpha"], settings["beta"], settings["gamma"]) == (args.alpha, args.beta, args.drop_ratio)
    assert settings["scales"] == list(args.down_sample_num) and settings["use_cls"] == (not args.no_cls)
    assert settings["adapter_dim"] == args.adapter_dim

    image, other = world["images"]
    cases = {"image row": [(PROMPTS[0], image)], "text-only row": [(PROMPTS[1], None)],
             "padded batch": [(PROMPTS[0], image), (PROMPTS[1], None), (PROMPTS[2], other)]}
    for case, rows in cases.items():
        ours, batch = _library_logits(out, rows)
        theirs, real, tokens = _reference_logits(world, args, adapters, rows)
        assert ours.shape == theirs.shape, case
        assert torch.equal(batch["attention_mask"].bool(), real), case  # same left padding
        text = real.clone()
        for row, slot in enumerate(batch["image_slot"].tolist()):
            if slot >= 0:
                text[row, slot] = False  # the [cls] placeholder: any id (its embedding is replaced)
        assert torch.equal(batch["input_ids"][text], tokens[text]), case  # the official tokens
        diff = (ours[real] - theirs[real]).abs().max().item()
        assert diff <= 1e-4, f"{case}: max |Δlogits| = {diff}"
        assert theirs[real].abs().max() > 1e-2  # not trivially zero


def test_the_fusion_is_live_in_the_comparison(world, tmp_path):
    """The same checkpoint with E2 zeroed gives other logits: the comparison above sees the adapters."""
    args = official_args()
    adapters = official_adapters(args)
    out = convert_official(write_official_checkpoint(tmp_path / "c.pth", adapters, args), world["llm_dir"],
                           world["vision_dir"], tmp_path / "adapter")
    rows = [(PROMPTS[0], world["images"][0])]
    ours, _ = _library_logits(out, rows)
    silenced = dict(adapters, adapter_emb2=torch.zeros_like(adapters["adapter_emb2"]))
    theirs, real, _ = _reference_logits(world, args, silenced, rows)
    assert (ours[real] - theirs[real]).abs().max() > 1e-3


def _convert_cli(tmp_path, world, checkpoint, capsys):
    out = tmp_path / "adapter"
    code = main(["convert", "official", str(checkpoint), "--llm", str(world["llm_dir"]),
                 "--vision", str(world["vision_dir"]), "--output", str(out)])
    err = capsys.readouterr().err.strip()
    return code, err, out


@pytest.mark.parametrize("damage, expected", [
    ("missing", "missing: backbone.visual.transformer.resblocks.1.adapter_mlp.fc2.weight"),
    ("extra", "unexpected: adapter_gate"),
    ("shape", "wrong shape: adapter_proj.fc1.weight (128, 31) (expected (128, 32))"),
])
def test_mismatched_checkpoints_are_refused_in_one_line(world, tmp_path, capsys, damage, expected):
    args = official_args()
    adapters = official_adapters(args)
    if damage == "missing":
        del adapters["backbone.visual.transformer.resblocks.1.adapter_mlp.fc2.weight"]
    elif damage == "extra":
        adapters["adapter_gate"] = torch.zeros(3)
    else:
        adapters["adapter_proj.fc1.weight"] = adapters["adapter_proj.fc1.weight"][:, :31]
    checkpoint = write_official_checkpoint(tmp_path / "bad.pth", adapters, args)
    code, err, out = _convert_cli(tmp_path, world, checkpoint, capsys)
    assert code != 0 and expected in err
    assert len(err.splitlines()) == 1
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".adapter")]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(world, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    args = official_args()
    torch.save({"model": official_adapters(args), "epoch": 19, "args": args, "scaler": _Payload(marker)},
               tmp_path / "evil.pth")
    code, err, out = _convert_cli(tmp_path, world, tmp_path / "evil.pth", capsys)
    assert code != 0 and "refusing" in err and "would run code" in err
    assert len(err.splitlines()) == 1
    assert not marker.exists() and not out.exists()


def test_unknown_dataset_is_named(world, tmp_path, capsys):
    args = official_args(dataset="vqa")
    checkpoint = write_official_checkpoint(tmp_path / "d.pth", official_adapters(args), args)
    code, err, out = _convert_cli(tmp_path, world, checkpoint, capsys)
    assert code == 2 and "--task" in err and len(err.splitlines()) == 1 and not out.exists()


def _convert_with(world, checkpoint, out, *options):
    return main(["convert", "official", str(checkpoint), "--llm", str(world["llm_dir"]),
                 "--vision", str(world["vision_dir"]), "--output", str(out), *options])


def test_a_model_only_checkpoint_converts_with_settings_from_the_command_line(world, tmp_path, capsys):
    """The released files may hold `{'model': ...}` alone (the official eval scripts read nothing
    else): the settings come from the command line and the official evaluation defaults, and the
    converted model is the one the same weights give with their args."""
    args = official_args(down_sample_num=[16], alpha=0.3, beta=0.05, drop_ratio=0.25, no_cls=True)
    adapters = official_adapters(args)
    with_args = convert_official(write_official_checkpoint(tmp_path / "full.pth", adapters, args),
                                 world["llm_dir"], world["vision_dir"], tmp_path / "from-args")
    bare = write_official_checkpoint(tmp_path / "bare.pth", adapters, args, model_only=True)
    code = _convert_with(world, bare, tmp_path / "from-cli", "--task", "scienceqa", "--scales", "16",
                         "--alpha", "0.3", "--beta", "0.05", "--drop-ratio", "0.25", "--no-cls")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert ("settings: alpha 0.3, beta 0.05, drop_ratio 0.25, down_sample_num [16], no_cls True (command line); "
            "adapter_dim 12, hidden_proj 128 (official evaluation defaults)") in printed.out.splitlines()
    settings = read_adapter_config(tmp_path / "from-cli")["method_config"]
    assert (settings["alpha"], settings["beta"], settings["gamma"], settings["scales"]) == (0.3, 0.05, 0.25, [16])
    assert settings["use_cls"] is False and settings["adapter_dim"] == 12 and settings["projector_hidden"] == 128
    rows = [(PROMPTS[0], world["images"][0]), (PROMPTS[1], None)]
    ours, _ = _library_logits(tmp_path / "from-cli", rows)
    theirs, _ = _library_logits(with_args, rows)
    assert torch.equal(ours, theirs)
    reference, real, _ = _reference_logits(world, args, adapters, rows)  # and both are the official forward
    assert (ours[real] - reference[real]).abs().max() <= 1e-4


def test_the_command_line_overrides_the_checkpoint_args(world, tmp_path, capsys):
    args = official_args(alpha=0.1)
    checkpoint = write_official_checkpoint(tmp_path / "c.pth", official_adapters(args), args)
    code = _convert_with(world, checkpoint, tmp_path / "adapter", "--alpha", "0.7")
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "alpha 0.7 (command line); beta 0.01, drop_ratio 0.1, down_sample_num [16, 4], adapter_dim 12, " \
           "hidden_proj 128, no_cls False (checkpoint args)" in printed.out
    assert read_adapter_config(tmp_path / "adapter")["method_config"]["alpha"] == 0.7


def test_settings_missing_everywhere_are_named_in_one_line(world, tmp_path, capsys):
    """The official defaults fill what the file lacks; the wrong ones are caught by the shapes, unwritten."""
    args = official_args()
    del args.drop_ratio
    checkpoint = write_official_checkpoint(tmp_path / "c.pth", official_adapters(official_args()), args)
    code = _convert_with(world, checkpoint, tmp_path / "filled")
    assert code == 0 and "drop_ratio 0.1 (official evaluation defaults)" in capsys.readouterr().out
    bare = write_official_checkpoint(tmp_path / "bare.pth", official_adapters(args), args, model_only=True)
    code, err, out = _convert_cli(tmp_path, world, bare, capsys)  # no --task, no --scales
    assert code == 2 and "pass --task" in err and len(err.splitlines()) == 1 and not out.exists()
    code = _convert_with(world, bare, out, "--task", "scienceqa")  # the defaults' 256 + 64 prompt tokens
    printed = capsys.readouterr()
    assert "down_sample_num [256, 64]" in printed.out.split("(command line)")[0]
    assert code == 2 and "scale 256 must be a square number" in printed.err and not out.exists()
    code = _convert_with(world, bare, out, "--task", "scienceqa", "--scales", "4")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "wrong shape: adapter_emb1 (1, 20, 64) (expected (1, 4, 64))" in err
    assert len(err.splitlines()) == 1 and not out.exists()
    with pytest.raises(OfficialCheckpointError, match=r"no value for drop_ratio: .*\(--drop-ratio\)$"):
        resolve_official_args({k: v for k, v in vars(args).items()}, defaults={})


def test_the_adapter_records_the_task_and_caption_statistics(world, tmp_path):
    args = official_args(dataset="coco_caption")
    out = convert_official(write_official_checkpoint(tmp_path / "c.pth", official_adapters(args), args),
                           world["llm_dir"], world["vision_dir"], tmp_path / "caption")
    assert read_adapter_config(out)["official"] == "caption"
    _, _, image_processor = load_for_eval(out, device="cpu")
    assert image_processor.image_mean == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert image_processor.do_center_crop is False


SQA = {
    "1": {"question": "Which animal is a mammal?", "choices": ["frog", "dog", "eel"], "answer": 1, "hint": "",
          "image": "image.png", "subject": "natural science", "grade": "grade3", "split": "test"},
    "2": {"question": "What is the capital of France?", "choices": ["Paris", "Rome"], "answer": 0,
          "hint": "The map shows Europe.", "image": None, "subject": "social science", "grade": "grade8",
          "split": "test"},
    "3": {"question": "Which word is a noun?", "choices": ["run", "quickly", "table", "blue", "soft"], "answer": 4,
          "hint": "", "image": None, "subject": "language science", "grade": "grade2", "split": "test"},
}


def _sqa(root, captions=True):
    import json

    root.mkdir(parents=True)
    (root / "problems.json").write_text(json.dumps(SQA))
    (root / "pid_splits.json").write_text(json.dumps({"test": list(SQA)}))
    if captions:
        (root / "captions.json").write_text(json.dumps({"captions": {"1": "A dog on grass."}}))
    pixels = np.random.default_rng(5).integers(0, 256, (30, 44, 3), dtype=np.uint8)
    (root / "images" / "test" / "1").mkdir(parents=True)
    Image.fromarray(pixels).save(root / "images" / "test" / "1" / "image.png")
    return root


@pytest.fixture
def sqa_adapter(world, tmp_path):
    args = official_args()
    return convert_official(write_official_checkpoint(tmp_path / "c.pth", official_adapters(args), args),
                            world["llm_dir"], world["vision_dir"], tmp_path / "adapter")


def test_eval_follows_the_official_scienceqa_protocol(sqa_adapter, tmp_path, monkeypatch, capsys):
    import json

    from ademvl.evaluation import generation

    seen = {}

    def fake_generate(model, tokenizer, image_processor, examples, max_new_tokens, **kwargs):
        seen.update(prompts={ex.id: ex.prompt for ex in examples}, max_new_tokens=max_new_tokens,
                    prompt_layout=GenerationCollator.for_model(model, tokenizer, image_processor).prompt_layout)
        return {"1": "B", "2": "The", "3": "E"}  # right; wrong (first capital T); right

    monkeypatch.setattr(generation, "generate_answers", fake_generate)
    sqa = _sqa(tmp_path / "sqa")
    code = main(["eval", "--checkpoint", str(sqa_adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                 "--device", "cpu", "--no-progress", "--output", str(tmp_path / "out.json")])
    assert code == 0, capsys.readouterr().err
    assert seen["max_new_tokens"] == 1 and seen["prompt_layout"] == "official"
    assert seen["prompts"]["1"] == ("Question: Which animal is a mammal?\nContext: A dog on grass.\n"
                                    "Options: (A) frog (B) dog (C) eel\nResponse:The answer is")
    assert seen["prompts"]["2"].startswith("Question: What is the capital of France?\nContext: The map shows Europe.")
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["official"] is True and result["metrics"]["Average"] == pytest.approx(66.67)
    assert [p["parsed"] for p in result["predictions"]] == ["B", None, "E"]


def test_eval_runs_the_converted_model_one_token_per_problem(sqa_adapter, tmp_path, capsys):
    import json

    sqa = _sqa(tmp_path / "sqa")
    code = main(["eval", "--checkpoint", str(sqa_adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                 "--device", "cpu", "--no-progress", "--output", str(tmp_path / "out.json")])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["generation"]["max_new_tokens"] == 1 and len(result["predictions"]) == 3


def test_official_scienceqa_without_captions_is_named(sqa_adapter, tmp_path, capsys):
    sqa = _sqa(tmp_path / "sqa", captions=False)
    code = main(["eval", "--checkpoint", str(sqa_adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                 "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "captions.json not found" in err and len(err.splitlines()) == 1
