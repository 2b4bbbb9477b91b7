"""Find photo files under folders and record them in the catalog."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .jobs import CancelToken, Progress, ProgressCallback, no_progress

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# Operating-system clutter that looks like photos or photo folders but never is.
SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini", "@eadir", "$recycle.bin", "__macosx"})


@dataclass
class ScanResult:
    found: int = 0
    new_or_changed: int = 0
    missing: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def iter_photo_files(root: Path, errors: list[tuple[str, str]]) -> Iterator[tuple[str, int, int]]:
    """Yield (absolute path, size, mtime_ns) of photo files under ``root``, recursively.

    Hidden entries and OS clutter are skipped; folders that cannot be listed are
    appended to ``errors`` as (path, reason) and the walk goes on.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            errors.append((str(folder), f"cannot list folder: {exc.strerror or exc}"))
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name.startswith(".") or name.lower() in SKIPPED_NAMES:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                    continue
                st = entry.stat()
            except OSError as exc:
                errors.append((entry.path, f"cannot read file: {exc.strerror or exc}"))
                continue
            yield os.path.abspath(entry.path), st.st_size, st.st_mtime_ns


def scan_folders(
    catalog: Catalog,
    folders: list[Path],
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> ScanResult:
    """Record every photo under ``folders``; new or changed ones become 'pending',
    catalogued photos no longer on disk become 'missing'."""
    cancel = cancel or CancelToken()
    result = ScanResult()
    for index, folder in enumerate(folders):
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            result.unreadable.append((str(folder), "not a folder or not reachable"))
            continue
        folder_id = catalog.add_folder(folder)
        before = {row.path: row for row in catalog.images(folder_id=folder_id)}
        seen: list[tuple[str, int, int]] = []
        for item in iter_photo_files(folder, result.unreadable):
            seen.append(item)
            if len(seen) % 1000 == 0:
                cancel.check()
                progress(Progress("scan", index, len(folders), f"{len(seen)} files in {folder}"))
        for path, size, mtime in seen:
            old = before.get(path)
            if old is None or (old.size, old.mtime_ns) != (size, mtime) or old.status == "missing":
                result.new_or_changed += 1
        catalog.upsert_files(folder_id, seen)
        gone = set(before) - {p for p, _, _ in seen}
        missing = [before[p].id for p in gone if before[p].status != "missing"]
        catalog.mark_missing(missing)
        result.missing += len(missing)
        result.found += len(seen)
        progress(Progress("scan", index + 1, len(folders), f"{len(seen)} photos in {folder}"))
    return result
