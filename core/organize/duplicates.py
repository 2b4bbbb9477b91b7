"""Exact copies, near-duplicates (resized, re-encoded, cropped, rotated or mirrored copies)
and bursts (shots seconds apart from one camera), each group with a suggested photo to keep.
Nothing is ever deleted or moved: the result is a list for the user to review.

Why two stages for near-duplicates: on imagenette-dev the embedding cosine of a 50 %-resized
or 80 %-cropped copy to its original (5th percentile 0.79 / 0.82) overlaps that of distinct
photos of the same kind (95th percentile 0.85, max 0.92: two golf balls on grass), so the
embedding only nominates candidates and an aligned pixel comparison of the two thumbnails
decides (docs/measurements.md for figures and command).
That comparison is a template match (shifts and scales: resized and cropped copies), then,
for pairs it rejects, a keypoint alignment (core.organize.align: copies turned by quarter turns or
straightened by a few degrees, mirrored, cropped). A copy turned by 90 degrees embeds far
from its original, so each photo's quarter turns are embedded too and their neighbours
become candidates (docs/measurements.md for figures, cost and command).

A RAW file beside a JPEG (or HEIC...) of the same name is one shot saved twice by the camera:
it is that photo's second file, never a duplicate of it. The user's answers ("keep this one",
"not duplicates") are stored in the catalog by content hash and hold for the same photos in
every later search, after rescans, moves and new indexes.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.jobs import CancelToken, Progress, ProgressCallback, Stage, no_progress
from photoatlas.core.library.cache import THUMBNAIL_SIZE, content_hash
from photoatlas.core.library.catalog import Catalog, DuplicateDecision
from photoatlas.core.library.decode import RAW_EXTENSIONS
from photoatlas.core.library.exif import PhotoExif, exif_for_images
from photoatlas.core.library.library import Library, RunArtifacts
from photoatlas.core.library.runs import ENCODER_NAME
from photoatlas.core.organize.align import Keypoints, aligned_match, keypoints
from photoatlas.core.storage import LibraryError, save_npz_atomic

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


_BLACK, _BLOWN = 8, 247  # grey levels at or past which a pixel holds nothing (the cache


# keeps JPEG rows: their ringing moves a clipped pixel a few levels off 0 or 255)
# A burst's best shot is the sharpest of those with at most this much more of their pixels
# blown out or black than its best exposed shot (JPEG noise moves a few pixels across).
_EXPOSURE_SLACK = 0.02


QUARTER_TURNS_NAME = "quarter_turns.npz"  # beside a run: its photos' turned embeddings


@dataclass(frozen=True)
class DuplicateConfig:
    """Thresholds, calibrated on imagenette-dev with EfficientNet-Lite0 embeddings."""

    candidate_similarity: float = 0.6  # embedding cosine for a pair to be compared at all
    pixel_match: float = 0.87  # template-matched band-passed correlation that makes it a copy
    # Band-passed correlation after keypoint alignment that makes it a copy. On the dev
    # bench (docs/measurements.md) copies scored 0.919 and up, distinct candidate pairs 0.855
    # at most, except photos taken from one spot with one framing (up to 0.96).
    aligned_match: float = 0.9
    # Each photo is also embedded turned by these many quarter turns (90 degrees each) and
    # its neighbours become candidates. One quarter turn finds copies turned either way
    # (the copy turned by it is the original, or the original turned by it is the copy);
    # 2 would add upside-down copies. Each costs one embedding pass over the library, made
    # once and saved with the run (docs/measurements.md).
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
    exposure: float = 1.0  # fraction of the cached pixels neither blown out nor black
    content_hash: str | None = None  # what the user's decisions are keyed by
    companions: tuple[str, ...] = ()  # other files of the same shot (its RAW beside a JPEG)


@dataclass(frozen=True)
class DuplicateGroup:
    kind: str  # one of KINDS
    photos: tuple[PhotoFacts, ...]  # the suggested keeper first
    reason: str  # why the first photo is suggested
    decision: str | None = None  # 'keep' or 'distinct' once the user answered

    @property
    def keep(self) -> PhotoFacts:
        return self.photos[0]


@dataclass(frozen=True)
class DuplicateReport:
    groups: list[DuplicateGroup]
    photos_checked: int
    pairs_compared: int  # candidate pairs whose pixels were compared
    resolved: list[DuplicateGroup] = field(default_factory=list)  # answered by the user
    raw_pairs: list[tuple[str, str]] = field(default_factory=list)  # (photo, its RAW file)


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


def exposure(pixels: np.ndarray) -> float:
    """Fraction of (3, S, S) uint8 pixels whose grey level is neither blown out nor black:
    1 for a well-exposed shot."""
    grey = pixels.astype(np.float32).mean(0)
    return float(((grey > _BLACK) & (grey < _BLOWN)).mean())


def _group(kind: str, photos: list[PhotoFacts]) -> DuplicateGroup:
    """The group with its suggested keeper first."""
    if kind == "burst":
        return _best_shot_first(photos)
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


def _best_shot_first(photos: list[PhotoFacts]) -> DuplicateGroup:
    """A burst with its best shot first: the sharpest of the shots exposed about as well as
    the burst's best exposed one. Sharpness alone would pick a blown-out shot: brightening
    raises the Laplacian of what is left."""
    best_exposure = max(p.exposure for p in photos)

    def exposed(p: PhotoFacts) -> bool:
        return p.exposure >= best_exposure - _EXPOSURE_SLACK

    ranked = sorted(photos, key=lambda p: (not exposed(p), -p.sharpness,
                                           -p.width * p.height, -p.file_size, p.path))
    best, sharpest = ranked[0], max(photos, key=lambda p: p.sharpness)
    if best.sharpness >= sharpest.sharpness:
        return DuplicateGroup("burst", tuple(ranked), "sharpest shot")
    return DuplicateGroup("burst", tuple(ranked), f"sharpest well-exposed shot (the sharpest "
                          f"is {1 - sharpest.exposure:.0%} blown out or black)")


def _different_moments(a: PhotoExif, b: PhotoExif) -> bool:
    """Both photos say when they were taken, and not at the same moment: not copies."""
    return a.taken is not None and b.taken is not None and a.taken != b.taken


def raw_companions(facts: Sequence[PhotoFacts], exif: Sequence[PhotoExif]
                   ) -> dict[int, list[int]]:
    """Rows of RAW files saved with a photo of the same name in the same folder (a camera's
    RAW+JPEG), by that photo's row: one shot in two files, not copies. Where several
    non-RAW files share the name, the first path stands for the shot; a RAW whose capture
    time differs from the photo's is another shot."""
    by_name: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row, f in enumerate(facts):
        path = Path(f.path)
        by_name[(str(path.parent), path.stem.lower())].append(row)
    found: dict[int, list[int]] = {}
    for rows in by_name.values():
        raws = [r for r in rows if Path(facts[r].path).suffix.lower() in RAW_EXTENSIONS]
        others = sorted((r for r in rows if r not in raws), key=lambda r: facts[r].path)
        if not others:
            continue
        shot = others[0]
        same = [r for r in raws if not _different_moments(exif[r], exif[shot])]
        if same:
            found[shot] = same
    return found


def _candidate_pairs(embeddings: np.ndarray, config: DuplicateConfig,
                     turned_embeddings: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (a < b) of rows whose embeddings (or one's turned embedding) are near
    neighbours, closest first."""
    n = len(embeddings)
    k = min(config.neighbors, n - 1)
    index = NeighborIndex(embeddings)
    found = [index.query(embeddings, k, exclude_self=True)]
    # A turned photo may resemble itself (a symmetric scene): one more, itself dropped.
    found += [index.query(turned, k + 1) for turned in turned_embeddings]
    best: dict[tuple[int, int], float] = {}
    for idx, sims in found:
        for a, (near, scores) in enumerate(zip(idx.tolist(), sims.tolist(), strict=True)):
            for b, s in zip(near, scores, strict=True):
                if b != a and s >= config.candidate_similarity:
                    pair = (min(a, b), max(a, b))
                    best[pair] = max(best.get(pair, -1.0), s)
    return sorted(best, key=lambda pair: (-best[pair], pair))


def _copy_sets(catalog: Catalog, facts: Sequence[PhotoFacts], embeddings: np.ndarray,
               exif: Sequence[PhotoExif], photos: _CandidatePhotos, config: DuplicateConfig,
               cancel: CancelToken, progress: ProgressCallback,
               turned_embeddings: Sequence[np.ndarray]) -> tuple[UnionFind, UnionFind, int]:
    """Sets of identical files and sets of copies (identical ones included) among ``facts``,
    and the number of candidate pairs whose pixels were compared. A set of copies never
    holds two capture times, and the closest pairs are joined first: a copy without EXIF
    joins the shot it was made from, not the whole burst around that shot."""
    n = len(facts)
    exact, copies = UnionFind(n), UnionFind(n)
    for a, b in exact_pairs(catalog, facts, cancel):
        exact.union(a, b)
        copies.union(a, b)
    moment = [e.taken for e in exif]  # by a set's root: the capture time its photos share
    compared = 0
    pairs = _candidate_pairs(embeddings, config, turned_embeddings) if n > 1 else []
    for i, (a, b) in enumerate(pairs):
        cancel.check()
        if i % 100 == 0:
            progress(Progress(Stage.DUPLICATES, i * n // len(pairs), n,
                              f"{compared} pairs compared"))
        ra, rb = copies.find(a), copies.find(b)
        if ra == rb or (None not in (moment[ra], moment[rb]) and moment[ra] != moment[rb]):
            continue
        compared += 1
        if photos.copies(a, b, config):
            copies.union(a, b)
            moment[copies.find(a)] = moment[ra] or moment[rb]
    return exact, copies, compared


def _burst_sets(embeddings: np.ndarray, exif: Sequence[PhotoExif], copies: UnionFind,
                config: DuplicateConfig) -> UnionFind:
    """Consecutive shots of one camera close in time and in look (copies aside)."""
    bursts = UnionFind(len(exif))
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
    return bursts


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
    their neighbours among ``embeddings`` are candidates too. A RAW file saved with a photo
    becomes that photo's companion; groups the user answered about are reported apart."""
    cancel = cancel or CancelToken()
    n = len(facts)
    if not len(embeddings) == len(exif) == n or any(len(t) != n for t in turned_embeddings):
        raise ValueError("facts, embeddings, turned embeddings and exif must have one row per "
                         "photo")
    companions = raw_companions(facts, exif)
    hidden = {r for raws in companions.values() for r in raws}
    shots = [r for r in range(n) if r not in hidden]
    shot_facts = [replace(facts[r], companions=tuple(facts[c].path
                                                     for c in companions.get(r, ())))
                  for r in shots]
    shot_exif = [exif[r] for r in shots]
    shot_embeddings = embeddings[shots]
    photos = _CandidatePhotos(lambda i: grey_of(shots[i]))
    exact, copies, compared = _copy_sets(catalog, shot_facts, shot_embeddings, shot_exif,
                                         photos, config, cancel, progress,
                                         [t[shots] for t in turned_embeddings])
    bursts = _burst_sets(shot_embeddings, shot_exif, copies, config)
    progress(Progress(Stage.DUPLICATES, len(shots), len(shots), f"{compared} pairs compared"))
    groups = [_group("burst", [shot_facts[m] for m in members]) for members in bursts.groups()]
    for members in copies.groups():
        same_bytes = all(exact.find(m) == exact.find(members[0]) for m in members)
        groups.append(_group("exact" if same_bytes else "near_duplicate",
                             [shot_facts[m] for m in members]))
    open_groups, resolved = apply_decisions(groups, catalog.duplicate_decisions())
    raw_pairs = [(facts[shot].path, facts[r].path) for shot, raws in companions.items()
                 for r in raws]
    return DuplicateReport(open_groups, len(shots), compared, resolved, raw_pairs)


def apply_decisions(groups: Sequence[DuplicateGroup], decisions: Sequence[DuplicateDecision]
                    ) -> tuple[list[DuplicateGroup], list[DuplicateGroup]]:
    """The groups left open, ranked as suggested, and those the user answered about, the
    user's keeper first; both in order of kind, size and first path. A decision holds for a
    group when it names every photo of it (a new copy reopens the group) and, for "keep this
    one", the keeper is still among them."""
    open_groups, resolved = [], []
    for group in groups:
        group = _group(group.kind, list(group.photos))
        answered = _answered(group, decisions)
        if answered is None:
            open_groups.append(group)
        else:
            resolved.append(answered)
    for found in (open_groups, resolved):
        found.sort(key=lambda g: (KINDS.index(g.kind), -len(g.photos), g.photos[0].path))
    return open_groups, resolved


def _answered(group: DuplicateGroup, decisions: Sequence[DuplicateDecision]
              ) -> DuplicateGroup | None:
    hashes = {p.content_hash for p in group.photos}
    if None in hashes:
        return None
    for decision in reversed(decisions):  # the newest answer first
        if not hashes <= decision.hashes:
            continue
        if decision.keeper_hash is None:
            return replace(group, reason="not duplicates, as you said", decision="distinct")
        same = [p for p in group.photos if p.content_hash == decision.keeper_hash]
        # Identical files share a hash: the keeper's path tells which one the user chose.
        by_path = [p for p in same if p.path == decision.keeper_path]
        keeper = by_path[0] if by_path else same[0] if len(same) == 1 else None
        if keeper is not None:
            rest = tuple(p for p in group.photos if p is not keeper)
            return replace(group, photos=(keeper, *rest), reason="the one you chose to keep",
                           decision="keep")
    return None


def _hashes(catalog: Catalog, photos: Sequence[str | Path]) -> dict[str, str]:
    """Content hash of each photo by its resolved path; ValueError naming unknown ones."""
    found, unknown = {}, []
    for photo in photos:
        path = str(Path(photo).expanduser().resolve())
        row = catalog.image_by_path(path)
        if row is None or row.content_hash is None:
            unknown.append(str(photo))
        else:
            found[path] = row.content_hash
    if unknown:
        raise ValueError(f"not photos this library has read: {', '.join(unknown)}")
    return found


def decide(library: Library, photos: Sequence[str | Path], keep: str | Path | None) -> None:
    """Record the user's answer about a group of ``photos``: ``keep`` is the one to keep (the
    others are its copies or weaker shots), or None: they are not duplicates. Later searches
    report the group as answered as long as it holds the same photos; nothing is deleted."""
    hashes = _hashes(library.catalog, [*photos, *([keep] if keep is not None else [])])
    if len(hashes) < 2:
        raise ValueError("a decision is about two photos or more")
    keeper = str(Path(keep).expanduser().resolve()) if keep is not None else None
    library.catalog.decide_duplicates(hashes.values(), hashes.get(keeper), keeper)


def reopen(library: Library, photos: Sequence[str | Path]) -> int:
    """Forget the answers about a group holding ``photos``; returns how many there were."""
    return library.catalog.forget_duplicate_decisions(
        _hashes(library.catalog, photos).values())


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
        shot = pixels[cache_row]
        facts.append(PhotoFacts(r.id, r.path, w, h, r.size, sharpness(shot), e.taken,
                                e.camera, exposure(shot), r.content_hash))

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
    from photoatlas.core.encode.device import pick_device
    from photoatlas.core.encode.embed import embed_pixels
    from photoatlas.core.encode.encoder_files import run_encoder

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
