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


def test_every_table_reads_the_registry():
    from ademvl.evaluation import DEFAULT_MAX_NEW_TOKENS, SCORERS
    from ademvl.official import protocol
    from ademvl.visualize.runner import ACCURACY_KEY

    specs = data.SPECS
    assert set(specs) == set(SCORERS) == set(DEFAULT_MAX_NEW_TOKENS)
    assert DEFAULT_MAX_NEW_TOKENS == {"scienceqa": 32, "coco": 32, "easyvqa": 8, "llava_instruct": 256}
    assert ACCURACY_KEY == {"scienceqa": "Average", "easyvqa": "overall"}
    assert protocol.MAX_NEW_TOKENS == {"scienceqa": 1, "coco": 20}


def test_data_options_route_through_the_dataset_options(tmp_path):
    from ademvl.model_builder import question_template
    from ademvl.recipes import RecipeError, recipe_from_dict
    from ademvl.training.data import loader_kwargs

    def recipe(**values):
        return recipe_from_dict({"model": {"llm": "x", "vision": "y"}, "data": values})

    r = recipe(dataset="easyvqa", options={"prompt": "Q: {question} A:"}, val_fraction=0)
    assert loader_kwargs(r.data) == {"split": "train", "prompt": "Q: {question} A:", "val_fraction": 0.0}
    assert question_template(r.data) == "Q: {prompt} A:"
    with pytest.raises(RecipeError, match="data.options.bogus is not an option of dataset 'easyvqa'"):
        loader_kwargs(recipe(options={"bogus": 1}).data)
    with pytest.raises(RecipeError, match="'limit' must be an integer"):
        loader_kwargs(recipe(options={"limit": "many"}).data)
    with pytest.raises(RecipeError, match="data.val_fraction"):
        recipe(options={"val_fraction": 2})
