"""Tiny fixtures in the real on-disk formats (built in tmp_path, no downloads)."""
import json

import pytest
from PIL import Image


def write_png(path, color=(255, 0, 0), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_corrupt_png(path):
    """A PNG whose pixel data is cut short: opens fine, fails to decode/verify."""
    good = write_png(path, (0, 255, 0), (32, 32))
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def png_writer():
    return write_png


@pytest.fixture
def corrupt_png_writer():
    return write_corrupt_png


# Hand-built ScienceQA problems; pids chosen so the category table is easy to
# compute by hand (see test_data_scienceqa.py::test_table_hand_computed).
SQA_PROBLEMS = {
    "1": {  # NAT, IMG, TXT, G1-6
        "question": "Which animal is a mammal?", "choices": ["frog", "dog", "eel"], "answer": 1,
        "hint": "Look at the picture.", "image": "image.png", "subject": "natural science",
        "grade": "grade3", "lecture": "Mammals have fur.", "solution": "A dog has fur.", "split": "train",
    },
    "2": {  # SOC, NO, G7-12
        "question": "What is the capital of France?", "choices": ["Paris", "Rome"], "answer": 0,
        "hint": "", "image": None, "subject": "social science",
        "grade": "grade8", "lecture": "", "solution": "", "split": "train",
    },
    "3": {  # LAN, TXT, G1-6
        "question": "Which word is a noun?", "choices": ["run", "quickly", "table", "blue"], "answer": 2,
        "hint": "A noun names a thing.", "image": None, "subject": "language science",
        "grade": "grade2", "lecture": "Nouns name things.", "solution": "Table is a thing.", "split": "test",
    },
    "4": {  # NAT, IMG, G7-12
        "question": "Which is a solid?", "choices": ["ice", "steam"], "answer": 0,
        "hint": "", "image": "image.png", "subject": "natural science",
        "grade": "grade10", "lecture": "", "solution": "Ice is solid.", "split": "test",
    },
    "5": {  # SOC, TXT, G7-12
        "question": "Which ocean is largest?", "choices": ["Atlantic", "Pacific", "Indian"], "answer": 1,
        "hint": "Think of area.", "image": None, "subject": "social science",
        "grade": "grade12", "lecture": "", "solution": "", "split": "test",
    },
}
SQA_SPLITS = {"train": ["1", "2"], "test": ["3", "4", "5"], "trainval": ["1", "2"], "minitest": ["4"]}


@pytest.fixture
def sqa_root(tmp_path):
    root = tmp_path / "scienceqa"
    root.mkdir()
    (root / "problems.json").write_text(json.dumps(SQA_PROBLEMS))
    (root / "pid_splits.json").write_text(json.dumps(SQA_SPLITS))
    write_png(root / "images" / "train" / "1" / "image.png")
    write_png(root / "images" / "test" / "4" / "image.png")
    return root
