"""Exact copies, near-duplicates (resized, re-encoded, cropped, rotated or mirrored copies)
and bursts (shots seconds apart from one camera), each group with a suggested photo to keep.
Nothing is ever deleted or moved: the result is a list for the user to review.

Why two stages for near-duplicates: on imagenette-dev the embedding cosine of a 50 %-resized
or 80 %-cropped copy to its original (5th percentile 0.79 / 0.82) overlaps that of distinct
photos of the same kind (95th percentile 0.85, max 0.92: two golf balls on grass), so the
embedding only nominates candidates and an aligned pixel comparison of the two thumbnails
decides (README, "Duplicates, tags, query by examples, clusters", for figures and command).
That comparison is a template match (shifts and scales: resized and cropped copies), then,
for pairs it rejects, a keypoint alignment (core.align: copies turned by quarter turns or
straightened by a few degrees, mirrored, cropped). A copy turned by 90 degrees embeds far
from its original, so each photo's quarter turns are embedded too and their neighbours
become candidates (docs/duplicates.md for figures, cost and command).
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from .align import Keypoints, aligned_match, keypoints
from .cache import THUMBNAIL_SIZE, content_hash
from .catalog import Catalog
from .exif import PhotoExif, exif_for_images
from .jobs import CancelToken, Progress, ProgressCallback, no_progress
from .library import Library, LibraryError, RunArtifacts
from .runs import ENCODER_NAME, save_npz_atomic
from .search import NeighborIndex

KINDS = ("exact", "near_duplicate", "burst")
# Images are compared at this many px on their longer side: coarse grey levels for every
# candidate pair, then, for pairs the coarse pass finds close, band-passed grey levels at the
# fine size (without the band-pass, skies with a gradient and a speck matched each other).
_COARSE_SIDE, _FINE_SIDE, _REFINE_FROM = 32, 48, 0.85
_BAND_SIGMA = 4.0  # px at the fine size: the blur subtracted to drop gradients and haze
# A copy may show this fraction of the original's width or height (cropped copies). Below
# 0.7 a ball on grass matched another ball on other grass (imagenette-dev).
_WINDOW_SCALES = tuple(round(1.0 - 0.05 * i, 2) for i in range(7))  # 1.0 ... 0.7
_MIN_TEMPLATE = 8  # px: smaller windows carry too little to tell photos apart
# Grey images of this many photos are kept while pairs are compared (a photo is asked for
# again, from its thumbnail, once it has dropped out): memory stays bounded in big libraries.
_KEPT_PHOTOS = 2048
QUARTER_TURNS_NAME = "quarter_turns.npz"  # beside a run: its photos' turned embeddings


@dataclass(frozen=True)
class DuplicateConfig:
    """Thresholds, calibrated on imagenette-dev with EfficientNet-Lite0 embeddings."""

    candidate_similarity: float = 0.6  # embedding cosine for a pair to be compared at all
    pixel_match: float = 0.87  # template-matched band-passed correlation that makes it a copy
    # Band-passed correlation after keypoint alignment that makes it a copy. On the dev
    # bench (docs/duplicates.md) copies scored 0.919 and up, distinct candidate pairs 0.855
    # at most, except photos taken from one spot with one framing (up to 0.96).
    aligned_match: float = 0.9
    # Each photo is also embedded turned by these many quarter turns (90 degrees each) and
    # its neighbours become candidates. One quarter turn finds copies turned either way
    # (the copy turned by it is the original, or the original turned by it is the copy);
    # 2 would add upside-down copies. Each costs one embedding pass over the library, made
    # once and saved with the run (docs/duplicates.md).
    quarter_turns: tuple[int, ...] = (1,)
    burst_similarity: float = 0.75  # embedding cosine of two shots of one burst
    burst_gap_s: float = 3.0  # longest pause between consecutive shots of a burst
    neighbors: int = 5  # nearest neighbours examined per photo

    def __post_init__(self) -> None:
        for name in ("candidate_similarity", "pixel_match", "aligned_match",
                     "burst_similarity"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a similarity in [-1, 1], got {value}")
        if not self.burst_gap_s > 0:
            raise ValueError(f"burst_gap_s must be positive, got {self.burst_gap_s}")
        if self.neighbors < 1:
            raise ValueError(f"neighbors must be at least 1, got {self.neighbors}")
        if not set(self.quarter_turns) <= {1, 2, 3} or len(set(self.quarter_turns)) != len(
                self.quarter_turns):
            raise ValueError(f"quarter_turns must be distinct numbers of quarter turns among "
                             f"1, 2, 3, got {self.quarter_turns}")


@dataclass(frozen=True)
class PhotoFacts:
    """What decides which photo of a group to keep."""

    image_id: int
    path: str
    width: int
    height: int
    file_size: int
    sharpness: float  # variance of the Laplacian of the cached grey pixels
    taken: datetime | None
    camera: str | None


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # one of KINDS
    photos: tuple[PhotoFacts, ...]  # the suggested keeper first
    reason: str  # why the first photo is suggested

    @property
    def keep(self) -> PhotoFacts:
        return self.photos[0]


@dataclass(frozen=True)
class DuplicateReport:
    groups: list[DuplicateGroup]
    photos_checked: int
    pairs_compared: int  # candidate pairs whose pixels were compared


class UnionFind:
    """Disjoint sets over 0..n-1 (path halving, union by size)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def groups(self) -> list[list[int]]:
        """Sets of two or more members, each sorted, in order of their smallest member."""
        members: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            members[self.find(i)].append(i)
        return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])


# ---- exact copies ---------------------------------------------------------------------------

def exact_pairs(catalog: Catalog, facts: Sequence[PhotoFacts],
                cancel: CancelToken | None = None) -> list[tuple[int, int]]:
    """Pairs of rows of ``facts`` with identical bytes. Only files of equal size are hashed;
    the catalog's content hashes are used when it has them for a whole size class."""
    cancel = cancel or CancelToken()
    by_size: dict[int, list[int]] = defaultdict(list)
    for row, f in enumerate(facts):
        by_size[f.file_size].append(row)
    candidates = [rows for rows in by_size.values() if len(rows) > 1]
    stored = catalog.content_hashes([facts[r].image_id for rows in candidates for r in rows])
    pairs = []
    for rows in candidates:
        cancel.check()
        ids = [facts[r].image_id for r in rows]
        if all(i in stored for i in ids):
            digests = [stored[i] for i in ids]
        else:
            digests = []
            for r in rows:
                try:
                    digests.append(content_hash(facts[r].path))
                except OSError:
                    digests.append(f"unreadable:{r}")  # never equal to anything
        first: dict[str, int] = {}
        for r, d in zip(rows, digests, strict=True):
            if d in first:
                pairs.append((first[d], r))
            else:
                first[d] = r
    return pairs


# ---- pixel comparison -----------------------------------------------------------------------

def grey_thumbnail(path: str | Path, fallback: np.ndarray | None = None) -> np.ndarray:
    """The whole photo in grey (H, W) uint8, its longer side at most the thumbnails' (the
    keypoint alignment needs that many pixels), from its thumbnail file, else from
    ``fallback`` (3, S, S) uint8 pixels."""
    try:
        with Image.open(path) as image:
            grey = image.convert("L")
    except OSError:
        if fallback is None:
            raise
        grey = Image.fromarray(fallback.mean(0).astype(np.uint8), "L")
    return _shrink(np.asarray(grey, np.uint8), THUMBNAIL_SIZE)


def _shrink(grey: np.ndarray, side: int) -> np.ndarray:
    """``grey`` (H, W) uint8 with its longer side shrunk to ``side`` (box filter)."""
    scale = side / max(grey.shape)
    if scale >= 1:
        return grey
    image = Image.fromarray(grey, "L")
    return np.asarray(image.resize((max(1, round(image.width * scale)),
                                    max(1, round(image.height * scale))),
                                   Image.Resampling.BOX), np.uint8)


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    resized = Image.fromarray(image.astype(np.float32), "F").resize(
        (width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(resized, np.float64)


def _box_sums(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum of every h x w window of ``image`` (an integral image: one pass, any size)."""
    table = np.zeros((image.shape[0] + 1, image.shape[1] + 1))
    table[1:, 1:] = image.cumsum(0).cumsum(1)
    return table[h:, w:] - table[:-h, w:] - table[h:, :-w] + table[:-h, :-w]


def _best_correlation(big: np.ndarray, template: np.ndarray) -> float:
    """Highest zero-mean normalised correlation of ``template`` with any same-sized window
    of ``big`` (template matching over every position)."""
    t = template - template.mean()
    norm = np.linalg.norm(t)
    if norm < 1e-6:
        return -1.0  # a flat template matches nothing meaningfully
    h, w = t.shape
    sums = _box_sums(big, h, w)
    spread = np.maximum(_box_sums(big * big, h, w) - sums * sums / t.size, 1e-6)
    windows = np.lib.stride_tricks.sliding_window_view(big, t.shape)
    return float((np.einsum("ijkl,kl->ij", windows, t / norm) / np.sqrt(spread)).max())


def _band_pass(image: np.ndarray) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return image - gaussian_filter(image, _BAND_SIGMA, mode="reflect")


def _contained_match(big: np.ndarray, small: np.ndarray, side: int, band_pass: bool) -> float:
    """Best correlation of ``small``, shrunk to a fraction of ``big``, with a window of
    ``big`` seen at ``side`` px: a crop (or the whole, resized) of ``big`` scores near 1."""
    big, small = big.astype(np.float64), small.astype(np.float64)
    h, w = big.shape
    scale = side / max(h, w)
    bh, bw = max(1, round(h * scale)), max(1, round(w * scale))
    big_r = _resize(big, bh, bw)
    if band_pass:
        big_r = _band_pass(big_r)
    aspect = small.shape[1] / small.shape[0]
    best = -1.0
    for fraction in _WINDOW_SCALES:
        tw = fraction * bw
        th = tw / aspect
        if th > bh:
            th = fraction * bh
            tw = th * aspect
        th, tw = round(th), round(tw)
        if th < _MIN_TEMPLATE or tw < _MIN_TEMPLATE or th > bh or tw > bw:
            continue
        template = _resize(small, th, tw)
        best = max(best, _best_correlation(big_r, _band_pass(template) if band_pass
                                           else template))
    return best


def pixel_match(a: np.ndarray, b: np.ndarray) -> float:
    """How well one grey image (H, W) is a resized, re-encoded or cropped (to at least 70 %
    of each side) copy of the other: the best zero-mean correlation in [-1, 1] over windows
    of either one (coarse grey levels first; band-passed at the fine size for pairs scoring
    at least 0.85 there). Images are first shrunk to twice the fine size, as calibrated."""
    if max(a.shape) > 2 * _FINE_SIDE:
        a = _shrink(np.asarray(a, np.uint8), 2 * _FINE_SIDE)
    if max(b.shape) > 2 * _FINE_SIDE:
        b = _shrink(np.asarray(b, np.uint8), 2 * _FINE_SIDE)
    coarse = max(_contained_match(a, b, _COARSE_SIDE, False),
                 _contained_match(b, a, _COARSE_SIDE, False))
    if coarse < _REFINE_FROM:
        return coarse
    return max(_contained_match(a, b, _FINE_SIDE, True),
               _contained_match(b, a, _FINE_SIDE, True))


class _CandidatePhotos:
    """Each candidate photo's grey image (thumbnail size and shrunk for the template match)
    and keypoints, found once and kept for the ``_KEPT_PHOTOS`` most recently used."""

    def __init__(self, grey_of: Callable[[int], np.ndarray]) -> None:
        self.grey_of = grey_of
        self.kept: OrderedDict[int, tuple[np.ndarray, np.ndarray, Keypoints]] = OrderedDict()

    def __getitem__(self, row: int) -> tuple[np.ndarray, np.ndarray, Keypoints]:
        if row in self.kept:
            self.kept.move_to_end(row)
            return self.kept[row]
        grey = np.ascontiguousarray(self.grey_of(row), np.uint8)
        self.kept[row] = (grey, _shrink(grey, 2 * _FINE_SIDE), keypoints(grey))
        if len(self.kept) > _KEPT_PHOTOS:
            self.kept.popitem(last=False)
        return self.kept[row]

    def copies(self, a: int, b: int, config: DuplicateConfig) -> bool:
        """Whether photos ``a`` and ``b`` are copies of one photo: aligned by keypoints (any
        quarter turn, straightened, mirrored), else by the template match (its shifts and
        scales find copies too plain for keypoints)."""
        grey_a, small_a, keys_a = self[a]
        grey_b, small_b, keys_b = self[b]
        if aligned_match(grey_a, grey_b, keys_a, keys_b) >= config.aligned_match:
            return True
        return pixel_match(small_a, small_b) >= config.pixel_match


def sharpness(pixels: np.ndarray) -> float:
    """Variance of the Laplacian of (3, S, S) uint8 pixels' grey levels: higher is sharper."""
    grey = pixels.astype(np.float32).mean(0)
    lap = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
           - 4 * grey[1:-1, 1:-1])
    return float(lap.var())


# ---- grouping -------------------------------------------------------------------------------

def _group(kind: str, photos: list[PhotoFacts]) -> DuplicateGroup:
    """The group with its suggested keeper first."""
    if kind == "burst":
        # Shots of one moment at the same settings: the sharpest is the best.
        ranked = sorted(photos, key=lambda p: (-p.sharpness, -p.width * p.height,
                                               -p.file_size, p.path))
        return DuplicateGroup(kind, tuple(ranked), "sharpest shot")
    if kind == "exact":
        ranked = sorted(photos, key=lambda p: (len(p.path), p.path))
        return DuplicateGroup(kind, tuple(ranked), "identical files; the shortest path")
    # Copies of one photo: more pixels, then less compression (bigger file), then sharpness
    # (a JPEG re-encoded harder adds edges that raise the Laplacian, so it comes last).
    ranked = sorted(photos, key=lambda p: (-p.width * p.height, -p.file_size, -p.sharpness,
                                           p.path))
    best = ranked[0]
    return DuplicateGroup(kind, tuple(ranked),
                          f"largest ({best.width}x{best.height}, {best.file_size} bytes)")


def _different_moments(a: PhotoExif, b: PhotoExif) -> bool:
    """Both photos say when they were taken, and not at the same moment: not copies."""
    return a.taken is not None and b.taken is not None and a.taken != b.taken


def find_duplicates_in(
    catalog: Catalog,
    facts: Sequence[PhotoFacts],
    embeddings: np.ndarray,
    exif: Sequence[PhotoExif],
    grey_of: Callable[[int], np.ndarray],
    config: DuplicateConfig = DuplicateConfig(),
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
    turned_embeddings: Sequence[np.ndarray] = (),
) -> DuplicateReport:
    """Groups among rows of ``facts`` with unit ``embeddings`` (N, D) and their EXIF;
    ``grey_of(row)`` gives a photo's grey image (H, W), asked only for candidates. Each of
    ``turned_embeddings`` (N, D) embeds the photos turned (``quarter_turn_embeddings``):
    their neighbours among ``embeddings`` are candidates too."""
    cancel = cancel or CancelToken()
    n = len(facts)
    if not len(embeddings) == len(exif) == n or any(len(t) != n for t in turned_embeddings):
        raise ValueError("facts, embeddings, turned embeddings and exif must have one row per "
                         "photo")
    exact, copies = UnionFind(n), UnionFind(n)
    for a, b in exact_pairs(catalog, facts, cancel):
        exact.union(a, b)
        copies.union(a, b)

    photos = _CandidatePhotos(grey_of)
    compared = 0
    if n > 1:
        k = min(config.neighbors, n - 1)
        index = NeighborIndex(embeddings)
        found = [index.query(embeddings, k, exclude_self=True)]
        # A turned photo may resemble itself (a symmetric scene): one more, itself dropped.
        found += [index.query(turned, k + 1) for turned in turned_embeddings]
        for a in range(n):
            cancel.check()
            if a % 100 == 0:
                progress(Progress("duplicates", a, n, f"{compared} pairs compared"))
            near: dict[int, float] = {}
            for idx, sims in found:
                for b, s in zip(idx[a].tolist(), sims[a].tolist(), strict=True):
                    if b != a and s >= config.candidate_similarity:
                        near.setdefault(b, s)
            for b in near:
                if copies.find(a) == copies.find(b) or _different_moments(exif[a], exif[b]):
                    continue
                compared += 1
                if photos.copies(a, b, config):
                    copies.union(a, b)

    bursts = UnionFind(n)
    by_camera: dict[str, list[int]] = defaultdict(list)
    for row, e in enumerate(exif):
        if e.taken is not None and e.camera:
            by_camera[e.camera].append(row)
    for rows in by_camera.values():
        rows.sort(key=lambda r: exif[r].taken)
        for a, b in zip(rows, rows[1:], strict=False):
            gap = (exif[b].taken - exif[a].taken).total_seconds()
            if copies.find(a) == copies.find(b) or gap > config.burst_gap_s:
                continue
            if float(embeddings[a] @ embeddings[b]) >= config.burst_similarity:
                bursts.union(a, b)

    progress(Progress("duplicates", n, n, f"{compared} pairs compared"))
    groups = [_group("burst", [facts[m] for m in members]) for members in bursts.groups()]
    for members in copies.groups():
        same_bytes = all(exact.find(m) == exact.find(members[0]) for m in members)
        groups.append(_group("exact" if same_bytes else "near_duplicate",
                             [facts[m] for m in members]))
    groups.sort(key=lambda g: (KINDS.index(g.kind), -len(g.photos), g.photos[0].path))
    return DuplicateReport(groups, n, compared)


def find_duplicates(
    library: Library,
    config: DuplicateConfig = DuplicateConfig(),
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> DuplicateReport:
    """Exact copies, near-duplicates and bursts among the photos of the library's current
    run that are still in place."""
    run = library.current_run()
    catalog = library.catalog
    present = {r.id: r for r in catalog.images(status="ok")}
    keep = np.array([int(i) in present for i in run.image_ids], bool)
    if not keep.any():
        raise LibraryError(f"{library.root}: none of the indexed photos is in place any more")
    ids = [int(i) for i in run.image_ids[keep]]
    rows = [present[i] for i in ids]
    cache_rows = run.cache_rows[keep]  # the pixels each embedding was made from
    dims = catalog.dimensions(ids)
    pixels = library.pixels.array()
    exif_by_id = exif_for_images(catalog, rows)
    facts = []
    for r, cache_row in zip(rows, cache_rows, strict=True):
        w, h = dims.get(r.id, (0, 0))
        e = exif_by_id[r.id]
        facts.append(PhotoFacts(r.id, r.path, w, h, r.size, sharpness(pixels[cache_row]),
                                e.taken, e.camera))

    def grey_of(row: int) -> np.ndarray:
        return grey_thumbnail(library.thumb_dir / f"{rows[row].id}.jpg",
                              pixels[cache_rows[row]])

    turned = quarter_turn_embeddings(library, run, keep, config.quarter_turns, cancel,
                                     progress)
    return find_duplicates_in(catalog, facts, run.embeddings[keep],
                              [exif_by_id[i] for i in ids], grey_of, config, cancel, progress,
                              turned_embeddings=turned)


class _TurnedRows:
    """Cached pixels of some photos turned by ``turns`` quarter turns, indexable like an
    (N, 3, S, S) uint8 array. The square the cache holds is the photo's centre, and the
    centre of a turned photo is that square turned: no photo is decoded again."""

    def __init__(self, cache: np.ndarray, rows: np.ndarray, turns: int) -> None:
        self.cache, self.rows, self.turns = cache, rows, turns

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: slice) -> np.ndarray:
        return np.rot90(np.asarray(self.cache[self.rows[index]]), self.turns, axes=(-2, -1))


def quarter_turn_embeddings(
    library: Library,
    run: RunArtifacts,
    keep: np.ndarray,
    turns: Sequence[int],
    cancel: CancelToken | None = None,
    progress: ProgressCallback = no_progress,
) -> list[np.ndarray]:
    """For each of ``turns``, the embeddings (N, D) of the run's photos selected by ``keep``
    turned by that many quarter turns, made by the run's encoder from the pixel cache (one
    embedding pass each) and saved beside the run, so that later searches reuse them. A run
    saved without its encoder gets none (its photos are then only compared unturned)."""
    from .device import pick_device
    from .embed import embed_pixels
    from .pipeline import run_encoder

    if not turns or not (library.run_dir(run.run_id) / ENCODER_NAME).exists():
        return []
    ids, cache_rows = run.image_ids[keep], run.cache_rows[keep]
    path = library.run_dir(run.run_id) / QUARTER_TURNS_NAME
    saved: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as data:
            if (np.array_equal(data["image_ids"], ids)
                    and np.array_equal(data["cache_rows"], cache_rows)):
                saved = {name: data[name] for name in data.files if name.startswith("turn")}
    missing = [t for t in turns if f"turn{t}" not in saved]
    if missing:
        device = pick_device("auto")
        model, resolution = run_encoder(library, run.run_id, device)
        for t in missing:
            saved[f"turn{t}"] = embed_pixels(
                model, _TurnedRows(library.pixels.array(), cache_rows, t), resolution, device,
                cancel=cancel, progress=progress, stage=f"duplicates: photos turned by {90 * t}°",
                precision=run.precision)
        save_npz_atomic(path, image_ids=ids, cache_rows=cache_rows, **saved)
    return [saved[f"turn{t}"] for t in turns]


