"""Training images/s: PhotoAtlas's cached, on-device-augmented loop versus the usual
per-image PIL-transform DataLoader pipeline, same model, resolution, batch and loss, one run.

    python bench/train_throughput.py FOLDER [--backbone resnet18] [--from-scratch]
        [--resolution 32] [--batch-size 256] [--steps 12] [--workers 2] [--device cpu]
        [--photo-size 2048 --photos 600] [--precision auto|fp32] [--baseline-like-ours]

Prints one JSON line: images/s of each pipeline and their ratio (ours / baseline).
The baseline is what the usual SimCLR recipe runs: float32 in the default memory layout.
``--baseline-like-ours`` gives it PhotoAtlas's autocast dtype and channels_last too, so
the ratio isolates the data path (cache + on-device augmentation).
``--photo-size`` first writes JPEG copies of the photos upscaled to that longer side, as
cameras and phones make them (the baseline decodes them at every epoch; PhotoAtlas once,
whose time is reported as ``decode_once_s``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photoatlas.core.encode.device import autocast_dtype, pick_device, uses_channels_last  # noqa: E402
from photoatlas.core.encode.model import build_model  # noqa: E402
from photoatlas.core.learn.config import TrainConfig  # noqa: E402
from photoatlas.core.learn.loss import NTXentLoss  # noqa: E402
from photoatlas.core.learn.train import train  # noqa: E402
from photoatlas.core.library.cache import CachedRows, decode_pending  # noqa: E402
from photoatlas.core.library.library import Library  # noqa: E402
from photoatlas.core.library.scan import scan_folders  # noqa: E402


class TwoViews:
    """The usual SimCLR dataset: open the file with PIL and transform it twice."""

    def __init__(self, paths: list[str], resolution: int) -> None:
        from torchvision import transforms as T

        self.paths = paths
        blur = [T.RandomApply([T.GaussianBlur(max(3, resolution // 10 * 2 + 1))], p=0.5)]
        self.transform = T.Compose([
            T.RandomResizedCrop(resolution, scale=(0.2, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            *(blur if resolution >= 96 else []),
            T.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            image = im.convert("RGB")
        return self.transform(image), self.transform(image)


def baseline_images_per_s(paths: list[str], cfg: TrainConfig, steps: int, workers: int,
                          device: torch.device, like_ours: bool) -> float:
    amp = autocast_dtype(device, cfg.precision) if like_ours else None
    layout = (torch.channels_last if like_ours and uses_channels_last(device)
              else torch.contiguous_format)
    model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution).to(
        device, memory_format=layout).train()
    model.freeze_stages(cfg.freeze_stages, keep_bn_stats=cfg.pretrained)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = NTXentLoss(cfg.temperature)
    loader = torch.utils.data.DataLoader(
        TwoViews(paths, cfg.resolution), batch_size=cfg.batch_size, shuffle=True,
        num_workers=workers, drop_last=True, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed))
    done, t0 = 0, None
    while done < steps + 1:
        for a, b in loader:
            views = torch.cat([a, b]).to(device).contiguous(memory_format=layout)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                z = model(views)
            loss = loss_fn(*z.float().chunk(2))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if done == 1:
                t0 = time.monotonic()  # the first step pays for worker start-up
            if done == steps + 1:
                break
    return steps * cfg.batch_size / (time.monotonic() - t0)


def camera_size_copies(folder: Path, out: Path, size: int, count: int) -> Path:
    """JPEG copies of the first ``count`` photos, resized to ``size`` px on the longer side
    (4:3), in the same sub-folders."""
    from PIL import Image

    from photoatlas.core.library.scan import ScanProblems, iter_photo_files

    for path, _, _ in sorted(iter_photo_files(folder, ScanProblems()))[:count]:
        target = out / Path(path).relative_to(folder).with_suffix(".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            image.convert("RGB").resize((size, size * 3 // 4), Image.Resampling.BICUBIC).save(
                target, quality=90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--backbone", help="default: the app's default for this start")
    parser.add_argument("--from-scratch", action="store_true")
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--photo-size", type=int, help="upscale copies to this size first")
    parser.add_argument("--photos", type=int, default=600, help="how many, with --photo-size")
    parser.add_argument("--precision", default="auto", help="PhotoAtlas's precision setting")
    parser.add_argument("--baseline-like-ours", action="store_true",
                        help="the baseline uses PhotoAtlas's autocast dtype and memory layout")
    args = parser.parse_args()
    device = pick_device(args.device)
    # The pixel loop is what is compared: the adapter's bank steps read no pixels at all.
    base = TrainConfig(backbone=args.backbone, pretrained=not args.from_scratch,
                       resolution=args.resolution, batch_size=args.batch_size, device=args.device,
                       precision=args.precision, adapter=False)
    cfg = base.resolved(device.type)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if args.photo_size:
            folder = camera_size_copies(folder, Path(tmp) / "photos", args.photo_size,
                                        args.photos)
        with Library(Path(tmp) / "lib") as library:
            scan_folders(library.catalog, [folder])
            t_decode = time.monotonic()
            decode_pending(library.catalog, library.pixels, library.thumb_dir)
            decode_once_s = time.monotonic() - t_decode
            ok = library.catalog.images(status="ok")
            paths = [r.path for r in ok]  # both pipelines read the same decodable photos
            pixels = CachedRows(library.pixels.array(), np.array([r.cache_row for r in ok]))
            steps_per_epoch = len(ok) // cfg.batch_size
            epochs = max(1, -(-(args.steps + 1) // steps_per_epoch))
            run_cfg = TrainConfig(**{**cfg.__dict__, "minutes": None, "epochs": epochs})
            stamps: list[tuple[int, float]] = []
            model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution)
            train(model, pixels, run_cfg, Path(tmp),
                  progress=lambda e: stamps.append((e.done, time.monotonic())))
        # Skip the first step (warm-up) as for the baseline.
        (s0, t0), (s1, t1) = stamps[0], stamps[min(len(stamps) - 1, args.steps)]
        ours = (s1 - s0) * cfg.batch_size / (t1 - t0)
        baseline = baseline_images_per_s(paths, cfg, args.steps, args.workers, device,
                                         args.baseline_like_ours)
    print(json.dumps({"backbone": cfg.backbone, "pretrained": cfg.pretrained,
                      "resolution": cfg.resolution, "batch_size": cfg.batch_size,
                      "device": str(device), "photos": len(paths),
                      "photoatlas_autocast": str(autocast_dtype(device, cfg.precision)),
                      "baseline_like_ours": args.baseline_like_ours,
                      "photo_size": args.photo_size or "as is",
                      "decode_once_s": round(decode_once_s, 1),
                      "photoatlas_images_per_s": round(ours, 1),
                      "dataloader_images_per_s": round(baseline, 1),
                      "ratio": round(ours / baseline, 2)}))


if __name__ == "__main__":
    main()
