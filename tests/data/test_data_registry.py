import pytest

import ademvl.data as data


def test_registry_dispatches(sqa_root):
    exs = data.load_dataset("scienceqa", root=sqa_root, split="test")
    assert [e.id for e in exs] == ["3", "4", "5"]
    assert set(data.DATASETS) == {"scienceqa", "coco", "llava_instruct", "easyvqa"}


def test_registry_unknown_name():
    with pytest.raises(ValueError) as ei:
        data.load_dataset("imagenet")
    assert "'imagenet'" in str(ei.value) and "scienceqa" in str(ei.value)


def test_public_names_exported():
    for name in data.__all__:
        assert hasattr(data, name), name
