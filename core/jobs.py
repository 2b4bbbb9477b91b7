"""Progress events and cooperative cancellation shared by every long job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Cancelled(Exception):
    """Raised inside a job when its CancelToken was set."""


class CancelToken:
    """A flag a job checks between steps; set it from any thread to stop the job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise Cancelled when cancellation was requested."""
        if self._event.is_set():
            raise Cancelled()


class Stage(str, Enum):
    """A step of a long job, as progress events name it (a str, so it prints and compares as
    its value); ``label`` is what it means to someone waiting."""

    SCAN = "scan"
    DECODE = "decode"
    EMBED = "embed"
    MAP = "map"
    VIEWS = "views"
    ADAPT = "adapt"
    TRAIN = "train"
    CHECK = "check"
    COMPARE = "compare"
    DUPLICATES = "duplicates"
    ALBUMS = "albums"
    COPY = "copy"
    XMP = "xmp"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def label(self) -> str:
        return _STAGE_LABELS[self]


_STAGE_LABELS = {
    Stage.SCAN: "Looking for photos", Stage.DECODE: "Reading your photos",
    Stage.EMBED: "Looking at your photos", Stage.MAP: "Laying out the map",
    Stage.VIEWS: "Preparing the training views", Stage.ADAPT: "Learning your photos",
    Stage.TRAIN: "Learning your photos", Stage.CHECK: "Checking whether training helped",
    Stage.COMPARE: "Drawing the other encoder's map", Stage.DUPLICATES: "Looking for duplicates",
    Stage.ALBUMS: "Making albums", Stage.COPY: "Copying photos",
    Stage.XMP: "Writing sidecar files",
}


@dataclass(frozen=True)
class Progress:
    """One progress event of a stage: `done` of `total` units, plus stage-specific values."""

    stage: Stage
    done: int
    total: int
    message: str = ""
    values: dict[str, float] = field(default_factory=dict)
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


def no_progress(_event: Progress) -> None:
    """Default callback: ignore progress."""


class EtaClock:
    """Estimates the remaining seconds of a stage from its rate so far."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def eta(self, done: int, total: int) -> float | None:
        if done <= 0 or total <= 0:
            return None
        return self.elapsed() / done * max(0, total - done)


def part_of(progress: ProgressCallback, stage: Stage, index: int, count: int, message: str,
            clock: EtaClock) -> ProgressCallback:
    """A callback reporting a sub-task's events as part ``index`` of ``count`` equal parts of
    ``stage`` (one bar for a stage made of several steps), with the stage's ETA."""

    def relay(event: Progress) -> None:
        done = index * 1000 + round(1000 * event.fraction)
        total = count * 1000
        progress(Progress(stage, done, total, message, eta_s=clock.eta(done, total)))

    return relay
