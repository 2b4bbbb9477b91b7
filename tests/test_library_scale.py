"""bench/library_scale.py end to end on a few small photos: generate makes distinct,
upright-readable photos (incrementally), run indexes them in a child process and reports
every stage, the first map, memory and library bytes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from photoatlas.core.library.cache import content_hash
from photoatlas.core.library.decode import load_rgb

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "library_scale.py"


def _bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy(), check=True)


def _sources(folder: Path) -> Path:
    """Three real-pixel sources: smooth gradients with a bright square, of odd shapes."""
    folder.mkdir()
    for i, (w, h) in enumerate([(96, 64), (64, 96), (80, 80)]):
        x = np.linspace(0, 255, w)[None, :, None]
        y = np.linspace(0, 255, h)[:, None, None]
        pixels = np.concatenate([x + 0 * y, y + 0 * x, (255 - x) + 0 * y], axis=2)
        pixels[h // 4:h // 2, w // 4:w // 2] = [250, 40 * i, 10]
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"s{i}.jpg", quality=95)
    return folder


def test_generate_then_run(tmp_path: Path) -> None:
    sources = _sources(tmp_path / "sources")
    photos = tmp_path / "photos"
    common = ["--size", "160x120", "--workers", "1", "--sources", str(sources)]
    _bench("generate", str(photos), "--count", "4", *common)
    first = {p.name: p.stat().st_mtime_ns for p in photos.rglob("IMG_*")}
    _bench("generate", str(photos), "--count", "8", *common)
    files = sorted(photos.rglob("IMG_*"))
    assert len(files) == 8
    for p in files:  # incremental: the first four were kept as they were
        if p.name in first:
            assert p.stat().st_mtime_ns == first[p.name]
    # Distinct files even where a source is used again (8 photos from 3 sources).
    assert len({content_hash(str(p)) for p in files}) == 8
    shapes = {p.name: load_rgb(p, 120).size for p in files}
    assert shapes["IMG_00002.jpg"] == (120, 160)  # portrait pixels
    assert shapes["IMG_00007.jpg"] == (120, 160)  # landscape pixels + EXIF orientation 6
    assert Image.open(files[7]).size == (160, 120)
    assert shapes["IMG_00000.jpg"] == (160, 120)

    out = tmp_path / "figures.json"
    result = _bench("run", str(photos), "--library", str(tmp_path / "lib"), "--json", str(out),
                    "--map-only", timeout=240)
    assert "first map s" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["photos"] == 8 and figures["failed"] == 0
    assert {"scan", "decode", "embed", "map", "map (first)"} <= set(figures["stages"])
    assert 0 < figures["first_map_s"] <= figures["wall_s"]
    assert figures["peak_rss_bytes"] > 100e6  # torch alone is more
    # A JPEG pixel-cache row each, and its index entry.
    assert 0 < figures["library_breakdown"]["cache/pixels-224.jpgrows"] < 8 * 224 * 224
    assert figures["library_breakdown"]["cache/pixels-224.jpgindex"] == 8 * 8
    assert figures["library_bytes_per_photo"] < 3 * 224 * 224  # less than one raw row
    table = _bench("table", str(out)).stdout
    assert "| N = 8 |" in table and "start to first map" in table
