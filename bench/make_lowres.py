"""Write a downscaled copy of a photo folder (a domain far from ImageNet), keeping sub-folders.

    python bench/make_lowres.py ../shared/data/imagenette-dev /tmp/imagenette32 --size 32

Each photo becomes a SIZE x SIZE PNG (lossless, so only the downscaling changes it).
bench/gpu_check.py makes its 32 px copy with ``write_lowres``.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

SUFFIXES = {".jpg", ".jpeg", ".png"}


def _write_one(path: Path, target: Path, size: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(path) as image:
        image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(target)


def write_lowres(source: Path, out: Path, size: int = 32, workers: int = 1) -> int:
    """Write every photo of ``source`` as a ``size`` x ``size`` PNG under ``out`` (same
    sub-folders); returns how many. ``workers`` threads (PIL releases the GIL while it
    decodes, resizes and encodes)."""
    jobs = [(path, out / path.relative_to(source).with_suffix(".png"))
            for path in sorted(source.rglob("*"))
            if path.is_file() and path.suffix.lower() in SUFFIXES]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda job: _write_one(*job, size), jobs))
    return len(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    count = write_lowres(args.source, args.out, args.size)
    print(f"wrote {count} photos of {args.size} px to {args.out}")


if __name__ == "__main__":
    main()
