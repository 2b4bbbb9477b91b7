"""The worker pattern: results, errors and cancellation reach the GUI thread as signals."""

from __future__ import annotations

import threading
import time

import pytest

from photoatlas.app.worker import Worker
from photoatlas.core.jobs import Progress, Stage


def run(qtbot, job) -> dict:
    seen: dict = {"progress": [], "threads": set()}
    worker = Worker(job, "test")
    worker.progress.connect(lambda e: seen["progress"].append(e.done))
    worker.returned.connect(lambda r: seen.update(result=r))
    worker.errored.connect(lambda message, details: seen.update(error=message))
    worker.cancelled.connect(lambda: seen.update(cancelled=True))
    for signal in (worker.progress, worker.returned, worker.errored, worker.finished):
        signal.connect(lambda *_: seen["threads"].add(threading.get_ident()))
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.start()
    assert worker.wait(5_000)
    return seen


def test_result_and_progress_arrive_on_the_gui_thread(qtbot) -> None:
    def job(cancel, progress):
        for i in range(3):
            progress(Progress(Stage.DECODE, i + 1, 3))
        return 42

    seen = run(qtbot, job)
    assert seen["result"] == 42 and seen["progress"][-1] == 3
    assert seen["threads"] == {threading.get_ident()}


@pytest.mark.parametrize("exc, text", [(ValueError("bad folder"), "bad folder"),
                                       (KeyError("x"), "Unexpected error (KeyError)")])
def test_errors_become_readable_messages(qtbot, exc, text) -> None:
    def job(cancel, progress):
        raise exc

    assert text in run(qtbot, job)["error"]


def test_cancel_stops_a_cooperative_job(qtbot) -> None:
    def job(cancel, progress):
        while True:
            cancel.check()
            time.sleep(0.01)

    worker = Worker(job, "loop")
    got = []
    worker.cancelled.connect(lambda: got.append("cancelled"))
    worker.start()
    time.sleep(0.05)
    with qtbot.waitSignal(worker.finished, timeout=5_000):
        worker.cancel()
    assert got == ["cancelled"] and worker.wait(5_000)


def test_wait_from_the_gui_thread_does_not_hang(qtbot) -> None:
    worker = Worker(lambda cancel, progress: 1, "quick")
    worker.start()
    started = time.monotonic()
    assert worker.wait(10_000)  # the GUI thread blocks here without processing events
    assert time.monotonic() - started < 5


def test_a_retired_worker_ends_as_cancelled_and_drops_what_it_sends(qtbot) -> None:
    def job(cancel, progress):
        progress(Progress(Stage.DECODE, 1, 1))
        raise ValueError("of a library no longer open")

    worker = Worker(job, "old")
    seen: list[str] = []
    worker.progress.connect(lambda e: seen.append("progress"))
    worker.errored.connect(lambda *_: seen.append("errored"))
    worker.cancelled.connect(lambda: seen.append("cancelled"))
    worker.finished.connect(lambda: seen.append("finished"))
    worker.start()
    assert worker.wait(5_000)  # everything it sent is still queued for the GUI thread
    worker.retire()
    qtbot.waitUntil(lambda: "finished" in seen, timeout=5_000)
    assert seen == ["cancelled", "finished"] and worker.token.cancelled
