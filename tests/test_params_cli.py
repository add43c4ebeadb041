"""`ademvl params` prints the paper's trainable counts, built on the meta device."""
import pytest

from ademvl.cli import main


@pytest.mark.parametrize("args, expected", [
    (["--llm", "llama-7b"], "4,530,432"),
    (["--llm", "llama-13b"], "5,449,984"),
    (["--llm", "llama2-7b"], "4,530,432"),
    (["--llm", "llama-7b", "--set", "use_cls=false", "--set", "scales=[256]"], "3,346,560"),
    (["--llm", "llama-7b", "--set", "use_cls=false", "--set", "scales=256"], "3,346,560"),  # a bare scale
    (["--llm", "llama-7b", "--set", "scales=[256]"], "4,006,144"),  # the ablation row with [cls]
])
def test_paper_counts(capsys, args, expected):
    assert main(["params", *args, "--vision", "clip-vit-l-14"]) == 0
    out = capsys.readouterr().out
    assert f"trainable: {expected}" in out


def test_bad_setting_is_one_line(capsys):
    assert main(["params", "--set", "alpah=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['alpah']" in err and err.count("\n") == 1


@pytest.mark.parametrize("setting, named", [
    ("use_cls=maybe", "'use_cls' must be true or false"),
    ("scales=[256,big]", "'scales' must be an integer or a list of integers"),
    ("alpha=high", "'alpha' must be a number"),
    ("projector_hidden=1.5", "'projector_hidden' must be an integer"),
])
def test_wrongly_typed_setting_is_one_line(capsys, setting, named):
    assert main(["params", "--set", setting]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
