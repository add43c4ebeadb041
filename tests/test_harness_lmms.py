"""The lmms-eval adapter against the real lmms-eval (0.7.3 from PyPI): its CLI finds `--model ademvl`
through the installed entry point and prints its table with the metric names; predictions equal
`AdemVLChat.answer` with the template the adapter records (or `prompt_template`, when given);
2 processes (torchrun, gloo) give what 1 process gives; batch sizes (1, 2, auto) give the same
answers; a multiple-choice task runs through the CLI with the log-likelihoods of `AdemVLChat` and
lmms-eval's own accuracy of them; bad options stop the CLI with one line and a non-zero exit."""
import json
import re
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed (scripts/setup.sh installs it: "
                                        "pip install --no-deps lmms-eval==0.7.3 plus what it imports)")

from ademvl.integrations import INSTRUCT_TEMPLATE, AdemVLChat  # noqa: E402
from ademvl.integrations.lmms_eval_model import _stop_at  # noqa: E402
from harness_tiny import (MC_DOCS, MME_DOCS, _image, lmms_eval_command, make_tasks, offline_env,  # noqa: E402
                          with_template)
from tiny_eval import make_checkpoint  # noqa: E402

MME_MAX_NEW_TOKENS = 16  # lmms-eval's mme.yaml
MME_POST_PROMPT = "\nAnswer the question using a single word or phrase."
ADAPTER_TEMPLATE = "Q: {prompt}\nA:"  # what the adapter records: neither INSTRUCT_TEMPLATE nor the bare prompt
RESULTS_HEADER = ["Tasks", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"]  # lmms-eval's make_table


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms")
    adapter = with_template(make_checkpoint(root), root / "adapter_q", ADAPTER_TEMPLATE)
    tasks = make_tasks(root)
    chat = AdemVLChat.from_checkpoint(adapter, device="cpu")  # the adapter's own template
    assert chat.prompt_template == ADAPTER_TEMPLATE
    instruct = AdemVLChat.from_checkpoint(adapter, device="cpu", prompt_template=INSTRUCT_TEMPLATE)
    return SimpleNamespace(root=root, adapter=adapter, tasks=tasks, chat=chat, instruct=instruct,
                           env=offline_env(root))


def results_header(stdout: str) -> list[str]:
    """The column names of the first table lmms-eval prints (its results)."""
    line = next(line for line in stdout.splitlines() if line.startswith("|"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def prompt_line(template: str, source: str) -> str:
    return f"ademvl: prompt template {template!r} ({source}), layout plain"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mme(files, name: str, *extra: str, launcher=(), model_args: str = "device=cpu", timeout=300):
    """Run lmms-eval's CLI on the local MME task; (completed process, {doc_id: prediction})."""
    out = files.root / name
    args = ["--model", "ademvl", "--model_args", f"checkpoint={files.adapter},{model_args}".rstrip(","),
            "--tasks", "mme_local", "--include_path", str(files.tasks), "--log_samples", "--output_path", str(out),
            *extra]
    cmd = [*launcher, "-m", "lmms_eval", *args] if launcher else lmms_eval_command(*args)
    proc = subprocess.run(cmd, env=files.env, capture_output=True, text=True, timeout=timeout, cwd=files.root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    samples = list(out.glob("*samples_mme_local.jsonl"))
    assert len(samples) == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(line) for line in samples[0].read_text().splitlines()]
    return proc, {row["doc_id"]: row["filtered_resps"] for row in rows}


def expected_mme(files, doc_ids) -> dict:
    """What `AdemVLChat.answer` says to the same images and lmms-eval's MME prompts."""
    out = {}
    for i in doc_ids:
        doc = MME_DOCS[i]
        prompt = doc["question"].strip().replace(" Please answer yes or no.", "") + MME_POST_PROMPT  # mme_doc_to_text
        out[i] = _stop_at(files.chat.answer(_image(doc["question_id"]), prompt, max_new_tokens=MME_MAX_NEW_TOKENS),
                          ["\n\n"])
    return out


def test_installed_versions_meet_the_harness_extra():
    """What `pip install 'ademvl[harness]'` allows is what runs here: lmms-eval 0.7.3 imports
    `filelock._api`, which filelock 4.3 removed, so the extra keeps filelock below 4.3."""
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    harness = {req.name: req for req in map(Requirement, pyproject["project"]["optional-dependencies"]["harness"])}
    assert not harness["filelock"].specifier.contains("4.3.0")
    for name, req in harness.items():
        assert req.specifier.contains(version(name), prereleases=True), f"{name} {version(name)} is outside {req}"
    import filelock._api  # noqa: F401  (what lmms-eval's evaluator imports)


def test_entry_point_registers_both_interfaces():
    from importlib.metadata import entry_points

    from lmms_eval.models import get_model, get_model_manifest

    assert [ep.value for ep in entry_points(group="lmms_eval.models") if ep.name == "ademvl"] == \
        ["ademvl.integrations.lmms_eval_model:manifest"]
    manifest = get_model_manifest("ademvl")
    assert manifest.chat_class_path.endswith("AdemVLLmmsChat") and manifest.simple_class_path.endswith("AdemVLLmms")
    assert get_model("ademvl").is_simple is False  # what --model ademvl runs (upstream prefers chat)
    assert get_model("ademvl", force_simple=True).is_simple is True  # --force_simple


def test_cli_runs_a_local_mme_task_and_prints_its_table(files):
    proc, predictions = run_mme(files, "one", "--limit", "2")
    assert "|mme_local|" in proc.stdout and "mme_perception_score" in proc.stdout
    assert results_header(proc.stdout)[:len(RESULTS_HEADER)] == RESULTS_HEADER  # not A | B | C ...
    # without prompt_template: the adapter's own template, said in one line
    assert [line for line in proc.stderr.splitlines() if line.startswith("ademvl: ")] == \
        [prompt_line(ADAPTER_TEMPLATE, "the adapter's own")]
    assert predictions == expected_mme(files, [0, 1])
    assert all(predictions.values())
    results = json.loads(next((files.root / "one").glob("*_results.json")).read_text())
    # MME's score from lmms-eval's own scoring code, recomputed from the predictions
    from lmms_eval.tasks.mme.utils import parse_pred_ans

    hits = [parse_pred_ans(predictions[i]) == MME_DOCS[i]["answer"].lower() for i in (0, 1)]
    score = (sum(hits) / 2 * 100) + (all(hits) * 100)
    assert results["results"]["mme_local"]["mme_perception_score,none"] == pytest.approx(score)


def test_two_processes_batches_and_both_interfaces_agree(files):
    """1 process, simple interface, batch 1 == 2 processes (torchrun, gloo), chat interface, batch 2
    == 1 process, batch auto; all equal `AdemVLChat.answer`."""
    _, single = run_mme(files, "single", "--force_simple", "--batch_size", "1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(free_port())]
    proc, double = run_mme(files, "double", "--batch_size", "2", launcher=launcher, model_args="")
    _, auto = run_mme(files, "auto", "--batch_size", "auto", "--max_batch_size", "4")
    expected = expected_mme(files, range(len(MME_DOCS)))
    assert single == double == auto == expected
    assert "Running on rank 1" in proc.stdout + proc.stderr  # really two processes


def test_auto_batch_size_halves_on_out_of_memory(files):
    """`batch_size=auto` starts at max_batch_size and halves when a batch runs out of memory."""
    from lmms_eval.models import get_model

    lm = get_model("ademvl").create_from_arg_string(f"checkpoint={files.adapter},device=cpu",
                                                   {"batch_size": "auto", "max_batch_size": 8})
    sizes = []
    answer_batch = lm.chat.answer_batch

    def limited(images, prompts, batch_size=8, **kwargs):
        sizes.append(len(images))
        if len(images) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return answer_batch(images, prompts, batch_size=batch_size, **kwargs)

    lm.chat.answer_batch = limited
    items = [(_image(d["question_id"]), d["question"], {"max_new_tokens": 3}) for d in MME_DOCS] * 2
    answers = lm._generate(items)
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2}
    assert lm.batch_size == 2
    assert answers == [files.chat.answer(image, q, max_new_tokens=3) for image, q, _ in items]


def test_loglikelihood_requests_built_by_lmms_eval(files):
    """Requests from lmms-eval's own multiple-choice task code, scored by the adapter and then by the
    task's own `process_results` (argmin over what models return): the adapter returns the negative
    log-likelihood, so lmms-eval's accuracy is that of the most likely choice."""
    from lmms_eval.api.instance import Instance
    from lmms_eval.models import get_model
    from lmms_eval.tasks import TaskManager, get_task_dict

    lm = get_model("ademvl", force_simple=True).create_from_arg_string(f"checkpoint={files.adapter},device=cpu")
    task = get_task_dict(["mc_local"], TaskManager(include_path=str(files.tasks), model_name="ademvl"))["mc_local"]
    lm.task_dict["mc_local"] = task.dataset
    task.build_all_requests(limit=None, rank=0, world_size=1)
    instances = task.instances
    from lmms_eval.api.instance import GenerationResult

    wrapped = lm.loglikelihood(instances)  # wrapped so that lmms-eval's evaluator passes the pair on as it is
    assert all(isinstance(result, GenerationResult) for result in wrapped)
    results = [result.text for result in wrapped]
    assert len(results) == sum(len(d["choices"]) for d in MC_DOCS)
    for instance, (nll, greedy) in zip(instances, results):
        doc = MC_DOCS[instance.doc_id]
        context, continuation = instance.args[0], instance.args[1]
        assert context == f"Question: {doc['question']}\nAnswer:" and continuation == " " + doc["choices"][instance.idx]
        assert (-nll, greedy) == files.chat.loglikelihood(_image(doc["colour"]), context, continuation)
    for doc_id, doc in enumerate(MC_DOCS):
        mine = [(inst, res) for inst, res in zip(instances, results) if inst.doc_id == doc_id]
        mine.sort(key=lambda pair: pair[0].idx)
        logprobs = [files.chat.loglikelihood(_image(doc["colour"]), inst.args[0], inst.args[1])[0] for inst, _ in mine]
        scored = task.process_results(task.dataset["test"][doc_id], [res for _, res in mine])
        assert scored["acc"] == float(max(range(len(logprobs)), key=logprobs.__getitem__) == doc["answer"])
    # acc_mutual_info's unconditional requests: ("", continuation), no image, no template
    unconditional = Instance(request_type="loglikelihood", arguments=("", " red"), idx=0,
                             metadata={"task": "mc_local", "doc_id": 0, "repeats": 1})
    assert [result.text for result in lm.loglikelihood([unconditional])] == \
        [(-files.chat.loglikelihood(None, "", " red", template=False)[0],
          files.chat.loglikelihood(None, "", " red", template=False)[1])]


@pytest.mark.parametrize("from_model_args", [False, True], ids=["adapter-template", "model-args-template"])
def test_cli_runs_a_multiple_choice_task(files, from_model_args):
    """`output_type: multiple_choice` through `python -m lmms_eval --force_simple`: each choice's logged
    value is `-AdemVLChat.loglikelihood` (the adapter's template, or `prompt_template` when given), and
    lmms-eval's accuracy is that of the most likely choice."""
    chat, other = (files.instruct, files.chat) if from_model_args else (files.chat, files.instruct)
    model_args = f"checkpoint={files.adapter},device=cpu"
    if from_model_args:
        model_args += ",prompt_template=" + INSTRUCT_TEMPLATE.replace("\n", "\\n")
    out = files.root / f"mc-{from_model_args}"
    proc = subprocess.run(lmms_eval_command("--model", "ademvl", "--model_args", model_args, "--tasks", "mc_local",
                                            "--include_path", str(files.tasks), "--force_simple", "--log_samples",
                                            "--output_path", str(out)),
                          env=files.env, capture_output=True, text=True, timeout=300, cwd=files.root)
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, log  # lmms-eval exits 0 on errors
    source = "from --model_args prompt_template" if from_model_args else "the adapter's own"
    assert prompt_line(chat.prompt_template, source) in proc.stderr.splitlines()
    rows = {row["doc_id"]: row for row in map(json.loads, next(out.glob("*samples_mc_local.jsonl")).read_text()
                                              .splitlines())}
    assert sorted(rows) == list(range(len(MC_DOCS)))
    hits = []
    for doc_id, doc in enumerate(MC_DOCS):
        context = f"Question: {doc['question']}\nAnswer:"  # mc_utils.doc_to_text
        expected = [chat.loglikelihood(_image(doc["colour"]), context, " " + c) for c in doc["choices"]]
        logged = [(-float(nll), greedy) for nll, greedy in rows[doc_id]["filtered_resps"]]
        assert [logprob for logprob, _ in logged] == pytest.approx([lp for lp, _ in expected], abs=1e-4)
        assert [greedy for _, greedy in logged] == [str(greedy) for _, greedy in expected]
        elsewhere = [other.loglikelihood(_image(doc["colour"]), context, " " + c)[0] for c in doc["choices"]]
        assert [logprob for logprob, _ in logged] != pytest.approx(elsewhere, abs=1e-4)  # the template matters
        best = max(range(len(expected)), key=lambda i: expected[i][0])
        hits.append(float(best == doc["answer"]))
        assert rows[doc_id]["acc"] == hits[-1]
    results = json.loads(next(out.glob("*_results.json")).read_text())["results"]["mc_local"]
    assert results["acc,none"] == pytest.approx(sum(hits) / len(hits))
    assert results_header(proc.stdout)[:len(RESULTS_HEADER)] == RESULTS_HEADER
    assert re.search(r"^\|mc_local\|none *\| *0\|acc *\|", proc.stdout, re.M)
    assert re.search(r"^\|mc_local\|none *\| *0\|acc_norm\|", proc.stdout, re.M)


@pytest.mark.parametrize("model_args, extra, message", [
    ("max_new_token=5", (), "unknown model_args max_new_token (ademvl takes: checkpoint, llm, vision"),
    ("prompt_template=Q: {question}", (), "has unknown field(s) {question}"),
    ("", ("--batch_size", "0"), "batch_size must be a positive integer, 'auto' or 'auto:N', got '0'"),
    ("max_new_tokens=0", (), "max_new_tokens must be a positive integer, got 0"),
    ("quantization=3bit", (), "unknown quantization '3bit'; use 4bit or 8bit"),
    ("", ("--apply_chat_template",), "--apply_chat_template is not supported"),
])
def test_bad_options_stop_the_cli_in_one_line(files, model_args, extra, message):
    args = f"checkpoint={files.adapter},device=cpu,{model_args}".rstrip(",")
    proc = subprocess.run(lmms_eval_command("--model", "ademvl", "--model_args", args, "--tasks", "mme_local",
                                            "--include_path", str(files.tasks), "--limit", "1", *extra),
                          env=files.env, capture_output=True, text=True, timeout=300, cwd=files.root)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("ademvl (lmms-eval): ")]
    assert len(ours) == 1 and ours[0] == lines[-1] and message in ours[0], proc.stderr
    if "--apply_chat_template" not in extra:  # refused once lmms-eval asks for it, after loading and its progress bars
        assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_bad_options_from_python_raise_a_value_error(files):
    """Outside lmms-eval's CLI (simple_evaluate, get_model) a bad option is a ValueError, not an exit."""
    from lmms_eval.models import get_model

    from ademvl.integrations.lmms_eval_model import AdemVLOptionError

    assert "lmms_eval.cli.dispatch" not in sys.modules
    with pytest.raises(AdemVLOptionError, match="unknown model_args max_new_token"):
        get_model("ademvl").create_from_arg_string(f"checkpoint={files.adapter},max_new_token=5")
    assert issubclass(AdemVLOptionError, ValueError)
