"""Measure "find photos by words" (core/organize/word_search.py) on libraries of the shared
dev sets.

    photoatlas index ../shared/data/imagenette-dev --library /tmp/w/imagenette --map-only
    photoatlas index ../shared/data/paris-dev --library /tmp/w/paris --map-only
    photoatlas index ../shared/data/flickr-dev --library /tmp/w/flickr --map-only
    python bench/make_lowres.py ../shared/data/imagenette-dev /tmp/w/imagenette32 --size 32
    photoatlas index /tmp/w/imagenette32 --library /tmp/w/imagenette32 --map-only
    python bench/word_search.py quality --imagenette /tmp/w/imagenette \
        --imagenette32 /tmp/w/imagenette32 --paris /tmp/w/paris
    python bench/word_search.py sheets --library /tmp/w/flickr --out /tmp/w/sheets \
        dog beach snow bicycle          # top 20 as contact sheets, to judge by looking
    python bench/word_search.py cost --library /tmp/w/imagenette  # the word index's share
    python bench/word_search.py scale --photos 100000               # query time

quality: per word, the folders it should find (its classes through WordNet) and, for the
ranking with the embedding (as shipped) and with the concept scores alone: Precision@20
(of the first 20 results, the share from those folders), and over everything returned
(combined score >= MIN_SCORE, at most 500): how many, their precision, the recall of the
folders' photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.atlas.search import NeighborIndex  # noqa: E402
from photoatlas.core.encode.concepts import TOP_K, class_scores, read_concepts  # noqa: E402
from photoatlas.core.library.library import Library  # noqa: E402
from photoatlas.core.organize import word_search  # noqa: E402
from photoatlas.core.organize.vocabulary import vocabulary  # noqa: E402

# word -> the folders of the set whose photos it should find.
IMAGENETTE = {
    "dog": ["n02102040"], "spaniel": ["n02102040"], "fish": ["n01440764"],
    "vehicle": ["n03417042"], "truck": ["n03417042"], "building": ["n03028079"],
    "church": ["n03028079"], "musical instrument": ["n03394916"], "saw": ["n03000684"],
    "pump": ["n03425413"], "golf ball": ["n03445777"], "parachute": ["n03888257"],
}
PARIS = {"tower": ["eiffel_tower"], "church": ["invalides"], "dome": ["invalides"],
         "palace": ["louvre"], "theater": ["moulinrouge"]}


def _arrays(library: Library):
    run = library.current_run()
    ids, scores, _ = read_concepts(library).aligned(run.cache_rows)
    folders = np.array([Path(p).parent.name for p in run.paths])
    return run, ids, scores, folders


def _measure(concept: np.ndarray, embeddings: np.ndarray, index: NeighborIndex,
             relevant: np.ndarray, use_embedding: bool) -> tuple[float, int, float, float]:
    if use_embedding:
        hits = word_search.rank_by_words(concept, embeddings, index).rows
    else:
        ok = np.flatnonzero(concept >= word_search.MIN_SCORE)
        hits = ok[np.argsort(-concept[ok], kind="stable")][:500]
    found = relevant[hits]
    p20 = float(found[:20].sum() / 20)  # fewer than 20 results count as misses
    precision = float(found.mean()) if len(hits) else 0.0
    return p20, len(hits), precision, float(found.sum() / max(1, relevant.sum()))


def quality(sets: dict[str, tuple[Path, dict[str, list[str]]]]) -> None:
    print("| set | word | matches | P@20 | returned | precision | recall "
          "| P@20 concepts only | recall concepts only |")
    print("|---|---|---|---|---|---|---|---|---|")
    vocab = vocabulary()
    for name, (path, words) in sets.items():
        with Library(path, create=False) as library:
            run, ids, scores, folders = _arrays(library)
            index = NeighborIndex(run.embeddings, exact_limit=None)
            for word, wanted in words.items():
                query = word_search.read_query([word], vocab)
                concept = word_search.concept_scores(query.matches, ids, scores)
                relevant = np.isin(folders, wanted)
                p20, n, prec, rec = _measure(concept, run.embeddings, index, relevant, True)
                c20, _, _, crec = _measure(concept, run.embeddings, index, relevant, False)
                how = query.matches[0].via if query.matches else "unknown"
                size = len(query.matches[0].classes) if query.matches else 0
                print(f"| {name} | {word} | {size} classes ({how}) | {p20:.2f} | {n} "
                      f"| {prec:.2f} | {rec:.2f} | {c20:.2f} | {crec:.2f} |")


def sheets(library_dir: Path, out: Path, words: list[str], count: int = 20) -> None:
    """A contact sheet (5 x 4 thumbnails) of each word's first results, to judge by eye."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    with Library(library_dir, create=False) as library:
        for word in words:
            result = word_search.search_library(library, [word], limit=count)
            sheet = Image.new("RGB", (5 * 160, 4 * 160), "white")
            for i, path in enumerate(result.paths):
                with Image.open(path) as image:
                    image.thumbnail((156, 156))
                    sheet.paste(image.convert("RGB"), (160 * (i % 5), 160 * (i // 5)))
            sheet.save(out / f"{word}.png")
            print(f"{word}: {len(result.paths)} shown, {out / f'{word}.png'}")
            for rank, (path, score) in enumerate(zip(result.paths, result.scores,
                                                     strict=True)):
                print(f"  {rank + 1:2d} {score:.2f} {Path(path).name}")


def cost(library_dir: Path, repeats: int = 5) -> None:
    """Seconds the word index adds to a first map (the class scores of every photo from the
    pass's features, and their file) against the run's scan + decode + embed + map stages.
    The features are stand-ins of the real ones' size; the file goes to a scratch folder
    (the library's own class scores are left alone)."""
    import tempfile

    from photoatlas.core.encode.model import build_encoder
    from photoatlas.core.storage import save_npz_atomic

    with Library(library_dir, create=False) as library:
        run = library.current_run()
    encoder = build_encoder("efficientnet_lite0", True, 224)
    raw = np.random.default_rng(0).random((len(run.cache_rows), 1280), np.float32)
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(repeats):
            t0 = time.perf_counter()
            rows = class_scores(encoder, raw, run.cache_rows)
            save_npz_atomic(Path(scratch) / "concepts.npz", cache_rows=rows.cache_rows,
                            ids=rows.ids, scores=rows.scores)
            times.append(time.perf_counter() - t0)
    stages = run.report.stage_seconds
    first_map = sum(stages.get(s, 0.0) for s in ("scan", "decode", "embed", "map"))
    added = statistics.median(times)
    print(f"{len(raw)} photos: class scores + their file {added:.3f} s (median of "
          f"{repeats}); first map (scan+decode+embed+map) {first_map:.1f} s "
          f"({stages}); {100 * added / first_map:.2f} %")


def scale(photos: int, dim: int = 1280, queries: int = 20) -> None:
    """Query time at ``photos`` synthetic rows: random top-K classes and probabilities,
    clustered unit embeddings, the window's IVF index and the class scores' inverted index
    (each built once per map, not timed)."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, (photos, TOP_K)).astype(np.uint16)
    scores = np.sort(rng.dirichlet(np.ones(TOP_K + 5), photos)[:, :TOP_K], 1)[:, ::-1]
    centres = rng.normal(size=(200, dim)).astype(np.float32)
    emb = centres[rng.integers(0, 200, photos)] + 0.5 * rng.normal(size=(photos, dim)).astype(
        np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    t0 = time.perf_counter()
    index = NeighborIndex(emb)
    print(f"{photos} photos: index built in {time.perf_counter() - t0:.1f} s "
          f"({'exact' if index.exact else 'IVF'})")
    ids, scores = ids.astype(np.int64), scores.astype(np.float32)  # as ``aligned`` gives
    t0 = time.perf_counter()
    concepts = word_search.ConceptIndex.build(ids, scores)
    print(f"class scores inverted in {time.perf_counter() - t0:.2f} s (once per map)")
    words = ["dog", "bird", "vehicle", "building", "beach", "snow", "church", "car"]
    for word in words:  # the vocabulary's first look-ups (once per process) are not timed
        word_search.read_query([word])
    times, parts = [], []
    for i in range(queries):
        t0 = time.perf_counter()
        query = word_search.read_query([words[i % len(words)]])
        concept = concepts.concept_scores(query.matches)
        t1 = time.perf_counter()
        word_search.rank_by_words(concept, emb, index)
        times.append(1000 * (time.perf_counter() - t0))
        parts.append(1000 * (t1 - t0))
    print(f"query: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
          f"({queries} queries; the concept scores alone: median "
          f"{statistics.median(parts):.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--imagenette", type=Path)
    q.add_argument("--imagenette32", type=Path)
    q.add_argument("--paris", type=Path)
    s = sub.add_parser("sheets")
    s.add_argument("--library", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("words", nargs="+")
    c = sub.add_parser("cost")
    c.add_argument("--library", type=Path, required=True)
    g = sub.add_parser("scale")
    g.add_argument("--photos", type=int, default=100_000)
    args = parser.parse_args()
    if args.what == "quality":
        sets = {"imagenette": (args.imagenette, IMAGENETTE),
                "imagenette 32 px": (args.imagenette32, IMAGENETTE),
                "paris": (args.paris, PARIS)}
        quality({k: v for k, v in sets.items() if v[0] is not None})
    elif args.what == "sheets":
        sheets(args.library, args.out, args.words)
    elif args.what == "cost":
        cost(args.library)
    else:
        scale(args.photos)


if __name__ == "__main__":
    main()
