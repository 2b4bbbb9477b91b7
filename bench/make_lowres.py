"""Write a downscaled copy of a photo folder (a domain far from ImageNet), keeping sub-folders.

    python bench/make_lowres.py ../shared/data/imagenette-dev /tmp/imagenette32 --size 32

Each photo becomes a SIZE x SIZE PNG (lossless, so only the downscaling changes it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    count = 0
    for path in sorted(args.source.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in {".jpg", ".jpeg", ".png"}:
            continue
        target = args.out / path.relative_to(args.source).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.convert("RGB").resize((args.size, args.size), Image.Resampling.BICUBIC).save(
                target)
        count += 1
    print(f"wrote {count} photos of {args.size} px to {args.out}")


if __name__ == "__main__":
    main()
