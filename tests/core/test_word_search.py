"""Find photos by words: the WordNet vocabulary (offline), the class scores stored by the
start pass, the ranking, and ``photoatlas search`` on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _untrained_index import small_class_library

from photoatlas.core.cli.commands import main as cli_main
from photoatlas.core.encode.concepts import TOP_K, class_scores, read_concepts
from photoatlas.core.encode.embed import encoder_features
from photoatlas.core.encode.features import start_embeddings
from photoatlas.core.encode.model import build_model
from photoatlas.core.library.cache import CachedRows
from photoatlas.core.library.library import CACHE_SIZE, Library
from photoatlas.core.organize.vocabulary import vocabulary
from photoatlas.core.organize.word_search import (
    concept_scores,
    rank_by_words,
    read_query,
    search_library,
)

DOG, CHURCH, GOLF, CHUTE = "n02102040", "n03028079", "n03445777", "n03888257"
PER_CLASS = 6


@pytest.fixture(scope="module")
def library(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Six photos each of a dog breed, churches, golf balls and parachutes, embedded by the
    start pass (which stores the class scores) over an untrained run."""
    library_dir, photos = small_class_library(
        photo_dir, tmp_path_factory.mktemp("word_photos"),
        tmp_path_factory.mktemp("word_lib") / "library", (DOG, CHURCH, GOLF, CHUTE), PER_CLASS)
    with Library(library_dir, create=False) as lib:
        run = lib.current_run()
        model = build_model("efficientnet_lite0", True, CACHE_SIZE)
        start, _ = start_embeddings(lib, model, "efficientnet_lite0",
                                    CachedRows(lib.pixels.array(), run.cache_rows),
                                    torch.device("cpu"), "fp32")
    return library_dir, photos, start


def test_the_hierarchy_is_shipped_and_covers_every_breed_and_kind() -> None:
    vocab = vocabulary()
    names = {w: {vocab.class_name(c) for c in vocab.match(w).classes}
             for w in ("dog", "bird", "vehicle", "building")}
    assert len(names["dog"]) > 100 and {"English springer", "Chihuahua"} <= names["dog"]
    assert len(names["bird"]) > 50 and "goldfinch" in names["bird"]
    assert {"garbage truck", "sports car", "mountain bike"} <= names["vehicle"]
    assert {"church", "palace"} <= names["building"]
    assert vocab.match("Churches").word == "church"  # case and plural
    assert vocab.match("tinca tinca").classes.tolist() == [0]  # a synonym (tench)
    beach = vocab.match("beach")  # part of a shore: seashore, lakeside
    assert beach.via == "part of shore" and "seashore" in {
        vocab.class_name(c) for c in beach.classes}
    assert vocab.match("xyzzy") is None
    assert "dog" in vocabulary().known_words() and "tower" in vocab.near("towr")


def test_a_phrase_is_one_concept_and_unknown_words_are_named() -> None:
    assert [m.word for m in read_query(["golf", "ball"]).matches] == ["golf ball"]
    query = read_query(["dog", "xyzzy"])
    assert not query.ok and query.unknown == ("xyzzy",)
    assert "'xyzzy' is not a known word" in query.explain(vocabulary())


def test_neighbours_of_the_best_hits_rise_with_them() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 64)).astype(np.float32)
    emb[1] = emb[0] + 0.05 * rng.normal(size=64)  # a near twin the classifier missed
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    concept = np.array([0.9, 0.0, 0.3, 0.0, 0.0, 0.0], np.float32)
    hits = rank_by_words(concept, emb)
    assert hits.rows.tolist()[:3] == [0, 1, 2]
    assert hits.concept[1] == 0 and 0.5 < hits.scores[1] <= 0.9
    assert 3 not in hits.rows.tolist()


def test_the_inverted_class_scores_give_the_same_scores_and_nprobe_is_per_query() -> None:
    from photoatlas.core.atlas.search import NeighborIndex
    from photoatlas.core.organize.word_search import ConceptIndex

    rng = np.random.default_rng(1)
    ids = rng.integers(0, 1000, (500, TOP_K))
    scores = rng.random((500, TOP_K)).astype(np.float32)
    index = ConceptIndex.build(ids, scores)
    for words in (["church"], ["dog"], ["entity"], ["dog", "beach"]):  # narrow to all 1,000
        matches = read_query(words).matches
        np.testing.assert_allclose(index.concept_scores(matches),
                                   concept_scores(matches, ids, scores), atol=1e-5)
    emb = rng.normal(size=(500, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ivf = NeighborIndex(emb, exact_limit=100)
    near, _ = ivf.query(emb[:3], 5, nprobe=1)
    assert near.shape == (3, 5) and ivf.ann.nprobe > 1  # the index's own setting stays


def test_the_start_pass_stores_class_scores_beside_unchanged_embeddings(library) -> None:
    library_dir, photos, start = library
    with Library(library_dir, create=False) as lib:
        run = lib.current_run()
        ids, scores, has = read_concepts(lib).aligned(run.cache_rows)
    assert has.all() and ids.shape == (len(run.cache_rows), TOP_K)
    np.testing.assert_allclose(start, run.embeddings, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all() and (scores.sum(1) <= 1.001).all()
    golf = np.array([Path(p).parent.name == GOLF for p in run.paths])
    assert (ids[golf, 0] == 574).mean() >= 0.8  # the class order is ImageNet's: golf ball


def test_the_onnx_fast_path_gives_the_same_class_scores(library) -> None:
    library_dir, _, _ = library
    model = build_model("efficientnet_lite0", True, CACHE_SIZE)
    with Library(library_dir, create=False) as lib:
        rows = lib.current_run().cache_rows
        pixels = CachedRows(lib.pixels.array(), rows)
        eager = encoder_features(model, pixels, CACHE_SIZE, torch.device("cpu"),
                                 precision="fp32", fast_cpu=False)
        fast = encoder_features(model, pixels, CACHE_SIZE, torch.device("cpu"),
                                precision="fp32", fast_cpu=True)
    a, b = class_scores(model.encoder, eager, rows), class_scores(model.encoder, fast, rows)
    assert (a.ids[:, 0] == b.ids[:, 0]).all()
    np.testing.assert_allclose(a.scores.astype(np.float32), b.scores.astype(np.float32),
                               atol=2e-3)


@pytest.mark.slow
def test_search_finds_the_folders_photos_first(library, capsys) -> None:
    library_dir, photos, _ = library
    for words, folder in ((["dog"], DOG), (["building"], CHURCH), (["golf", "ball"], GOLF)):
        assert cli_main(["search", "--library", str(library_dir), *words, "-k", "30",
                         "--json"]) == 0
        found = [Path(p["path"]).parent.name for p in json.loads(capsys.readouterr().out)[
            "photos"]]
        assert found[:PER_CLASS] == [folder] * PER_CLASS, (words, found)
    with Library(library_dir, create=False) as lib:
        result = search_library(lib, ["parachutes"])
        assert result.unscored == 0
        assert {Path(p).parent.name for p in result.paths[:PER_CLASS]} == {CHUTE}
        assert concept_scores(result.query.matches, np.zeros((1, TOP_K), np.int64),
                              np.zeros((1, TOP_K), np.float32)).tolist() == [0.0]


def test_an_unknown_word_says_what_is_known(library, capsys) -> None:
    library_dir, _, _ = library
    assert cli_main(["search", "--library", str(library_dir), "chruch"]) == 1
    out = capsys.readouterr().out
    assert "'chruch' is not a known word" in out and "church" in out
    assert cli_main(["search", "--library", str(library_dir), "--known", "chu"]) == 0
    assert "church" in capsys.readouterr().out.split()


def test_clusters_are_named_by_what_they_show_when_folders_do_not_tell() -> None:
    from dataclasses import replace

    from photoatlas.core.library.exif import PhotoExif
    from photoatlas.core.organize.cluster_concepts import distinctive_concepts
    from photoatlas.core.organize.describe import describe_arrays, distinct_names

    vocab = vocabulary()
    shore, sandbar, church, palace = (vocab.match(w).classes[0] for w in
                                      ("seashore", "sandbar", "church", "palace"))
    # Three clusters in one folder: beaches, churches and photos the classifier is unsure of.
    ids = np.zeros((30, TOP_K), np.int64)
    scores = np.zeros((30, TOP_K), np.float32)
    ids[:10, :2], scores[:10, :2] = (shore, sandbar), (0.5, 0.3)
    ids[10:20, :2], scores[10:20, :2] = (church, palace), (0.6, 0.2)
    ids[20:, :2], scores[20:, :2] = (shore, church), (0.3, 0.3)  # a bit of both
    labels = np.repeat([0, 1, 2], 10)
    shows = distinctive_concepts(ids, scores, np.ones(30, bool), labels)
    assert {c: set(v) for c, v in shows.items()} == {0: {"seashore", "sandbar"},
                                                     1: {"church", "palace"}, 2: set()}
    emb = np.eye(30, 8, dtype=np.float32) + 1e-3
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    described = describe_arrays(emb, labels, np.arange(30),
                                [f"/me/photos/p{i}.jpg" for i in range(30)],
                                [PhotoExif()] * 30, per_cluster=1, concepts=shows)
    names = distinct_names(described)
    assert set(names[0].split(" · ")) == {"seashore", "sandbar"}
    assert set(names[1].split(" · ")) == {"church", "palace"}
    assert names[2].startswith("like p2")  # no clear concept: today's fallback
    renamed = [replace(d, name="Holidays") if d.cluster == 0 else d for d in described]
    assert "Holidays" in renamed[[d.cluster for d in renamed].index(0)].summary


def test_auto_keywords_are_opt_in_and_marked(library, capsys) -> None:
    from photoatlas.core.organize.xmp import library_keywords, sidecar_path

    library_dir, photos, _ = library
    with Library(library_dir, create=False) as lib:
        assert all(not k.auto for k in library_keywords(lib)[0].values())  # never by default
        keywords, _ = library_keywords(lib, auto_keywords=True)
    golf = [keywords.get(str(p)) for p in photos[GOLF]]
    assert sum(k is not None and k.auto == ("golf ball",) for k in golf) >= PER_CLASS - 1
    sure = next(k for k in golf if k is not None)
    assert "auto/golf ball" in sure.flat and "PhotoAtlas|auto|golf ball" in sure.hierarchical
    assert cli_main(["xmp", "--library", str(library_dir)]) == 0
    assert not any(sidecar_path(p).exists() for p in photos[GOLF])
    assert cli_main(["xmp", "--library", str(library_dir), "--auto-keywords"]) == 0
    written = [sidecar_path(p) for p in photos[GOLF] if sidecar_path(p).exists()]
    assert written and "auto/golf ball" in written[0].read_text()


def test_photos_added_by_update_are_found_by_words(library, photo_dir: Path) -> None:
    import shutil

    from photoatlas.core.pipeline.update import update_library

    library_dir, photos, _ = library
    root = photos[DOG][0].parents[1]
    tench = sorted((photo_dir / "n01440764").iterdir())[:2]
    (root / "n01440764").mkdir()
    for src in tench:
        shutil.copy(src, root / "n01440764" / src.name)
    with Library(library_dir, create=False) as lib:
        assert update_library(lib, device="cpu").images.added_to_map == 2
        result = search_library(lib, ["fish"])
    assert result.unscored == 0
    assert {Path(p).name for p in result.paths[:2]} == {p.name for p in tench}
