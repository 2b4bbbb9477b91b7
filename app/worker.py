"""The one worker pattern: a core job runs on a QThread and talks to the GUI by signals.

A job is any callable ``job(cancel, progress) -> result`` from core. The worker relays
its Progress events (throttled, so a fast GPU loop cannot flood the GUI thread), its result
or a readable error, and cancels through the job's CancelToken. No widget is touched from
the worker thread: every signal is delivered to the GUI thread by Qt's queued connections.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from photoatlas.core.jobs import Cancelled, CancelToken, Progress, ProgressCallback
from photoatlas.core.library.decode import DecodeError
from photoatlas.core.storage import LibraryError

Job = Callable[[CancelToken, ProgressCallback], Any]
# At most this many progress events per second per stage reach the GUI.
_PROGRESS_HZ = 20.0
# Errors whose message is already written for the user.
_USER_ERRORS = (LibraryError, DecodeError, ValueError, OSError)


def readable_error(exc: BaseException) -> str:
    if isinstance(exc, _USER_ERRORS):
        return str(exc) or type(exc).__name__
    return f"Unexpected error ({type(exc).__name__}): {exc}"


class _Runner(QObject):
    """Lives on the job's thread; its signals reach the Worker by queued connections."""

    started = Signal()
    progress = Signal(object)
    returned = Signal(object)
    errored = Signal(str, str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, job: Job, token: CancelToken) -> None:
        super().__init__()
        self.job = job
        self.token = token
        self._last_emit: dict[str, float] = {}

    def _relay(self, event: Progress) -> None:
        now = time.monotonic()
        final = event.total > 0 and event.done >= event.total
        if final or now - self._last_emit.get(event.stage, 0.0) >= 1.0 / _PROGRESS_HZ:
            self._last_emit[event.stage] = now
            self.progress.emit(event)

    @Slot()
    def run(self) -> None:
        self.started.emit()
        try:
            result = self.job(self.token, self._relay)
        except Cancelled:
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the user
            self.errored.emit(readable_error(exc), traceback.format_exc())
        else:
            self.returned.emit(result)
        finally:
            self.finished.emit()
            # End the thread from inside: were it left to the GUI thread, a GUI thread
            # blocked in Worker.wait() (closing the window) could never let it end.
            self.thread().quit()


class Worker(QObject):
    """Runs one job on its own QThread. Connect to the signals, then call ``start()``.

    The Worker itself stays on the GUI thread and re-emits what the job's thread sends, so
    every connected callable (lambdas included) runs on the GUI thread.
    """

    started = Signal()
    progress = Signal(object)  # core.jobs.Progress
    returned = Signal(object)  # the job's result
    errored = Signal(str, str)  # readable message, traceback
    cancelled = Signal()
    finished = Signal()  # always last, whatever happened

    def __init__(self, job: Job, name: str = "job") -> None:
        super().__init__()
        self.name = name
        self.token = CancelToken()
        self._retired = False
        # Keep the worker referenced until ``thread.finished``: dropping it earlier would
        # destroy a running QThread.
        self.thread = QThread()
        self.thread.setObjectName(f"photoatlas-{name}")
        self._runner = _Runner(job, self.token)
        self._runner.moveToThread(self.thread)
        self.thread.started.connect(self._runner.run)
        self._runner.started.connect(self._started)
        self._runner.progress.connect(self._progress)
        self._runner.returned.connect(self._returned)
        self._runner.errored.connect(self._errored)
        self._runner.cancelled.connect(self._cancelled)
        self._runner.finished.connect(self._finished)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self.token.cancel()

    def retire(self) -> None:
        """Cancel the job and disown what it still sends: it belongs to a library that is no
        longer open. Progress, result and error are dropped (shown now they would describe
        the wrong library); ``cancelled`` stands for them so that views end the job, and
        ``finished`` still comes."""
        self._retired = True
        self.cancel()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, ms: int = 30_000) -> bool:
        """Block until the thread ended (for shutdown and tests only)."""
        return self.thread.wait(ms)

    @Slot()
    def _started(self) -> None:
        self.started.emit()

    @Slot(object)
    def _progress(self, event: Progress) -> None:
        if not self._retired:
            self.progress.emit(event)

    @Slot(object)
    def _returned(self, result: Any) -> None:
        if self._retired:
            self.cancelled.emit()
        else:
            self.returned.emit(result)

    @Slot(str, str)
    def _errored(self, message: str, details: str) -> None:
        if self._retired:
            self.cancelled.emit()
        else:
            self.errored.emit(message, details)

    @Slot()
    def _cancelled(self) -> None:
        self.cancelled.emit()

    @Slot()
    def _finished(self) -> None:
        self.finished.emit()
