"""Two CPU processes over gloo: NT-Xent over the global batch equals one process's loss on
all 2N views (value and gradients), and a tiny DDP training run completes in step."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from photoatlas.core.encode.model import build_model
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.loss import NTXentLoss
from photoatlas.core.learn.train import train
from photoatlas.core.library.decode import load_rgb, square_pixels
from photoatlas.core.library.runs import CHECKPOINT_NAME

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)


BETAS = (0.0, 0.5)


def _loss_worker(rank: int, port: int, inputs: dict, out: Path) -> None:
    _join(rank, port)
    try:
        n = len(inputs["x_a"]) // WORLD
        mine = slice(rank * n, (rank + 1) * n)
        for beta in BETAS:
            torch.manual_seed(0)
            layer = DistributedDataParallel(torch.nn.Linear(6, 5))
            loss = NTXentLoss(0.2, hard_negative_beta=beta)(layer(inputs["x_a"][mine]),
                                                             layer(inputs["x_b"][mine]))
            loss.backward()
            global_loss = loss.detach().clone()
            dist.all_reduce(global_loss)
            torch.save({"loss": float(global_loss) / WORLD, "local": float(loss.detach()),
                        "grad_w": layer.module.weight.grad, "grad_b": layer.module.bias.grad},
                       out / f"beta{beta}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_global_batch_loss_and_gradients_equal_single_process(tmp_path):
    gen = torch.Generator().manual_seed(1)
    inputs = {"x_a": torch.randn(8, 6, generator=gen), "x_b": torch.randn(8, 6, generator=gen)}
    mp.spawn(_loss_worker, args=(_free_port(), inputs, tmp_path), nprocs=WORLD)

    for beta in BETAS:
        torch.manual_seed(0)
        layer = torch.nn.Linear(6, 5)
        single = NTXentLoss(0.2, hard_negative_beta=beta)(layer(inputs["x_a"]),
                                                          layer(inputs["x_b"]))
        single.backward()
        ranks = [torch.load(tmp_path / f"beta{beta}_rank{r}.pt", weights_only=True)
                 for r in range(WORLD)]
        for got in ranks:
            assert got["loss"] == pytest.approx(float(single.detach()), rel=1e-6)
            # DDP's averaged gradient is the gradient of the global-batch loss.
            torch.testing.assert_close(got["grad_w"], layer.weight.grad, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(got["grad_b"], layer.bias.grad, rtol=1e-5, atol=1e-6)
        # Each process's own loss differs (other anchors): the gather does real work.
        assert ranks[0]["local"] != pytest.approx(ranks[1]["local"], rel=1e-4)


BUDGETS = {"epochs": dict(epochs=2), "minutes": dict(minutes=0.05)}


def _config(budget: str) -> TrainConfig:
    return TrainConfig(pretrained=False, backbone="resnet18_half", resolution=16, batch_size=8,
                       device="cpu", seed=3, **BUDGETS[budget]).resolved("cpu")


def _train_worker(rank: int, port: int, pixels: np.ndarray, out: Path) -> None:
    _join(rank, port)
    try:
        for budget in BUDGETS:
            cfg = _config(budget)
            torch.manual_seed(0)
            model = build_model(cfg.backbone, cfg.pretrained, cfg.resolution)
            if rank == 1:  # DDP must start every process from rank 0's weights
                for p in model.parameters():
                    p.data.add_(1.0)
            run_dir = out / budget
            run_dir.mkdir(exist_ok=True)
            result = train(model, pixels, cfg, run_dir)
            checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
            torch.save({"steps": result.steps, "losses": result.losses, "checksum": checksum,
                        "checkpoint_seen": (run_dir / CHECKPOINT_NAME).exists()},
                       out / f"{budget}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def real_pixels(photo_dir) -> np.ndarray:
    files = sorted(photo_dir.rglob("*.JPEG"))[::150][:16]
    return np.stack([square_pixels(load_rgb(f, 32), 32) for f in files])


def test_two_process_training_completes_in_step(tmp_path, real_pixels):
    mp.spawn(_train_worker, args=(_free_port(), real_pixels, tmp_path), nprocs=WORLD)
    for budget in BUDGETS:
        ranks = [torch.load(tmp_path / f"{budget}_rank{r}.pt", weights_only=True)
                 for r in range(WORLD)]
        # Same number of steps (the time budget is agreed), the same weights, the same
        # global-batch losses, and rank 0's checkpoint on disk before either returned.
        assert ranks[0]["steps"] == ranks[1]["steps"] > 0, budget
        if budget == "epochs":
            assert ranks[0]["steps"] == 2 * (16 // 8)  # global batch 8: 2 steps per epoch
        assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-6)
        assert ranks[0]["losses"] == pytest.approx(ranks[1]["losses"], rel=1e-6)
        assert all(np.isfinite(ranks[0]["losses"]))
        assert ranks[0]["checkpoint_seen"] and ranks[1]["checkpoint_seen"]
        state = torch.load(tmp_path / budget / CHECKPOINT_NAME, weights_only=True)
        assert state["step"] == ranks[0]["steps"]
        assert not list((tmp_path / budget).glob("*.tmp"))
