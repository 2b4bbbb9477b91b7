"""The index run's adaptation stages: the default adapters on a bank of view features (same
kind and same scene, each checked and kept only where it wins), pixel fine-tuning, and the
progress relay that shows two trainings as one bar."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from photoatlas.core.atlas.search import NeighborIndex
from photoatlas.core.encode.device import place_model
from photoatlas.core.encode.embed import adapt_embeddings, embed_pixels
from photoatlas.core.encode.model import SimCLRModel
from photoatlas.core.jobs import Cancelled, Progress, ProgressCallback, Stage
from photoatlas.core.learn.adapter import (
    BANK_SHARE,
    bank_neighbors,
    build_bank,
    centred_bank,
    encode_check_views,
    load_bank,
    save_bank,
    split_sample,
    train_adapter,
)
from photoatlas.core.learn.check import (
    CheckViews,
    adapted_views,
    judge,
    judge_scene,
)
from photoatlas.core.learn.scene import SceneSpace
from photoatlas.core.learn.train import TrainResult, train
from photoatlas.core.library.library import CACHE_SIZE
from photoatlas.core.library.runs import (
    SCENE_CHECKPOINT_NAME,
)
from photoatlas.core.pipeline.run import Checks, IndexRun
from photoatlas.core.report import Adaptation, CheckResult, Training


@dataclass(frozen=True)
class Adapted:
    """What adaptation made of the starting encoder, before the check's decisions are used."""

    model: SimCLRModel  # the adapted "same kind" encoder
    checks: Checks
    training: Training
    adaptation: Adaptation | None
    embeddings: np.ndarray  # (N, D) the adapted encoder's embeddings, kept or not
    scene: SceneSpace  # the scene space, with its learnt map only where the check kept it


def adapt_start(run: IndexRun, start_model: SimCLRModel, start: np.ndarray) -> Adapted:
    """Adapt the starting encoder as ``run.cfg`` says (the adapters on a bank of views, or
    pixel fine-tuning of the last stages), then the label-free check: the step ``index``
    runs after the start's map (bench/gpu_check.py measures it alone). Raises Cancelled."""
    if run.cfg.adapter:
        return _adapt_on_bank(run, start_model, start)
    model, check, training, adapted = _fine_tune(run, start_model, start)
    base = adapted if check.kept == "adapted" else start
    return Adapted(model, Checks(check, None), training, None, adapted,
                   SceneSpace.of_library(base))




def training_summary(result: TrainResult) -> Training:
    return Training(result.steps, round(result.epochs, 3), round(result.images_per_s, 2),
                    result.resumed_from_step, result.first_loss, result.last_loss)


def _adapt_on_bank(run: IndexRun, start_model: SimCLRModel, start: np.ndarray) -> Adapted:
    """Train both adapters within the budget: the bank (views of as many sampled photos as
    BANK_SHARE of the budget allows), then, in what is left, half each: the "same kind"
    adapter (neighbours as positives, as configured) and the "same scene" map (own views as
    positives, in the scene space). Each is checked on the bank's held-out views, with no
    encoder pass, and kept only where it wins."""
    cfg = run.cfg
    model = copy.deepcopy(start_model)
    model.add_adapter()
    budget_s = None if cfg.minutes is None else cfg.minutes * 60.0
    began = time.monotonic()
    bank = load_bank(run.dir, len(start), cfg.seed)
    resumed_bank = bank is not None
    if bank is None:
        with run.timer.stage(Stage.VIEWS):
            placement = place_model(model, run.device, cfg.precision)
            deadline = None if budget_s is None else began + BANK_SHARE * budget_s
            bank = build_bank(model, run.prep.pixels, CACHE_SIZE, cfg, placement,
                              cfg.bank_views, deadline, run.cancel, run.progress)
        save_bank(run.dir, bank)
    spent = 0.0 if resumed_bank else time.monotonic() - began
    steps_s = None if budget_s is None else max(budget_s - spent, 0.1 * budget_s) / 2
    neighbors = None if cfg.neighbor_positives == 0 else bank_neighbors(
        start, bank.train_rows, cfg.neighbor_k, cfg.mutual_neighbors)
    with run.timer.stage(Stage.ADAPT):
        result = train_adapter(model, bank, neighbors, cfg, run.dir, steps_s, run.cancel,
                               _labelled(run.progress, "same kind", 0))
    if result.cancelled:
        raise Cancelled()
    space = SceneSpace.of_library(start)
    scene_model = copy.deepcopy(start_model)
    scene_model.add_adapter()
    with run.timer.stage(Stage.ADAPT):
        scene_result = train_adapter(scene_model, centred_bank(bank, space), None,
                                     replace(cfg, neighbor_positives=0.0), run.dir, steps_s,
                                     run.cancel,
                                     _labelled(run.progress, "same scene", result.steps),
                                     SCENE_CHECKPOINT_NAME)
    if scene_result.cancelled:
        raise Cancelled()
    with run.timer.stage(Stage.CHECK):
        adapted = adapt_embeddings(model, start)
        kind = judge(bank.check, adapted_views(model, bank.check), start, adapted,
                      bank.check_rows)
        scene, scene_space = judge_scene(bank.check, scene_model, space, start,
                                          bank.check_rows)
    cap = cfg.epochs if cfg.epochs is not None else cfg.adapter_epochs
    cut = []
    if len(bank.train_rows) < bank.wanted_photos:
        cut.append(f"views of {len(bank.train_rows)} of {bank.wanted_photos} photos encoded "
                   "(the budget's share for encoding ran out)")
    for what, trained in (("adapter", result), ("scene", scene_result)):
        if trained.epochs < cap - 1e-6:
            cut.append(f"{trained.epochs:.1f} of {cap} {what} epochs (the budget ran out)")
    adaptation = Adaptation(
        bank_photos=int(len(bank.train_rows)), bank_photos_wanted=bank.wanted_photos,
        views=bank.views, check_photos=int(len(bank.check_rows)),
        bank_seconds=round(bank.seconds, 2), bank_resumed=resumed_bank,
        epochs=round(result.epochs, 2), scene_epochs=round(scene_result.epochs, 2),
        epoch_cap=cap, budget_s=budget_s, seconds=round(time.monotonic() - began, 2),
        cut=tuple(cut))
    return Adapted(model, Checks(kind, scene), training_summary(result), adaptation, adapted,
                   scene_space)


def _labelled(progress: ProgressCallback, label: str, steps_before: int) -> ProgressCallback:
    """One adapter's training events as part of the stage: its name before the message, its
    steps after those of the adapter trained before it (one bar and one loss curve)."""
    def relay(event: Progress) -> None:
        progress(replace(event, done=event.done + steps_before,
                         total=event.total + steps_before,
                         message=f"{label}: {event.message}"))

    return relay


def pixel_check_views(model: SimCLRModel, pixels: np.ndarray, resolution: int,
                       run: IndexRun) -> CheckViews:
    """The check's three views of ``pixels`` through ``model`` (same views for every model:
    the generator is seeded the same)."""
    placement = place_model(model.eval(), run.device, run.cfg.precision)
    gen = torch.Generator().manual_seed(run.cfg.seed)
    return encode_check_views(model.embed, pixels, resolution, placement, gen, run.cancel,
                              stage=Stage.CHECK)


def _fine_tune(run: IndexRun, start_model: SimCLRModel, start: np.ndarray
               ) -> tuple[SimCLRModel, CheckResult, Training, np.ndarray]:
    """Pixel fine-tuning of the last stages (adapter off), then the check by encoder passes
    over the sample and the whole library."""
    cfg = run.cfg
    model = copy.deepcopy(start_model)
    neighbors = None
    if cfg.neighbor_positives > 0:
        neighbors, _ = NeighborIndex(start).query(start, min(cfg.neighbor_k, len(start) - 1),
                                                  exclude_self=True)
    with run.timer.stage(Stage.TRAIN):
        result = train(model, run.prep.pixels, cfg, run.dir, run.cancel, run.progress,
                       neighbors)
    if result.cancelled:
        raise Cancelled()
    rows, _ = split_sample(len(start), cfg.seed)
    sample = run.prep.pixels[rows]
    with run.timer.stage(Stage.CHECK):
        before = pixel_check_views(start_model, sample, CACHE_SIZE, run)
        after = pixel_check_views(model, sample, cfg.resolution, run)
    with run.timer.stage(Stage.EMBED):
        adapted = embed_pixels(model, run.prep.pixels, cfg.resolution, run.device,
                               cancel=run.cancel, progress=run.progress,
                               precision=cfg.precision)
    return model, judge(before, after, start, adapted, rows), training_summary(result), \
        adapted


