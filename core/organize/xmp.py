"""Keywords for other photo tools: each photo's tags and cluster name written into an XMP
sidecar beside it (``photo.jpg.xmp``), never into the photo.

Conventions: the plain keywords go to ``dc:subject`` (what every XMP reader shows as keywords)
and the same under a hierarchy to ``lr:hierarchicalSubject`` (``PhotoAtlas|Tag|dog``,
``PhotoAtlas|Cluster|Beach``), which Lightroom, digiKam and darktable show as a keyword tree.
Only when asked (``auto_keywords``), what the classifier sees with confidence is added,
marked as guessed: ``auto/seashore`` and ``PhotoAtlas|auto|seashore``.
The sidecar is named ``photo.jpg.xmp`` (darktable's and digiKam's default, and what Immich
looks for first) rather than ``photo.xmp`` (Lightroom's, for raw files), which would be shared
by ``photo.jpg`` and ``photo.cr2`` of the same shot.

An existing sidecar is merged, never replaced: its other properties and keywords stay. Which
``dc:subject`` entries PhotoAtlas added is recorded in its own property
(``photoatlas:subjects``), so a re-run replaces exactly those and a keyword the user had
already is never taken away. XMP is parsed and written by exiv2 (the python-exiv2 binding,
wheels for Linux, macOS and Windows), whose XMP toolkit keeps every property it does not know.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photoatlas.core.jobs import (
    CancelToken,
    EtaClock,
    Progress,
    ProgressCallback,
    Stage,
    no_progress,
)
from photoatlas.core.library.library import Library
from photoatlas.core.storage import LibraryError

SIDECAR_SUFFIX = ".xmp"


ROOT = "PhotoAtlas"


AUTO = "auto"  # the mark of keywords PhotoAtlas guessed rather than the user gave


# Least probability of a class to be written as an automatic keyword (docs/measurements.md).
AUTO_MIN = 0.5


NAMESPACE = "https://photoatlas.invalid/xmp/1.0/"  # .invalid: a name no one else can own


PREFIX = "photoatlas"


_SUBJECT = "Xmp.dc.subject"


_HIERARCHY = "Xmp.lr.hierarchicalSubject"


_OURS = f"Xmp.{PREFIX}.subjects"


class XmpError(Exception):
    """A sidecar that cannot be parsed as XMP; the message says why."""


@dataclass(frozen=True)
class Keywords:
    """What PhotoAtlas says about one photo: its tags, the name of its cluster and (only when
    the user asks for them) the concepts the classifier is confident it shows."""

    tags: tuple[str, ...] = ()
    cluster: str | None = None
    auto: tuple[str, ...] = ()

    @property
    def flat(self) -> list[str]:
        """``dc:subject`` entries, without repeats; guessed concepts as "auto/<concept>"."""
        out = list(dict.fromkeys(self.tags))
        if self.cluster and self.cluster not in out:
            out.append(self.cluster)
        return out + [f"{AUTO}/{a}" for a in dict.fromkeys(self.auto)
                      if f"{AUTO}/{a}" not in out]

    @property
    def hierarchical(self) -> list[str]:
        """``lr:hierarchicalSubject`` entries ("|" separates levels, so one inside a name
        becomes "/")."""
        out = [f"{ROOT}|Tag|{t.replace('|', '/')}" for t in dict.fromkeys(self.tags)]
        if self.cluster:
            out.append(f"{ROOT}|Cluster|{self.cluster.replace('|', '/')}")
        return out + [f"{ROOT}|{AUTO}|{a.replace('|', '/')}" for a in dict.fromkeys(self.auto)]


@dataclass
class XmpReport:
    """What writing sidecars did (or, on a dry run, would do)."""

    dry_run: bool
    written: list[str] = field(default_factory=list)  # sidecar paths created or updated
    unchanged: int = 0  # sidecars that already said exactly this
    failed: list[tuple[str, str]] = field(default_factory=list)  # (sidecar, reason)
    unnamed_clusters: int = 0  # clusters left out because they have no name yet

    def summary(self) -> str:
        verb = "would write" if self.dry_run else "wrote"
        text = f"{verb} {len(self.written)} sidecar(s), {self.unchanged} already up to date"
        if self.failed:
            text += f"; {len(self.failed)} could not be written"
        if self.unnamed_clusters:
            text += (f"; {self.unnamed_clusters} cluster(s) have no name and were left out "
                     "(name them with 'photoatlas clusters --name', or pass --unnamed-clusters)")
        return text


def sidecar_path(photo: str | Path) -> Path:
    photo = Path(photo)
    return photo.with_name(photo.name + SIDECAR_SUFFIX)


def _exiv2():
    import exiv2

    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)  # problems come back as exceptions
    exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
    return exiv2


def _values(data, key: str, exiv2) -> list[str]:
    """The entries of array property ``key`` (a plain text value counts as one entry)."""
    it = data.findKey(exiv2.XmpKey(key))
    if it == data.end():
        return []
    value = it.value()
    if isinstance(value, exiv2.XmpArrayValue):
        return [value.toString(i) for i in range(value.count())]
    text = value.toString()
    return [text] if text else []


def _set_bag(data, key: str, values: Sequence[str], exiv2) -> None:
    it = data.findKey(exiv2.XmpKey(key))
    if it != data.end():
        data.erase(it)
    if values:
        bag = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
        for v in values:
            bag.read(v)
        data.add(exiv2.XmpKey(key), bag)


def merge_sidecar(packet: bytes | None, keywords: Keywords) -> bytes | None:
    """The sidecar ``packet`` (None: none yet) with PhotoAtlas's keywords replaced by
    ``keywords`` and everything else kept; None when it already says exactly that (or there
    is no sidecar and nothing to say). Raises XmpError for a packet that is not XMP."""
    exiv2 = _exiv2()
    if packet is None:
        if not keywords.flat:
            return None
        image = exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    else:
        try:
            image = exiv2.ImageFactory.open(packet)
            image.readMetadata()
        except exiv2.Exiv2Error as exc:
            raise XmpError(f"not a readable XMP sidecar ({exc})") from None
    data = image.xmpData()
    subjects = _values(data, _SUBJECT, exiv2)
    hierarchy = _values(data, _HIERARCHY, exiv2)
    ours = set(_values(data, _OURS, exiv2))
    # The user's keywords: everything but what we added last time.
    theirs = [s for s in subjects if s not in ours]
    their_tree = [h for h in hierarchy if h != ROOT and not h.startswith(ROOT + "|")]
    added = [k for k in keywords.flat if k not in theirs]
    new_subjects, new_tree = theirs + added, their_tree + keywords.hierarchical
    if (new_subjects, new_tree, sorted(added)) == (subjects, hierarchy, sorted(ours)):
        return None
    _set_bag(data, _SUBJECT, new_subjects, exiv2)
    _set_bag(data, _HIERARCHY, new_tree, exiv2)
    _set_bag(data, _OURS, added, exiv2)
    try:
        image.writeMetadata()
    except exiv2.Exiv2Error as exc:
        raise XmpError(f"cannot write XMP ({exc})") from None
    io = image.io()
    view = io.mmap()
    try:
        return bytes(view)
    finally:
        io.munmap()


def write_sidecar(photo: str | Path, keywords: Keywords, dry_run: bool = False) -> bool:
    """Merge ``keywords`` into ``photo``'s sidecar, atomically (a temporary file renamed
    over it); returns whether it changed. The photo itself is never opened."""
    path = sidecar_path(photo)
    try:
        packet = path.read_bytes()
    except FileNotFoundError:
        packet = None
    merged = merge_sidecar(packet, keywords)
    if merged is None:
        return False
    if dry_run:
        return True
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(merged)
            f.flush()
            os.fsync(f.fileno())
        if packet is not None:
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def library_keywords(library: Library, unnamed_clusters: bool = False,
                     auto_keywords: bool = False) -> tuple[dict[str, Keywords], int]:
    """Keywords of every photo of the library that has any (path -> Keywords), and how many
    clusters were left out for having no name (all are written with ``unnamed_clusters``).
    ``auto_keywords`` adds each photo's class of probability ``AUTO_MIN`` or more."""
    from photoatlas.core.organize.describe import cluster_titles, describe_clusters
    from photoatlas.core.organize.tags import list_tags, tagged

    paths = library.catalog.paths_by_id()
    tags: dict[str, list[str]] = {}
    for summary in list_tags(library):
        for image_id in tagged(library, summary.name):
            if image_id in paths:
                tags.setdefault(paths[image_id], []).append(summary.name)
    clusters: dict[str, str] = {}
    left_out = 0
    try:
        run = library.current_run()
    except LibraryError:
        run = None  # no map yet: tags only
    if run is not None:
        descriptions = describe_clusters(library, per_cluster=1)
        titles = cluster_titles(descriptions)
        for d in descriptions:
            if not d.name and not unnamed_clusters:
                left_out += 1
                continue
            title = titles[d.cluster]
            for r in np.flatnonzero(run.cluster == d.cluster):
                clusters[str(run.paths[r])] = title
    auto = _confident_concepts(library, run) if auto_keywords and run is not None else {}
    out = {p: Keywords(tuple(tags.get(p, ())), clusters.get(p), auto.get(p, ()))
           for p in sorted(set(tags) | set(clusters) | set(auto))}
    return out, left_out


def _confident_concepts(library: Library, run) -> dict[str, tuple[str, ...]]:
    """path -> the names of its classes of probability ``AUTO_MIN`` or more."""
    from photoatlas.core.encode.concepts import read_concepts
    from photoatlas.core.organize.vocabulary import vocabulary

    vocab = vocabulary()
    backbone = run.report.backbone
    ids, scores, _ = read_concepts(library, backbone).aligned(run.cache_rows)
    out = {}
    for r in np.flatnonzero(scores[:, 0] >= AUTO_MIN):
        sure = ids[r][scores[r] >= AUTO_MIN]
        out[str(run.paths[r])] = tuple(vocab.class_name(int(c)) for c in sure)
    return out


def write_library_sidecars(library: Library, dry_run: bool = False,
                           unnamed_clusters: bool = False, cancel: CancelToken | None = None,
                           progress: ProgressCallback = no_progress,
                           auto_keywords: bool = False) -> XmpReport:
    """Write (or update) the sidecar of every photo of the library: its keywords where it has
    some, and PhotoAtlas's old keywords taken out of sidecars of photos that have none now.
    A sidecar that cannot be read or written is reported and the rest go on.
    ``auto_keywords``: also the confident concepts, as "auto/..." (never by default)."""
    cancel = cancel or CancelToken()
    keywords, left_out = library_keywords(library, unnamed_clusters, auto_keywords)
    report = XmpReport(dry_run, unnamed_clusters=left_out)
    # Photos without keywords are visited only if they have a sidecar (it may hold old ones).
    photos = list(keywords) + [r.path for r in library.catalog.images()
                               if r.path not in keywords and sidecar_path(r.path).exists()]
    clock = EtaClock()
    for done, photo in enumerate(photos, 1):
        cancel.check()
        try:
            if write_sidecar(photo, keywords.get(photo, Keywords()), dry_run):
                report.written.append(str(sidecar_path(photo)))
            else:
                report.unchanged += 1
        except (OSError, XmpError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            report.failed.append((str(sidecar_path(photo)), reason))
        progress(Progress(Stage.XMP, done, len(photos), f"{done}/{len(photos)} photos",
                          eta_s=clock.eta(done, len(photos))))
    return report
