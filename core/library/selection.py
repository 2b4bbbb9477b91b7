"""Photos the user names (paths or catalog image ids) resolved to rows of the current run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from photoatlas.core.library.library import RunArtifacts

PhotoRef = str | Path | int


def run_rows(run: RunArtifacts, photos: Sequence[PhotoRef]) -> np.ndarray:
    """Rows of ``run`` for ``photos`` (image ids, or paths absolute or relative to the working
    directory), in the given order without repeats. Raises ValueError naming any photo that
    the run does not hold."""
    by_id = {int(i): row for row, i in enumerate(run.image_ids)}
    by_path = {str(p): row for row, p in enumerate(run.paths)}
    rows: list[int] = []
    unknown: list[str] = []
    for photo in photos:
        if isinstance(photo, (int, np.integer)):
            row = by_id.get(int(photo))
        else:
            row = by_path.get(str(Path(photo).expanduser().resolve()))
        if row is None:
            unknown.append(str(photo))
        elif row not in rows:
            rows.append(row)
    if unknown:
        raise ValueError(f"not photos of this library's index: {', '.join(unknown)} "
                         "(run 'photoatlas index' on their folder first)")
    return np.array(rows, np.int64)
