"""The rationale answer style: yes/no targets that name the asked attribute before the verdict."""
import json

import pytest

from ademvl.data import VLExample, load_easyvqa, normalize_answer, score_exact_match
from ademvl.data.easyvqa import image_attributes
from ademvl.recipes import RecipeError, recipe_from_dict
from ademvl.training.data import balanced_sample

QUESTIONS = [  # image 0: a red circle (named); image 1: blue, shape ruled out down to one; image 2: colour open
    ["what is the red shape?", "circle", 0],
    ["is there a triangle?", "no", 0],
    ["is there not a blue shape?", "yes", 0],
    ["what color is the shape?", "blue", 1],
    ["does the image contain a circle?", "no", 1],
    ["is there not a triangle?", "no", 1],  # negated "no": a triangle is there
    ["is there a rectangle?", "no", 1],
    ["is a green shape present?", "no", 2],
    ["is there a circle in the image?", "yes", 2],
]


@pytest.fixture
def data_dir(tmp_path, png_writer):
    for part in ("train", "test"):
        for iid in range(3):
            png_writer(tmp_path / part / "images" / f"{iid}.png", (200, 0, 0), (64, 64))
        (tmp_path / part / "questions.json").write_text(json.dumps(QUESTIONS))
    return tmp_path


def test_attributes_from_naming_wording_and_elimination():
    assert image_attributes(QUESTIONS) == {0: {"shape": "circle", "color": "red"},
                                           1: {"shape": "triangle", "color": "blue"},
                                           2: {"shape": "circle"}}  # green ruled out, 7 colours left open


def test_rationale_targets_name_the_asked_attribute_then_the_verdict(data_dir):
    word = load_easyvqa("test", data_dir=data_dir)
    rationale = load_easyvqa("test", data_dir=data_dir, answer_style="rationale")
    assert [ex.answer for ex in rationale] == [
        "circle", "circle, so no", "red, so yes", "blue", "triangle, so no", "triangle, so no",
        "triangle, so no", "no", "circle, so yes"]  # image 2's colour is open: its colour question keeps the word
    assert [ex.meta for ex in rationale] == [ex.meta for ex in word]
    assert [normalize_answer(ex.answer) for ex in rationale] == [ex.answer for ex in word]
    with pytest.raises(ValueError, match="answer_style 'essay'"):
        load_easyvqa("test", data_dir=data_dir, answer_style="essay")


def test_same_draw_whatever_the_answer_style(data_dir):
    def draw(style):
        examples = load_easyvqa("train", data_dir=data_dir, val_fraction=0.0, answer_style=style)
        return [ex.id for ex in balanced_sample(examples, "qtype", 6, seed=3, within=("asks_about", "answer"))]

    assert draw("rationale") == draw("word")


@pytest.mark.parametrize("raw,verdict", [("triangle, so no", "no"), (" Teal, so Yes.", "yes"), ("circle, so", ""),
                                         ("so", "so"), ("red, so yes, so no", "no")])
def test_the_scorer_reads_the_verdict(raw, verdict):
    assert normalize_answer(raw) == verdict


def test_a_named_attribute_with_the_wrong_verdict_scores_wrong():
    exs = [VLExample("1", "", "no", None, {"qtype": "yes/no"}), VLExample("2", "", "yes", None, {"qtype": "yes/no"})]
    scored = score_exact_match({"1": "circle, so no", "2": "circle, so no"}, exs)
    assert scored["overall"] == pytest.approx(50.0)


def test_recipe_refuses_an_unknown_answer_style():
    with pytest.raises(RecipeError, match="data.answer_style"):
        recipe_from_dict({"model": {"llm": "x", "vision": "y"}, "data": {"answer_style": "maybe"}})


def test_answer_style_option_reaches_the_training_examples(data_dir, capsys):
    """The demo's default (rationale) and `--answer-style word` → the run's recipe → the records the trainer
    loads; word leaves the recipe as it was recorded before the option existed (those runs are still reused)."""
    import argparse

    from ademvl.cli import main
    from ademvl.commands.demo import add_arguments, pipeline_config
    from ademvl.demo.tuning import demo_recipe
    from ademvl.training.data import load_examples

    class Pipe:
        llm_dir, vision_dir = "llm", "vision"

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    rationale = pipeline_config(parser.parse_args(["--data-dir", str(data_dir)]))
    word = pipeline_config(parser.parse_args(["--data-dir", str(data_dir), "--answer-style", "word"]))
    assert (rationale.answer_style, rationale.answer_tokens, word.answer_tokens) == ("rationale", 8, 4)
    recipe = demo_recipe("ademvl", {}, rationale, Pipe, "run")
    assert recipe.data.answer_style == "rationale"
    assert "circle, so no" in {ex.answer for ex in load_examples(recipe.data)[0]}
    recipe = demo_recipe("ademvl", {}, word, Pipe, "run")
    assert recipe.data.answer_style is None
    assert "circle, so no" not in {ex.answer for ex in load_examples(recipe.data)[0]}
    with pytest.raises(SystemExit):
        main(["demo", "--answer-style", "essay"])
    assert "invalid choice: 'essay'" in capsys.readouterr().err
