"""Bad input, planted files and faults through the CLI: a non-zero exit, one line naming the problem,
nothing already written changed, nothing read from disk executed (issue 12)."""
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ademvl.cli import main
from ademvl.model import VLModel
from tiny import tiny_llm, tiny_tokenizer, write_image
from tiny_eval import make_checkpoint, make_scienceqa
from train_tiny import corrupt_png_body, nan_loss_on_call, write_recipe

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    write_recipe(root)
    return root


@pytest.fixture(scope="module")
def trained(root):
    """A finished 2-step run with a checkpoint after each step."""
    out = root / "trained"
    assert main(["train", str(root / "tiny.yaml"), "train.max_steps=2", "train.save_every=1", "--output-dir", str(out),
                 "--no-progress"]) == 0
    return out


def snapshot(directory: Path) -> dict:
    """Every file under `directory` with a hash of its bytes."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def one_line(capsys, argv, *needles, code=None) -> str:
    """Run the CLI; it must fail with one `ademvl CMD: error:` line (the last one) holding every needle."""
    capsys.readouterr()
    try:
        returned = main(argv)
    except SystemExit as exit_:  # argparse's option errors
        returned = exit_.code
    err = capsys.readouterr().err
    assert returned != 0 and (code is None or returned == code), (returned, err)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err
    assert errors[0].startswith(f"ademvl {argv[0]}: error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


class Payload:
    """Unpickling this runs `touch MARKER` (what an `os.system` payload in a checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# --- 1. nothing read from disk executes code -----------------------------------------------------

def test_the_payload_is_live(tmp_path):
    """The planted files below would run their command if anything unpickled them."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("plant", ["optimizer.safetensors", "rng_state_0.safetensors", "training_state.pt",
                                   "zero-byte optimizer.safetensors"])
def test_resume_refuses_a_planted_pickle(root, trained, tmp_path, capsys, plant):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    checkpoint = run / "checkpoints" / "step-00000002"
    marker = tmp_path / "payload-ran"
    if plant == "training_state.pt":  # a checkpoint of the old pickle format, e.g. handed over by someone
        checkpoint = run / "checkpoints" / "step-00000003"
        checkpoint.mkdir()
        torch.save({"optimizer": Payload(marker), "step": 3}, checkpoint / plant)
    elif plant.startswith("zero-byte"):
        plant = plant.split()[1]
        (checkpoint / plant).write_bytes(b"")
    else:
        (checkpoint / plant).write_bytes(pickle.dumps(Payload(marker)))
    before = snapshot(run)
    needle = "pickle format" if plant == "training_state.pt" else plant
    one_line(capsys, ["train", str(root / "tiny.yaml"), "train.max_steps=4", "--output-dir", str(run), "--resume",
                      "--no-progress"], needle, str(checkpoint))
    assert not marker.exists()
    assert snapshot(run) == before


def test_no_pickle_loading_in_the_package():
    """Checkpoints, adapters, states: safetensors and JSON only (a pickle can run code when loaded).
    The one pickle read, the official release's .pth (ademvl/official/pth.py), is weights_only."""
    import re

    package = Path(__file__).resolve().parent.parent / "ademvl"
    for path in package.rglob("*.py"):
        text = path.read_text()
        assert "pickle.load" not in text and "weights_only=False" not in text, path
        for call in re.findall(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call, path
        assert text.count("torch.load(") == len(re.findall(r"torch\.load\(([^)]*)\)", text)), path


# --- 2. resuming with changed settings -----------------------------------------------------------

def test_resume_refuses_settings_that_cannot_change(root, trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = snapshot(run)
    one_line(capsys, ["train", str(root / "tiny.yaml"), "train.batch_size=2", "data.limit=6", "train.max_steps=4",
                      "--output-dir", str(run), "--resume", "--no-progress"],
             "train.batch_size 4→2", "data.limit null→6", "cannot change")
    assert snapshot(run) == before  # recipe.yaml, checkpoints, metrics: untouched


# --- 6. non-finite weights are never saved -------------------------------------------------------

def test_overflowing_weights_are_not_saved(root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    one_line(capsys, ["train", str(root / "tiny.yaml"), "train.lr=1e30", "train.max_steps=1", "--output-dir", str(run),
                      "--no-progress"], "not finite after step 1", "no checkpoint was written")
    assert not (run / "adapter").exists() and not (run / "checkpoints").exists()
    assert (run / "notes.txt").read_text() == "mine"


def test_nan_weights_are_not_saved_and_the_last_finite_checkpoint_is_named(root, tmp_path, capsys, monkeypatch):
    forward = VLModel.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):  # step 2's gradients turn NaN, its loss stays finite
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            out.loss.register_hook(lambda grad: grad * float("nan"))
        return out

    monkeypatch.setattr(VLModel, "forward", poisoned)
    run = tmp_path / "run"
    one_line(capsys, ["train", str(root / "tiny.yaml"), "train.save_every=1", "--output-dir", str(run), "--no-progress"],
             "not finite after step 2", "NaN", "last finite checkpoint", "step-00000001")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001"]
    saved = load_file(str(run / "checkpoints" / "step-00000001" / "ademvl_adapter.safetensors"))
    assert all(bool(torch.isfinite(t).all()) for t in saved.values())
    assert not (run / "adapter").exists()


def test_nan_loss_names_the_last_finite_checkpoint(root, tmp_path, capsys, monkeypatch):
    nan_loss_on_call(monkeypatch, 3)
    run = tmp_path / "run"
    one_line(capsys, ["train", str(root / "tiny.yaml"), "train.save_every=1", "--output-dir", str(run), "--no-progress"],
             "loss is nan at step 3", "last finite checkpoint", "step-00000002")


# --- 7. one line where a traceback was ------------------------------------------------------------

def test_corrupt_image_in_a_dataloader_worker(root, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(root / "easyvqa", data)
    corrupt_png_body(data / "train" / "images" / "5.png")  # passes the pre-check, fails to decode
    one_line(capsys, ["train", str(root / "tiny.yaml"), f"data.data_dir={data}", "train.num_workers=2",
                      "--output-dir", str(tmp_path / "run"), "--no-progress"],
             "corrupt image", "5.png", "record train_5")


def test_output_dir_that_is_a_file(root, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    one_line(capsys, ["train", str(root / "tiny.yaml"), "--output-dir", str(target), "--no-progress"],
             "--output-dir", str(target), "not a directory")
    one_line(capsys, ["train", str(root / "tiny.yaml"), "--output-dir", str(target / "run"), "--no-progress"],
             "--output-dir", "not a writable directory")
    assert target.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_dir(root, tmp_path, capsys):
    target = tmp_path / "ro"
    target.mkdir()
    target.chmod(0o555)
    try:
        one_line(capsys, ["train", str(root / "tiny.yaml"), "--output-dir", str(target), "--no-progress"],
                 "--output-dir", "not a writable directory")
    finally:
        target.chmod(0o755)


@pytest.mark.parametrize("override,needles", [
    ("train.betas=[a,b]", ("train.betas", "two numbers")),
    ("data.skip_bad=maybe", ("data.skip_bad", "true or false", "maybe")),
    ("train.save_every=1.5", ("train.save_every", "integer", "1.5")),
    ("data.limit=-1", ("data.limit", "-1")),
    ("train.lr=-1", ("train.lr", "> 0")),
    ("train.num_workers=-2", ("train.num_workers",)),
])
def test_recipe_values_that_were_accepted_silently(root, tmp_path, capsys, override, needles):
    one_line(capsys, ["train", str(root / "tiny.yaml"), override, "--output-dir", str(tmp_path / "run")], *needles,
             code=2)
    assert not (tmp_path / "run").exists()


def test_overrides_may_follow_options(root, tmp_path, capsys):
    assert main(["train", str(root / "tiny.yaml"), "--no-progress", "train.max_steps=1", "train.epochs=1",
                 "--output-dir", str(tmp_path / "run")]) == 0
    assert "trained 1/3 steps" in capsys.readouterr().out
    one_line(capsys, ["train", str(root / "tiny.yaml"), "--no-progress", "train.max_steps=1", "--bogus"], "--bogus",
             code=2)


def test_demo_option_errors_come_before_training(tmp_path, capsys):
    out = tmp_path / "demo"
    one_line(capsys, ["demo", "--eval-questions", "0", "--output-dir", str(out)], "--eval-questions", code=2)
    one_line(capsys, ["demo", "--eval-questions", "many", "--output-dir", str(out)], "--eval-questions", "many", code=2)
    one_line(capsys, ["demo", "--epochs", "0", "--output-dir", str(out)], "--epochs", code=2)
    assert not out.exists()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("adapter"))


def test_template_with_an_unknown_field(adapter, capsys):
    one_line(capsys, ["generate", "--checkpoint", str(adapter), "--prompt", "hi", "--template", "{prompt} {x}"],
             "--template", "{x}", code=2)


def test_truncated_problems_json_is_named(adapter, tmp_path, capsys):
    sqa = make_scienceqa(tmp_path / "sqa")
    text = (sqa / "problems.json").read_text()
    (sqa / "problems.json").write_text(text[: len(text) // 2])
    one_line(capsys, ["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                      "--device", "cpu", "--no-progress", "--output", str(tmp_path / "out.json")],
             str(sqa / "problems.json"), "not valid JSON", code=2)


def test_eval_output_checked_before_generating(adapter, tmp_path, capsys, monkeypatch):
    from ademvl.evaluation import generation

    monkeypatch.setattr(generation, "generate_answers", lambda *a, **k: pytest.fail("generated before the check"))
    sqa = make_scienceqa(tmp_path / "sqa")
    base = ["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa), "--device", "cpu",
            "--no-progress"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line(capsys, [*base, "--output", str(blocker / "out.json")], "--output", "cannot be written", code=2)
    one_line(capsys, [*base, "--output", str(tmp_path)], "--output", "is a directory", code=2)
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file", "sqa"]


# --- prompts longer than the LLM's context ---------------------------------------------------------

LONG = "Context: " + "a red circle on a white background. " * 60 + "Question: what colour is the shape?"


@pytest.fixture(scope="module")
def gpt2_adapter(tmp_path_factory):
    """A GPT-2 LLM with 128 learned positions (a longer input raises IndexError) and an adapter for it."""
    root = tmp_path_factory.mktemp("gpt2")
    make_checkpoint(root)  # root/vision with its image processor (and a LLaMA adapter, unused)
    tok = tiny_tokenizer()
    tiny_llm("gpt2", vocab=len(tok)).save_pretrained(root / "gpt2")
    tok.save_pretrained(root / "gpt2")
    VLModel.from_backbones(root / "gpt2", root / "vision", scales=(16, 4)).save_adapter(root / "gpt2-adapter")
    return root


def cut_notes(caplog) -> list[str]:
    """The warnings about cut prompts (in the CLI they reach stderr, one line each)."""
    return [r.getMessage() for r in caplog.records if "did not fit" in r.getMessage()]


@pytest.fixture
def fresh_warnings():
    """`warning_once` remembers messages for the whole process: forget those of earlier tests."""
    from transformers.utils.logging import warning_once

    warning_once.cache_clear()


def test_long_prompt_is_cut_to_the_context_with_one_line(gpt2_adapter, tmp_path, capsys, caplog, fresh_warnings):
    assert len(tiny_tokenizer()(LONG)["input_ids"]) > 300
    image = write_image(tmp_path / "red.png")
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(gpt2_adapter / "gpt2-adapter"), "--image", image, "--prompt", LONG,
                 "--template", "{prompt}", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    notes = cut_notes(caplog)
    assert len(notes) == 1 and "in 124 tokens" in notes[0] and "end kept" in notes[0] and "\n" not in notes[0]


def test_long_prompt_trains_on_gpt2(gpt2_adapter, tmp_path, caplog, fresh_warnings):
    write_recipe(tmp_path)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(recipe.read_text().replace(str(tmp_path / "llm"), str(gpt2_adapter / "gpt2")))
    prompt = LONG.replace("Question: what colour is the shape?", "Question: {question}\nAnswer:")
    assert main(["train", str(recipe), f"data.prompt={json.dumps(prompt)}", "train.max_length=4096",
                 "train.max_steps=1", "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    notes = cut_notes(caplog)
    assert len(notes) == 1 and "in 128 tokens" in notes[0]


def test_generation_leaves_room_for_new_tokens_in_llama_context():
    """LLaMA was cut at a fixed 512 tokens and ran past its 128 positions; now prompt + new tokens fit."""
    from ademvl.data import VLExample
    from ademvl.evaluation import generate_batch
    from tiny import tiny_image_processor, tiny_vision

    tok = tiny_tokenizer()
    model = VLModel.from_backbones(tiny_llm("llama", vocab=len(tok)), tiny_vision(), scales=(16, 4)).eval()
    widths = []
    real = model.generate

    def spy(**batch):
        widths.append(batch["input_ids"].shape[1])
        return real(**batch)

    model.generate = spy
    out = generate_batch(model, tok, tiny_image_processor(), [VLExample(id="1", prompt=LONG, answer="", image=None)],
                         max_new_tokens=8)
    assert len(out) == 1 and widths == [128 - 8]


# === round two: hostile and unlucky inputs (issue 13) =============================================

from hostile_images import sideways_photo, strip_png  # noqa: E402

LAUGHS = "[" + ",".join(["&a0 [1,1,1,1,1,1,1,1,1]"]  # nine levels of nine aliases: 9**9 values once expanded
                        + [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "]"


# --- 3. one trainer per run directory ----------------------------------------------------------------

def test_a_second_trainer_in_the_same_run_dir_is_refused(root, tmp_path, capsys):
    """Two processes, one new --output-dir: the second is refused in one line, the first finishes intact."""
    import subprocess
    import sys
    import time

    from ademvl.training.runlock import LOCK_NAME

    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "ademvl.cli", "train", str(root / "tiny.yaml"), "train.epochs=3",
                              "--output-dir", str(run), "--no-progress"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / LOCK_NAME).is_file() or not (run / LOCK_NAME).read_text().strip():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        line = one_line(capsys, ["train", str(root / "tiny.yaml"), "--output-dir", str(run), "--no-progress"],
                        str(run), "in use by another trainer", f"(pid {first.pid})", code=1)
        assert "--output-dir" in line
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert "trained 9/9 steps" in out
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))  # every step once: nothing of the second trainer in it
    assert not (run / LOCK_NAME).exists()  # released on exit


def test_a_lock_left_by_a_killed_trainer_is_taken_over(root, tmp_path, capsys):
    import subprocess

    from ademvl.training.runlock import LOCK_NAME

    dead = subprocess.Popen(["true"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(f"{dead.pid}\n")  # what kill -9 leaves: the file, no process holding it
    assert main(["train", str(root / "tiny.yaml"), "train.max_steps=1", "--output-dir", str(run),
                 "--no-progress"]) == 0
    assert (run / "adapter").is_dir() and not (run / LOCK_NAME).exists()


# --- 4. tracebacks where one line is due -------------------------------------------------------------

def test_ctrl_c_names_the_last_checkpoint_and_how_to_resume(root, tmp_path, capsys, monkeypatch):
    forward = VLModel.forward
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(VLModel, "forward", interrupted)
    run = tmp_path / "run"
    one_line(capsys, ["train", str(root / "tiny.yaml"), "train.save_every=1", "--output-dir", str(run), "--no-progress"],
             "interrupted at step 2", str(run / "checkpoints" / "step-00000002"), "--resume",
             f"--output-dir {run}", code=130)
    assert not list((run / "checkpoints").glob(".*"))
    monkeypatch.setattr(VLModel, "forward", forward)
    assert main(["train", str(root / "tiny.yaml"), "train.save_every=1", "--output-dir", str(run), "--resume",
                 "--no-progress"]) == 0


def _no_space(error_type):
    from safetensors import SafetensorError

    if error_type == "safetensors":  # what safetensors raises on a full disk
        return SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                               'message: "No space left on device" })')
    import errno

    return OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("when", ["checkpoint", "adapter"])
def test_a_full_disk_while_saving_is_one_line_and_leaves_no_temporary_files(root, tmp_path, capsys, monkeypatch,
                                                                            when):
    from ademvl import checkpoint

    real = checkpoint.save_file
    calls = {"n": 0}

    def full_disk(state, path, *args, **kwargs):
        calls["n"] += 1
        if (when == "checkpoint" and calls["n"] == 2) or (when == "adapter" and ".adapter.build" in str(path)):
            real(state, path, *args, **kwargs)  # a part is written, then the disk is full
            raise _no_space("safetensors" if when == "checkpoint" else "oserror")
        return real(state, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    run = tmp_path / "run"
    steps = "train.max_steps=3" if when == "checkpoint" else "train.max_steps=1"
    where = run / "checkpoints" if when == "checkpoint" else run
    line = one_line(capsys, ["train", str(root / "tiny.yaml"), steps, "train.save_every=1", "--output-dir", str(run),
                             "--no-progress"], "no space left", f"'{where}'", "needs about", "MB free",
                    "temporary files were removed", code=1)
    assert "step-00000001" in line
    hidden = [p.name for p in run.rglob(".*")]
    assert hidden == [], hidden  # no .step-*.tmp, .adapter.build, .adapter.tmp (and the lock is released)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001"]
    assert load_file(str(run / "checkpoints" / "step-00000001" / "ademvl_adapter.safetensors"))
    assert not (run / "adapter").exists()


@pytest.mark.parametrize("where", ["override", "file"])
def test_yaml_alias_bombs_are_refused_in_one_short_line(root, tmp_path, capsys, where):
    import time

    if where == "override":
        argv = ["train", str(root / "tiny.yaml"), f"train.betas={LAUGHS}"]
    else:
        recipe = tmp_path / "bomb.yaml"
        recipe.write_text((root / "tiny.yaml").read_text() + f"name: {LAUGHS}\n")
        argv = ["train", str(recipe)]
    start = time.perf_counter()
    line = one_line(capsys, [*argv, "--output-dir", str(tmp_path / "run")], "aliases expand to more than", code=2)
    assert time.perf_counter() - start < 5 and len(line) < 300
    assert not (tmp_path / "run").exists()


def test_bad_values_are_echoed_short(root, tmp_path, capsys):
    line = one_line(capsys, ["train", str(root / "tiny.yaml"), "train.betas=[" + ",".join(["x" * 1000] * 1000) + "]",
                             "--output-dir", str(tmp_path / "run")], "train.betas", code=2)
    assert len(line) < 300


def test_a_python_tag_on_the_command_line_is_one_line_and_runs_nothing(root, tmp_path, capsys):
    marker = tmp_path / "ran"
    one_line(capsys, ["train", str(root / "tiny.yaml"), f"train.lr=!!python/object/apply:os.system [touch {marker}]",
                      "--output-dir", str(tmp_path / "run")], "train.lr", "not a plain YAML value",
             "python/object/apply:os.system", code=2)
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("problem", ["huge adapter_dim", "NaN weights"])
def test_an_adapter_file_cannot_allocate_or_answer_nothing(tmp_path, capsys, problem):
    from ademvl.checkpoint import CONFIG_NAME, WEIGHTS_NAME
    from safetensors.torch import save_file

    adapter = make_checkpoint(tmp_path)
    if problem == "huge adapter_dim":
        config = json.loads((adapter / CONFIG_NAME).read_text())
        config["method_config"]["adapter_dim"] = 2**40
        (adapter / CONFIG_NAME).write_text(json.dumps(config))
        needles = (str(adapter), "'adapter_dim' = 1099511627776", "out of range")
    else:
        state = load_file(str(adapter / WEIGHTS_NAME))
        save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()}, str(adapter / WEIGHTS_NAME))
        needles = (str(adapter / WEIGHTS_NAME), "NaN or inf")
    one_line(capsys, ["generate", "--checkpoint", str(adapter), "--prompt", "hi", "--device", "cpu"], *needles, code=2)


def test_an_official_checkpoints_args_are_bounded_by_the_backbones():
    from ademvl.config import ConfigError
    from tiny import tiny_vision

    tok = tiny_tokenizer()
    with pytest.raises(ConfigError, match="'projector_hidden' = 1099511627776 is out of range"):
        VLModel.from_backbones(tiny_llm("llama", vocab=len(tok)), tiny_vision(), scales=(16, 4),
                               projector_hidden=2**40)  # what settings_from_args makes of args.hidden_proj
    with pytest.raises(ConfigError, match="'feature_layer' = 99 is not a block"):
        VLModel.from_backbones(tiny_llm("llama", vocab=len(tok)), tiny_vision(), scales=(16, 4), feature_layer=99)


# --- 2 and 4. images: upright in every path, elongated ones refused --------------------------------

def spy_on(monkeypatch, module, sizes: dict):
    real = module.load_image

    def spy(path, record_id=None):
        image = real(path, record_id)
        sizes[record_id] = image.size
        return image

    monkeypatch.setattr(module, "load_image", spy)


def test_a_sideways_photo_reaches_training_upright(root, tmp_path, monkeypatch):
    from ademvl import collate

    data = tmp_path / "data"
    shutil.copytree(root / "easyvqa", data)
    (data / "train" / "images" / "0.png").write_bytes(sideways_photo()[0])  # a JPEG, whatever its name says
    sizes = {}
    spy_on(monkeypatch, collate, sizes)
    assert main(["train", str(root / "tiny.yaml"), f"data.data_dir={data}", "train.max_steps=3", "train.epochs=1",
                 "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    assert sizes["train_0"] == (20, 60) and sizes["train_1"] == (36, 36)


def test_a_sideways_photo_reaches_eval_and_generate_upright(adapter, tmp_path, capsys, monkeypatch):
    import ademvl.data
    from ademvl import collate  # batches load their images here (generation's collator included)

    sqa = make_scienceqa(tmp_path / "sqa")
    data, upright = sideways_photo()
    (sqa / "images" / "test" / "10" / "image.png").write_bytes(data)
    sizes = {}
    spy_on(monkeypatch, collate, sizes)
    assert main(["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                 "--device", "cpu", "--no-progress", "--max-new-tokens", "2", "--output",
                 str(tmp_path / "out.json")]) == 0
    assert sizes["10"] == (20, 60)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(data)
    spy_on(monkeypatch, ademvl.data, sizes)
    upright.save(tmp_path / "upright.png")
    answers = []
    for image in (photo, tmp_path / "upright.png"):
        capsys.readouterr()
        assert main(["generate", "--checkpoint", str(adapter), "--image", str(image), "--prompt", "what?",
                     "--max-new-tokens", "3", "--device", "cpu"]) == 0
        answers.append(capsys.readouterr().out)
        assert sizes[None] == (20, 60)
    assert answers[0] == answers[1]


def test_a_one_pixel_wide_strip_is_refused_before_resizing(root, adapter, tmp_path, capsys):
    strip = tmp_path / "strip.png"
    strip.write_bytes(strip_png())
    one_line(capsys, ["generate", "--checkpoint", str(adapter), "--image", str(strip), "--prompt", "hi",
                      "--device", "cpu"], str(strip), "1x16000000", "too elongated", code=2)
    data = tmp_path / "data"
    shutil.copytree(root / "easyvqa", data)
    (data / "train" / "images" / "3.png").write_bytes(strip_png())
    one_line(capsys, ["train", str(root / "tiny.yaml"), f"data.data_dir={data}", "--output-dir", str(tmp_path / "run"),
                      "--no-progress"], "3.png", "record train_3", "too elongated")
    assert not (tmp_path / "run").exists()


# --- 5. messages that name the problem -----------------------------------------------------------------

def test_eval_output_under_a_file_says_not_a_directory(adapter, tmp_path, capsys):
    sqa = make_scienceqa(tmp_path / "sqa")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    one_line(capsys, ["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                      "--device", "cpu", "--no-progress", "--output", str(blocker / "x.json")],
             "Not a directory", str(blocker), code=2)
    assert blocker.read_text() == "x"


def test_a_non_string_image_field_names_the_record(adapter, tmp_path, capsys):
    sqa = make_scienceqa(tmp_path / "sqa")
    problems = json.loads((sqa / "problems.json").read_text())
    problems["10"]["image"] = 5
    (sqa / "problems.json").write_text(json.dumps(problems))
    one_line(capsys, ["eval", "--checkpoint", str(adapter), "--dataset", "scienceqa", "--data-root", str(sqa),
                      "--device", "cpu", "--no-progress", "--output", str(tmp_path / "out.json")],
             "problem 10", "'image'", "int 5", code=2)
    assert not (tmp_path / "out.json").exists()
