"""The open library's few-shot tags (core.tags) for the window: read on the GUI thread, written
and proposed by jobs on worker threads, as every library write of the window is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from photoatlas.core.organize.tags import TagSummary, list_tags, tagged

from . import commands
from .worker import Worker

if TYPE_CHECKING:
    from .session import Session


@dataclass(frozen=True)
class TagChange:
    """A tag write that went through: photos linked to tag ``name`` as ``source`` ("user",
    "accepted" or "rejected"), or unlinked from it ("removed")."""

    name: str
    source: str
    image_ids: tuple[int, ...]
    count: int  # photos linked, or unlinked


class LibraryTags(QObject):
    """The tags of the session's library; a write ends with ``changed``, a proposal with
    ``suggested``."""

    changed = Signal(object)  # TagChange
    suggested = Signal(str, object)  # tag name, its proposals (core.tags.Suggestion)

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self.session = session

    def summaries(self) -> list[TagSummary]:
        library = self.session.library
        return list_tags(library) if library is not None else []

    def rows_tagged(self, name: str) -> list[int]:
        """Rows of the map tagged ``name`` by the user or by an accepted proposal."""
        library, data = self.session.library, self.session.data
        if library is None or data is None:
            return []
        wanted = set(tagged(library, name))
        return [r for r, i in enumerate(data.run.image_ids) if int(i) in wanted]

    def tag_selection(self, name: str) -> Worker | None:
        """Tag the selected photos ``name``."""
        return self._write(name, self.session.selected_image_ids(), "user")

    def untag_selection(self, name: str) -> Worker | None:
        return self._write(name, self.session.selected_image_ids(), "removed")

    def decide(self, name: str, rows: Sequence[int], source: str) -> Worker | None:
        """Record the user's answer to proposals of tag ``name`` (rows of the map):
        "accepted" or "rejected"."""
        data = self.session.data
        if data is None:
            return None
        return self._write(name, [int(data.run.image_ids[r]) for r in rows], source)

    def _write(self, name: str, image_ids: list[int], source: str) -> Worker | None:
        root = self.session.root
        if root is None or not image_ids:
            return None
        if source == "removed":
            job, failure = commands.untag_photos(root, name, image_ids), "Cannot untag"
        else:
            job, failure = commands.tag_photos(root, name, image_ids, source), "Cannot tag"
        worker = Worker(job, "tags")
        worker.returned.connect(lambda count: self.changed.emit(
            TagChange(name.strip(), source, tuple(image_ids), count)))
        worker.errored.connect(lambda message, _tb: self.session.messages.warn(
            f"{failure} these photos", message))
        return self.session.jobs.start(worker)

    def suggest(self, name: str, min_confidence: float) -> Worker | None:
        """Propose tag ``name`` for photos like those tagged with it (``suggested``)."""
        root = self.session.root
        if root is None:
            return None
        return self.session.jobs.run(commands.suggest_tag(root, name, min_confidence),
                                     "suggest",
                                     on_result=lambda found: self.suggested.emit(name, found))

    def export_csv(self, path: Path) -> Worker | None:
        """Write every (path, tag, source) link to a CSV file."""
        root = self.session.root
        if root is None:
            return None
        return self.session.jobs.run(
            commands.export_tags(root, path), "export",
            on_result=lambda rows: self.session.messages.show_status(
                f"Wrote {rows} tag links to {path}", 8000))
