import json

import pytest

from ademvl.data import load_llava_instruct

DATA = [
    {
        "id": "000000033471",
        "image": "000000033471.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus?"},
            {"from": "gpt", "value": "The bus is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "An advertisement."},
        ],
    },
    {
        "id": "txt1",
        "conversations": [
            {"from": "human", "value": "Say hi.\n<image>"},
            {"from": "gpt", "value": " Hi! "},
        ],
    },
]


def _write(tmp_path, data):
    p = tmp_path / "llava.json"
    p.write_text(json.dumps(data))
    return p


def test_turn_pairs_with_history(tmp_path):
    exs = load_llava_instruct(_write(tmp_path, DATA), image_root=tmp_path / "coco")
    assert [e.id for e in exs] == ["000000033471_0", "000000033471_1", "txt1_0"]
    a, b, c = exs
    assert a.prompt == "Instruction: What are the colors of the bus?\nResponse:"
    assert a.answer == "The bus is white and red."
    assert b.prompt == (
        "Instruction: What are the colors of the bus?\nResponse: The bus is white and red.\n"
        "Instruction: What feature can be seen on the back of the bus?\nResponse:"
    )
    assert b.answer == "An advertisement."
    assert "<image>" not in a.prompt + b.prompt + c.prompt
    assert a.image == b.image == str(tmp_path / "coco" / "000000033471.jpg")
    assert c.image is None and c.prompt == "Instruction: Say hi.\nResponse:" and c.answer == "Hi!"
    assert b.meta == {"conversation_id": "000000033471", "turn": 1}


def test_limit_counts_conversations(tmp_path):
    assert len(load_llava_instruct(_write(tmp_path, DATA), limit=1)) == 2


@pytest.mark.parametrize(
    "conv,needle",
    [
        ([{"from": "human", "value": "q"}], "odd number"),
        ([{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}], "turn 0"),
        ([{"from": "human", "value": "q"}, {"from": "human", "value": "a"}], "turn 1"),
        ([{"from": "human", "value": "q"}, {"from": "gpt"}], "turn 1"),
        ([], "conversations"),
    ],
)
def test_malformed_names_record(tmp_path, conv, needle):
    p = _write(tmp_path, [{"id": "bad-rec-9", "image": "x.jpg", "conversations": conv}])
    with pytest.raises(ValueError) as ei:
        load_llava_instruct(p)
    assert "bad-rec-9" in str(ei.value) and needle in str(ei.value)
