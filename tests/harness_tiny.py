"""Local lmms-eval tasks for the harness tests: lmms-eval's own MME task (its YAML and scoring code,
through `include:`) on a four-document parquet file, and a small multiple-choice task, so
`python -m lmms_eval` runs with no network. Needs lmms-eval installed (`datasets` comes with it)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image

MME_DOCS = [  # MME is pairwise: every image (question_id) has a yes- and a no-question
    {"question_id": "red.png", "category": "color", "answer": "Yes",
     "question": "Is the square red? Please answer yes or no."},
    {"question_id": "red.png", "category": "color", "answer": "No",
     "question": "Is the square blue? Please answer yes or no."},
    {"question_id": "blue.png", "category": "existence", "answer": "Yes",
     "question": "Is there a square in the image? Please answer yes or no."},
    {"question_id": "blue.png", "category": "existence", "answer": "No",
     "question": "Is there a dog in the image? Please answer yes or no."},
]
COLOURS = {"red.png": (220, 30, 30), "blue.png": (30, 30, 220)}

MC_DOCS = [
    {"question": "Which colour is the square?", "choices": ["red", "blue", "green"], "answer": 0, "colour": "red.png"},
    {"question": "Which colour is the square?", "choices": ["red", "blue"], "answer": 1, "colour": "blue.png"},
    {"question": "Is the picture empty?", "choices": ["yes", "no"], "answer": 1, "colour": "red.png"},
]

MC_UTILS = '''
def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc):
    return "Question: " + doc["question"] + "\\nAnswer:"


def doc_to_choice(doc):
    return list(doc["choices"])
'''


def _image(name: str) -> Image.Image:
    return Image.new("RGB", (32, 32), COLOURS[name])


def _parquet(rows: list[dict], path: Path) -> Path:
    from datasets import Dataset, Features, Image as ImageFeature, Value, Sequence

    columns = {key: [row[key] for row in rows] for key in rows[0] if key != "colour"}
    features = {key: Value("int64") if isinstance(values[0], int) else Value("string")
                for key, values in columns.items()}
    if "choices" in columns:
        features["choices"] = Sequence(Value("string"))
    columns["image"] = [_image(row.get("colour", row.get("question_id"))) for row in rows]
    features["image"] = ImageFeature()
    Dataset.from_dict(columns, features=Features(features)).to_parquet(str(path))
    return path


def with_template(adapter: Path, out: Path, template: str) -> Path:
    """A copy of `adapter` that records `template` as its prompt template (as training records it)."""
    from ademvl.model import VLModel
    from ademvl.prompting import PromptSpec

    VLModel.from_adapter(adapter, prompt=PromptSpec(template=template)).save_adapter(out)
    return out


def lmms_eval_task_dir() -> Path:
    import lmms_eval

    return Path(lmms_eval.__file__).parent / "tasks"


def make_tasks(root: Path) -> Path:
    """root/tasks with `mme_local` (lmms-eval's MME) and `mc_local` (multiple choice: acc, acc_norm)."""
    tasks = root / "tasks"
    tasks.mkdir(parents=True, exist_ok=True)
    mme = _parquet(MME_DOCS, root / "mme_test.parquet")
    (tasks / "mme_local.yaml").write_text(
        f"include: {lmms_eval_task_dir() / 'mme' / 'mme.yaml'}\n"
        "task: mme_local\n"
        "dataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    test: {mme}\n")
    mc = _parquet(MC_DOCS, root / "mc_test.parquet")
    (tasks / "mc_utils.py").write_text(MC_UTILS)
    (tasks / "mc_local.yaml").write_text(
        "task: mc_local\n"
        "dataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    test: {mc}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_visual: !function mc_utils.doc_to_visual\n"
        "doc_to_text: !function mc_utils.doc_to_text\n"
        "doc_to_choice: !function mc_utils.doc_to_choice\n"
        "doc_to_target: answer\n"
        "metric_list:\n"
        "  - metric: acc\n"
        "  - metric: acc_norm\n"
        "metadata:\n  - version: 0.0\n")
    return tasks


def offline_env(root: Path) -> dict:
    """The environment for an lmms-eval subprocess: no network, caches under `root`, 1 thread each."""
    return {**os.environ, "HF_HOME": str(root / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def lmms_eval_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lmms_eval", *args]
