"""Does hard-negative weighting (Robinson et al. 2021) help? Equal-epoch comparison on a folder.

    python bench/hard_negatives.py FOLDER --library /tmp/hn --epochs 15 --betas 0 0.5 1 \
        [--seeds 0 1] [--pretrained]

Each arm runs `photoatlas index` with the same epochs and seed (one library, so photos are
decoded once), exports the embeddings and measures leave-one-out k-NN accuracy against the
folder names (measurement only). Prints one JSON line per arm with the per-step training
time, since a shared CPU makes equal wall time an unfair comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.knn_quality import labels_from_paths  # noqa: E402
from photoatlas.core.atlas.search import knn_accuracy  # noqa: E402


def run_arm(folder: Path, library: Path, epochs: int, beta: float, seed: int,
            pretrained: bool) -> dict:
    tag = f"beta{beta:g}_seed{seed}{'_pre' if pretrained else ''}"
    report, export = library / f"{tag}.json", library / f"{tag}.npz"
    command = [sys.executable, "-m", "photoatlas.core.cli", "index", str(folder),
               "--library", str(library), "--epochs", str(epochs), "--seed", str(seed),
               "--hard-negative-beta", str(beta), "--report", str(report)]
    if not pretrained:
        command.append("--from-scratch")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    export.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "photoatlas.core.cli", "export", "--library",
                    str(library), "--out", str(export)], check=True, stdout=subprocess.DEVNULL)
    with np.load(export) as data:
        labels = labels_from_paths(data["paths"])
        embeddings = data["embeddings"]
    rep = json.loads(report.read_text())
    training = rep["training"]
    return {"beta": beta, "seed": seed, "pretrained": pretrained, "epochs": training["epochs"],
            "steps": training["steps"], "kept": rep["check"].get("kept"),
            "s_per_step": round(rep["stage_seconds"]["train"] / max(1, training["steps"]), 4),
            "last_loss": round(training["last_loss"], 4),
            "knn1": round(knn_accuracy(embeddings, labels, 1), 4),
            "knn5": round(knn_accuracy(embeddings, labels, 5), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--pretrained", action="store_true",
                        help="adapt the pretrained encoder instead of training from scratch")
    args = parser.parse_args()
    args.library.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for beta in args.betas:
            print(json.dumps(run_arm(args.folder, args.library, args.epochs, beta, seed,
                                     args.pretrained)), flush=True)


if __name__ == "__main__":
    main()
