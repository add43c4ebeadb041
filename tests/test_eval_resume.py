"""`ademvl eval` keeps its predictions: SIGKILLed part-way, `--resume` generates only the rest and ends
with the predictions of a run never stopped; an unfinished journal is never overwritten."""
import json
import os
import subprocess
import sys

from ademvl.cli import main
from ademvl.evaluation import generation
from ademvl.evaluation.journal import journal_path
from child_process import sigkill_when
from tiny_eval import make_checkpoint, make_scienceqa

# The eval CLI, each batch slowed down so that the kill lands while it generates.
SLOW_EVAL = """
import sys, time
from ademvl.evaluation import generation
real = generation.generate_batch
def slow(*args, **kwargs):
    time.sleep(0.4)
    return real(*args, **kwargs)
generation.generate_batch = slow
from ademvl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def predictions(lines: str) -> list[dict]:
    return [json.loads(line) for line in lines.splitlines()[1:]]


def test_killed_evaluation_resumes_where_it_stopped(tmp_path, monkeypatch, capsys):
    adapter = make_checkpoint(tmp_path)
    sqa = make_scienceqa(tmp_path / "sqa")
    argv = ["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa), "--batch-size",
            "1", "--max-new-tokens", "3", "--device", "cpu", "--no-progress"]
    output = tmp_path / "killed.json"
    journal = journal_path(output)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EVAL, *argv, "--output", str(output)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_when(proc, lambda: journal.is_file() and len(predictions(journal.read_text())) >= 2, "evaluation")
    kept = journal.read_text()
    done = [p["id"] for p in predictions(kept)]
    assert 2 <= len(done) < 5 and not output.exists()

    # without --resume the journal is not touched
    assert main([*argv, "--output", str(output)]) == 2
    assert "pass --resume" in capsys.readouterr().err and journal.read_text() == kept

    generated = []
    real = generation.generate_batch

    def spy(model, tokenizer, image_processor, examples, *args, **kwargs):
        generated.extend(ex.id for ex in examples)
        return real(model, tokenizer, image_processor, examples, *args, **kwargs)

    monkeypatch.setattr(generation, "generate_batch", spy)
    assert main([*argv, "--output", str(output), "--resume"]) == 0
    assert f"resuming: {len(done)} of 5 predictions" in capsys.readouterr().out
    assert sorted(generated) == sorted(set(["10", "11", "12", "13", "14"]) - set(done))  # only the rest
    assert not journal.exists()  # the final JSON holds everything

    straight = tmp_path / "straight.json"
    assert main([*argv, "--output", str(straight)]) == 0
    resumed, reference = json.loads(output.read_text()), json.loads(straight.read_text())
    assert resumed["predictions"] == reference["predictions"] and resumed["metrics"] == reference["metrics"]


def test_resume_refuses_other_settings(tmp_path, capsys):
    adapter = make_checkpoint(tmp_path)
    sqa = make_scienceqa(tmp_path / "sqa")
    output = tmp_path / "out.json"
    journal = journal_path(output)
    argv = ["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa), "--device", "cpu",
            "--no-progress", "--output", str(output), "--resume"]
    header = {"ademvl_eval_settings": {"dataset": "scienceqa", "max_new_tokens": 3}}
    journal.write_text(json.dumps(header) + "\n" + json.dumps({"id": "10", "generated": "The answer is B."}) + "\n")
    before = journal.read_bytes()
    capsys.readouterr()
    assert main([*argv, "--max-new-tokens", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_new_tokens 3→5" in err and "--resume" in err
    assert journal.read_bytes() == before and not output.exists()
