"""Exact neighbour search, k-NN accuracy, configuration validation and the LR schedule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from photoatlas.core.atlas.config import MapConfig
from photoatlas.core.atlas.search import NeighborIndex, knn_accuracy
from photoatlas.core.encode.augment import AugmentConfig
from photoatlas.core.encode.device import autocast_dtype, uses_channels_last
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.learn.train import lr_factor


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# NeighborIndex -----------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5, 30])
def test_neighbor_index_matches_brute_force(k):
    data, queries = _unit(30, 8, 0), _unit(7, 8, 1)
    ids, scores = NeighborIndex(data).query(queries, k)
    sims = queries @ data.T
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    assert ids.shape == (7, k) and scores.shape == (7, k)
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected, 1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()  # best first


def test_neighbor_index_chunked_equals_unchunked():
    data = _unit(50, 6, 2)
    index = NeighborIndex(data)
    a_ids, a_scores = index.query(data, 4, exclude_self=True)
    b_ids, b_scores = index.query(data, 4, exclude_self=True, chunk=7)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_allclose(a_scores, b_scores, atol=1e-6)


def test_neighbor_index_exclude_self():
    data = _unit(25, 5, 3)
    ids, scores = NeighborIndex(data).query(data, 3, exclude_self=True, chunk=10)
    assert ids.shape == (25, 3)
    assert not (ids == np.arange(25)[:, None]).any()
    sims = data @ data.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_array_equal(ids, np.argsort(-sims, axis=1, kind="stable")[:, :3])
    # Without exclude_self each row finds itself first.
    own, own_scores = NeighborIndex(data).query(data, 1)
    np.testing.assert_array_equal(own[:, 0], np.arange(25))
    np.testing.assert_allclose(own_scores[:, 0], 1.0, atol=1e-5)


def test_neighbor_index_k_larger_than_index():
    data = _unit(4, 3)
    ids, _ = NeighborIndex(data).query(data[:2], 10)
    assert ids.shape == (2, 4)
    ids, _ = NeighborIndex(data).query(data, 10, exclude_self=True)
    assert ids.shape == (4, 4)  # the excluded self entry ends up last


def test_neighbor_index_validation_and_empty():
    with pytest.raises(ValueError):
        NeighborIndex(np.zeros(5, np.float32))
    index = NeighborIndex(_unit(5, 3))
    assert len(index) == 5
    with pytest.raises(ValueError):
        index.query(_unit(1, 3), 0)
    ids, scores = index.query(np.zeros((0, 3), np.float32), 2)
    assert ids.shape == (0, 2) and scores.shape == (0, 2)


def test_knn_accuracy_separable_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16, dtype=np.float32) * 10
    labels = np.repeat(np.arange(4), 10)
    x = centres[labels] + rng.normal(scale=0.5, size=(40, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert knn_accuracy(x, labels, k=1) == 1.0
    assert knn_accuracy(x, labels, k=5) == 1.0


def test_knn_accuracy_random_labels_near_chance():
    x = _unit(200, 8, 5)
    labels = np.random.default_rng(6).integers(0, 4, 200)
    assert knn_accuracy(x, labels, k=1) < 0.5


# TrainConfig / MapConfig -------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(backbone="vgg16"), "backbone"),
    (dict(minutes=1.0, epochs=2), "not both"),
    (dict(batch_size=1), "batch_size"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(objective="simsiam"), "objective"),
    (dict(optimizer="lamb"), "optimizer"),
    (dict(device="tpu"), "device"),
    (dict(resolution=8), "resolution"),
    (dict(lr=0.0), "lr"),
    (dict(warmup_fraction=1.0), "warmup"),
    (dict(minutes=-1.0), "minutes"),
    (dict(epochs=-1), "epochs"),
    (dict(freeze_stages=-1), "freeze"),
    (dict(hard_negative_beta=-0.5), "hard_negative_beta"),
    (dict(hard_negative_beta=float("nan")), "hard_negative_beta"),
    (dict(hard_negative_beta=0.5, objective="triplet"), "ntxent"),
    (dict(precision="fp16"), "precision"),
    (dict(neighbor_positives=1.5), "neighbor_positives"),
    (dict(neighbor_positives=0.5, pretrained=False), "pretrained start"),
    (dict(neighbor_k=0), "neighbor_k"),
    (dict(adapter=True, pretrained=False), "adapter"),
    (dict(bank_views=1), "bank_views"),
    (dict(adapter_epochs=0), "adapter_epochs"),
])
def test_train_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("device", ["cpu", "cuda", "mps"])
@pytest.mark.parametrize("pretrained", [True, False])
def test_train_config_resolved_fills_every_none(device, pretrained):
    cfg = TrainConfig(pretrained=pretrained)
    resolved = cfg.resolved(device)
    none = [f.name for f in dataclasses.fields(resolved) if getattr(resolved, f.name) is None]
    # A time budget is the default budget: epochs stays unset on purpose.
    assert none == ["epochs"], none
    assert resolved.minutes == 5.0
    assert resolved.resolution >= 16 and resolved.batch_size >= 2 and resolved.lr > 0
    assert resolved == resolved.resolved(device)  # idempotent
    assert cfg.resolution is None  # frozen original untouched


def test_train_config_resolved_keeps_explicit_values():
    cfg = TrainConfig(resolution=96, batch_size=32, lr=3e-4, weight_decay=0.0, freeze_stages=2,
                      epochs=3).resolved("cpu")
    assert (cfg.resolution, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.freeze_stages) == (
        96, 32, 3e-4, 0.0, 2)
    assert cfg.epochs == 3 and cfg.minutes is None


def test_train_config_device_defaults_differ():
    cpu, gpu = TrainConfig().resolved("cpu"), TrainConfig().resolved("cuda")
    # The measured recipe (the adapter, neighbours as the "same kind" positives) on every
    # device; a GPU encodes more views.
    assert cpu.adapter and cpu.neighbor_positives == 1.0 and cpu.temperature == 0.5
    assert gpu.adapter and gpu.bank_views > cpu.bank_views == 4
    assert cpu.freeze_stages == 9
    tuned = TrainConfig(adapter=False).resolved("cuda")
    assert tuned.freeze_stages < 9 and tuned.temperature == 0.2
    scratch_cpu = TrainConfig(pretrained=False).resolved("cpu")
    scratch_gpu = TrainConfig(pretrained=False).resolved("cuda")
    assert not scratch_cpu.adapter and scratch_cpu.resolution <= scratch_gpu.resolution
    assert scratch_cpu.batch_size <= scratch_gpu.batch_size


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_pretrained_start_on_a_gpu_takes_the_measured_recipe(device):
    # A GPU runs the recipe measured on the CPU and kept by the check on an H200 (the
    # adapter on the frozen encoder's bank, neighbours as the "same kind" positives:
    # docs/measurements.md), spending its speed on more bank views; pixel fine-tuning stays one flag
    # away (--no-adapter).
    cfg = TrainConfig().resolved(device)
    cpu = TrainConfig().resolved("cpu")
    assert cfg.adapter and cfg.backbone == "efficientnet_lite0"
    assert cfg.freeze_stages == 9  # the whole trunk: only the adapter and head train
    assert (cfg.neighbor_positives, cfg.temperature, cfg.lr, cfg.resolution) == (
        cpu.neighbor_positives, cpu.temperature, cpu.lr, cpu.resolution) == (1.0, 0.5, 1e-3, 224)
    assert cfg.bank_views == 8 > cpu.bank_views and cfg.adapter_epochs == cpu.adapter_epochs
    tuned = TrainConfig(adapter=False).resolved(device)
    assert not tuned.adapter and 0 < tuned.freeze_stages < 9 and tuned.batch_size == 256
    assert tuned.neighbor_positives == 0.0


def test_default_backbone_follows_start_and_device():
    assert TrainConfig(pretrained=False).resolved("cpu").backbone == "resnet18_half"
    assert TrainConfig(pretrained=False).resolved("cuda").backbone == "resnet18"
    assert TrainConfig(pretrained=False, backbone="resnet50").resolved("cpu").backbone == (
        "resnet50")
    with pytest.raises(ValueError, match="no pretrained weights"):
        TrainConfig(pretrained=True, backbone="resnet18_half")


def test_train_config_to_dict():
    d = TrainConfig().resolved("cpu").to_dict()
    assert d["backbone"] == "efficientnet_lite0"
    assert d["augment"] == dataclasses.asdict(AugmentConfig())


@pytest.mark.parametrize("kwargs", [dict(n_neighbors=1), dict(min_dist=1.5),
                                    dict(min_cluster_size=1)])
def test_map_config_validation(kwargs):
    with pytest.raises(ValueError):
        MapConfig(**kwargs)


# lr_factor ---------------------------------------------------------------------------------

def test_lr_factor_schedule():
    assert lr_factor(0.0, 0.1) == 0.0
    assert lr_factor(0.05, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, 0.1) == pytest.approx(0.5)
    assert lr_factor(1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(1.5, 0.1) == pytest.approx(0.0, abs=1e-12)  # clamped
    assert lr_factor(-1.0, 0.1) == 0.0


def test_lr_factor_monotone_without_warmup():
    values = [lr_factor(p / 100, 0.0) for p in range(101)]
    assert values[0] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert all(0.0 <= v <= 1.0 for v in values)


def test_hard_negative_beta_reaches_the_cli_config():
    from photoatlas.core.cli.commands import build_parser

    args = build_parser().parse_args(["index", "photos", "--hard-negative-beta", "0.5"])
    assert args.hard_negative_beta == 0.5
    default = build_parser().parse_args(["index", "photos"])
    assert default.hard_negative_beta == TrainConfig().hard_negative_beta


# precision ---------------------------------------------------------------------------------

def test_cpu_autocast_only_with_hardware_bf16(monkeypatch):
    import torch

    import photoatlas.core.encode.device as train_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: True)
    assert autocast_dtype(cpu) == torch.bfloat16
    assert autocast_dtype(cpu, "fp32") is None
    monkeypatch.setattr(train_module, "cpu_has_native_bf16", lambda: False)
    assert autocast_dtype(cpu) is None  # emulated bf16 would be slower than float32
    assert uses_channels_last(cpu) and not uses_channels_last(torch.device("mps"))


def test_precision_reaches_the_cli_config():
    from photoatlas.core.cli.commands import build_parser

    assert build_parser().parse_args(["index", "p", "--precision", "fp32"]).precision == "fp32"
    assert build_parser().parse_args(["index", "p"]).precision == TrainConfig().precision
