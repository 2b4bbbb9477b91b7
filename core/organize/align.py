"""Whether one grey image is a rotated (by quarter turns, or straightened by a few degrees),
mirrored, resized or cropped copy of another: a similarity transform (rotation, scale,
shift) estimated from matched ORB keypoints, then the correlation of the band-passed grey
levels once the two are laid on each other.

Why keypoints: a copy rotated by 90 degrees or by 3 degrees and cropped does not line up
with its original under any shift and scale, so the template match of core.organize.duplicates
scored such copies at 0.52 and 0.82 (median, against its 0.87 threshold). ORB keypoints
carry their own orientation, so the matches find the rotation whatever it is; a mirrored
copy is matched against the mirrored keypoints. The correlation after alignment, not the
number of matched keypoints, decides: two photos of one landmark from nearly the same spot
share many keypoints but not every detail of their band-passed grey levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

# Keypoints on the 192 px thumbnails; patches of 15 px (the default 31 px leaves too little
# of a small image away from its border).
_ORB = {"nfeatures": 250, "scaleFactor": 1.2, "nlevels": 6, "edgeThreshold": 15,
        "patchSize": 15, "fastThreshold": 8}


_RATIO = 0.85  # Lowe's ratio test on the two nearest descriptors


_REPROJECTION_PX = 3.0  # RANSAC inlier distance on the thumbnails


_MIN_INLIERS = 10


_MAX_TILT_DEG = 15.0  # a copy is turned by quarter turns plus at most this much


_MIN_INSIDE = 0.9  # share of the copy's pixels that must lie inside the original


_MIN_COVER = 0.4  # area share of the original a copy shows (0.63 of each side)


_SIDE = 64  # px: the longer side the aligned images are compared at


_BAND_SIGMA = 5.0  # px at _SIDE: blur subtracted so gradients and haze do not count


@dataclass(frozen=True)
class Keypoints:
    """ORB keypoints of one grey image and of its mirror image (left-right)."""

    shape: tuple[int, int]  # (H, W) of the image they were found in
    xy: np.ndarray  # (K, 2) float32 pixel positions
    descriptors: np.ndarray  # (K, 32) uint8
    mirror_xy: np.ndarray
    mirror_descriptors: np.ndarray


def _detect(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    found, descriptors = cv2.ORB_create(**_ORB).detectAndCompute(grey, None)
    if descriptors is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in found], np.float32).reshape(-1, 2), descriptors


def keypoints(grey: np.ndarray) -> Keypoints:
    """Keypoints of a grey (H, W) uint8 image, found once per photo and reused per pair."""
    grey = np.ascontiguousarray(grey, np.uint8)
    xy, descriptors = _detect(grey)
    mirror_xy, mirror_descriptors = _detect(np.ascontiguousarray(grey[:, ::-1]))
    return Keypoints(grey.shape, xy, descriptors, mirror_xy, mirror_descriptors)


def _similarity(a_xy: np.ndarray, a_desc: np.ndarray, b_xy: np.ndarray, b_desc: np.ndarray
                ) -> np.ndarray | None:
    """The 3x3 similarity mapping b's pixels onto a's, when enough matches agree on one."""
    if len(a_desc) < 2 or len(b_desc) < 2:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(b_desc, a_desc, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < _RATIO * m[1].distance]
    if len(good) < _MIN_INLIERS:
        return None
    src = b_xy[[m.queryIdx for m in good]]
    dst = a_xy[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)  # RANSAC samples at random: the same pair always gets the same answer
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=_REPROJECTION_PX, maxIters=2000,
        confidence=0.995)
    if matrix is None or int(inliers.sum()) < _MIN_INLIERS:
        return None
    if abs(np.linalg.det(matrix[:, :2])) < 1e-3:
        return None
    angle = np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))
    if abs((angle + 45.0) % 90.0 - 45.0) > _MAX_TILT_DEG:
        return None  # no quarter turn plus straightening: not an edit people make
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def _scaling(fx: float, fy: float) -> np.ndarray:
    """Pixel positions of an image resized by (fx, fy), pixel centres at whole numbers."""
    return np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])


def _masked_band_pass(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` less its blur, the blur taken over the ``mask`` only (no dark border)."""
    blur = gaussian_filter(image * mask, _BAND_SIGMA, mode="constant")
    weight = gaussian_filter(mask, _BAND_SIGMA, mode="constant")
    return image - blur / np.maximum(weight, 1e-3)


def _contained_correlation(small: np.ndarray, big: np.ndarray, to_big: np.ndarray) -> float:
    """Correlation of ``small`` with the part of ``big`` it shows, ``to_big`` (3x3) mapping
    small's pixels onto big's; -1 when small is not mostly inside big or shows too little."""
    h, w = small.shape
    big_h, big_w = big.shape
    ys, xs = np.mgrid[0:h:4, 0:w:4]
    at = to_big[:2, :2] @ np.stack([xs.ravel(), ys.ravel()]) + to_big[:2, 2:]
    inside = ((at[0] >= 0) & (at[0] <= big_w - 1) & (at[1] >= 0) & (at[1] <= big_h - 1)).mean()
    scale = float(np.sqrt(abs(np.linalg.det(to_big[:2, :2]))))
    cover = scale * scale * h * w / (big_h * big_w)
    if inside < _MIN_INSIDE or not _MIN_COVER <= cover <= 1.0 / _MIN_INSIDE:
        return -1.0
    # Both resized so that small's longer side is _SIDE and the map between them keeps sizes.
    f = _SIDE / max(h, w)
    small_r = cv2.resize(small.astype(np.float32), (max(1, round(w * f)), max(1, round(h * f))),
                         interpolation=cv2.INTER_AREA)
    g = f / scale
    big_r = cv2.resize(big.astype(np.float32),
                       (max(1, round(big_w * g)), max(1, round(big_h * g))),
                       interpolation=cv2.INTER_AREA)
    to_big_r = (_scaling(big_r.shape[1] / big_w, big_r.shape[0] / big_h) @ to_big
                @ np.linalg.inv(_scaling(small_r.shape[1] / w, small_r.shape[0] / h)))[:2]
    size = (small_r.shape[1], small_r.shape[0])
    flags = cv2.WARP_INVERSE_MAP
    laid = cv2.warpAffine(big_r, to_big_r, size, flags=flags | cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpAffine(np.ones_like(big_r), to_big_r, size, flags=flags | cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # the border pixels are half blank
    keep = mask > 0
    if keep.sum() < 0.5 * keep.size:
        return -1.0
    x = _masked_band_pass(small_r, mask)[keep]
    y = _masked_band_pass(laid, mask)[keep]
    x, y = x - x.mean(), y - y.mean()
    norm = np.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / norm if norm > 1e-6 else -1.0


def aligned_match(a: np.ndarray, b: np.ndarray, a_keys: Keypoints | None = None,
                  b_keys: Keypoints | None = None) -> float:
    """How well one grey image (H, W) uint8 is a copy of the other turned by quarter turns
    and a few degrees, mirrored or not, resized and cropped: the correlation in [-1, 1] of
    their band-passed grey levels once aligned, -1 when no alignment is found. Keypoints
    found before (``keypoints``) may be passed to save finding them again."""
    a_keys = a_keys or keypoints(a)
    b_keys = b_keys or keypoints(b)
    if a_keys.shape != a.shape or b_keys.shape != b.shape:
        raise ValueError("keypoints were found in images of another size")
    best = -1.0
    w = b.shape[1]
    unmirror = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    for mirrored in (False, True):
        if mirrored:
            b_to_a = _similarity(a_keys.xy, a_keys.descriptors, b_keys.mirror_xy,
                                 b_keys.mirror_descriptors)
            if b_to_a is not None:
                b_to_a = b_to_a @ unmirror  # b's pixel -> its mirror -> a
        else:
            b_to_a = _similarity(a_keys.xy, a_keys.descriptors, b_keys.xy, b_keys.descriptors)
        if b_to_a is None:
            continue
        best = max(best, _contained_correlation(b, a, b_to_a),
                   _contained_correlation(a, b, np.linalg.inv(b_to_a)))
    return best
