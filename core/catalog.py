"""The SQLite catalog of a library: folders, images (with status and failure reason), runs."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1

_SCHEMA = """
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
    cache_row INTEGER);
CREATE INDEX IF NOT EXISTS images_status ON images(status);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL,
    config TEXT NOT NULL, report TEXT);
"""


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    status: str
    error: str | None
    cache_row: int | None


class Catalog:
    """Thin typed access to ``catalog.sqlite`` (WAL mode; each write in a transaction)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self.conn.execute(statement)
            self.conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

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

    # images -----------------------------------------------------------------------------
    def images(self, status: str | None = None, folder_id: int | None = None) -> list[ImageRow]:
        query = "SELECT id, path, size, mtime_ns, status, error, cache_row FROM images"
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

    def image_by_path(self, path: str) -> ImageRow | None:
        row = self.conn.execute(
            "SELECT id, path, size, mtime_ns, status, error, cache_row FROM images "
            "WHERE path = ?", (path,)).fetchone()
        return ImageRow(*row) if row else None

    def upsert_files(self, folder_id: int, files: Iterable[tuple[str, int, int]]) -> None:
        """Record (path, size, mtime_ns); new or changed files become 'pending'."""
        with self.transaction() as c:
            c.executemany(
                """INSERT INTO images (folder_id, path, size, mtime_ns, status)
                   VALUES (?, ?, ?, ?, 'pending')
                   ON CONFLICT(path) DO UPDATE SET
                     status = 'pending', error = NULL, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, folder_id = excluded.folder_id
                   WHERE images.size != excluded.size OR images.mtime_ns != excluded.mtime_ns
                     OR images.status = 'missing'""",
                [(folder_id, p, s, m) for p, s, m in files],
            )

    def mark_missing(self, image_ids: Iterable[int]) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE images SET status = 'missing' WHERE id = ?",
                          [(i,) for i in image_ids])

    def record_decoded(self, results: Iterable[tuple[int, int, int, int]]) -> None:
        """(image_id, cache_row, width, height) for photos now in the pixel cache."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE images SET status = 'ok', error = NULL, cache_row = ?, width = ?, "
                "height = ? WHERE id = ?", [(r, w, h, i) for i, r, w, h in results])

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
