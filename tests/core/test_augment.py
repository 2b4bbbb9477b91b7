"""Batched SimCLR augmentations: shapes, determinism, and each transform's defining property."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import photoatlas.core.encode.augment as augment
from photoatlas.core.encode.augment import (
    _RGB2YIQ,
    AugmentConfig,
    color_jitter,
    crop_boxes,
    gaussian_blur,
    resize_batch,
    simclr_pair,
    simclr_view,
)

OFF = dict(jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=0.0)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _noise(n: int = 4, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=_gen(seed), dtype=torch.uint8)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("c,nchw->nhw", _RGB2YIQ[0], x)


@pytest.fixture(scope="module")
def real_pixels(photo_dir: Path) -> torch.Tensor:
    """Four real photos (two classes), centre 96 px squares as uint8 (4, 3, 96, 96)."""
    files = (sorted((photo_dir / "n01440764").glob("*.JPEG"))[:2]
             + sorted((photo_dir / "n03888257").glob("*.JPEG"))[:2])
    arrays = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB").resize((96, 96), Image.Resampling.BICUBIC)
            arrays.append(np.asarray(im).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays))


@pytest.mark.parametrize("resolution", [32, 64, 96, 128])
def test_simclr_view_shape_dtype_range(resolution):
    out = simclr_view(_noise(), resolution, AugmentConfig(), _gen())
    assert out.shape == (4, 3, resolution, resolution)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1 + 1e-6


def test_simclr_view_range_is_exactly_unit_interval():
    x = _noise(8, 64)
    for seed in range(30):
        out = simclr_view(x, 96, AugmentConfig(), _gen(seed))
        assert out.min() >= 0 and out.max() <= 1


def test_simclr_view_on_real_photos(real_pixels):
    out = simclr_view(real_pixels, 64, AugmentConfig(), _gen(3))
    assert out.shape == (4, 3, 64, 64)
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    # A view of a photo still resembles the photo on average (crop + jitter, not noise).
    plain = resize_batch(real_pixels, 64)
    assert (out.mean(dim=(1, 2, 3)) - plain.mean(dim=(1, 2, 3))).abs().max() < 0.35


def test_same_seed_same_output_different_seed_differs():
    x = _noise()
    cfg = AugmentConfig()
    a = simclr_view(x, 96, cfg, _gen(42))
    b = simclr_view(x, 96, cfg, _gen(42))
    c = simclr_view(x, 96, cfg, _gen(43))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_consecutive_views_differ():
    x = _noise()
    gen = _gen(5)
    assert not torch.allclose(simclr_view(x, 64, AugmentConfig(), gen),
                              simclr_view(x, 64, AugmentConfig(), gen))


def test_each_sample_gets_its_own_crop(real_pixels):
    same = real_pixels[:1].expand(6, -1, -1, -1).contiguous()
    out = simclr_view(same, 64, AugmentConfig(**OFF), _gen(1))
    for i in range(6):
        for j in range(i + 1, 6):
            assert (out[i] - out[j]).abs().mean() > 1e-3, (i, j)


def test_each_sample_gets_its_own_jitter(real_pixels):
    same = real_pixels[:1].expand(6, -1, -1, -1).contiguous()
    cfg = AugmentConfig(**{**OFF, "jitter_p": 1.0})
    out = color_jitter(resize_batch(same, 32), cfg, _gen(2))
    means = out.mean(dim=(2, 3))  # (6, 3)
    assert torch.cdist(means, means).add(torch.eye(6)).min() > 1e-4


def test_no_augmentation_full_crop_is_plain_resize(real_pixels, monkeypatch):
    """With every random transform off and a full-image box, a view is a resize."""

    def full_boxes(n, size, cfg, gen):
        crop_boxes(n, size, cfg, gen)  # keep the generator's draws the same
        return torch.tensor([[0.0, 0.0, size, size]]).repeat(n, 1)

    monkeypatch.setattr(augment, "crop_boxes", full_boxes)
    cfg = AugmentConfig(**OFF, min_scale=1.0, max_scale=1.0)
    for resolution in (48, 96):
        out = simclr_view(real_pixels, resolution, cfg, _gen(0))
        plain = resize_batch(real_pixels, resolution)
        assert (out - plain).abs().mean() < 0.015
        assert (out - plain).abs().max() < 0.3


def test_full_scale_crop_is_plain_resize(real_pixels):
    cfg = AugmentConfig(**OFF, min_scale=1.0, max_scale=1.0)
    out = simclr_view(real_pixels, 96, cfg, _gen(0))
    plain = resize_batch(real_pixels, 96)
    assert (out - plain).abs().mean() < 0.015
    assert (out - plain).abs().max() < 0.3


def test_small_views_from_a_large_cache_match_a_plain_resize(photo_dir):
    """A 224 px cache is shrunk before cropping 32 px views: still a faithful resize."""
    files = sorted((photo_dir / "n03888257").glob("*.JPEG"))[:4]
    big = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB").resize(
        (224, 224))).transpose(2, 0, 1) for f in files]))
    cfg = AugmentConfig(**OFF, min_scale=1.0, max_scale=1.0)
    out = simclr_view(big, 32, cfg, _gen(0))
    assert (out - resize_batch(big, 32)).abs().mean() < 0.01


def test_simclr_pair_rows_are_two_views_of_the_same_photo(real_pixels):
    pair = simclr_pair(real_pixels, 64, AugmentConfig(**OFF, min_scale=1.0), _gen(0))
    assert pair.shape == (8, 3, 64, 64)
    # With no randomness left, view A and view B of photo i are identical, and photos differ.
    assert torch.allclose(pair[:4], pair[4:], atol=1e-6)
    assert not torch.allclose(pair[0], pair[2])
    different = simclr_pair(real_pixels, 64, AugmentConfig(), _gen(0))
    assert not torch.allclose(different[:4], different[4:])


def test_simclr_pair_with_partners_pairs_each_photo_with_its_partner(real_pixels):
    cfg = AugmentConfig(**OFF, min_scale=1.0)
    partners = real_pixels[[1, 0, 3, 2]]
    pair = simclr_pair(real_pixels, 64, cfg, _gen(0), partners)
    assert torch.allclose(pair[:4], simclr_pair(real_pixels, 64, cfg, _gen(0))[:4], atol=1e-6)
    assert torch.allclose(pair[4:], simclr_pair(partners, 64, cfg, _gen(0))[4:], atol=1e-6)


def _stepwise_jitter(x: torch.Tensor, b: float, c: float, s: float, hue_turns: float
                     ) -> torch.Tensor:
    """Slow reference of one sample's jitter, each step written out (no clamping)."""
    x = x * b
    x = c * x + (1 - c) * _luma(x[None]).mean()
    x = s * x + (1 - s) * _luma(x[None])[0]
    yiq = torch.einsum("ij,jhw->ihw", _RGB2YIQ, x)
    a = hue_turns * 2 * math.pi
    i, q = yiq[1] * math.cos(a) - yiq[2] * math.sin(a), yiq[1] * math.sin(a) + yiq[2] * math.cos(a)
    return torch.einsum("ij,jhw->ihw", torch.linalg.inv(_RGB2YIQ), torch.stack([yiq[0], i, q]))


def test_jitter_transform_equals_the_four_steps_one_after_another():
    gen = _gen(5)
    # Mid-grey colours: no step pushes a pixel out of [0, 1], so the clamps never act.
    x = 0.4 + 0.2 * torch.rand(6, 3, 8, 8, generator=gen)
    cfg = AugmentConfig(jitter_p=1.0, brightness=0.2, contrast=0.3, saturation=0.4, hue=0.1)
    out = color_jitter(x, cfg, _gen(7))
    # Replay the generator's draws in the order jitter_transform makes them.
    g = _gen(7)
    torch.rand(6, generator=g)
    draws = [0.8 + 0.4 * torch.rand(6, generator=g), 0.7 + 0.6 * torch.rand(6, generator=g),
             0.6 + 0.8 * torch.rand(6, generator=g), -0.1 + 0.2 * torch.rand(6, generator=g)]
    for i in range(6):
        expected = _stepwise_jitter(x[i], *(float(d[i]) for d in draws))
        assert torch.allclose(out[i], expected.clamp(0, 1), atol=1e-5), i


def test_gaussian_blur_leaves_unchosen_samples_untouched():
    x = torch.rand(16, 3, 96, 96, generator=_gen(0))
    out = gaussian_blur(x, AugmentConfig(blur_p=0.5), _gen(3))
    g = _gen(3)
    torch.rand(16, generator=g)  # the sigmas
    chosen = torch.rand(16, generator=g) < 0.5
    assert 0 < chosen.sum() < 16
    assert torch.equal(out[~chosen], x[~chosen])
    assert ((out[chosen] - x[chosen]).abs().amax(dim=(1, 2, 3)) > 1e-6).any()


def test_crop_boxes_respect_area_and_aspect():
    size = 64
    for lo, hi in ((0.2, 1.0), (0.9, 1.0), (1.0, 1.0)):
        cfg = AugmentConfig(min_scale=lo, max_scale=hi)
        boxes = crop_boxes(2000, size, cfg, _gen(0))
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        area = w * h / size**2
        assert area.min() >= lo - 1e-4 and area.max() <= hi + 1e-4, (lo, hi, float(area.min()))
        assert (w / h).min() >= 3 / 4 - 1e-4 and (w / h).max() <= 4 / 3 + 1e-4


def test_crop_boxes_inside_image():
    size = 64
    boxes = crop_boxes(2000, size, AugmentConfig(), _gen(0))
    assert boxes.shape == (2000, 4)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= size + 1e-4).all()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (w > 0).all() and (h > 0).all()
    assert (w / h).min() >= 3 / 4 - 1e-4 and (w / h).max() <= 4 / 3 + 1e-4
    area = w * h / size**2
    assert area.min() >= 0.2 - 1e-4 and area.max() <= 1 + 1e-4


@pytest.mark.parametrize("resolution", [32, 128])
def test_gray_p_one_gives_equal_channels(real_pixels, resolution):
    cfg = AugmentConfig(gray_p=1.0)  # jitter and blur on: gray comes after jitter, blur is
    out = simclr_view(real_pixels, resolution, cfg, _gen(4))  # the same for every channel
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6)
    assert torch.allclose(out[:, 1], out[:, 2], atol=1e-6)


@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("others", [OFF, {}])
def test_flip_p_one_mirrors_flip_p_zero(real_pixels, resolution, others):
    """Same seed: the same boxes and colour draws; flipping is the only difference, and
    jitter and a symmetric blur commute with a horizontal flip."""
    base = {**others, "min_scale": 0.5}
    unflipped = simclr_view(real_pixels, resolution, AugmentConfig(**{**base, "flip_p": 0.0}),
                            _gen(9))
    flipped = simclr_view(real_pixels, resolution, AugmentConfig(**{**base, "flip_p": 1.0}),
                          _gen(9))
    assert not torch.allclose(flipped, unflipped, atol=1e-3)
    assert torch.allclose(flipped, unflipped.flip(3), atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    dict(min_scale=0.0), dict(min_scale=0.8, max_scale=0.5), dict(max_scale=1.5),
    dict(min_scale=-0.1), dict(flip_p=1.5), dict(jitter_p=-0.1), dict(gray_p=2.0),
    dict(blur_p=-1.0), dict(hue=0.6), dict(hue=-0.1),
])
def test_augment_config_validation(kwargs):
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)


def test_gaussian_blur_reduces_variance_of_noise():
    x = torch.rand(8, 3, 224, 224, generator=_gen(0))
    out = gaussian_blur(x, AugmentConfig(blur_p=1.0), _gen(1))
    assert out.shape == x.shape
    var_in, var_out = x.var(dim=(2, 3)), out.var(dim=(2, 3))
    assert (var_out <= var_in + 1e-6).all()
    assert var_out.mean() < 0.6 * var_in.mean()
    # A normalised kernel with reflect padding keeps each channel's mean.
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=2e-3)


def test_gaussian_blur_off_is_identity():
    x = torch.rand(4, 3, 96, 96, generator=_gen(0))
    out = gaussian_blur(x, AugmentConfig(blur_p=0.0), _gen(1))
    assert torch.allclose(out, x, atol=1e-6)


def test_gaussian_blur_not_applied_below_min_resolution():
    x = _noise(4, 64)
    cfg = AugmentConfig(**{**OFF, "blur_p": 1.0}, blur_min_resolution=96)
    no_blur = simclr_view(x, 64, AugmentConfig(**OFF), _gen(0))
    assert torch.allclose(simclr_view(x, 64, cfg, _gen(0)), no_blur, atol=1e-6)


def test_hue_jitter_keeps_luma():
    # Mildly saturated colours stay inside [0, 1] under any hue rotation, so no clamping.
    gen = _gen(0)
    gray = 0.3 + 0.4 * torch.rand(6, 1, 32, 32, generator=gen)
    x = (gray + 0.1 * (torch.rand(6, 3, 32, 32, generator=gen) - 0.5)).clamp(0, 1)
    cfg = AugmentConfig(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5)
    out = color_jitter(x.clone(), cfg, _gen(1))
    assert not torch.allclose(out, x, atol=1e-3)  # colours did change
    assert torch.allclose(_luma(out), _luma(x), atol=1e-5)


def test_hue_jitter_keeps_luma_of_real_photos(real_pixels):
    x = resize_batch(real_pixels, 48)
    cfg = AugmentConfig(jitter_p=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.1)
    out = color_jitter(x.clone(), cfg, _gen(2))
    # Clamping saturated pixels is the only change in luma.
    assert (_luma(out) - _luma(x)).abs().mean() < 0.01


def test_color_jitter_off_is_identity():
    x = torch.rand(3, 3, 16, 16, generator=_gen(0))
    out = color_jitter(x.clone(), AugmentConfig(jitter_p=0.0), _gen(1))
    assert torch.allclose(out, x, atol=1e-5)


def test_resize_batch():
    x = _noise(2, 64)
    out = resize_batch(x, 32)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    same = resize_batch(x, 64)
    assert torch.equal(same, x.float() / 255)
    assert math.isclose(float(resize_batch(x, 128).mean()), float(same.mean()), abs_tol=0.01)
