"""The three tasks the official code was trained for, and what each implies.

Statistics are those of the official `util/datasets.py` (timm's ImageNet defaults, for
ScienceQA and instruction data) and `util/coco_karpathy_dataset.py` (CLIP's, for captions).
"""
from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class OfficialTask:
    name: str
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    dataset: str                   # the library dataset that evaluates it
    official_dataset: str          # `train.py --dataset` of the official code
    prompt_template: str | None    # how `generate` wraps a bare question (eval_mme.py's prompt)


OFFICIAL_TASKS = {
    "scienceqa": OfficialTask("scienceqa", IMAGENET_MEAN, IMAGENET_STD, "scienceqa", "sqa", None),
    "caption": OfficialTask("caption", CLIP_MEAN, CLIP_STD, "coco", "coco_caption", None),
    "instruction": OfficialTask("instruction", IMAGENET_MEAN, IMAGENET_STD, "llava_instruct", "instruction",
                                "Instruction: {prompt}\nResponse:"),
}


def check_task(name: str) -> str:
    if name not in OFFICIAL_TASKS:
        raise ValueError(f"unknown official task {name!r}; use one of {', '.join(OFFICIAL_TASKS)}")
    return name


def choose_task(recorded: str | None, requested: str | bool | None = None, dataset: str | None = None) -> str | None:
    """The official task a model is run in (None: the library's layout), checked: `requested` None keeps
    the `recorded` one (an adapter's `official` key); False (or "") the library's layout; True the
    recorded one, else the task of library `dataset`; a task name that task."""
    if requested is None:
        task = recorded
    elif requested is True and dataset is not None:
        task = recorded or task_for_dataset(dataset)
    else:
        task = requested or None
    return None if task is None else check_task(task)


def official_task(model) -> str | None:
    """The official task `model` is set to (its config's `official`), or None for the library's layout."""
    task = getattr(model.config, "official", None)
    return None if task is None else check_task(task)


def task_for_dataset(dataset: str) -> str:
    """The official task of a library dataset name (`scienceqa`, `coco`, `llava_instruct`)."""
    for task in OFFICIAL_TASKS.values():
        if dataset == task.dataset:
            return task.name
    raise ValueError(f"the official ADEM-VL code has no layout for dataset '{dataset}'; it has one for "
                     f"{', '.join(t.dataset for t in OFFICIAL_TASKS.values())}")


def task_for_official_dataset(name: str | None) -> str | None:
    """The task of the official `--dataset` value recorded in a checkpoint's args (None if unknown)."""
    for task in OFFICIAL_TASKS.values():
        if name == task.official_dataset:
            return task.name
    return None
