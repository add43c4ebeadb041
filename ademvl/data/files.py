"""Reading a dataset's JSON files so that a missing or broken one is named in the error."""
from __future__ import annotations

import json
import os


def read_json(path: str | os.PathLike):
    """The parsed contents of `path`; `FileNotFoundError` / `ValueError` naming the file otherwise
    (a truncated download fails as "'…/problems.json' is not valid JSON", not as a bare parser error)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"'{path}' is a directory, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"'{path}' is not valid JSON (truncated or corrupt?): {error}") from None
