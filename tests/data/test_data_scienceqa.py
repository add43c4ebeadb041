import json

import pytest

from ademvl.data import (
    PROMPT_FORMATS,
    SCIENCEQA_COLUMNS,
    build_scienceqa_prompt,
    format_scienceqa_table,
    load_scienceqa,
    parse_answer_letter,
    scienceqa_table,
)


def test_cqm_a_prompt_exactly_per_spec(sqa_root):
    exs = load_scienceqa(sqa_root, "train")
    assert [e.id for e in exs] == ["1", "2"]
    e1, e2 = exs
    assert e1.prompt == (
        "Context: Look at the picture.\nQuestion: Which animal is a mammal?\n"
        "Options: (A) frog (B) dog (C) eel\nResponse:"
    )
    assert e1.answer == "The answer is B."
    # empty hint -> "N/A"; text-only -> image None
    assert e2.prompt == "Context: N/A\nQuestion: What is the capital of France?\nOptions: (A) Paris (B) Rome\nResponse:"
    assert e2.answer == "The answer is A."
    assert e2.image is None


def test_image_paths_and_meta(sqa_root):
    e1, e2 = load_scienceqa(sqa_root, "train")
    assert e1.image == str(sqa_root / "images" / "train" / "1" / "image.png")
    assert e1.meta["has_image"] is True and e2.meta["has_image"] is False
    assert e1.meta["subject"] == "natural science"
    assert e1.meta["grade"] == "grade3"
    assert e1.meta["hint"] == "Look at the picture."
    assert e1.meta["choices"] == ["frog", "dog", "eel"]
    assert e1.meta["answer"] == 1 and e1.meta["answer_letter"] == "B"


def test_derived_split_uses_problem_split_folder(sqa_root):
    (e,) = load_scienceqa(sqa_root, "minitest")
    assert e.image == str(sqa_root / "images" / "test" / "4" / "image.png")


def test_other_formats(sqa_root):
    by = lambda fmt: {e.id: e for e in load_scienceqa(sqa_root, "test", prompt_format=fmt)}
    qcm = by("QCM-A")["3"]
    assert qcm.prompt == (
        "Question: Which word is a noun?\nContext: A noun names a thing.\n"
        "Options: (A) run (B) quickly (C) table (D) blue\nResponse:"
    )
    assert qcm.answer == "The answer is C."
    assert by("QCM-ALE")["3"].answer == "The answer is C. BECAUSE: Nouns name things. Table is a thing."
    assert by("QCM-LEA")["3"].answer == "Nouns name things. Table is a thing. The answer is C."
    assert by("QCM-EA")["3"].answer == "Table is a thing. The answer is C."
    # empty lecture: no double space; empty lecture+solution: no dangling BECAUSE
    assert by("QCM-LEA")["4"].answer == "Ice is solid. The answer is A."
    assert by("QCM-ALE")["5"].answer == "The answer is B."
    assert by("CQM-EA")["5"].answer == "The answer is B."
    for fmt in ("CQM-A", "QCM-A", "QCM-LEA", "QCM-EA", "QCM-ALE", "CQM-EA"):
        assert fmt in PROMPT_FORMATS


def test_unknown_format_lists_valid(sqa_root):
    with pytest.raises(ValueError) as ei:
        load_scienceqa(sqa_root, "train", prompt_format="XYZ-A")
    assert "XYZ-A" in str(ei.value) and "CQM-A" in str(ei.value) and "QCM-LEA" in str(ei.value)


def test_unknown_split_lists_present(sqa_root):
    with pytest.raises(ValueError) as ei:
        load_scienceqa(sqa_root, "validation")
    msg = str(ei.value)
    assert "'validation'" in msg and "minitest" in msg and "train" in msg and "test" in msg


def _write(root, problems, splits):
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"question": None}, "question"),
        ({"choices": []}, "choices"),
        ({"answer": None}, "answer"),
        ({"answer": 3}, "answer"),
        ({"answer": -1}, "answer"),
    ],
)
def test_malformed_record_names_pid_and_field(tmp_path, patch, field):
    prob = {"question": "Q?", "choices": ["a", "b", "c"], "answer": 0, "hint": "", "image": None}
    prob.update(patch)
    _write(tmp_path, {"p77": prob}, {"train": ["p77"]})
    with pytest.raises(ValueError) as ei:
        load_scienceqa(tmp_path, "train")
    assert "p77" in str(ei.value) and field in str(ei.value)


def test_missing_field_entirely(tmp_path):
    _write(tmp_path, {"p8": {"question": "Q?", "answer": 0}}, {"train": ["p8"]})
    with pytest.raises(ValueError, match=r"p8.*choices"):
        load_scienceqa(tmp_path, "train")


def test_pid_missing_from_problems(tmp_path):
    _write(tmp_path, {}, {"train": ["p9"]})
    with pytest.raises(ValueError, match="p9"):
        load_scienceqa(tmp_path, "train")


@pytest.mark.parametrize(
    "text,n,expected",
    [
        ("The answer is B.", 3, 1),
        ("The answer is A. BECAUSE: lecture", 2, 0),
        ("the answer is (C)", 4, 2),
        ("Lecture text. The answer is D.", 4, 3),
        ("The answer is E.", 3, None),  # beyond the choices
        ("The answer is C.", 2, None),
        ("B", 2, 1),
        ("(A)", 2, 0),
        ("B.", 3, 1),
        ("(C) table", 4, 2),
        ("", 3, None),
        (None, 3, None),
        ("I do not know", 3, None),
        ("A dog is a mammal", 3, None),  # article, not a letter answer
        ("The answer is Apple", 3, None),
        ("the answer is b", 3, None),  # lower-case letters are not options
    ],
)
def test_parse_answer_letter(text, n, expected):
    assert parse_answer_letter(text, n) == expected


def test_parse_is_deterministic():
    assert {parse_answer_letter("no idea", 5) for _ in range(20)} == {None}


def test_table_hand_computed(sqa_root):
    exs = load_scienceqa(sqa_root, "train") + load_scienceqa(sqa_root, "test")
    # correct: 1 (NAT IMG TXT G1-6), 3 (LAN TXT G1-6); wrong: 2 (letter None),
    # 4 (wrong choice), 5 (no prediction at all)
    preds = {"1": 1, "2": None, "3": 2, "4": 1}
    t = scienceqa_table(preds, exs)
    assert list(t) == list(SCIENCEQA_COLUMNS)
    assert t == {
        "NAT": 50.0,     # 1 ok, 4 wrong
        "SOC": 0.0,      # 2, 5 wrong
        "LAN": 100.0,    # 3
        "TXT": 66.67,    # 1, 3 ok; 5 wrong
        "IMG": 50.0,     # 1 ok, 4 wrong
        "NO": 0.0,       # 2 wrong
        "G1-6": 100.0,   # 1, 3
        "G7-12": 0.0,    # 2, 4, 5
        "Average": 40.0,
    }
    txt = format_scienceqa_table(t)
    head, row = txt.splitlines()
    assert head.split() == list(SCIENCEQA_COLUMNS)
    assert row.split() == ["50.00", "0.00", "100.00", "66.67", "50.00", "0.00", "100.00", "0.00", "40.00"]


def test_table_empty_column_is_none(sqa_root):
    exs = load_scienceqa(sqa_root, "train")
    t = scienceqa_table({"1": 1, "2": 0}, exs)
    assert t["LAN"] is None and t["Average"] == 100.0
    assert format_scienceqa_table(t).splitlines()[1].split()[2] == "-"


def test_build_prompt_direct():
    p, a = build_scienceqa_prompt({"question": "Q?", "choices": ["x", "y"], "answer": 1, "hint": "  "})
    assert p == "Context: N/A\nQuestion: Q?\nOptions: (A) x (B) y\nResponse:"
    assert a == "The answer is B."
