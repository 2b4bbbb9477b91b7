"""Copy photos out of the library into a folder the user picked, and list them as CSV.

Originals are only read. A copy never overwrites anything and never lands outside the
target folder: a name already taken gets " (2)", " (3)", ... before its extension.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)

_MAX_NAME_TRIES = 10_000


@dataclass
class CopyReport:
    """What a copy did: (source, destination) pairs and (source, reason) failures."""

    target: Path
    copied: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"copied {len(self.copied)} photo(s) to {self.target}"
        if self.failed:
            text += f"; {len(self.failed)} could not be copied"
        return text


def candidate_names(name: str) -> Iterator[str]:
    """``name``, then 'stem (2)suffix', 'stem (3)suffix', ...: the names tried, in order, for
    a file or folder whose name is taken."""
    stem, suffix = os.path.splitext(name)
    yield name
    for n in range(2, _MAX_NAME_TRIES):
        yield f"{stem} ({n}){suffix}"


def create_exclusive(target: Path, name: str) -> tuple[Path, int]:
    """Create a new empty file in ``target`` named ``name`` or 'stem (n)suffix' and return
    it with an open descriptor: O_EXCL makes the choice safe against concurrent writers."""
    for candidate_name in candidate_names(name):
        candidate = target / candidate_name
        try:
            return candidate, os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
    raise OSError(f"no free name for {name} in {target}")


def copy_photos(
    paths: Sequence[str | Path],
    target: Path,
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> CopyReport:
    """Copy each photo into ``target`` (created if needed) under a conflict-free name,
    keeping its timestamps. A file that cannot be copied is reported and the rest go on."""
    cancel = cancel or CancelToken()
    target = Path(target).expanduser().resolve()
    target.mkdir(parents=True, exist_ok=True)
    report = CopyReport(target)
    clock = EtaClock()
    for done, source in enumerate(map(Path, paths), 1):
        cancel.check()
        # Only the base name is used, so nothing can escape the target folder.
        name = source.name
        if name in ("", ".", ".."):
            report.failed.append((str(source), "not a file name"))
            continue
        destination: Path | None = None
        try:
            with open(source, "rb") as src:
                destination, fd = create_exclusive(target, name)
                with os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            shutil.copystat(source, destination)
            report.copied.append((str(source), str(destination)))
        except OSError as exc:
            if destination is not None:
                destination.unlink(missing_ok=True)  # a partial copy of ours, never an original
            report.failed.append((str(source), exc.strerror or str(exc)))
        progress(Progress(Stage.COPY, done, len(paths), f"{done}/{len(paths)} photos",
                          eta_s=clock.eta(done, len(paths))))
    return report


def write_paths_csv(rows: Sequence[dict[str, object]], path: Path) -> None:
    """Write ``rows`` (dicts with the same keys) as CSV to a new file ``path``."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; choose another name")
    if not rows:
        raise ValueError("nothing to export: the selection is empty")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
