"""Find photo files under folders and record them in the catalog, incrementally.

An unchanged file costs one ``stat``. New files and files whose size or mtime changed become
'pending'; decoding then hashes them and tells apart real changes, touched-only files and
photos that moved (see core.library.cache.decode_pending). Catalogued files no longer on disk become
'missing'.

Candidates are chosen by extension (photo formats and camera RAW files) and their type is
then decided by content when decoded (a PNG named .jpg works). Sniffing every other file
instead (videos, sidecars, documents) would cost an open and a read per file on every rescan
and fill the report with "not an image" for files that never were photos.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from photoatlas.core.jobs import CancelToken, Progress, ProgressCallback, Stage, no_progress
from photoatlas.core.library.catalog import Catalog
from photoatlas.core.library.decode import RAW_EXTENSIONS

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif",
    ".heic", ".heif", ".hif", ".avif"}) | RAW_EXTENSIONS


# Operating-system clutter that looks like photos or photo folders but never is.
SKIPPED_NAMES = frozenset({"thumbs.db", "desktop.ini", "@eadir", "$recycle.bin", "__macosx"})


@dataclass
class ScanResult:
    found: int = 0
    new_or_changed: int = 0
    missing: int = 0
    # (path, reason) of files and folders that could not be read, in the order met.
    unreadable: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ScanProblems:
    """(path, reason) of files and of folders a walk could not read."""

    files: list[tuple[str, str]] = field(default_factory=list)
    folders: list[tuple[str, str]] = field(default_factory=list)


def _printable(path: str) -> str:
    """A path as text SQLite and the user can read, whatever bytes its name holds."""
    return os.fsencode(path).decode("utf-8", "replace")


def _stat_problem(exc: OSError, is_link: bool) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno == errno.ENOENT:
        return ("broken symbolic link (its target does not exist)" if is_link
                else "file vanished during the scan")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENAMETOOLONG:
        return "path too long for the file system"
    return f"cannot read file: {exc.strerror or exc}"


def iter_photo_files(root: Path, problems: ScanProblems) -> Iterator[tuple[str, int, int]]:
    """Yield (path, size, mtime_ns) of photo files under ``root`` (absolute, normalised),
    recursively.

    Hidden entries and OS clutter are skipped. Symbolic links to folders are followed once
    (a folder already walked is not walked again, so link loops end). Files and folders that
    cannot be read are added to ``problems`` with a reason and the walk goes on.
    """
    stack = [Path(os.path.abspath(root))]
    walked: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in walked:
                continue
            walked.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError as exc:
            problems.folders.append((_printable(str(folder)),
                                     f"cannot list folder: {exc.strerror or exc}"))
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name.startswith(".") or name.lower() in SKIPPED_NAMES:
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(Path(entry.path))
                continue
            if name[name.rfind("."):].lower() not in IMAGE_EXTENSIONS:
                continue
            path = entry.path  # absolute: the walk starts from an absolute folder
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                problems.files.append((_printable(path), "file name is not valid UTF-8; "
                                       "rename the file to include it"))
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                problems.files.append((path, _stat_problem(exc, entry.is_symlink())))
                continue
            yield path, st.st_size, st.st_mtime_ns


def scan_folders(
    catalog: Catalog,
    folders: list[Path],
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> ScanResult:
    """Record every photo under ``folders``; new or changed ones become 'pending',
    catalogued photos no longer on disk become 'missing', unreadable files 'failed'."""
    cancel = cancel or CancelToken()
    result = ScanResult()
    for index, folder in enumerate(folders):
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            result.unreadable.append((str(folder), "not a folder or not reachable"))
            continue
        folder_id = catalog.add_folder(folder)
        before = catalog.file_states(folder_id)
        problems = ScanProblems()
        seen: set[str] = set()
        changed: list[tuple[str, int, int]] = []
        for path, size, mtime in iter_photo_files(folder, problems):
            seen.add(path)
            old = before.get(path)
            if old is None or old[1] != size or old[2] != mtime or old[3] == "missing":
                changed.append((path, size, mtime))
            if len(seen) % 1000 == 0:
                cancel.check()
                progress(Progress(Stage.SCAN, index, len(folders),
                                  f"{len(seen)} files in {folder}"))
        catalog.upsert_files(folder_id, changed)
        catalog.record_unreadable(folder_id, problems.files)
        catalog.set_folder_problems(folder, problems.folders)
        gone = set(before) - seen - {p for p, _ in problems.files}
        missing = [before[p][0] for p in gone if before[p][3] != "missing"]
        catalog.mark_missing(missing)
        result.new_or_changed += len(changed)
        result.missing += len(missing)
        result.found += len(seen)
        result.unreadable += problems.files + problems.folders
        progress(Progress(Stage.SCAN, index + 1, len(folders), f"{len(seen)} photos in {folder}"))
    return result
