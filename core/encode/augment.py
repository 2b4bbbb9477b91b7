"""SimCLR views made on the training device, a whole batch at a time.

Every sample gets its own random crop box, flip, colour jitter, grayscale and blur
drawn from an explicit ``torch.Generator`` (on the CPU, so the draws do not depend on the
device); no per-image Python loop, no PIL. The draws reach the device through
``core.encode.device.to_device`` and nothing is read back, so on CUDA making a view never waits
for the device (the next batch's views are made while this one trains).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from photoatlas.core.encode.device import to_device

# Rec. 601 luma weights, as torchvision's grayscale uses.
_LUMA = torch.tensor([0.299, 0.587, 0.114])


# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) chroma plane.
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114],
                         [0.596, -0.274, -0.322],
                         [0.211, -0.523, 0.312]])


_YIQ2RGB = torch.linalg.inv(_RGB2YIQ)


_TO_GRAY = torch.ones(3, 1) * _LUMA.view(1, 3)  # the linear map that sets every channel to luma


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the SimCLR augmentations (Chen et al. 2020 defaults, s = 1 jitter)."""

    min_scale: float = 0.2
    max_scale: float = 1.0
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_min_resolution: int = 96

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError("need 0 < min_scale <= max_scale <= 1")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1]")
        if not 0 <= self.hue <= 0.5:
            raise ValueError("hue must be in [0, 0.5]")


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def crop_boxes(n: int, size: int, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Random-resized-crop boxes (n, 4) as x1, y1, x2, y2 inside a size x size image:
    area fraction in [min_scale, max_scale], aspect ratio in [3/4, 4/3]."""
    scale = _uniform(n, cfg.min_scale, cfg.max_scale, gen)
    # Keep the aspect ratio where a crop of this area fits inside the image, so that the
    # area is never trimmed below min_scale.
    low = torch.clamp(torch.log(scale), min=math.log(3 / 4))
    high = torch.clamp(-torch.log(scale), max=math.log(4 / 3))
    ratio = torch.exp(low + (high - low) * torch.rand(n, generator=gen))
    area = scale * size * size
    w = torch.sqrt(area * ratio).clamp(1, size)
    h = torch.sqrt(area / ratio).clamp(1, size)
    x1 = torch.rand(n, generator=gen) * (size - w)
    y1 = torch.rand(n, generator=gen) * (size - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=1)


def jitter_transform(mean_rgb: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample colour jitter as one affine map of RGB: brightness, contrast, saturation,
    then hue, each a linear map, composed into ``M`` (n, 3, 3) and ``offset`` (n, 3) so that
    the jittered image is clamp(M @ rgb + offset). ``mean_rgb`` (n, 3) is each image's mean
    colour (contrast blends towards the mean grey). Composing skips the clamps torchvision
    applies between the steps (they only differ on pixels pushed past white), and turns
    four passes over the pixels into one. ``M`` is on the CPU (it depends on the draws
    only); ``offset``, which depends on the mean colour, on ``mean_rgb``'s device, so the
    mean is never read back to the host."""
    n = mean_rgb.shape[0]
    device = mean_rgb.device
    apply = torch.rand(n, generator=gen) < cfg.jitter_p

    def factors(strength: float) -> torch.Tensor:
        f = _uniform(n, max(0.0, 1 - strength), 1 + strength, gen)
        return torch.where(apply, f, torch.ones_like(f)).view(n, 1, 1)

    eye = torch.eye(3).expand(n, 3, 3)
    matrix = eye * factors(cfg.brightness)
    contrast = factors(cfg.contrast)
    mean_gray = to_device(_LUMA.view(1, 1, 3), device) @ (
        to_device(matrix, device) @ mean_rgb.float().view(n, 3, 1))
    # The offset starts at zero, so contrast * offset + (1 - contrast) * mean_gray is this.
    offset = (to_device(1 - contrast, device) * mean_gray).expand(n, 3, 1).contiguous()
    matrix = contrast * matrix
    saturation = factors(cfg.saturation)
    mix = saturation * eye + (1 - saturation) * _TO_GRAY
    matrix, offset = mix @ matrix, to_device(mix, device) @ offset
    if cfg.hue > 0:
        angle = _uniform(n, -cfg.hue, cfg.hue, gen) * 2 * math.pi
        angle = torch.where(apply, angle, torch.zeros_like(angle))
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot = torch.zeros(n, 3, 3)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        hue = _YIQ2RGB @ rot @ _RGB2YIQ
        matrix, offset = hue @ matrix, to_device(hue, device) @ offset
    return matrix, offset.view(n, 3)


def apply_color(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """clamp(matrix @ rgb + offset) for every pixel: x (N, 3, H, W), matrix (N, 3, 3),
    offset (N, 3); one batched matrix product."""
    n, c, h, w = x.shape
    out = torch.baddbmm(to_device(offset, x.device).to(x.dtype).view(n, 3, 1),
                        to_device(matrix, x.device).to(x.dtype), x.reshape(n, c, h * w))
    return out.view(n, c, h, w).clamp_(0, 1)


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter with per-sample factors,
    each sample jittered with probability ``jitter_p``. x: (N, 3, H, W) in [0, 1]."""
    return apply_color(x, *jitter_transform(x.mean(dim=(2, 3)), cfg, gen))


def gaussian_blur(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Separable Gaussian blur, sigma in [0.1, 2.0] * size / 224, each sample blurred with
    probability ``blur_p`` (only those are computed). The kernel reaches 3 sigma of the
    largest sigma, at most ~10% of the image. x: (N, C, H, W)."""
    n, c, h, w = x.shape
    scale = h / 224
    sigma = _uniform(n, 0.1 * scale, 2.0 * scale, gen).clamp_min(1e-3)
    chosen = torch.nonzero(torch.rand(n, generator=gen) < cfg.blur_p).flatten()
    if len(chosen) == 0:
        return x
    radius = max(1, min(int(0.05 * h), math.ceil(3 * 2.0 * scale)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma[chosen].view(-1, 1) ** 2))
    kernel = to_device(kernel / kernel.sum(1, keepdim=True), x.device).to(x.dtype)  # (m, k)
    kernel = kernel.repeat_interleave(c, dim=0)  # one kernel per (sample, channel)
    m = len(chosen)
    index = to_device(chosen, x.device)
    flat = x.index_select(0, index).reshape(1, m * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"),
                    kernel.view(m * c, 1, 1, -1), groups=m * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"),
                    kernel.view(m * c, 1, -1, 1), groups=m * c)
    out = x.clone() if m < n else torch.empty_like(x)
    out[index] = flat.view(m, c, h, w).clamp_(0, 1)
    return out


def _source(pixels: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> float in [0, 1], first shrunk (antialiased, still in uint8,
    4x cheaper than in float) to 4x the output resolution when the cache is larger: crops
    then cost a fraction of the full-size work."""
    size = pixels.shape[-1]
    if size > 4 * resolution:
        pixels = F.interpolate(pixels.contiguous(), size=(4 * resolution, 4 * resolution),
                               mode="bilinear", antialias=True, align_corners=False)
    return pixels.float().div_(255)


def _view(x: torch.Tensor, resolution: int, cfg: AugmentConfig, gen: torch.Generator
          ) -> torch.Tensor:
    n, _, size, _ = x.shape
    boxes = crop_boxes(n, size, cfg, gen)
    rois = to_device(torch.cat([torch.arange(n, dtype=torch.float32).view(-1, 1), boxes], 1),
                     x.device).to(x.dtype)
    # Adaptive sampling (ceil(box / output) samples per output pixel and side): a shrunk
    # crop averages away aliasing, an enlarged one costs one sample per pixel.
    x = roi_align(x, rois, output_size=resolution, spatial_scale=1.0, sampling_ratio=-1,
                  aligned=True)
    flipped = to_device(torch.nonzero(torch.rand(n, generator=gen) < cfg.flip_p).flatten(),
                        x.device)
    if len(flipped):
        x[flipped] = x[flipped].flip(3)
    # Colour jitter and grayscale are both linear in RGB: one pass over the pixels.
    matrix, offset = jitter_transform(x.mean(dim=(2, 3)), cfg, gen)
    gray = (torch.rand(n, generator=gen) < cfg.gray_p).view(n, 1, 1)
    matrix = torch.where(gray, _TO_GRAY @ matrix, matrix)
    offset = torch.where(to_device(gray.view(n, 1), x.device),
                         (to_device(_TO_GRAY, x.device) @ offset.view(n, 3, 1)).view(n, 3),
                         offset)
    x = apply_color(x, matrix, offset)
    if resolution >= cfg.blur_min_resolution and cfg.blur_p > 0:
        x = gaussian_blur(x, cfg, gen)
    return x


def simclr_view(
    pixels: torch.Tensor, resolution: int, cfg: AugmentConfig, gen: torch.Generator
) -> torch.Tensor:
    """One augmented view of a uint8 batch (N, 3, S, S) on any device -> float (N, 3, R, R)
    in [0, 1] at ``resolution`` R."""
    return _view(_source(pixels, resolution), resolution, cfg, gen)


def simclr_pair(
    pixels: torch.Tensor, resolution: int, cfg: AugmentConfig, gen: torch.Generator,
    partners: torch.Tensor | None = None,
) -> torch.Tensor:
    """Both SimCLR views of a uint8 batch (N, 3, S, S): float (2N, 3, R, R), first all view A,
    then all view B (row i and row N + i are the two views of photo i). With ``partners``
    (uint8, same shape), view B of row i is made from ``partners[i]`` instead: a positive
    pair of two photos (nearest-neighbour positives)."""
    x = _source(pixels, resolution)
    y = x if partners is None else _source(partners, resolution)
    return torch.cat([_view(x, resolution, cfg, gen), _view(y, resolution, cfg, gen)])


def resize_batch(pixels: torch.Tensor, resolution: int) -> torch.Tensor:
    """Deterministic view for embedding: uint8 (N, 3, S, S) -> float (N, 3, R, R) in [0, 1]."""
    x = pixels.float().div_(255)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                          antialias=x.shape[-1] > resolution, align_corners=False)
    return x.clamp_(0, 1)
