"""`ademvl params` prints the paper's trainable counts, built on the meta device."""
import pytest

from ademvl.cli import main


@pytest.mark.parametrize("args, expected", [
    (["--llm", "llama-7b"], "4,530,432"),
    (["--llm", "llama-13b"], "5,449,984"),
    (["--llm", "llama2-7b"], "4,530,432"),
    (["--llm", "llama-7b", "--set", "use_cls=false", "--set", "scales=[256]"], "3,346,560"),
])
def test_paper_counts(capsys, args, expected):
    assert main(["params", *args, "--vision", "clip-vit-l-14"]) == 0
    out = capsys.readouterr().out
    assert f"trainable: {expected}" in out


def test_bad_setting_is_one_line(capsys):
    assert main(["params", "--set", "alpah=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['alpah']" in err and err.count("\n") == 1
