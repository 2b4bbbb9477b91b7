"""Where the window's package data lives (resources/, installed as photoatlas.resources)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource(name: str) -> Path:
    """The path of the resource file ``name`` (e.g. "style.qss"); FileNotFoundError, naming
    the file and the folder searched, when an install lost it."""
    path = Path(str(files("photoatlas.resources"))) / name
    if not path.is_file():
        raise FileNotFoundError(f"PhotoAtlas's resource {name} is missing from {path.parent}; "
                                "reinstall PhotoAtlas")
    return path
