"""Albums: one folder per cluster or per tag under a folder the user picked, holding hard
links, symbolic links or copies of the photos. Originals are only read.

The target keeps a manifest (``.photoatlas-albums.json``) of what PhotoAtlas wrote there, so a
re-run adds what is new, keeps what is current, removes only files of its own that left an
album and that nobody changed since, and never touches anything else in the target.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)
from photoatlas.core.library.library import Library
from photoatlas.core.organize.copy_out import candidate_names, create_exclusive

MANIFEST_NAME = ".photoatlas-albums.json"


MANIFEST_FORMAT = "photoatlas-albums"


MANIFEST_VERSION = 1


GROUPINGS = ("cluster", "tag")


LINKS = ("hard", "sym", "copy")


# The manifest is saved at the end and, during a long run, this often: a killed run leaves
# at most these seconds of its files unrecorded (a re-run then writes them again beside).
_SAVE_EVERY_S = 5.0


_NAME_LIMIT = 120  # characters of an album folder's name (file systems allow 255 bytes)


# Characters Windows forbids in names (and the separators everywhere); names it reserves.
_FORBIDDEN = set('<>:"/\\|?*')


_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}


# A hard link fails with these where a copy still works: another file system (EXDEV), one
# without hard links (FAT, exFAT, some network shares), or too many links to one file.
_NO_HARD_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EACCES}


@dataclass
class AlbumsReport:
    """What writing albums did (or, on a dry run, would do). Destinations are relative to
    ``target``."""

    target: Path
    by: str
    link: str
    dry_run: bool
    albums: dict[str, int] = field(default_factory=dict)  # album folder -> photos it holds
    created: list[tuple[str, str]] = field(default_factory=list)  # (source, destination)
    kept: int = 0  # already in place and current
    removed: list[str] = field(default_factory=list)  # ours, left their album, unchanged
    left: list[str] = field(default_factory=list)  # ours once but changed since: not touched
    orphans: list[str] = field(default_factory=list)  # left their album, original gone: kept
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    copied_instead: int = 0  # hard links that had to be copies (another drive, no support)
    left_out: int = 0  # photos in no album (outside every cluster, or untagged)

    def summary(self) -> str:
        verb = "would " if self.dry_run else ""
        kind = {"hard": "hard link", "sym": "symbolic link", "copy": "copy"}[self.link]
        text = (f"{len(self.albums)} album(s) by {self.by} in {self.target}: "
                f"{verb}{'add' if self.dry_run else 'added'} {len(self.created)} photo(s) "
                f"as {kind}s, {self.kept} already there, {verb}"
                f"{'remove' if self.dry_run else 'removed'} {len(self.removed)}")
        if self.copied_instead:
            text += (f"; {self.copied_instead} {verb}{'be ' if self.dry_run else ''}copied "
                     "instead of hard-linked (hard links need the album folder on the same "
                     "drive as the photos, on a file system that has them)")
        if self.left:
            text += (f"; {len(self.left)} file(s) PhotoAtlas wrote were changed since and "
                     "were left alone")
        if self.orphans:
            text += (f"; {len(self.orphans)} file(s) that left their album were kept because "
                     "their original is gone (they may be the last copy)")
        if self.failed:
            text += f"; {len(self.failed)} could not be written"
        if self.left_out:
            text += (f"; {self.left_out} photo(s) are in no "
                     f"{'cluster' if self.by == 'cluster' else 'tag'} and in no album")
        return text


def safe_folder_name(title: str) -> str:
    """``title`` as a folder name valid on Linux, macOS and Windows: separators and
    forbidden characters become "_", no leading dot (hidden) and no trailing dot or space."""
    title = unicodedata.normalize("NFC", title)
    name = "".join("_" if c in _FORBIDDEN or ord(c) < 32 else c for c in title)
    name = name.strip().rstrip(". ")[:_NAME_LIMIT].rstrip(". ")
    if name.startswith("."):
        name = "_" + name[1:]
    if not name:
        name = "_"
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    return name


def wanted_albums(library: Library, by: str) -> tuple[dict[str, list[str]], int]:
    """Album title -> photo paths for grouping ``by`` ("cluster": the current map's clusters,
    titled by their names; "tag": the tags, with the photos tagged by hand or accepted), and
    how many photos are in no album."""
    if by == "cluster":
        from photoatlas.core.organize.describe import cluster_titles, describe_clusters

        run = library.current_run()
        albums: dict[str, list[str]] = {}
        # Clusters the user gave the same name share one album.
        descriptions = describe_clusters(library, per_cluster=1)
        titles = cluster_titles(descriptions)
        for d in descriptions:
            rows = np.flatnonzero(run.cluster == d.cluster)
            albums.setdefault(titles[d.cluster], []).extend(
                str(run.paths[r]) for r in rows)
        return albums, int((run.cluster < 0).sum())
    if by == "tag":
        from photoatlas.core.organize.tags import list_tags, tagged

        paths = library.catalog.paths_by_id()
        albums = {}
        in_album: set[int] = set()
        for summary in list_tags(library):
            ids = [i for i in tagged(library, summary.name) if i in paths]
            if ids:
                albums[summary.name] = [paths[i] for i in ids]
                in_album.update(ids)
        photos = {r.id for r in library.catalog.images(status="ok")}
        return albums, len(photos - in_album)
    raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}")


def make_albums(library: Library, target: Path, by: str, link: str = "hard",
                dry_run: bool = False, cancel: CancelToken | None = None,
                progress: ProgressCallback = no_progress) -> AlbumsReport:
    """Write (or update) the albums of ``library`` grouped ``by`` cluster or tag under
    ``target``; see write_albums."""
    albums, left_out = wanted_albums(library, by)
    folders = [Path(p) for _, p in library.catalog.folders()]
    report = write_albums(albums, target, by, link, dry_run, cancel, progress,
                          photo_folders=folders)
    report.left_out = left_out
    return report


def write_albums(albums: Mapping[str, Sequence[str]], target: Path, by: str,
                 link: str = "hard", dry_run: bool = False, cancel: CancelToken | None = None,
                 progress: ProgressCallback = no_progress,
                 photo_folders: Iterable[Path] = ()) -> AlbumsReport:
    """Make ``target`` hold one folder per album title with its photos (hard links, symbolic
    links or copies): what is already there and current stays, what left an album goes (only
    if PhotoAtlas wrote it and nobody changed it since), nothing else is touched. A hard link
    that cannot be made (another drive) becomes a copy. ``photo_folders``, the library's
    folders, may not contain the target: its next scan would take the albums for new photos."""
    if link not in LINKS:
        raise ValueError(f"unknown link kind {link!r}; choose one of {', '.join(LINKS)}")
    if by not in GROUPINGS:
        raise ValueError(f"unknown grouping {by!r}; choose one of {', '.join(GROUPINGS)}")
    target = Path(target).expanduser().resolve()
    for folder in photo_folders:
        folder = Path(folder).resolve()
        if target == folder or folder in target.parents:
            raise ValueError(f"{target} is inside the library's photo folder {folder}: its next "
                             "scan would take the albums for new photos; choose a folder "
                             "outside it")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    writer = _AlbumWriter(target, by, link, dry_run, cancel or CancelToken())
    writer.run(albums, progress)
    return writer.report


class _AlbumWriter:
    """One run of write_albums: the manifest it started from and what it has done so far."""

    def __init__(self, target: Path, by: str, link: str, dry_run: bool,
                 cancel: CancelToken) -> None:
        self.target, self.link, self.dry_run, self.cancel = target, link, dry_run, cancel
        self.report = AlbumsReport(target, by, link, dry_run)
        manifest = _read_manifest(target)
        if manifest and manifest["by"] != by:
            raise ValueError(f"{target} holds albums by {manifest['by']}; choose another folder "
                             f"for albums by {by}")
        self.by = by
        # title -> folder name, and folder-relative destination -> what we wrote there.
        self.folders: dict[str, str] = dict(manifest["albums"]) if manifest else {}
        self.files: dict[str, dict] = dict(manifest["files"]) if manifest else {}
        self.no_hard_link: set[int] = set()  # devices where a hard link failed
        self.target_dev = 0
        self.freed: set[str] = set()  # on a dry run: our files it would remove or replace
        self.saved_at = time.monotonic()

    # the run -------------------------------------------------------------------------------
    def run(self, albums: Mapping[str, Sequence[str]], progress: ProgressCallback) -> None:
        if not self.dry_run:
            self.target.mkdir(parents=True, exist_ok=True)
        existing = next(p for p in (self.target, *self.target.parents) if p.exists())
        self.target_dev = os.stat(existing).st_dev
        by_album: dict[str, dict[str, str]] = {}  # title -> source -> destination of ours
        for rel, entry in self.files.items():
            by_album.setdefault(entry["album"], {})[entry["source"]] = rel
        total = sum(len(set(p)) for p in albums.values())
        clock, done = EtaClock(), 0
        try:
            for title in sorted(albums, key=str.casefold):
                folder = self._folder_of(title)
                wanted = sorted(set(map(str, albums[title])))
                ours = by_album.pop(title, {})
                for source in wanted:
                    self.cancel.check()
                    self._place(title, folder, source, ours.pop(source, None))
                    done += 1
                    progress(Progress(Stage.ALBUMS, done, total, f"{done}/{total} photos",
                                      eta_s=clock.eta(done, total)))
                for rel in ours.values():  # ours, no longer in this album
                    self._retire(rel)
                self.report.albums[folder] = len(wanted)
                if time.monotonic() - self.saved_at > _SAVE_EVERY_S:
                    self._save()
            for title, ours in by_album.items():  # albums that are gone altogether
                for rel in ours.values():
                    self._retire(rel)
                folder = self.folders.pop(title, None)
                if folder is not None and not self.dry_run:
                    try:
                        (self.target / folder).rmdir()  # only when empty: user files stay
                    except OSError:
                        pass
        finally:
            self._save()

    def _folder_of(self, title: str) -> str:
        """The album's folder: the one it had, else a new safe name no folder has yet."""
        folder = self.folders.get(title)
        if folder is None:
            taken = {f.casefold() for f in self.folders.values()}
            for name in candidate_names(safe_folder_name(title)):
                path = self.target / name
                if name.casefold() not in taken and not (path.exists() or path.is_symlink()):
                    folder = name
                    break
            else:  # pragma: no cover - 10,000 folders of one name
                raise OSError(f"no free folder name for album {title!r} in {self.target}")
            self.folders[title] = folder
        if not self.dry_run:
            (self.target / folder).mkdir(exist_ok=True)
        return folder

    def _place(self, title: str, folder: str, source: str, rel: str | None) -> None:
        """Make ``source`` be in album ``folder``, reusing our earlier file ``rel`` if any."""
        if not os.path.isfile(source):  # what we wrote before stays: it may be the last copy
            self.report.failed.append((source, "file not found"))
            return
        kind = self._kind_for(source)
        if rel is not None:
            state = self._state(rel, kind)
            if state == "current":
                self.report.kept += 1
                return
            if state == "changed":  # the user's now: leave it, write ours beside it
                self._forget(rel, left=True)
                rel = None
            elif state == "stale":  # ours but out of date: replace it under its name
                self._unlink(rel)
                del self.files[rel]
            else:  # missing
                del self.files[rel]
        name = Path(rel).name if rel is not None else Path(source).name
        self._create(title, folder, source, name, kind)

    def _kind_for(self, source: str) -> str:
        """The link kind ``source`` gets: the chosen one, except copies where a hard link
        cannot be made (another device than the target, or one that refused before)."""
        if self.link != "hard":
            return self.link
        try:
            dev = os.stat(source).st_dev
        except OSError:
            return "hard"  # the failure is reported when it is written
        if dev in self.no_hard_link or dev != self.target_dev:
            return "copy"
        return "hard"

    def _create(self, title: str, folder: str, source: str, name: str, kind: str) -> None:
        directory = self.target / folder
        if self.dry_run:
            taken = {Path(r).name.casefold() for r in self.files if Path(r).parent.name == folder}
            for candidate in candidate_names(name):
                path = directory / candidate
                rel = f"{folder}/{candidate}"
                if candidate.casefold() not in taken and (
                        rel in self.freed or not (path.exists() or path.is_symlink())):
                    break
            self.files[rel] = {"album": title, "source": source, "kind": kind}
            self._created(source, rel, kind)
            return
        try:
            path, kind = self._write(directory, source, name, kind)
        except OSError as exc:
            self.report.failed.append((source, exc.strerror or str(exc)))
            return
        st = os.lstat(path)
        src = os.stat(source)
        rel = f"{folder}/{path.name}"
        self.files[rel] = {"album": title, "source": source, "kind": kind, "ino": st.st_ino,
                           "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                           "source_size": src.st_size, "source_mtime_ns": src.st_mtime_ns,
                           "instead_of_hard": kind == "copy" and self.link == "hard"}
        self._created(source, rel, kind)

    def _created(self, source: str, rel: str, kind: str) -> None:
        self.report.created.append((source, rel))
        if kind == "copy" and self.link == "hard":
            self.report.copied_instead += 1

    def _write(self, directory: Path, source: str, name: str, kind: str) -> tuple[Path, str]:
        """Write ``source`` into ``directory`` under ``name`` or a free variant of it; returns
        the path and the kind written (a refused hard link is written as a copy)."""
        if not os.path.isfile(source):
            raise FileNotFoundError(errno.ENOENT, "file not found", source)
        if kind == "copy":
            return _copy(source, directory, name), "copy"
        for candidate in candidate_names(name):
            path = directory / candidate
            try:
                if kind == "hard":
                    os.link(source, path)
                else:
                    os.symlink(source, path)
                return path, kind
            except FileExistsError:
                continue
            except OSError as exc:
                if kind == "hard" and exc.errno in _NO_HARD_LINK:
                    self.no_hard_link.add(os.stat(source).st_dev)
                    return _copy(source, directory, name), "copy"
                raise
        raise OSError(f"no free name for {name} in {directory}")

    # what is there ------------------------------------------------------------------------
    def _state(self, rel: str, kind: str) -> str:
        """"missing", "changed" (not what we wrote: the user's now), "stale" (ours but not
        what the source and link kind ask for now) or "current"."""
        entry = self.files[rel]
        path = self.target / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return "missing"
        source = entry["source"]
        if entry["kind"] == "sym":
            if not stat.S_ISLNK(st.st_mode) or os.readlink(path) != source:
                return "changed"
            return "current" if kind == "sym" else "stale"
        if not stat.S_ISREG(st.st_mode):
            return "changed"
        unchanged = "ino" not in entry or (
            (st.st_ino, st.st_size, st.st_mtime_ns)
            == (entry["ino"], entry["size"], entry["mtime_ns"]))
        try:
            src = os.stat(source)
        except OSError:
            src = None
        if entry["kind"] == "hard":
            # Another name of the original (even edited in place since) is still ours.
            linked = src is not None and os.path.samestat(st, src)
            if not (unchanged or linked):
                return "changed"
            return "current" if kind == "hard" and linked else "stale"
        if not unchanged:
            return "changed"
        fresh = src is not None and "source_size" in entry and (
            (src.st_size, src.st_mtime_ns) == (entry["source_size"], entry["source_mtime_ns"]))
        # A copy made because a hard link failed stays (trying again would fail again).
        wanted = kind == "copy" or (kind == "hard" and entry.get("instead_of_hard", False))
        return "current" if wanted and fresh else "stale"

    def _retire(self, rel: str) -> None:
        """Remove our file ``rel`` that left its album, if nobody changed it since and its
        original still exists."""
        entry = self.files[rel]
        state = self._state(rel, entry["kind"])
        if state == "missing":
            del self.files[rel]
        elif state == "changed":
            self._forget(rel, left=True)
        elif entry["kind"] != "sym" and not os.path.isfile(entry["source"]):
            del self.files[rel]  # a link or copy of a photo that is gone: maybe the last copy
            self.report.orphans.append(rel)
        else:
            self._unlink(rel)
            self.report.removed.append(rel)
            del self.files[rel]

    def _unlink(self, rel: str) -> None:
        if self.dry_run:
            self.freed.add(rel)
        else:
            os.unlink(self.target / rel)

    def _forget(self, rel: str, left: bool) -> None:
        del self.files[rel]
        if left:
            self.report.left.append(rel)

    def _save(self) -> None:
        if self.dry_run or not self.target.is_dir():
            return
        data = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "by": self.by,
                "albums": self.folders, "files": self.files}
        tmp = self.target / f"{MANIFEST_NAME}.tmp"
        tmp.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                       encoding="utf-8")
        os.replace(tmp, self.target / MANIFEST_NAME)
        self.saved_at = time.monotonic()


def _copy(source: str, directory: Path, name: str) -> Path:
    """Copy ``source`` into ``directory`` under ``name`` or a free variant of it, with its
    timestamps; a partial copy is removed."""
    destination: Path | None = None
    try:
        with open(source, "rb") as src:
            destination, fd = create_exclusive(directory, name)
            with os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        shutil.copystat(source, destination)
    except BaseException:
        if destination is not None:
            destination.unlink(missing_ok=True)
        raise
    return destination


def _read_manifest(target: Path) -> dict | None:
    """The target's manifest, or None when there is none; ValueError if it is not one of
    ours (a folder of someone else's files is never treated as ours)."""
    path = target / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); move it away to start the albums "
                         "afresh") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} is not a PhotoAtlas albums manifest")
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path} was written by another PhotoAtlas version "
                         f"(manifest version {data.get('version')})")
    return data
