"""The map: laid out in a child process when asked, with the same result, and cancellable;
its clusters: big ones split, noise at a cluster's edge joined to it."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.atlas.layout import build_atlas, cluster, join_noise
from photoatlas.core.jobs import Cancelled, CancelToken


def blobs(n: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    x = centres[rng.integers(0, 4, n)] + 0.2 * rng.normal(size=(n, 32))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_a_child_process_lays_out_the_same_map_and_is_killed_on_cancel() -> None:
    x = blobs()
    here = build_atlas(x, MapConfig(seed=3))
    token = CancelToken()
    token.cancel()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        build_atlas(x, MapConfig(seed=3, own_process_from=0), token)
    assert time.monotonic() - started < 10  # the child was terminated, not waited for
    child = build_atlas(x, MapConfig(seed=3, own_process_from=0))
    assert np.allclose(child.xy, here.xy) and np.array_equal(child.cluster, here.cluster)
    assert child.representatives == here.representatives


def test_own_process_threshold_is_validated() -> None:
    with pytest.raises(ValueError, match="own_process_from"):
        MapConfig(own_process_from=-1)


def two_families_of_five(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """10 blurred groups in two families of 5 close groups: a less crisp embedding, where
    plain HDBSCAN sees only the two families. Returns unit embeddings and group labels."""
    rng = np.random.default_rng(seed)
    families = 3 * rng.normal(size=(2, 64))
    centres = np.repeat(families, 5, 0) + 0.4 * rng.normal(size=(10, 64))
    groups = rng.integers(0, 10, n)
    x = centres[groups] + rng.normal(size=(n, 64))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), groups


def test_blurred_groups_get_a_useful_number_of_clusters() -> None:
    from sklearn.metrics import normalized_mutual_info_score

    x, groups = two_families_of_five()
    before = build_atlas(x, MapConfig(seed=0, max_cluster_share=None))
    atlas = build_atlas(x, MapConfig(seed=0))
    assert atlas.xy.shape == (len(x), 2)
    assert before.cluster.max() + 1 <= 3  # the families, not the groups
    found = atlas.cluster.max() + 1
    assert 4 <= found <= 20  # at least one family split into its groups
    assert normalized_mutual_info_score(groups, atlas.cluster) > normalized_mutual_info_score(
        groups, before.cluster)
    assert set(atlas.representatives) == set(range(found))


def test_the_same_seed_gives_the_same_clusters() -> None:
    x, _ = two_families_of_five(300, seed=1)
    cfg = MapConfig(seed=5, cluster_dims=5)
    first, second = build_atlas(x, cfg), build_atlas(x, cfg)
    assert np.array_equal(first.xy, second.xy) and np.array_equal(first.cluster, second.cluster)
    assert first.cluster.max() >= 1


def test_clustering_settings_are_validated() -> None:
    for bad in ({"max_cluster_share": 0}, {"max_cluster_share": 1.5},
                {"cluster_selection": "kmeans"}, {"cluster_dims": 1}, {"noise_reach": 0},
                {"min_samples": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MapConfig(**bad)


def test_a_cluster_over_the_size_cap_is_split_without_losing_photos_to_noise() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(2, 32))
    group = np.arange(120) % 2
    x = centres[group] + 0.05 * rng.normal(size=(120, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    cfg = MapConfig(seed=0)
    uncapped = build_atlas(x, replace(cfg, max_cluster_share=None)).cluster
    assert uncapped.max() + 1 == 2  # each group holds half the photos: over the 25 % cap
    labels = build_atlas(x, cfg).cluster
    assert labels.max() + 1 > 2
    assert np.array_equal(labels < 0, uncapped < 0)  # photos between parts join the nearest
    for c in range(labels.max() + 1):  # a part never mixes the groups
        assert len(set(group[labels == c])) == 1


def grid(spacing: float, corner: tuple[float, float]) -> np.ndarray:
    """10 x 10 points ``spacing`` apart, lower-left at ``corner``."""
    return np.stack(np.meshgrid(np.arange(10), np.arange(10)), -1).reshape(-1, 2) * spacing \
        + np.array(corner)


def test_noise_joins_the_nearest_cluster_within_reach_of_its_spacing() -> None:
    tight, sparse = grid(1.0, (0, 0)), grid(5.0, (100, 0))  # spacings 1 and 5
    noise = np.array([[-2.5, 0], [-5.0, 0], [88.0, 0], [75.0, 0], [50.0, 300]])
    space = np.concatenate([tight, sparse, noise])
    labels = np.repeat([0, 1, -1], [100, 100, 5])
    # k = 4: each grid photo's 4th nearest photo lies 1 spacing away (its 4 grid neighbours),
    # so the spacing is 1 and 5 and reach 3 means 3 and 15 from the nearest clustered photo.
    joined = join_noise(space, labels, k=4, reach=3.0)
    assert np.array_equal(joined[:200], labels[:200])  # clustered photos keep their label
    # 2.5 from the tight cluster joins it, 5.0 does not; 12 from the sparse one joins it, 25
    # does not; a photo far from both stays noise.
    assert joined[200:].tolist() == [0, -1, 1, -1, -1]
    assert (join_noise(space, labels, k=4, reach=2.0)[200:] == -1).all()
    assert np.array_equal(join_noise(space[:200], labels[:200], 4, 3.0), labels[:200])


def test_noise_reach_only_relabels_noise_near_clusters() -> None:
    rng = np.random.default_rng(0)
    # Two groups on the map, a thin halo of photos between them and two far outliers.
    xy = np.concatenate([rng.normal(size=(150, 2)), rng.normal(size=(150, 2)) + [12, 0],
                         rng.normal(size=(40, 2)) * 3 + [6, 0], [[6, 40], [-30, -30]]])
    cfg = MapConfig(min_cluster_size=20)
    embeddings = np.zeros((len(xy), 4), np.float32)  # unused: clusters on the 2-D map
    before = cluster(embeddings, xy.astype(np.float32), replace(cfg, noise_reach=None))
    after = cluster(embeddings, xy.astype(np.float32), cfg)
    assert (before < 0).sum() > (after < 0).sum() > 0  # some of the halo joined
    kept = before >= 0
    assert np.array_equal(after[kept], before[kept])  # nothing clustered moves or is dropped
    assert (after[-2:] == -1).all()  # the outliers stay noise
