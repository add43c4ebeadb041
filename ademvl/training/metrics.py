"""Metric lines: a JSONL file in the run dir (always) and TensorBoard/W&B through accelerate (when installed)."""
from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"
_TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def available_trackers(requested: list[str]) -> list[str]:
    """The requested trackers whose package is installed (others are skipped with a warning)."""
    found = []
    for name in requested or []:
        module = _TRACKER_MODULES.get(name)
        if module is None:
            raise ValueError(f"unknown tracker '{name}' in train.report_to; available: {', '.join(_TRACKER_MODULES)}")
        if importlib.util.find_spec(module) is None:
            logger.warning("train.report_to: %s is not installed, skipping it", name)
            continue
        found.append(name)
    return found


class MetricsLog:
    """Appends one JSON object per logged step (a resumed run continues the same file)."""

    def __init__(self, run_dir: Path, accelerator, enabled: bool):
        self.path = Path(run_dir) / METRICS_NAME
        self.accelerator = accelerator
        self.enabled = enabled

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])

    def keep_until(self, step: int) -> None:
        """On resume: drop the lines of steps after the checkpoint (they are trained again) and any
        line a kill left half-written, so that every step appears once."""
        if not self.enabled or not self.path.is_file():
            return
        from ..atomic import atomic_write_text

        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line + "\n")
        atomic_write_text(self.path, "".join(kept))


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
