"""Atomic file and directory writes: a reader, or a run killed half-way, sees the old version or the new one,
never a part of either.

Files are written to a temporary file beside the target and `os.replace`d over it. Directories are built
complete in a staging directory beside the target (same filesystem, so the move is one rename) and moved into
place; an existing target is moved aside first and deleted only once the new one is there.
Every writer of the library goes through here (checkpoints, adapters, run summaries, conversions, caches).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` then move the result over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str | None = None) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text, encoding=encoding))


def atomic_write_json(path: str | os.PathLike, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
    atomic_write_bytes(path, write)


def _aside(target: Path, tag: str) -> Path:
    """A fresh hidden name beside `target` (unique: concurrent writers never share one)."""
    path = Path(tempfile.mkdtemp(prefix=f".{target.name}.{tag}-", dir=target.parent))
    os.rmdir(path)
    return path


@contextmanager
def staging_dir(target: str | os.PathLike) -> Iterator[Path]:
    """An empty directory beside `target` to build it in; whatever is left of it is removed on exit
    (nothing, once `replace_dir` moved it into place)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def replace_dir(staged: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the complete directory `staged` to `target` in one rename. An existing `target` is moved aside
    first and deleted only after; if the move fails it is put back (unless another writer's `target` is
    there by then), and the error is raised."""
    staged, target = Path(staged), Path(target)
    aside = None
    if target.exists():
        aside = _aside(target, "old")
        os.replace(target, aside)
    try:
        os.replace(staged, target)
    except BaseException:
        if aside is not None and not target.exists():
            os.replace(aside, target)
            aside = None
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return target


def remove_dir(directory: str | os.PathLike) -> None:
    """Take `directory` away in one rename, then delete it (a kill leaves only hidden debris)."""
    directory = Path(directory)
    aside = _aside(directory, "old")
    os.replace(directory, aside)
    shutil.rmtree(aside, ignore_errors=True)
