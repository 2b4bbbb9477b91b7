"""Rescan cost of a big library: first scan, rescan unchanged, rescan with some files
changed, and with some files moved, against the bare cost of walking the tree in the same run.

    python bench/rescan.py [--files 100000] [--changed 0.01] [--dir DIR]

Writes ``--files`` tiny JPEGs (one 1x1 JPEG's bytes, each made unique by a trailer after
its end marker, so every file has its own content hash) into 100 folders, then times:

- ``walk_s``: os.scandir + one stat per file, the floor any rescan pays (the baseline,
  timed again right before each rescan, after an ``os.sync()``, for the ``*_vs_walk``
  ratios);
- ``first_scan_s`` and ``first_decode_s``: the first scan and decode of every file;
- ``rescan_unchanged_s``: scan + decode of the unchanged tree (ratio to ``walk_s`` shown);
- ``rescan_changed_s``: after rewriting ``--changed`` of the files with new content;
- ``rescan_moved_s``: after renaming ``--changed`` of the files (found by content hash:
  not decoded again).

What is measured is scanning and change detection, so the pixel cache holds 8x8 rows
(a 224 px cache of 100,000 photos would need 15 GB of disk). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.library.cache import PixelCache, decode_pending  # noqa: E402
from photoatlas.core.library.catalog import Catalog  # noqa: E402
from photoatlas.core.library.scan import ScanProblems, iter_photo_files, scan_folders  # noqa: E402

FOLDERS = 100


def _tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1, 1), (120, 90, 60)).save(out, "JPEG")
    return out.getvalue()


def _write_tree(root: Path, files: int) -> list[Path]:
    jpeg = _tiny_jpeg()
    paths = []
    for i in range(files):
        folder = root / f"folder{i % FOLDERS:03d}"
        if i < FOLDERS:
            folder.mkdir(parents=True)
        path = folder / f"photo{i:06d}.jpg"
        path.write_bytes(jpeg + i.to_bytes(4, "little"))  # bytes after EOI: unique content
        paths.append(path)
    return paths


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01,
                        help="fraction of files changed, then moved, for the last rescans")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(dir=args.dir, prefix="rescan-bench-"))
    try:
        photos, store = work / "photos", work / "library"
        store.mkdir()
        paths = _write_tree(photos, args.files)
        catalog = Catalog(store / "catalog.sqlite")
        cache = PixelCache(store / "pixels.u8", 8)
        thumbs = store / "thumbs"

        def walk() -> int:
            return sum(1 for _ in iter_photo_files(photos, ScanProblems()))

        def rescan() -> tuple[float, float, object, object]:
            """(baseline walk s, rescan s, scan result, decode result)."""
            os.sync()  # earlier writes must not be flushed during the timings
            walk_time = _timed(walk)[0]  # the baseline, in the same conditions
            seconds, (scan, decoded) = _timed(lambda: (scan_folders(catalog, [photos]),
                                                       decode_pending(catalog, cache, thumbs)))
            return walk_time, seconds, scan, decoded

        walk_s, walked = _timed(walk)
        first_scan_s, first = _timed(lambda: scan_folders(catalog, [photos]))
        first_decode_s, _ = _timed(lambda: decode_pending(catalog, cache, thumbs))
        unchanged = rescan()

        step = max(1, round(1 / args.changed))
        changed = paths[::step]
        jpeg = _tiny_jpeg()
        for i, path in enumerate(changed):
            path.write_bytes(jpeg + (args.files + i).to_bytes(4, "little"))
        after_change = rescan()

        moved = paths[1::step]
        for path in moved:
            path.rename(path.with_name("moved-" + path.name))
        after_move = rescan()
        counts = catalog.counts()
        catalog.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(json.dumps({
        "files": args.files, "walked": walked, "found": first.found,
        "walk_s": round(walk_s, 2), "first_scan_s": round(first_scan_s, 2),
        "first_decode_s": round(first_decode_s, 2),
        "rescan_unchanged_s": round(unchanged[1], 2),
        "rescan_unchanged_vs_walk": round(unchanged[1] / unchanged[0], 2),
        "unchanged_new_or_changed": unchanged[2].new_or_changed,
        "changed_files": len(changed), "rescan_changed_s": round(after_change[1], 2),
        "rescan_changed_vs_walk": round(after_change[1] / after_change[0], 2),
        "changed_detected": after_change[2].new_or_changed,
        "changed_decoded": after_change[3].decoded,
        "moved_files": len(moved), "rescan_moved_s": round(after_move[1], 2),
        "rescan_moved_vs_walk": round(after_move[1] / after_move[0], 2),
        "moved_detected": after_move[3].moved, "moved_decoded": after_move[3].decoded,
        "walks_before_rescans_s": [round(r[0], 2) for r in (unchanged, after_change, after_move)],
        "catalog": counts, "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
