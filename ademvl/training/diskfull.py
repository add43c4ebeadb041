"""A save that runs out of disk space: one line saying where and how much, and no temporary files left.

safetensors reports a full disk as its own `SafetensorError('... No space left on device ...')`, plain
writes as `OSError(ENOSPC)` (or EDQUOT for a quota); both are recognised here.
"""
from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import DiskFullError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno in _FULL:
            return True
        if "No space left on device" in str(error) or "Disk quota exceeded" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def tensor_bytes(*states) -> int:
    """Bytes of every tensor in (nested) dicts/lists: what writing them takes, give or take headers."""
    total, stack = 0, list(states)
    while stack:
        item = stack.pop()
        if hasattr(item, "element_size") and hasattr(item, "numel"):
            total += item.element_size() * item.numel()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@contextmanager
def space_checked(what: str, directory: Path, needed: int, leftovers: list[Path], after: str = ""):
    """Run a save; if the disk fills up, remove `leftovers` (temporary files/dirs) and raise `DiskFullError`
    naming `directory`, about `needed` bytes and what is free there."""
    try:
        yield
    except Exception as error:
        if not is_disk_full(error):
            raise
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        try:
            free = _mb(shutil.disk_usage(directory).free)
        except OSError:
            free = "unknown"
        raise DiskFullError(f"no space left on the device of '{directory}' while writing the {what}: it needs about "
                            f"{_mb(needed)}, {free} free; its temporary files were removed{after}") from None
