"""The text on the empty map: what is happening (no library, photos being read, training,
the map being laid out) and what to do next, kept up to date from the running jobs."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QObject

from photoatlas.core.jobs import Progress

from .map_view import MapView
from .session import Session
from .worker import Worker

# Jobs that lead to the first map, most telling first.
_MAP_JOBS = ("training", "rescan")


def empty_map_text(has_library: bool, folders: int,
                   jobs: Sequence[tuple[str, Progress | None]]) -> str:
    """The empty map's text for a library state and the running jobs (name, last progress)."""
    if not has_library:
        return ("No library open.\n\nOpen or create one with File → Open library… "
                "(Ctrl+Shift+O).")
    running = {name: event for name, event in jobs}
    for name in _MAP_JOBS:
        if name not in running:
            continue
        event = running[name]
        head = "Making your map…"
        if event is None:
            return f"{head}\n\nStarting."
        words = event.stage.label
        detail = f"{words}: {event.message}" if event.message else words
        if event.total > 0:
            detail += f" ({round(100 * event.fraction)}%)"
        return f"{head}\n\n{detail}\nThe map appears here as soon as the photos are read."
    if not folders:
        return ("No map yet.\n\nAdd a folder of photos (File → Add folder…, or drop it on "
                "the window).")
    return ("No map yet.\n\nPress Rescan in the Library panel to read your photos and map "
            "them, or Train (Ctrl+T) to map them and learn them.")


class MapHint(QObject):
    """Keeps ``view``'s empty-map text true to the session's library and its jobs."""

    def __init__(self, view: MapView, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.session = session
        self._jobs: dict[Worker, Progress | None] = {}
        self._folders = 0
        session.library_changed.connect(self.refresh)
        session.catalog_changed.connect(self.refresh)
        session.jobs.started.connect(self.track)
        self.refresh()

    def track(self, worker: Worker) -> None:
        self._jobs[worker] = None
        worker.progress.connect(lambda event, w=worker: self._progress(w, event))
        worker.finished.connect(lambda w=worker: self._finished(w))
        self._show()

    def refresh(self) -> None:
        """Read the library's folders again (after one was added or another library opened)."""
        library = self.session.library
        self._folders = len(library.catalog.folders()) if library is not None else 0
        self._show()

    def _progress(self, worker: Worker, event: Progress) -> None:
        if worker in self._jobs:
            self._jobs[worker] = event
            self._show()

    def _finished(self, worker: Worker) -> None:
        self._jobs.pop(worker, None)
        self._show()

    def _show(self) -> None:
        jobs = [(w.name, event) for w, event in self._jobs.items()]
        self.view.set_empty_text(empty_map_text(self.session.library is not None,
                                                self._folders, jobs))
