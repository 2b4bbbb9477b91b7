"""How every library file is written and read back safely: atomically (a temporary file,
flushed, renamed), and torch files as tensors only; the library's errors.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


class LibraryError(Exception):
    """A library folder or file that cannot be used; the message says why."""


class RunFileError(LibraryError):
    """A run file that cannot be used; the message says why and what to do."""


# atomic writes ----------------------------------------------------------------------------
@contextmanager
def atomic_file(path: Path, suffix: str = "", shared: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` for the caller to write. On success it is flushed to
    disk and renamed over ``path``: readers see the old file or the new one, never half of
    one, even after a crash. On failure it is removed. ``suffix`` ends its name (np.save adds
    ".npy" to any other name); ``shared``: other processes may write ``path`` at the same
    time (a cache outside the library's lock), so the name is unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shared:
        fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp" + suffix,
                                    dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = path.with_name(path.name + ".tmp" + suffix)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_file(path, ".npz") as tmp:
        np.savez(tmp, **arrays)


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, ".npy") as tmp:
        np.save(tmp, array)


def write_json_atomic(path: Path, data: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str))


def save_torch_atomic(obj: object, path: Path) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def load_tensors(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A torch file of tensors and plain values only: one that could run code is refused."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise RunFileError(f"{path} holds more than tensors and plain values, so it was not "
                           "loaded (it could run code); delete it to train again") from exc
