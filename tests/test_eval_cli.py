"""`ademvl eval` and `ademvl generate` end to end on a tiny saved checkpoint; errors are one line."""
import argparse
import json

import pytest

from ademvl.cli import build_parser, main
from ademvl.integrations import AdemVLChat
from tiny_eval import make_checkpoint, make_coco, make_scienceqa


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_cli")
    adapter = make_checkpoint(root)
    sqa = make_scienceqa(root / "sqa")
    karpathy, images = make_coco(root / "coco")
    return {"root": root, "adapter": str(adapter), "sqa": str(sqa), "karpathy": str(karpathy), "images": str(images)}


def one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err  # one line, and nothing after it
    assert errors[0].startswith(f"ademvl {argv[0]}: error:")
    for needle in needles:
        assert needle in errors[0], err
    return errors[0]


def test_eval_scienceqa_end_to_end(files, capsys, tmp_path):
    out = tmp_path / "sqa.json"
    assert main(["eval", "--checkpoint", files["adapter"], "--dataset", "scienceqa", "--data-root", files["sqa"],
                 "--limit", "3", "--batch-size", "2", "--max-new-tokens", "3", "--device", "cpu",
                 "--no-progress", "--output", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "NAT" in stdout and "G7-12" in stdout and "Average" in stdout
    saved = json.loads(out.read_text())
    assert [p["id"] for p in saved["predictions"]] == ["10", "11", "12"]
    assert saved["generation"] == {"max_new_tokens": 3, "batch_size": 2}
    assert set(saved["metrics"]) == {"NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Average"}


def test_eval_coco_end_to_end_default_output(files, capsys):
    assert main(["eval", "--checkpoint", files["adapter"], "--dataset", "coco", "--json", files["karpathy"],
                 "--image-root", files["images"], "--limit", "2", "--max-new-tokens", "3", "--device", "cpu",
                 "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "BLEU-4" in stdout and "CIDEr" in stdout
    saved = json.loads((files["root"] / "adapter" / "eval_coco_test.json").read_text())
    assert [p["id"] for p in saved["predictions"]] == ["73", "74"]


def test_generate_prints_the_chat_answer(files, capsys):
    image = f"{files['sqa']}/images/test/10/image.png"
    prompt = "Question: What colour is the shape?\nAnswer:"
    assert main(["generate", "--checkpoint", files["adapter"], "--image", image, "--prompt", prompt,
                 "--max-new-tokens", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    chat = AdemVLChat.from_checkpoint(files["adapter"], device="cpu", max_new_tokens=4)
    assert printed == chat.answer(image, prompt) + "\n"
    assert main(["generate", "--checkpoint", files["adapter"], "--prompt", "Answer: red", "--max-new-tokens", "2",
                 "--device", "cpu", "--do-sample", "--top-p", "0.75", "--temperature", "0.1"]) == 0  # text-only


def test_generate_wraps_the_prompt_as_training_did(files, capsys, tmp_path):
    """An adapter records its training template; `generate` applies it unless --template says otherwise."""
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(files["adapter"], adapter)
    config = json.loads((adapter / "ademvl_adapter.json").read_text())
    (adapter / "ademvl_adapter.json").write_text(json.dumps({**config, "prompt_template": "Question: {prompt}\nAnswer:"}))
    image = f"{files['sqa']}/images/test/10/image.png"
    argv = ["generate", "--checkpoint", str(adapter), "--image", image, "--max-new-tokens", "4", "--device", "cpu"]
    assert main([*argv, "--prompt", "What colour is the shape?"]) == 0
    wrapped = capsys.readouterr().out
    assert main([*argv, "--prompt", "Question: What colour is the shape?\\nAnswer:", "--template", "{prompt}"]) == 0
    assert capsys.readouterr().out == wrapped
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu", max_new_tokens=4)
    assert chat.prompt_template == "Question: {prompt}\nAnswer:"
    bare = AdemVLChat(chat.model, chat.tokenizer, chat.image_processor, max_new_tokens=4, prompt_template="{prompt}")
    assert wrapped == chat.answer(image, "What colour is the shape?") + "\n"
    assert bare.answer(image, "What colour is the shape?") != chat.answer(image, "What colour is the shape?")


def test_generate_missing_and_corrupt_image(files, capsys, tmp_path):
    one_line_error(capsys, ["generate", "--checkpoint", files["adapter"], "--image", str(tmp_path / "nope.png"),
                            "--prompt", "hi"], "image not found", "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    one_line_error(capsys, ["generate", "--checkpoint", files["adapter"], "--image", str(bad), "--prompt", "hi"],
                   "corrupt image", "bad.png")


def test_eval_error_paths(files, capsys, tmp_path):
    base = ["eval", "--checkpoint", files["adapter"], "--device", "cpu", "--no-progress"]
    one_line_error(capsys, [*base, "--dataset", "scienceqa"], "needs --data-root")
    one_line_error(capsys, [*base, "--dataset", "coco", "--json", str(tmp_path / "x.json"), "--image-root", "."],
                   "annotation file not found", "x.json")
    one_line_error(capsys, ["eval", "--checkpoint", str(tmp_path / "missing"), "--dataset", "scienceqa",
                            "--data-root", files["sqa"]], "checkpoint directory not found", "missing")
    one_line_error(capsys, [*base, "--dataset", "scienceqa", "--data-root", files["sqa"], "--tokenizer",
                            str(tmp_path)], "cannot load a tokenizer", str(tmp_path))
    one_line_error(capsys, [*base, "--dataset", "coco", "--json", files["karpathy"], "--image-root",
                            str(tmp_path)], "image not found", "COCO_val2014_000000000073.jpg")
    one_line_error(capsys, [*base, "--dataset", "scienceqa", "--data-root", files["sqa"], "--temperature", "0.5"],
                   "only apply with --do-sample")


@pytest.mark.parametrize("command", ["eval", "generate"])
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    assert all(action.help for action in sub._actions)
    assert "--checkpoint" in capsys.readouterr().out
