"""The status bar's job line: the name of the session's latest job, its stage, progress and
time left, shown while any job runs (a training run shows in the Training panel instead)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from photoatlas.core.jobs import Progress

from .session import Session
from .training_panel import format_seconds
from .worker import Worker


class JobStatus(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.bar.setRange(0, 1000)
        self.bar.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        session.jobs.started.connect(self._started)

    def _started(self, worker: Worker) -> None:
        if worker is self.session.training:
            return
        worker.progress.connect(self._progress)
        worker.finished.connect(self._finished)
        self.label.setText(f"{worker.name.capitalize()}…")
        self.bar.setValue(0)
        self.bar.show()

    def _progress(self, event: Progress) -> None:
        self.bar.setValue(int(1000 * event.fraction))
        eta = f", {format_seconds(event.eta_s)} left" if event.eta_s is not None else ""
        self.label.setText(f"{event.stage}: {event.message}{eta}")

    def _finished(self) -> None:
        training = self.session.training
        if not any(w is not training for w in self.session.jobs.current()):
            self.bar.hide()
            self.label.setText("")
