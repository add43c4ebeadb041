"""The official behaviour is decided in one place: `ademvl.official` (task, image processor) and `PromptSpec`."""

import pytest

from ademvl.official import choose_task, image_processor_for, official_image_processor
from ademvl.prompting import PromptSpec


def test_choose_task_keeps_switches_or_picks_the_datasets_task():
    assert choose_task("caption") == "caption" and choose_task(None) is None
    assert choose_task("caption", False) is None
    assert choose_task(None, True, "scienceqa") == "scienceqa"
    assert choose_task("caption", True, "scienceqa") == "caption"
    assert choose_task(None, "instruction") == "instruction"
    with pytest.raises(ValueError, match="unknown official task"):
        choose_task(None, "nope")
    with pytest.raises(ValueError, match="no layout for dataset 'easyvqa'"):
        choose_task(None, True, "easyvqa")


def test_image_processor_for_a_prompt_spec():
    from ademvl.vision import VisionTower
    from tiny import tiny_image_processor, tiny_vision

    default = tiny_image_processor(32)
    vision = VisionTower(tiny_vision())  # 32 px
    assert image_processor_for(PromptSpec(), default, vision) is default
    official = image_processor_for(PromptSpec(official="caption"), None, vision)
    assert official.to_dict() == official_image_processor("caption", 32).to_dict()


def test_official_prompt_spec_of_a_dataset():
    assert PromptSpec.official_for("llava_instruct", "chat") == PromptSpec(
        "Instruction: {prompt}\nResponse:", "chat", "instruction")
    assert PromptSpec.official_for("coco") == PromptSpec(None, "plain", "caption")


def test_eval_offers_every_registered_dataset():
    from ademvl.commands import eval as eval_command
    from ademvl.data import SPECS

    assert set(eval_command.DATASETS) == set(SPECS) == {"scienceqa", "coco", "easyvqa", "llava_instruct"}
