"""Shared helpers for the embedded-default backbone caches.

Every builder writes its artefact into a temporary directory *beside* the
final location and only then renames it into place, so an interrupted build
never leaves a half-written cache behind: either the final directory exists
(complete, with its ``ademvl_recipe.json`` stamp written last) or it does not.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..atomic import replace_dir, staging_dir

RECIPE_FILE = "ademvl_recipe.json"


class BackboneNotAvailableError(FileNotFoundError):
    """A bundled backbone artefact (a pip package shipping data) is not installed."""


def cache_root() -> Path:
    """Root of the ademvl cache: ``$ADEMVL_CACHE`` or ``~/.cache/ademvl``."""
    env = os.environ.get("ADEMVL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/ademvl").expanduser()


def resolve_cache_dir(cache_dir: str | os.PathLike | None, default_name: str) -> Path:
    """``cache_dir`` if given (the artefact is stored directly in it), else
    ``cache_root() / default_name``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return cache_root() / default_name


def read_recipe(path: Path) -> dict[str, Any] | None:
    """The recipe stamp of a finished cache at ``path``; None if absent/corrupt."""
    try:
        with open(path / RECIPE_FILE, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def build_atomically(target: Path, recipe: dict[str, Any],
                     build: Callable[[Path], None]) -> Path:
    """Run ``build(tmpdir)`` and atomically move ``tmpdir`` to ``target`` (``ademvl.atomic``).

    ``build`` fills an empty directory. The recipe stamp is written last, then
    the directory is renamed into place. An existing ``target`` (stale recipe)
    is moved aside first and deleted only after the new one is in place.
    """
    target = Path(target)
    with staging_dir(target) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700
        build(tmp)
        for f in tmp.rglob("*"):  # some writers create 0600 files
            if f.is_file():
                os.chmod(f, 0o666 & ~umask)
        with open(tmp / RECIPE_FILE, "w", encoding="utf-8") as f:
            json.dump(recipe, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        try:
            replace_dir(tmp, target)
        except OSError:
            # Someone else finished the same build concurrently: keep theirs
            # if it matches, otherwise re-raise.
            if read_recipe(target) != recipe:
                raise
    return target


def built_once(target: Path, recipe: dict[str, Any], build: Callable[[Path], None], *,
               what: str, expected: str, preflight: Callable[[], None] | None = None) -> Path:
    """``target`` if its stamp equals ``recipe``; otherwise build it atomically, once.

    The build is announced and timed on stderr whether or not progress bars are on: a silent
    one-off step of minutes looks hung. ``preflight`` (e.g. "is the data package installed?")
    runs only when a build is needed, before the announcement, so a missing input fails in its
    own single line.
    """
    target = Path(target)
    if target.is_dir() and read_recipe(target) == recipe:
        return target
    if preflight is not None:
        preflight()
    t0 = time.perf_counter()
    print(f"[ademvl] building {what} -> {target} (one-off, {expected})", file=sys.stderr)
    build_atomically(target, recipe, build)
    print(f"[ademvl] {what} ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return target
