"""Events: photos grouped by when they were taken. Sorted by capture time (EXIF, else the
file's modification time), a gap of more than ``gap_hours`` between two consecutive photos
starts a new event. Together with the clusters an event answers "when" where a cluster
answers "what".

Times are local wall-clock times: EXIF capture times carry no zone, so file times are taken
in the computer's zone too, and both count as seconds since 1970-01-01 00:00 of that clock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from photoatlas.core.library.exif import exif_for_images
from photoatlas.core.library.library import Library, RunArtifacts

# iPhoto offered "2-hour gaps" and "8-hour gaps" to split events; 3 hours keeps a morning
# and an afternoon outing of one day apart, a dinner with its evening together (no real
# capture times were at hand to tune it: see docs/measurements.md).
DEFAULT_GAP_HOURS = 3.0


_EPOCH = datetime(1970, 1, 1)


_TOP_CLUSTERS = 3


@dataclass(frozen=True)
class Event:
    number: int  # 1 = the earliest
    rows: np.ndarray  # rows of the run, in time order
    start: datetime
    end: datetime
    dated: int  # photos whose time came from EXIF (the rest: file times)
    clusters: tuple[tuple[int, int], ...]  # most common clusters (>= 0) with photo counts

    @property
    def size(self) -> int:
        return len(self.rows)

    def dates(self) -> str:
        """"2024-07-14 09:12 to 17:40", or with both dates when it spans days."""
        first, last = self.start, self.end
        if first.date() == last.date():
            return f"{first:%Y-%m-%d %H:%M} to {last:%H:%M}"
        return f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"


def wall_seconds(when: datetime) -> float:
    """Seconds since 1970-01-01 00:00 of the same (zone-less) clock."""
    return (when.replace(tzinfo=None) - _EPOCH).total_seconds()


def from_wall_seconds(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=float(seconds))


def split_by_gap(times: np.ndarray, gap_hours: float = DEFAULT_GAP_HOURS) -> np.ndarray:
    """(N,) event labels 0, 1, ... in time order: a new event starts wherever the time to the
    previous photo (sorted by time) is more than ``gap_hours``."""
    if gap_hours <= 0:
        raise ValueError(f"the gap must be positive, got {gap_hours} hours")
    times = np.asarray(times, np.float64)
    labels = np.zeros(len(times), np.int64)
    if len(times) < 2:
        return labels
    order = np.argsort(times, kind="stable")
    starts = np.diff(times[order]) > gap_hours * 3600.0
    labels[order] = np.concatenate([[0], np.cumsum(starts)])
    return labels


def group_events(times: np.ndarray, clusters: np.ndarray, dated: np.ndarray,
                 gap_hours: float = DEFAULT_GAP_HOURS) -> list[Event]:
    """Events of photos with wall-clock ``times`` (seconds, see wall_seconds), their cluster
    labels and whether each time came from EXIF; earliest first."""
    labels = split_by_gap(times, gap_hours)
    order = np.argsort(times, kind="stable")
    events = []
    for number in range(int(labels.max()) + 1 if len(labels) else 0):
        rows = order[labels[order] == number]
        counts = Counter(int(c) for c in clusters[rows] if c >= 0).most_common(_TOP_CLUSTERS)
        events.append(Event(number + 1, rows, from_wall_seconds(times[rows[0]]),
                            from_wall_seconds(times[rows[-1]]), int(dated[rows].sum()),
                            tuple(counts)))
    return events


def photo_times(library: Library, run: RunArtifacts) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock seconds of each photo of ``run`` (EXIF capture time, else the file's
    modification time in this computer's zone) and whether it came from EXIF."""
    rows = {r.id: r for r in library.catalog.images()}
    known = [rows[int(i)] for i in run.image_ids if int(i) in rows]
    exif = exif_for_images(library.catalog, known)
    times = np.zeros(len(run.image_ids), np.float64)
    dated = np.zeros(len(run.image_ids), bool)
    for k, image_id in enumerate(map(int, run.image_ids)):
        taken = exif[image_id].taken if image_id in exif else None
        if taken is not None:
            times[k], dated[k] = wall_seconds(taken), True
        elif image_id in rows and rows[image_id].mtime_ns > 0:
            times[k] = wall_seconds(datetime.fromtimestamp(rows[image_id].mtime_ns / 1e9))
    return times, dated


def library_events(library: Library, gap_hours: float = DEFAULT_GAP_HOURS) -> list[Event]:
    """The events of the library's current run, earliest first."""
    run = library.current_run()
    times, dated = photo_times(library, run)
    return group_events(times, run.cluster, dated, gap_hours)
