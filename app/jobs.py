"""The one owner of the window's background jobs: each belongs to the library open when it
started (its generation).

Every job opens its own Library on its thread (app/commands.py), so a job that outlived its
library would go on writing that library, and its result would be shown on the next one.
Ending a generation (another library opens, the window closes) retires its jobs: cancelled,
joined, and whatever they still send is dropped (app/worker.py ``Worker.retire``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from .worker import Job, Worker

# How long closing a library waits for each job to reach its next cancel check.
JOIN_MS = 30_000


class JobRegistry(QObject):
    """Running workers by the generation of the library they belong to (GUI thread only).
    Views follow the jobs through ``started``; ``failed`` tells of a job started by
    ``run`` that ended with an error."""

    started = Signal(object)  # Worker, connected to and about to start
    failed = Signal(str, str)  # the job's name, its readable error

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.generation = 0
        self._workers: dict[Worker, int] = {}

    def run(self, job: Job, name: str,
            on_result: Callable[[Any], object] | None = None) -> Worker:
        """Run ``job`` on a worker thread as a job of the open library; its result goes to
        ``on_result``, an error to ``failed``."""
        worker = Worker(job, name)
        if on_result is not None:
            worker.returned.connect(on_result)
        worker.errored.connect(lambda message, _tb: self.failed.emit(name, message))
        return self.start(worker)

    def start(self, worker: Worker) -> Worker:
        """Start ``worker`` as a job of the open library; it stays listed until its thread
        ended (which also keeps it referenced while it runs)."""
        self._workers[worker] = self.generation
        worker.thread.finished.connect(lambda: self._workers.pop(worker, None))
        self.started.emit(worker)
        worker.start()
        return worker

    def current(self) -> list[Worker]:
        """The running jobs of the open library (a retired one that has not ended yet, say
        stuck in a step without cancel checks, is not among them)."""
        return [w for w, g in self._workers.items() if g == self.generation and w.is_running()]

    def running(self, name: str) -> bool:
        """Whether a job called ``name`` of the open library is running."""
        return any(w.name == name for w in self.current())

    def end_generation(self, join_ms: int = JOIN_MS) -> None:
        """Retire every job and wait for each to end; later jobs belong to the next library.
        One still running after ``join_ms`` stays listed (and waited for at the next end)."""
        workers = list(self._workers)
        for worker in workers:
            worker.retire()
        for worker in workers:
            worker.wait(join_ms)
        self.generation += 1

    def __len__(self) -> int:
        return len(self._workers)
