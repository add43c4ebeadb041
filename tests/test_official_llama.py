"""`ademvl convert llama`: Meta's layout → Hugging Face, by transformers' own conversion script.

transformers 5.24 ships no such script, so the wrapper is checked here with a stand-in that
has the script's command line (what the wrapper relies on), and, when a python with
transformers 4.x is named in ADEMVL_LLAMA_CONVERT_PYTHON, with the real script."""
from __future__ import annotations

import importlib.util
import json
import os
import textwrap

import pytest
import torch

from official_fixtures import meta_layout, processor, sentencepiece_model, tiny_hf_llama, write_meta_llama
from official_reference import llama_forward

from ademvl.cli import main
from ademvl.official.llama import SCRIPT_MODULE

STAND_IN = textwrap.dedent('''
    """Stand-in with convert_llama_weights_to_hf.py's command line: checks its input, writes a config,
    the tokenizer transformers makes of tokenizer.model, and its own argv."""
    import argparse, json, os, sys
    parser = argparse.ArgumentParser()
    for option in ("--input_dir", "--model_size", "--output_dir"):
        parser.add_argument(option, required=True)
    args = parser.parse_args()
    if os.environ.get("STAND_IN_FAIL"):
        sys.exit("ValueError: the stand-in was told to fail")
    present = sorted(os.listdir(args.input_dir))
    from transformers import LlamaConfig, LlamaTokenizer
    os.makedirs(args.output_dir)
    LlamaTokenizer.from_pretrained(args.input_dir).save_pretrained(args.output_dir)
    LlamaConfig(hidden_size=8, num_attention_heads=2).save_pretrained(args.output_dir)
    json.dump({"argv": sys.argv[1:], "input_files": present}, open(os.path.join(args.output_dir, "ran.json"), "w"))
''')


@pytest.fixture(scope="module")
def meta_dir(tmp_path_factory):
    from transformers import LlamaTokenizer

    root = tmp_path_factory.mktemp("meta")
    model_file = sentencepiece_model(root / "spm")
    llm = tiny_hf_llama(len(LlamaTokenizer.from_pretrained(str(root / "spm"))))
    write_meta_llama(root / "weights", llm, model_file)  # weights/tokenizer.model + weights/7B/…
    script = root / "convert_llama_weights_to_hf.py"
    script.write_text(STAND_IN)
    return dict(weights=root / "weights", script=script, llm=llm, sp=processor(model_file))


def _convert(args, capsys):
    code = main(["convert", "llama", *map(str, args)])
    return code, capsys.readouterr().err.strip()


def test_the_official_layout_is_staged_for_the_script(meta_dir, tmp_path, capsys):
    out = tmp_path / "hf"
    code, err = _convert([meta_dir["weights"] / "7B", "--output", out, "--script", meta_dir["script"]], capsys)
    assert code == 0, err
    ran = json.loads((out / "ran.json").read_text())
    assert ran["input_files"] == ["consolidated.00.pth", "params.json", "tokenizer.model"]  # one --input_dir
    assert ran["argv"][ran["argv"].index("--model_size") + 1] == "7B"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf")]  # no staging left


def test_a_failing_script_is_one_line_and_writes_nothing(meta_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STAND_IN_FAIL", "1")
    out = tmp_path / "hf"
    code, err = _convert([meta_dir["weights"] / "7B", "--output", out, "--script", meta_dir["script"]], capsys)
    assert code == 2 and "conversion script failed: ValueError: the stand-in was told to fail" in err
    assert len(err.splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_missing_meta_files_and_missing_script_are_named(meta_dir, tmp_path, capsys):
    code, err = _convert([tmp_path, "--output", tmp_path / "hf", "--script", meta_dir["script"]], capsys)
    assert code == 2 and "no params.json, consolidated.00.pth, tokenizer.model" in err
    code, err = _convert([meta_dir["weights"] / "7B", "--output", tmp_path / "hf", "--script", tmp_path / "x.py"],
                         capsys)
    assert code == 2 and "x.py' not found" in err
    if importlib.util.find_spec(SCRIPT_MODULE) is None:  # transformers 5: the wrapper says where to get the script
        code, err = _convert([meta_dir["weights"] / "7B", "--output", tmp_path / "hf"], capsys)
        assert code == 2 and "--python" in err and "--script" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "hf").exists()


@pytest.mark.skipif(not os.environ.get("ADEMVL_LLAMA_CONVERT_PYTHON"),
                    reason="set ADEMVL_LLAMA_CONVERT_PYTHON to a python whose transformers (4.x) ships the script")
def test_transformers_script_gives_the_meta_forward(meta_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "hf"
    code, err = _convert([meta_dir["weights"] / "7B", "--output", out, "--python",
                          os.environ["ADEMVL_LLAMA_CONVERT_PYTHON"]], capsys)
    assert code == 0, err
    converted = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    rounded = tiny_hf_llama(converted.config.vocab_size)  # the script stores bfloat16: compare with that rounding
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    meta, params = meta_layout(meta_dir["llm"])
    ids = torch.tensor([[1, 5, 77, 120, 9, 44, 300]])
    mask = torch.triu(torch.full((1, 1, 7, 7), float("-inf")), 1)
    silent = [torch.zeros(1, 1, params["dim"])] * 3
    with torch.no_grad():
        ours = converted(input_ids=ids).logits
        assert (ours - rounded(input_ids=ids).logits).abs().max() <= 1e-5  # the q/k permutation is exact
        reference = llama_forward(meta, params, torch.nn.functional.embedding(ids, meta["tok_embeddings.weight"]),
                                  mask, silent, 0.0, 0.0)
        assert (ours - reference).abs().max() <= 1e-2  # bf16 rounding only
