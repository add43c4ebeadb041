"""Compatibility with the official ADEM-VL code (GitHub Hao840/ADEM-VL) and its released checkpoints.

A model whose `config.official` names an official task ("scienceqa", "caption",
"instruction") is fed as the official code feeds it: images squashed to the tower's
size (bicubic, no centre crop) and normalised with that task's statistics, the
official prompt layout (`ademvl.prompting`), and the official evaluation protocols
(`protocol`). `convert` turns a released `.pth` into an adapter directory;
`llama` wraps transformers' LLaMA conversion script for Meta-layout weights.
"""
from .preprocess import image_processor_for, official_image_processor
from .profiles import OFFICIAL_TASKS, OfficialTask, check_task, choose_task, official_task, task_for_dataset

__all__ = ["OFFICIAL_TASKS", "OfficialTask", "check_task", "choose_task", "image_processor_for",
           "official_image_processor", "official_task", "task_for_dataset"]
