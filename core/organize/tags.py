"""Few-shot tags: the user tags a few photos, a linear probe on the frozen embeddings proposes
the tag for the rest with a confidence, and the user accepts or rejects proposals in bulk.

Tags live in the catalog (tables ``tags`` and ``photo_tags``). A photo's link to a tag has a
source: 'user' (tagged by hand), 'accepted' (a proposal the user accepted) or 'rejected'
(a proposal the user turned down: never proposed again, and a negative example for the
probe).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from photoatlas.core.library.library import Library
from photoatlas.core.library.selection import PhotoRef, run_rows

SOURCES = ("user", "accepted", "rejected")


POSITIVE_SOURCES = ("user", "accepted")


# Measured on imagenette-dev with 5 tagged photos of one class (docs/measurements.md).
DEFAULT_MIN_CONFIDENCE = 0.5


PROBE_C = 0.1


_BACKGROUND = 5000  # untagged photos sampled as the probe's "probably not" examples


@dataclass(frozen=True)
class TagSummary:
    name: str
    user: int
    accepted: int
    rejected: int


@dataclass(frozen=True)
class Suggestion:
    image_id: int
    path: str
    confidence: float  # the probe's probability that the photo carries the tag


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("a tag name cannot be empty")
    return name


def _image_ids(library: Library, photos: Sequence[PhotoRef]) -> list[int]:
    """Catalog ids of photos given by id or path; ValueError naming any unknown one."""
    ids, unknown = [], []
    known = {r.id for r in library.catalog.images()}
    for photo in photos:
        if isinstance(photo, (int, np.integer)):
            found = int(photo) if int(photo) in known else None
        else:
            row = library.catalog.image_by_path(str(Path(photo).expanduser().resolve()))
            found = row.id if row else None
        if found is None:
            unknown.append(str(photo))
        elif found not in ids:
            ids.append(found)
    if unknown:
        raise ValueError(f"not photos of this library: {', '.join(unknown)}")
    return ids


def set_tag(library: Library, name: str, photos: Sequence[PhotoRef],
            source: str = "user") -> int:
    """Link ``photos`` to tag ``name`` (created on first use) with ``source``, replacing any
    earlier link of theirs to it. Returns how many photos were linked."""
    if source not in SOURCES:
        raise ValueError(f"unknown tag source {source!r}; choose one of {SOURCES}")
    name = _clean_name(name)
    ids = _image_ids(library, photos)
    library.catalog.link_tag(name, ids, source)
    return len(ids)


def remove_tag(library: Library, name: str, photos: Sequence[PhotoRef]) -> int:
    """Unlink ``photos`` from tag ``name`` whatever the source; returns how many were linked."""
    ids = _image_ids(library, photos)
    return library.catalog.unlink_tag(_clean_name(name), ids)


def tagged(library: Library, name: str, sources: Sequence[str] = POSITIVE_SOURCES
           ) -> list[int]:
    """Image ids linked to tag ``name`` with one of ``sources``, in id order."""
    return library.catalog.tagged_ids(_clean_name(name), sources)


def list_tags(library: Library) -> list[TagSummary]:
    return [TagSummary(*counts) for counts in library.catalog.tag_counts()]


def export_csv(library: Library, path: Path) -> int:
    """Write every (path, tag, source) link, rejections included, to a CSV file; returns the
    number of rows written."""
    rows = library.catalog.tag_links()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "tag", "source"])
        writer.writerows(rows)
    tmp.replace(path)
    return len(rows)


def probe_scores(embeddings: np.ndarray, positive_rows: np.ndarray,
                 negative_rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """Probability of carrying the tag for every row of unit ``embeddings`` (N, D).

    A logistic regression separates the positives from the explicit negatives plus a sample
    of all other photos (most photos lack any given tag, so the rest stand in for negatives;
    balanced class weights keep 5 positives from drowning among thousands)."""
    n = len(embeddings)
    positive_rows = np.asarray(positive_rows, np.int64)
    negative_rows = np.asarray(negative_rows, np.int64)
    if len(positive_rows) == 0:
        raise ValueError("tag at least one photo first")
    labelled = np.zeros(n, bool)
    labelled[positive_rows] = True
    labelled[negative_rows] = True
    rest = np.flatnonzero(~labelled)
    rng = np.random.default_rng(seed)
    if len(rest) > _BACKGROUND:
        rest = rng.choice(rest, _BACKGROUND, replace=False)
    negatives = np.concatenate([negative_rows, rest])
    if len(negatives) == 0:
        return np.ones(n, np.float32)  # every photo is tagged
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([embeddings[positive_rows], embeddings[negatives]])
    y = np.concatenate([np.ones(len(positive_rows)), np.zeros(len(negatives))])
    # Strong regularisation: with 5 positives in 1,280 dimensions a looser probe overfits
    # (imagenette-dev, 5 shots: average precision 0.953 at C=0.1, 0.91 at C=1, 0.81 at C=10).
    probe = LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=2000,
                               random_state=seed)
    probe.fit(x, y)
    return probe.predict_proba(embeddings)[:, 1].astype(np.float32)


def suggest(library: Library, name: str, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
            seed: int = 0) -> list[Suggestion]:
    """Photos of the current run not yet tagged (or rejected) with ``name`` whose probe
    confidence is at least ``min_confidence``, most confident first."""
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    run = library.current_run()
    positives = tagged(library, name)
    if not positives:
        raise ValueError(f"no photo is tagged {name!r} yet; tag a few with 'photoatlas tag'")
    negatives = tagged(library, name, ("rejected",))
    in_run = set(map(int, run.image_ids))
    pos_rows = run_rows(run, [i for i in positives if i in in_run])
    neg_rows = run_rows(run, [i for i in negatives if i in in_run])
    if len(pos_rows) == 0:
        raise ValueError(f"none of the photos tagged {name!r} is in the current index; "
                         "run 'photoatlas index' again")
    scores = probe_scores(run.embeddings, pos_rows, neg_rows, seed)
    excluded = np.zeros(len(scores), bool)
    excluded[pos_rows] = True
    excluded[neg_rows] = True
    order = np.argsort(-scores, kind="stable")
    return [Suggestion(int(run.image_ids[r]), str(run.paths[r]), float(scores[r]))
            for r in order if not excluded[r] and scores[r] >= min_confidence]
