"""`ademvl demo --llm`: the embedded LLMs by alias (smollm2, gemma3-270m) or a directory, named as such in the
reports, and the chat layout refused up front for an LLM without a chat template (Gemma 3 270M, the base model)."""
import pytest

import ademvl.backbones as backbones
from ademvl.cli import main
from ademvl.demo.run import DemoConfig, DemoError, llm_name, open_pipeline
from test_demo_pipeline import write_split
from train_tiny import COLOURS, write_backbones


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny LLM directory standing in for the converted Gemma 3 270M, a tower and easy-VQA-layout data."""
    llm, vision = write_backbones(tmp_path)
    data = tmp_path / "easyvqa"
    write_split(data, "test", 3, questions_per_image=1)
    (data / "answers.txt").write_text("\n".join(COLOURS) + "\n")
    calls = []
    monkeypatch.setattr(backbones, "gemma3_path", lambda: calls.append(1) or llm)
    return dict(llm=llm, vision=vision, data_dir=str(data), calls=calls)


def test_the_alias_resolves_to_the_cached_model(tiny):
    cfg = DemoConfig(llm="gemma3-270m", vision=tiny["vision"], data_dir=tiny["data_dir"], eval_questions=None,
                     progress=False)
    logged = []
    pipeline = open_pipeline(cfg, test_seed=0, log=logged.append)
    assert pipeline.llm_dir == tiny["llm"] and tiny["calls"] == [1]
    assert "backbones: Gemma 3 270M (base) (frozen)" in logged[0]


def test_the_chat_layout_is_refused_before_tuning_for_an_llm_without_a_chat_template(tiny):
    cfg = DemoConfig(llm="gemma3-270m", vision=tiny["vision"], data_dir=tiny["data_dir"], prompt_layout="chat",
                     progress=False)
    with pytest.raises(DemoError) as error:
        open_pipeline(cfg, test_seed=0, log=lambda message: None)
    assert str(error.value) == ("--prompt-layout chat needs an LLM with a chat template; Gemma 3 270M (base) has "
                                "none (use --prompt-layout plain)")


def test_reports_name_the_llm():
    assert llm_name(None) == llm_name("smollm2") == "SmolLM2-135M-Instruct"
    assert llm_name("gemma3-270m") == "Gemma 3 270M (base)"
    assert llm_name("/models/my-llm") == "/models/my-llm"


def test_the_option_names_both_llms(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "smollm2 (default: SmolLM2-135M-Instruct), gemma3-270m (Gemma 3 270M" in text
