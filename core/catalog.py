"""The SQLite catalog of a library: folders, images (with status, content hash and failure
reason), folders that could not be read, runs."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 2
MARKER_KEY = "photoatlas_library"
# A file whose size/mtime could not be read is stored with these, so that a later readable
# stat always counts as a change.
UNREADABLE = -1

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    path TEXT UNIQUE NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    width INTEGER, height INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'failed', 'missing')),
    error TEXT,
    cache_row INTEGER,
    content_hash TEXT);
CREATE INDEX IF NOT EXISTS images_status ON images(status);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
    config TEXT NOT NULL, report TEXT)
"""
# Added by schema version 2 (content hashes for move detection; folders a scan could not list).
_V2 = """
CREATE INDEX IF NOT EXISTS images_hash ON images(content_hash);
CREATE TABLE IF NOT EXISTS folder_problems (
    path TEXT PRIMARY KEY, root TEXT NOT NULL, reason TEXT NOT NULL, seen_at REAL NOT NULL)
"""
_COLUMNS = "id, path, size, mtime_ns, status, error, cache_row, content_hash"


class CatalogError(Exception):
    """A catalog file that is not ours or is too new for this version; the message says why."""


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    status: str
    error: str | None
    cache_row: int | None
    content_hash: str | None = None


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


class Catalog:
    """Thin typed access to ``catalog.sqlite`` (WAL mode; each write in a transaction).

    Opening a catalog made by schema version 1 upgrades it in place; a file that is not a
    PhotoAtlas catalog is refused before anything is written to it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            self._open()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise CatalogError(f"{path} is not a PhotoAtlas catalog ({exc})") from exc
        except BaseException:
            self.conn.close()
            raise

    def _open(self) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if tables and "meta" not in tables:
            raise CatalogError(f"{self.path} was not made by PhotoAtlas")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as c:
            version = None
            if tables:
                row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else None
            if version is not None and version > SCHEMA_VERSION:
                raise CatalogError(
                    f"{self.path} was made by a newer PhotoAtlas (catalog version {version}, "
                    f"this one reads up to {SCHEMA_VERSION}); update PhotoAtlas to open it")
            for statement in _statements(_TABLES):
                c.execute(statement)
            if version == 1:
                c.execute("ALTER TABLE images ADD COLUMN content_hash TEXT")
            for statement in _statements(_V2):
                c.execute(statement)
            c.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                      (str(SCHEMA_VERSION),))
            if not tables:
                # Created here, in the same transaction as the schema: never half-made.
                c.execute("INSERT INTO meta VALUES (?, '1')", (MARKER_KEY,))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # folders ----------------------------------------------------------------------------
    def add_folder(self, path: Path) -> int:
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO folders (path, added_at) VALUES (?, ?)",
                      (str(path), time.time()))
            return c.execute("SELECT id FROM folders WHERE path = ?", (str(path),)).fetchone()[0]

    def folders(self) -> list[tuple[int, str]]:
        return self.conn.execute("SELECT id, path FROM folders ORDER BY id").fetchall()

    def set_folder_problems(self, root: Path, problems: Iterable[tuple[str, str]]) -> None:
        """Replace the (path, reason) of sub-folders under ``root`` the last scan could not
        list."""
        with self.transaction() as c:
            c.execute("DELETE FROM folder_problems WHERE root = ?", (str(root),))
            c.executemany("INSERT OR REPLACE INTO folder_problems VALUES (?, ?, ?, ?)",
                          [(p, str(root), why, time.time()) for p, why in problems])

    # images -----------------------------------------------------------------------------
    def images(self, status: str | None = None, folder_id: int | None = None) -> list[ImageRow]:
        query = f"SELECT {_COLUMNS} FROM images"
        clauses, args = [], []
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if folder_id is not None:
            clauses.append("folder_id = ?")
            args.append(folder_id)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        return [ImageRow(*row) for row in self.conn.execute(query + " ORDER BY id", args)]

    def file_states(self, folder_id: int) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, status) of a folder's photos: what a rescan compares
        (plain tuples: a rescan of 100,000 photos reads them all)."""
        return {path: (i, size, mtime, status) for i, path, size, mtime, status in
                self.conn.execute("SELECT id, path, size, mtime_ns, status FROM images "
                                  "WHERE folder_id = ?", (folder_id,))}

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM images WHERE path = ?",
                                (path,)).fetchone()
        return ImageRow(*row) if row else None

    def paths_by_id(self) -> dict[int, str]:
        """Every catalogued photo's current path, by image id (paths change on a move)."""
        return dict(self.conn.execute("SELECT id, path FROM images"))

    def problems(self) -> list[tuple[str, str]]:
        """(path, reason) of every photo that could not be read and every folder that could
        not be listed, for the user to see."""
        files = self.conn.execute(
            "SELECT path, error FROM images WHERE status = 'failed' ORDER BY path").fetchall()
        folders = self.conn.execute(
            "SELECT path, reason FROM folder_problems ORDER BY path").fetchall()
        return [(p, why or "unreadable") for p, why in files] + folders

    def upsert_files(self, folder_id: int, files: Iterable[tuple[str, int, int]]) -> None:
        """Record new or changed (path, size, mtime_ns) as 'pending'. A changed file keeps its
        id, cache row and content hash until decoding tells whether its content changed."""
        with self.transaction() as c:
            c.executemany(
                """INSERT INTO images (folder_id, path, size, mtime_ns, status)
                   VALUES (?, ?, ?, ?, 'pending')
                   ON CONFLICT(path) DO UPDATE SET
                     status = 'pending', error = NULL, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, folder_id = excluded.folder_id""",
                [(folder_id, p, s, m) for p, s, m in files],
            )

    def record_unreadable(self, folder_id: int, files: Iterable[tuple[str, str]]) -> None:
        """(path, reason) of files the scan found but could not stat or name."""
        with self.transaction() as c:
            c.executemany(
                """INSERT INTO images (folder_id, path, size, mtime_ns, status, error)
                   VALUES (?, ?, ?, ?, 'failed', ?)
                   ON CONFLICT(path) DO UPDATE SET
                     status = 'failed', error = excluded.error, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, cache_row = NULL""",
                [(folder_id, p, UNREADABLE, UNREADABLE, why) for p, why in files],
            )

    def mark_missing(self, image_ids: Iterable[int]) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE images SET status = 'missing' WHERE id = ?",
                          [(i,) for i in image_ids])

    def missing_by_hash(self) -> dict[str, list[int]]:
        """Ids of missing photos that were decoded once, by content hash: where a moved or
        renamed photo may have come from."""
        found: dict[str, list[int]] = {}
        for image_id, digest in self.conn.execute(
                "SELECT id, content_hash FROM images WHERE status = 'missing' "
                "AND cache_row IS NOT NULL AND content_hash IS NOT NULL ORDER BY id"):
            found.setdefault(digest, []).append(image_id)
        return found

    def adopt_moved(self, new_id: int, old_id: int) -> None:
        """A new file is a missing photo that moved: give the old row (its id, cache row and
        everything keyed by that id) the new path, and drop the new row."""
        with self.transaction() as c:
            folder_id, path, size, mtime = c.execute(
                "SELECT folder_id, path, size, mtime_ns FROM images WHERE id = ?",
                (new_id,)).fetchone()
            c.execute("DELETE FROM images WHERE id = ?", (new_id,))
            c.execute("UPDATE images SET folder_id = ?, path = ?, size = ?, mtime_ns = ?, "
                      "status = 'ok', error = NULL WHERE id = ?",
                      (folder_id, path, size, mtime, old_id))

    def record_unchanged(self, image_ids: Iterable[int]) -> None:
        """Photos whose size or mtime changed but whose content did not: still 'ok'."""
        with self.transaction() as c:
            c.executemany("UPDATE images SET status = 'ok', error = NULL WHERE id = ?",
                          [(i,) for i in image_ids])

    def record_decoded(self, results: Iterable[tuple[int, int, int, int, str]]) -> None:
        """(image_id, cache_row, width, height, content_hash) of photos now in the cache."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE images SET status = 'ok', error = NULL, cache_row = ?, width = ?, "
                "height = ?, content_hash = ? WHERE id = ?",
                [(r, w, h, digest, i) for i, r, w, h, digest in results])

    def record_failed(self, failures: Iterable[tuple[int, str]]) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE images SET status = 'failed', error = ?, cache_row = NULL "
                          "WHERE id = ?", [(reason, i) for i, reason in failures])

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, COUNT(*) FROM images GROUP BY status")
        return {status: n for status, n in rows}

    # runs -------------------------------------------------------------------------------
    def start_run(self, config: dict) -> int:
        with self.transaction() as c:
            cur = c.execute("INSERT INTO runs (started_at, config) VALUES (?, ?)",
                            (time.time(), json.dumps(config)))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, report: dict) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET finished_at = ?, report = ? WHERE id = ?",
                      (time.time(), json.dumps(report), run_id))

    def unfinished_run(self, config: dict) -> int | None:
        """The newest run with this exact config that never finished (to resume it)."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE finished_at IS NULL AND config = ? ORDER BY id DESC",
            (json.dumps(config),)).fetchone()
        return row[0] if row else None
