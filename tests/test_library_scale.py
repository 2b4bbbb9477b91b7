"""bench/library_scale.py end to end on a few small photos: generate makes distinct,
upright-readable photos (incrementally), run indexes them in a child process and reports
every stage, the first map, memory and library bytes; update adds new photos and times the
rescan; similar times the first Find similar in a fresh process; bench/window_latency.py
measures the real window on the small library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoatlas.core.library.cache import content_hash
from photoatlas.core.library.decode import load_rgb

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "library_scale.py"
WINDOW = REPO / "bench" / "window_latency.py"


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


def _script(script: Path, *args: str, timeout: float = 240) -> str:
    """Runs a bench script; its output is shown when it fails."""
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def small_library(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """12 generated 320x240 photos and their map-only library (the pretrained encoder)."""
    tmp = tmp_path_factory.mktemp("scale")
    sources = _sources(tmp / "sources")
    look = ["--size", "320x240", "--workers", "1", "--sources", str(sources)]
    photos, library = tmp / "photos", tmp / "lib"
    _script(BENCH, "generate", str(photos), "--count", "12", *look)
    _script(BENCH, "run", str(photos), "--library", str(library), "--map-only",
            "--json", str(tmp / "index.json"))
    return {"tmp": tmp, "photos": photos, "library": library, "look": look}


def test_update_adds_new_photos_and_times_the_rescan(small_library: dict) -> None:
    lib, tmp = small_library["library"], small_library["tmp"]
    out = tmp / "update.json"
    before = len(list(small_library["photos"].rglob("IMG_*")))
    printed = _script(BENCH, "update", str(small_library["photos"]), "--library", str(lib),
                      "--count", "4", "--json", str(out), *small_library["look"])
    assert "rescan with new photos" in printed
    r = json.loads(out.read_text())
    assert r["kind"] == "update" and r["new_photos"] == 4
    # Numbered after the photos there, in a new folder the library's folder holds.
    assert r["generation"]["first"] == before
    added = sorted((small_library["photos"] / f"new-{before:05d}").iterdir())
    assert [p.stem for p in added] == [f"IMG_{i:05d}" for i in range(before, before + 4)]
    assert r["images"]["new_or_changed"] == 4 and r["images"]["added_to_map"] == 4
    assert r["photos_after"] == r["photos_before"] + 4 and r["images"]["failed"] == 0
    assert {"scan", "decode", "embed", "map"} <= set(r["stages"])
    assert 0 < sum(st["s"] for st in r["stages"].values()) < r["wall_s"]
    assert r["outside_stages_s"] > 0 and r["map_changed"] is True
    assert r["peak_rss_bytes"] > 100e6  # torch alone is more
    assert r["library_bytes"] > r["library_bytes_before"] > 0
    assert "rescan with new photos" in _script(BENCH, "table", str(out))


def test_first_find_similar_in_a_fresh_process(small_library: dict) -> None:
    out = small_library["tmp"] / "similar.json"
    printed = _script(BENCH, "similar", "--library", str(small_library["library"]), "-k", "5",
                      "--json", str(out))
    assert "open library to first result" in printed
    r = json.loads(out.read_text())
    assert r["kind"] == "similar" and r["drop_caches"] == "not asked" and r["k"] == 5
    assert r["photos"] >= 12 and r["by"] in ("scene", "kind")
    for cache in ("cold", "warm"):
        w = r[f"window_path_{cache}"]
        assert w["photo"] == r["photo"] and w["exact"]
        assert len(w["matches"]) == 5 and r["photo"] not in [m["path"] for m in w["matches"]]
        steps = (w["open_library_s"], w["read_map_s"], w["derive_s"], w["build_index_s"])
        assert all(s >= 0 for s in steps) and w["query_ms"] >= 0
        assert w["open_to_first_result_s"] == pytest.approx(
            sum(steps) + w["query_ms"] / 1000, abs=0.005)
        assert 0 < w["open_to_first_result_s"] < w["process_start_to_first_result_s"]
        assert w["process_start_to_first_result_s"] <= w["wall_s"]
        assert w["peak_rss_bytes"] > 100e6
        cli = r[f"cli_{cache}"]
        assert cli["matches"] == 5 and cli["same_top"] and cli["wall_s"] > 0
    assert "first Find similar" in _script(BENCH, "table", str(out))


def test_window_latency_on_the_small_library(small_library: dict) -> None:
    out = small_library["tmp"] / "window.json"
    printed = _script(WINDOW, "--library", str(small_library["library"]), "--seconds", "1.5",
                      "--step-ms", "10", "--jobs", "rescan", "duplicates", "--rescan-new", "2",
                      "--photos", str(small_library["photos"]), "--platform", "offscreen",
                      "--json", str(out), *small_library["look"])
    assert "lateness" in printed
    r = json.loads(out.read_text())
    assert r["kind"] == "window" and r["platform"] == "offscreen" and r["photos"] >= 12
    t = r["timings"]
    assert 0 < t["open_to_map_visible_s"] < t["process_start_to_map_visible_s"]
    for click in (r["similar_first"], r["similar_warm"]):
        assert click["results"] > 0 and click["row"] >= 0
        assert 0 <= click["handled_ms"] <= click["grid_painted_ms"]
        assert click["preview_ms"] is not None
    phases = {p["name"]: p for p in r["phases"]}
    assert {"idle, map shown", "interaction: zoom, pan, hover, click, select", "job: rescan",
            "job: duplicates"} <= set(phases)
    for name in ("idle, map shown", "interaction: zoom, pan, hover, click, select"):
        p = phases[name]
        assert p["seconds"] >= 1.5 and p["ticks"] > 20  # a tick every 20 ms
        lat = p["lateness_ms"]
        assert 0 <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert phases["interaction: zoom, pan, hover, click, select"]["map_paints"] > 5
    rescan = phases["job: rescan"]
    assert rescan["job_ended"] and "rescan" in rescan["jobs_seen"]
    # The rescan embedded the 2 new photos and the window shows them.
    assert phases["after rescan: the jobs it led to"]["points_after"] == r["photos"] + 2
    assert phases["job: duplicates"]["job_ended"]
    # The scripted input's first kinds (how far through the script 1.5 s gets varies).
    assert {"zoom in (wheel)", "pan (drag)"} <= set(r["interaction_handlers_ms"])
    assert r["peak_rss_bytes"] > 100e6
    assert "| phase |" in _script(BENCH, "table", str(out))
