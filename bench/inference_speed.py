"""Encoder inference speed and k-NN quality on the CPU, float32 and faster engines.

    ONEDNN_MAX_CPU_ISA=AVX2 python bench/inference_speed.py [--rounds 3] [--no-quality]
    python bench/inference_speed.py --isa-probe   # eager fp32 with and without the AVX2 cap

Every variant embeds the same uint8 photos (resize included) in interleaved rounds; speeds
are photos/s and ratios against eager float32 channels_last (what core.encode.embed.embed_pixels
runs on a CPU without bf16) in the same round. Quality: leave-one-out k-NN top-1 on every
photo of the folder (labels from folder names, measurement only), features cached in --work.
The pretrained EfficientNet-Lite0 is measured (the default start encoder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from photoatlas.core.atlas.search import knn_accuracy  # noqa: E402
from photoatlas.core.encode.inference import FastEncoder, weights_digest  # noqa: E402

BASELINE = "eager fp32 channels_last"
DATA = Path("/work/shared/data/imagenette-dev")

Embed = Callable[[torch.Tensor], np.ndarray]
DIGEST = ""  # of the measured encoder's weights: names the cached features


def load_pixels(folder: Path, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 3, 224, 224) of every photo, decoded as the library's pixel cache is."""
    from photoatlas.core.library.decode import load_rgb, square_pixels
    from photoatlas.core.library.library import CACHE_SIZE
    from photoatlas.core.library.scan import ScanProblems, iter_photo_files

    cached = work / f"pixels-{folder.name}.npz"
    if cached.is_file():
        with np.load(cached) as data:
            return data["paths"], data["pixels"]
    paths = np.array(sorted(p for p, _, _ in iter_photo_files(folder, ScanProblems())))
    pixels = np.stack([square_pixels(load_rgb(p, CACHE_SIZE), CACHE_SIZE) for p in paths])
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cached, paths=paths, pixels=pixels)
    return paths, pixels


def encoder():
    from photoatlas.core.encode.model import build_encoder

    return build_encoder("efficientnet_lite0", pretrained=True, resolution=224).eval()


def eager(resolution: int, channels_last: bool) -> Embed:
    from photoatlas.core.encode.augment import resize_batch

    enc = encoder()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    enc.to(memory_format=layout)

    def run(pixels: torch.Tensor) -> np.ndarray:
        x = resize_batch(pixels, resolution).contiguous(memory_format=layout)
        return enc.features(x).numpy()
    return run


def compiled(resolution: int) -> Embed:
    """torch.compile (inductor) of the channels_last encoder: compiled on its first call."""
    from photoatlas.core.encode.augment import resize_batch

    enc = encoder().to(memory_format=torch.channels_last)
    fn = torch.compile(enc.features)

    def run(pixels: torch.Tensor) -> np.ndarray:
        x = resize_batch(pixels, resolution).contiguous(memory_format=torch.channels_last)
        return fn(x).numpy()
    return run


def variants(resolutions: list[int], work: Path, with_compile: bool, batch: torch.Tensor
             ) -> tuple[dict[str, Embed], dict[str, float]]:
    """Every variant, built and warmed on ``batch``; and each one's setup seconds (export,
    quantization or compilation, once per weights and resolution)."""
    out: dict[str, Embed] = {BASELINE: eager(224, True), "eager fp32 NCHW": eager(224, False)}
    setup: dict[str, float] = {}
    if with_compile:
        fn = compiled(224)
        t = time.perf_counter()
        with torch.no_grad():
            fn(batch)
        setup["torch.compile channels_last"] = time.perf_counter() - t
        out["torch.compile channels_last"] = fn
    for res in resolutions:
        for engine in ("onnx-fp32", "onnx-int8"):
            name = f"ORT {engine.removeprefix('onnx-')}" + ("" if res == 224 else f" {res} px")
            fast = FastEncoder(encoder(), res, engine, cache_dir=work / "onnx")
            fresh = not fast.model_path().is_file()
            t = time.perf_counter()
            fast(batch)
            if fast.engine != engine:
                raise RuntimeError(f"{name}: {fast.fallback_reason}")
            if fresh:
                setup[name] = time.perf_counter() - t
            out[name] = fast
    return out, setup


@torch.no_grad()
def speed(embeds: dict[str, Embed], pixels: np.ndarray, batch_size: int, rounds: int
          ) -> dict[str, dict]:
    """Photos/s of each variant over ``pixels``, rounds interleaving the variants; the ratio
    to the baseline is taken within each round, then the median over rounds."""
    chunks = [torch.from_numpy(pixels[i:i + batch_size]) for i in range(0, len(pixels),
                                                                          batch_size)]
    rates: dict[str, list[float]] = {name: [] for name in embeds}
    for _ in range(rounds):
        for name, embed in embeds.items():
            t = time.perf_counter()
            for chunk in chunks:
                embed(chunk)
            rates[name].append(len(pixels) / (time.perf_counter() - t))
    base = np.array(rates[BASELINE])
    return {name: {"photos_per_s": round(float(np.median(r)), 2),
                   "ratio": round(float(np.median(np.array(r) / base)), 2)}
            for name, r in rates.items()}


@torch.no_grad()
def features(name: str, embed: Embed, pixels: np.ndarray, work: Path, batch_size: int
             ) -> np.ndarray:
    cached = work / f"features-{DIGEST[:12]}-{name.replace(' ', '_')}.npy"
    if cached.is_file():
        return np.load(cached)
    out = np.concatenate([embed(torch.from_numpy(np.ascontiguousarray(pixels[i:i + batch_size])))
                          for i in range(0, len(pixels), batch_size)])
    np.save(cached, out)
    return out


def quality(embeds: dict[str, Embed], paths: np.ndarray, pixels: np.ndarray, work: Path,
            batch_size: int, speed_rows: int) -> dict[str, dict]:
    """k-NN top-1 (k = 1, 5) on every photo; cosine to eager fp32 features per photo. The
    NCHW and compiled variants compute eager's fp32 arithmetic: their cosine is measured on
    the first ``speed_rows`` photos only and no k-NN is run for them."""
    from knn_quality import labels_from_paths  # bench/ is on sys.path as the script's folder

    labels = labels_from_paths(paths)
    reference = features(BASELINE, embeds[BASELINE], pixels, work, batch_size)
    out = {}
    for name, embed in embeds.items():
        if name in ("eager fp32 NCHW", "torch.compile channels_last"):
            with torch.no_grad():
                f = np.concatenate([embed(torch.from_numpy(pixels[i:i + batch_size]))
                                    for i in range(0, speed_rows, batch_size)])
            out[name] = {"cos_min": cosine(f, reference[:speed_rows]).min()}
            continue
        f = features(name, embed, pixels, work, batch_size)
        unit = f / np.linalg.norm(f, axis=1, keepdims=True)
        row = {f"knn{k}": round(knn_accuracy(unit, labels, k), 4) for k in (1, 5)}
        if f.shape == reference.shape and "px" not in name:
            row["cos_min"] = cosine(f, reference).min()
            row["cos_mean"] = cosine(f, reference).mean()
        out[name] = row
    for row in out.values():
        for key in ("cos_min", "cos_mean"):
            if key in row:
                row[key] = round(float(row[key]), 4)
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def isa_probe(args: argparse.Namespace) -> None:
    """Alternate child processes with and without ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN reads it
    once per process), each timing eager fp32 and ORT fp32."""
    results: dict[str, list[dict]] = {"AVX2": [], "unset": []}
    for _ in range(args.rounds):
        for isa in results:
            env = dict(os.environ)
            env.pop("ONEDNN_MAX_CPU_ISA", None)
            if isa == "AVX2":
                env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
            cmd = [sys.executable, __file__, "--child", "--speed-photos", str(args.speed_photos),
                   "--work", str(args.work), "--folder", str(args.folder)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            results[isa].append(json.loads(done.stdout.strip().splitlines()[-1]))
    summary = {}
    for isa, runs in results.items():
        summary[isa] = {name: round(float(np.median([r[name] for r in runs])), 2)
                        for name in runs[0]}
    summary["unset / AVX2, eager fp32"] = round(
        float(np.median([u[BASELINE] / a[BASELINE]
                         for u, a in zip(results["unset"], results["AVX2"], strict=True)])), 2)
    print(json.dumps(summary))


def child(args: argparse.Namespace) -> None:
    _, pixels = load_pixels(args.folder, args.work)
    sample = pixels[:args.speed_photos]
    fast = FastEncoder(encoder(), 224, "onnx-fp32", cache_dir=args.work / "onnx")
    embeds = {BASELINE: eager(224, True), "ORT fp32": fast}
    with torch.no_grad():
        for embed in embeds.values():
            embed(torch.from_numpy(sample[:8]))
    result = speed(embeds, sample, args.batch, 1)
    print(json.dumps({name: r["photos_per_s"] for name, r in result.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/inference/bench"),
                        help="decoded pixels, ONNX files and features are kept here")
    parser.add_argument("--speed-photos", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 192, 160])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--isa-probe", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global DIGEST
    DIGEST = weights_digest(encoder())
    if args.child:
        return child(args)
    if args.isa_probe:
        return isa_probe(args)
    paths, pixels = load_pixels(args.folder, args.work)
    sample = pixels[:args.speed_photos]
    embeds, setup = variants(args.resolutions, args.work, not args.no_compile,
                             torch.from_numpy(sample[:args.batch]))
    result = {"onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
              "threads": torch.get_num_threads(), "load_before": os.getloadavg()[0],
              "setup_s": {k: round(v, 1) for k, v in setup.items()},
              "speed": speed(embeds, sample, args.batch, args.rounds)}
    result["load_after_speed"] = os.getloadavg()[0]
    if not args.no_quality:
        result["quality"] = quality(embeds, paths, pixels, args.work, args.batch,
                                    args.speed_photos)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
