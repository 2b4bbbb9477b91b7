"""The SQLite catalog of a library, the one owner of its schema and SQL: folders, images (with
status, content hash and failure reason), folders that could not be read, runs, and what the
user and the app add to photos (tags, EXIF read once, cluster names, answers about
duplicates).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 4


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


# Added by schema version 3: tables the tags, EXIF and cluster-name modules created on first
# use (a write transaction on a read, on the GUI thread); a version-2 catalog gains them empty,
# or keeps them as they are where a module had created them already.
_V3 = """
CREATE TABLE IF NOT EXISTS tags (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS photo_tags (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('user', 'accepted', 'rejected')),
    tagged_at REAL NOT NULL,
    PRIMARY KEY (image_id, tag_id));
CREATE TABLE IF NOT EXISTS photo_exif (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    mtime_ns INTEGER NOT NULL,
    taken TEXT, make TEXT, model TEXT);
CREATE TABLE IF NOT EXISTS cluster_names (
    run_id INTEGER NOT NULL, cluster INTEGER NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (run_id, cluster))
"""


# Added by schema version 4: the user's answers about groups of duplicates ("keep this one",
# "not duplicates"), by content hash: they hold for the same photos after a rescan, a move or a
# new index, whose image ids or runs may differ. A NULL keeper means "not duplicates"; the
# keeper's path tells byte-identical copies apart.
_V4 = """
CREATE TABLE IF NOT EXISTS duplicate_decisions (
    id INTEGER PRIMARY KEY, keeper_hash TEXT, keeper_path TEXT, decided_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS duplicate_decision_photos (
    decision_id INTEGER NOT NULL REFERENCES duplicate_decisions(id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (decision_id, content_hash))
"""


_COLUMNS = "id, path, size, mtime_ns, status, error, cache_row, content_hash"


# SQLite's default limit of bound parameters is 999: "IN (...)" lists go in chunks of this.
_IN_CHUNK = 900


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


def _chunks(ids: Sequence[int]) -> Iterator[tuple[list[int], str]]:
    """``ids`` in parts small enough for one query, each with its "?,?,..." placeholders."""
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), _IN_CHUNK):
        part = ids[start:start + _IN_CHUNK]
        yield part, ",".join("?" * len(part))


@dataclass(frozen=True)
class ExifRow:
    """The EXIF fields stored for a photo, with the file's mtime when they were read."""

    mtime_ns: int
    taken: str | None  # ISO 8601, no zone
    make: str | None
    model: str | None


@dataclass(frozen=True)
class DuplicateDecision:
    """The user's answer about a group of photos, named by their content hashes."""

    id: int
    hashes: frozenset[str]
    keeper_hash: str | None  # None: the photos are not duplicates of each other
    keeper_path: str | None


class Catalog:
    """Thin typed access to ``catalog.sqlite`` (WAL mode; each write in a transaction).

    Every table is created (and an older catalog upgraded in place) when it is opened, in one
    transaction; a file that is not a PhotoAtlas catalog is refused before anything is
    written to it. No other module writes SQL.
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
            for statement in _statements(_V2) + _statements(_V3) + _statements(_V4):
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

    def counts_by_folder(self) -> dict[int, dict[str, int]]:
        """folder id -> status -> number of photos."""
        out: dict[int, dict[str, int]] = {}
        for folder_id, status, n in self.conn.execute(
                "SELECT folder_id, status, COUNT(*) FROM images GROUP BY folder_id, status"):
            out.setdefault(folder_id, {})[status] = n
        return out

    def content_hashes(self, image_ids: Sequence[int]) -> dict[int, str]:
        """The stored content hash (core.library.cache.content_hash) of the photos that have
        one."""
        out: dict[int, str] = {}
        for part, marks in _chunks(image_ids):
            out.update((int(i), h) for i, h in self.conn.execute(
                f"SELECT id, content_hash FROM images WHERE content_hash IS NOT NULL "
                f"AND id IN ({marks})", part))
        return out

    def dimensions(self, image_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(width, height) of each photo as decoded ((0, 0) when not known)."""
        out: dict[int, tuple[int, int]] = {}
        for part, marks in _chunks(image_ids):
            out.update((int(i), (int(w or 0), int(h or 0))) for i, w, h in self.conn.execute(
                f"SELECT id, width, height FROM images WHERE id IN ({marks})", part))
        return out

    # EXIF, read once per file version -----------------------------------------------------
    def exif_rows(self, image_ids: Sequence[int]) -> dict[int, ExifRow]:
        out: dict[int, ExifRow] = {}
        for part, marks in _chunks(image_ids):
            for image_id, *fields in self.conn.execute(
                    f"SELECT image_id, mtime_ns, taken, make, model FROM photo_exif "
                    f"WHERE image_id IN ({marks})", part):
                out[int(image_id)] = ExifRow(*fields)
        return out

    def store_exif(self, rows: dict[int, ExifRow]) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO photo_exif VALUES (?, ?, ?, ?, ?)",
                          [(i, r.mtime_ns, r.taken, r.make, r.model) for i, r in rows.items()])

    # cluster names ------------------------------------------------------------------------
    def cluster_names(self, run_id: int) -> dict[int, str]:
        rows = self.conn.execute("SELECT cluster, name FROM cluster_names WHERE run_id = ?",
                                 (run_id,))
        return {int(c): name for c, name in rows}

    def set_cluster_name(self, run_id: int, cluster: int, name: str) -> None:
        """Name a cluster of a run; an empty name removes it."""
        with self.transaction() as c:
            if name:
                c.execute("INSERT OR REPLACE INTO cluster_names VALUES (?, ?, ?)",
                          (run_id, cluster, name))
            else:
                c.execute("DELETE FROM cluster_names WHERE run_id = ? AND cluster = ?",
                          (run_id, cluster))

    # duplicate decisions ------------------------------------------------------------------
    def duplicate_decisions(self) -> list[DuplicateDecision]:
        hashes: dict[int, set[str]] = {}
        for decision_id, digest in self.conn.execute(
                "SELECT decision_id, content_hash FROM duplicate_decision_photos"):
            hashes.setdefault(int(decision_id), set()).add(digest)
        rows = self.conn.execute(
            "SELECT id, keeper_hash, keeper_path FROM duplicate_decisions ORDER BY id")
        return [DuplicateDecision(int(i), frozenset(hashes.get(int(i), ())), keeper, path)
                for i, keeper, path in rows]

    def decide_duplicates(self, hashes: Iterable[str], keeper_hash: str | None,
                          keeper_path: str | None) -> int:
        """Record a decision about the photos with ``hashes``. It replaces earlier decisions
        about a part or a whole of them (the user answered again about the same group)."""
        hashes = set(hashes)
        with self.transaction() as c:
            for old in self.duplicate_decisions():
                if old.hashes <= hashes or hashes <= old.hashes:
                    c.execute("DELETE FROM duplicate_decisions WHERE id = ?", (old.id,))
            decision_id = c.execute(
                "INSERT INTO duplicate_decisions (keeper_hash, keeper_path, decided_at) "
                "VALUES (?, ?, ?)", (keeper_hash, keeper_path, time.time())).lastrowid
            c.executemany("INSERT INTO duplicate_decision_photos VALUES (?, ?)",
                          [(decision_id, h) for h in sorted(hashes)])
            return int(decision_id)

    def forget_duplicate_decisions(self, hashes: Iterable[str]) -> int:
        """Drop the decisions that cover all of ``hashes``; returns how many there were."""
        hashes = set(hashes)
        gone = [d.id for d in self.duplicate_decisions() if hashes <= d.hashes]
        with self.transaction() as c:
            c.executemany("DELETE FROM duplicate_decisions WHERE id = ?", [(i,) for i in gone])
        return len(gone)

    # tags ---------------------------------------------------------------------------------
    def link_tag(self, name: str, image_ids: Sequence[int], source: str) -> None:
        """Link photos to tag ``name`` (created on first use), replacing their earlier link."""
        now = time.time()
        with self.transaction() as c:
            c.execute("INSERT OR IGNORE INTO tags (name, created_at) VALUES (?, ?)", (name, now))
            tag_id = c.execute("SELECT id FROM tags WHERE name = ?", (name,)).fetchone()[0]
            c.executemany("INSERT OR REPLACE INTO photo_tags VALUES (?, ?, ?, ?)",
                          [(i, tag_id, source, now) for i in image_ids])

    def unlink_tag(self, name: str, image_ids: Sequence[int]) -> int:
        """Remove photos' links to tag ``name``; returns how many there were."""
        with self.transaction() as c:
            cur = c.executemany(
                "DELETE FROM photo_tags WHERE image_id = ? AND tag_id = "
                "(SELECT id FROM tags WHERE name = ?)", [(i, name) for i in image_ids])
            return cur.rowcount

    def tagged_ids(self, name: str, sources: Sequence[str]) -> list[int]:
        """Image ids linked to tag ``name`` with one of ``sources``, in id order."""
        marks = ",".join("?" * len(sources))
        rows = self.conn.execute(
            f"SELECT pt.image_id FROM photo_tags pt JOIN tags t ON t.id = pt.tag_id "
            f"WHERE t.name = ? AND pt.source IN ({marks}) ORDER BY pt.image_id",
            (name, *sources))
        return [int(r[0]) for r in rows]

    def tag_counts(self) -> list[tuple[str, int, int, int]]:
        """Every tag's (name, user, accepted, rejected) numbers of links, by name."""
        rows = self.conn.execute(
            "SELECT t.name, SUM(pt.source = 'user'), SUM(pt.source = 'accepted'), "
            "SUM(pt.source = 'rejected') FROM tags t LEFT JOIN photo_tags pt "
            "ON pt.tag_id = t.id GROUP BY t.id ORDER BY t.name")
        return [(name, int(u or 0), int(a or 0), int(r or 0)) for name, u, a, r in rows]

    def tag_links(self) -> list[tuple[str, str, str]]:
        """Every (path, tag, source) link, rejections included, by tag and path."""
        return self.conn.execute(
            "SELECT i.path, t.name, pt.source FROM photo_tags pt JOIN tags t "
            "ON t.id = pt.tag_id JOIN images i ON i.id = pt.image_id "
            "ORDER BY t.name, i.path").fetchall()

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

    def unfinished_runs(self) -> dict[int, dict]:
        """Every run that never finished, with the config that would resume it."""
        return {int(i): json.loads(config) for i, config in self.conn.execute(
            "SELECT id, config FROM runs WHERE finished_at IS NULL")}

    def unfinished_run(self, config: dict) -> int | None:
        """The newest run with this exact config that never finished (to resume it)."""
        row = self.conn.execute(
            "SELECT id FROM runs WHERE finished_at IS NULL AND config = ? ORDER BY id DESC",
            (json.dumps(config),)).fetchone()
        return row[0] if row else None
