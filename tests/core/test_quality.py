"""Label-free measures behave as their definitions say."""

from __future__ import annotations

import numpy as np

from photoatlas.core.learn.check import (
    Decision,
    PhotoMeasures,
    alignment,
    chance_of_at_most,
    decide_kind,
    decide_scene,
    fell_beyond_noise,
    instance_hits,
    neighbor_agreement,
    neighborhood_overlap,
    rose_beyond_noise,
    uniformity,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_neighbor_agreement_is_one_for_identical_views_and_low_for_unrelated_ones():
    rng = np.random.default_rng(0)
    a = _unit(rng.normal(size=(200, 16)))
    assert neighbor_agreement(a, a) == 1.0
    unrelated = _unit(rng.normal(size=(200, 16)))
    assert neighbor_agreement(a, unrelated) < 0.1
    # Slightly perturbed views keep most neighbourhoods.
    close = _unit(a + 0.05 * rng.normal(size=a.shape))
    assert neighbor_agreement(a, close) > 0.5


def test_alignment_and_uniformity():
    rng = np.random.default_rng(1)
    a = _unit(rng.normal(size=(300, 8)))
    assert alignment(a, a) == 0.0
    assert np.isclose(alignment(a, -a), 4.0)
    spread = uniformity(a)
    collapsed = uniformity(_unit(np.ones((300, 8)) + 1e-3 * rng.normal(size=(300, 8))))
    assert spread < collapsed <= 0.0  # lower is more uniform; a collapsed set scores ~0


def test_instance_hits_and_neighbourhood_overlap():
    rng = np.random.default_rng(2)
    library = _unit(rng.normal(size=(100, 16)))
    rows = np.arange(0, 100, 5)
    close = _unit(library[rows] + 0.05 * rng.normal(size=(20, 16)))
    assert instance_hits(close, library, rows).all()
    assert not instance_hits(_unit(rng.normal(size=(20, 16))), library, rows).all()
    assert neighborhood_overlap(library, library, rows) == 1.0
    assert neighborhood_overlap(library, _unit(rng.normal(size=(100, 16))), rows) < 0.2


def test_the_sign_test_matches_a_simulated_coin_and_knows_noise_from_loss():
    rng = np.random.default_rng(3)
    for gained, trials in ((1, 4), (0, 10), (3, 12), (7, 7)):
        coins = rng.integers(0, 2, size=(200_000, trials)).sum(1)
        assert abs(chance_of_at_most(gained, trials) - (coins <= gained).mean()) < 0.005
    assert not fell_beyond_noise(1, 3)  # +1/-3 of a sample: chance gives it 31 % of the time
    assert fell_beyond_noise(0, 10)  # +0/-10: 0.1 %
    assert not fell_beyond_noise(0, 0) and not fell_beyond_noise(5, 0)


def test_a_rise_counts_only_above_the_margin_and_the_sample_noise():
    rng = np.random.default_rng(4)
    before = rng.uniform(0.3, 0.6, 200)
    assert rose_beyond_noise(before, before + 0.03 + 0.01 * rng.normal(size=200), 0.01)
    assert not rose_beyond_noise(before, before + 0.005, 0.01)  # below the margin
    noisy = before + 0.02 + 0.5 * rng.normal(size=200)  # the mean rises, within noise
    assert not rose_beyond_noise(before, noisy, 0.01)
    assert not rose_beyond_noise(before[:1], before[:1] + 1, 0.01)


def test_each_similarity_is_kept_only_where_it_wins():
    rng = np.random.default_rng(5)
    hits = np.ones(200, bool)
    agreement = rng.uniform(0.3, 0.6, 200)
    before = PhotoMeasures(agreement, hits)
    better = PhotoMeasures(agreement + 0.05, hits)
    assert decide_kind(before, better, 0.7) == Decision("adapted", ())
    assert decide_kind(before, better, 0.3).reasons == ("overlap",)
    assert decide_kind(before, PhotoMeasures(agreement + 0.004, hits), 0.7).reasons == \
        ("agreement",)
    assert decide_scene(5, 2) == Decision("adapted", ())
    assert decide_scene(3, 3).reasons == ("instance",)
    assert decide_scene(0, 10).reasons == ("instance", "instance_fell")


def test_the_verdict_says_per_similarity_what_changed_in_words() -> None:
    from photoatlas.core.report import CheckResult, Measures, RunReport

    before, after = Measures(0.64, 0.5, -2.0, 0.83), Measures(0.73, 0.4, -2.1, 0.845)
    kind = CheckResult("adapted", after, before, 0.7, 0, 6, (), 200, "kind")
    scene = CheckResult("adapted", after, before, 0.8, 3, 0, (), 200, "scene")
    report = RunReport(1, "done", "CPU", {}, {}, {}, 3, {}, check=kind, scene_check=scene)
    assert report.verdict() == (
        "Same kind of thing: better (reframed photos kept their nearest photos 64% of the "
        "time before, 73% after); the map uses what it learnt. Same scene: better (169 of "
        "200 test photos found their own shot first among all photos, 166 before); Find "
        "similar uses what it learnt.")
    assert "own shot first 0.830 -> 0.845 (+3/-0 of 200)" in report.details()
    moved = CheckResult("start", after, before, 0.3, 0, 0, ("overlap",), 200, "kind")
    assert "changed too much" in moved.verdict() and "untrained encoder" in moved.verdict()
    flat = CheckResult("start", before, before, 0.9, 0, 0, ("agreement",), 200, "kind")
    assert flat.verdict().startswith("Same kind of thing: no clear gain")
    fell = CheckResult("start", before, after, 0.9, 0, 10, ("instance", "instance_fell"), 200,
                       "scene")
    assert fell.verdict().startswith("Same scene: worse (166 of 200")
    again = RunReport.from_dict(report.to_dict())
    assert again.scene_check == scene and again.verdict() == report.verdict()
