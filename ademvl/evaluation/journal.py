"""Predictions written as they are generated (JSON lines), so a killed evaluation keeps what it did.

`eval_X.json` (metrics + every prediction) is written once, atomically, at the
end. Until then `eval_X.partial.jsonl` next to it grows by one line per
prediction, after a first line holding the settings they were made with. A
re-run with `resume=True` (`ademvl eval --resume`) skips the ids already there
and refuses other settings; without it an unfinished journal is never
overwritten. The journal is removed once the final JSON is in place.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

HEADER_KEY = "ademvl_eval_settings"


def journal_path(output: str | os.PathLike) -> Path:
    return Path(output).with_suffix(".partial.jsonl")


class PredictionJournal:
    """Open with `PredictionJournal.open(output, settings, resume)`; `done` holds the predictions kept."""

    def __init__(self, path: Path, done: dict[str, str]):
        self.path = path
        self.done = done

    @classmethod
    def open(cls, output: str | os.PathLike, settings: dict, resume: bool = False,
             option: str = "--output") -> "PredictionJournal":
        """Check that `output` can be written (before any generation) and start or continue its journal."""
        output = Path(output)
        path = journal_path(output)
        if output.is_dir():
            raise ValueError(f"{option} '{output}' is a directory; give a file name (e.g. {output / 'eval.json'})")
        settings = json.loads(json.dumps(settings))
        done: dict[str, str] = {}
        if path.is_file():
            saved, done, good_bytes = _read(path)
            if done and not resume:
                raise ValueError(f"'{path}' holds {len(done)} prediction(s) of an unfinished evaluation: pass --resume "
                                 "to finish it, or delete the file to start over")
            if resume and saved is not None and saved != settings:
                changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
                raise ValueError(f"--resume: '{path}' was made with other settings ("
                                 + ", ".join(f"{k} {json.dumps(saved.get(k))}→{json.dumps(settings.get(k))}"
                                             for k in changed)
                                 + "); use the same ones, or delete the file to start over")
            if not resume or saved is None:
                done, good_bytes = {}, 0
        else:
            good_bytes = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "r+b" if good_bytes else "wb") as handle:  # drop a line a kill cut short
                handle.truncate(good_bytes)
                if not good_bytes:
                    handle.write((json.dumps({HEADER_KEY: settings}) + "\n").encode())
        except OSError as error:
            file = next((p for p in reversed(output.parents) if p.exists() and not p.is_dir()), None)
            reason = f"Not a directory: '{file}' is a file" if file is not None else error.strerror or error
            raise ValueError(f"{option} '{output}' cannot be written: {reason} ({path})") from error
        return cls(path, done)

    def add(self, answers: dict[str, str]) -> None:
        """Append one line per prediction and push them to disk (a kill right after loses none)."""
        with open(self.path, "a", encoding="utf-8") as handle:
            for key, text in answers.items():
                handle.write(json.dumps({"id": key, "generated": text}, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.done.update(answers)

    def discard_if_empty(self) -> None:
        """Remove a journal that holds no prediction (a run that failed before generating)."""
        if not self.done:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """The final JSON holds everything now: the journal has done its job."""
        self.path.unlink(missing_ok=True)


def _read(path: Path) -> tuple[dict | None, dict[str, str], int]:
    """(settings, {id: text}, bytes up to the last complete line) of a journal."""
    data = path.read_bytes()
    settings, done, good = None, {}, 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        if good == 0:
            if not (isinstance(record, dict) and HEADER_KEY in record):
                raise ValueError(f"'{path}' is not an ademvl prediction journal; move it away or choose another --output")
            settings = record[HEADER_KEY]
        elif isinstance(record, dict) and isinstance(record.get("id"), str) and isinstance(record.get("generated"), str):
            done[record["id"]] = record["generated"]
        else:
            break
        good += len(line)
    return settings, done, good
