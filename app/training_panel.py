"""Training panel: presets by time, an Advanced section, Start / Cancel / Resume, live
progress with ETA and images/s, the loss curve, a log and the label-free verdict."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from photoatlas.core.encode.device import available_devices
from photoatlas.core.encode.model import BACKBONES, PRETRAINED_BACKBONES
from photoatlas.core.jobs import Progress, Stage
from photoatlas.core.learn.config import TrainConfig
from photoatlas.core.report import RunReport

from .session import Session
from .widgets import hint_label
from .worker import Worker

# (label, training minutes): what a user picks without knowing anything about SimCLR.
PRESETS = (("Quick", 5.0), ("Balanced", 15.0), ("Thorough", 45.0))
def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


class TrainingPanel(QWidget):
    """Builds a TrainConfig from the user's choices, keeps the session's training settings
    those choices, and shows a run's progress."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._running = False
        self._resumable = False
        self._last_config: TrainConfig | None = None
        self._steps: list[int] = []
        self._losses: list[float] = []
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_presets())
        self._build_advanced(layout)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the cancelled run from its last checkpoint")
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.resume_button)
        layout.addLayout(buttons)
        self.start_button.clicked.connect(self.start)
        self.resume_button.clicked.connect(self._resume)
        self.cancel_button.clicked.connect(self._cancel)
        self._build_run_view(layout)
        self._update_buttons()

        for changed in (self.preset_group.idToggled, self.advanced.toggled,
                        self.backbone.currentIndexChanged, self.start_from.currentIndexChanged,
                        self.resolution.valueChanged, self.batch_size.valueChanged,
                        self.temperature.valueChanged, self.budget_kind.currentIndexChanged,
                        self.budget.valueChanged, self.device.currentIndexChanged):
            changed.connect(self._choices_changed)
        self._choices_changed()
        session.training_started.connect(self._follow)
        session.map_changed.connect(self._map_changed)

    def _build_presets(self) -> QGroupBox:
        presets = QGroupBox("How long may PhotoAtlas learn your photos?")
        row = QHBoxLayout(presets)
        self.preset_group = QButtonGroup(self)
        for i, (label, minutes) in enumerate(PRESETS):
            button = QRadioButton(f"{label}\n≈ {minutes:g} min")
            button.setToolTip(f"Train for about {minutes:g} minutes, then embed and map")
            self.preset_group.addButton(button, i)
            row.addWidget(button)
        self.preset_group.button(0).setChecked(True)
        return presets

    def _build_advanced(self, layout: QVBoxLayout) -> None:
        # "Advanced" is a disclosure button: its settings apply only while it is open.
        self.advanced = QToolButton()
        self.advanced.setText("Advanced settings")
        self.advanced.setCheckable(True)
        self.advanced.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_box = QGroupBox()
        form = QFormLayout(self.advanced_box)
        self.backbone = QComboBox()
        self.backbone.addItems(BACKBONES)
        self.start_from = QComboBox()
        self.start_from.addItems(["Pretrained (ImageNet)", "From scratch"])
        self.start_from.currentIndexChanged.connect(self._start_changed)
        self.resolution = QSpinBox()
        self.resolution.setRange(0, 1024)
        self.resolution.setSpecialValueText("automatic")
        self.resolution.setSuffix(" px")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(0, 4096)
        self.batch_size.setSpecialValueText("automatic")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setSpecialValueText("automatic")
        self.temperature.setValue(0.0)
        self.budget_kind = QComboBox()
        self.budget_kind.addItems(["minutes", "epochs"])
        self.budget = QDoubleSpinBox()
        self.budget.setRange(0.0, 10_000)
        self.budget.setValue(5.0)
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.budget)
        budget_row.addWidget(self.budget_kind)
        self.device = QComboBox()
        for choice in available_devices():
            label = f"Automatic ({choice.label})" if choice.value == "auto" else choice.label
            self.device.addItem(label, choice.value)
        form.addRow("Encoder", self.backbone)
        form.addRow("Start", self.start_from)
        form.addRow("Resolution", self.resolution)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Temperature", self.temperature)
        form.addRow("Budget", budget_row)
        form.addRow("Device", self.device)
        self.advanced.toggled.connect(self._advanced_toggled)
        self._advanced_toggled(False)
        layout.addWidget(self.advanced)
        layout.addWidget(self.advanced_box)

    def _build_run_view(self, layout: QVBoxLayout) -> None:
        """The run's stage, progress, loss curve, verdict and log."""
        self.stage = QLabel("Ready")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setTextVisible(False)
        self.detail = hint_label()
        layout.addWidget(self.stage)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)

        self.plot = pg.PlotWidget(background="#1b1d21")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "NT-Xent loss")
        self.plot.setMinimumHeight(140)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.raw_curve = self.plot.plot(pen=pg.mkPen("#5f6b7a", width=1))
        self.smooth_curve = self.plot.plot(pen=pg.mkPen("#4fc3f7", width=2))
        layout.addWidget(self.plot, 1)
        self.plot.hide()  # an empty 0-1 grid says nothing: shown with the first loss

        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        layout.addWidget(self.verdict)
        # The figures behind the verdict, for whoever wants them; the sentence comes first.
        self.details_button = QToolButton()
        self.details_button.setText("Details")
        self.details_button.setCheckable(True)
        self.details_button.setVisible(False)
        layout.addWidget(self.details_button)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setStyleSheet("color: #9aa3ad")
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setVisible(False)
        layout.addWidget(self.details)
        self.details_button.toggled.connect(self.details.setVisible)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMinimumHeight(80)
        layout.addWidget(self.log, 1)

    # configuration ------------------------------------------------------------------------
    def _advanced_toggled(self, on: bool) -> None:
        self.advanced_box.setVisible(on)
        self.advanced.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)

    def _start_changed(self) -> None:
        scratch = self.start_from.currentIndex() == 1
        if not scratch and self.backbone.currentText() not in PRETRAINED_BACKBONES:
            self.backbone.setCurrentText(PRETRAINED_BACKBONES[0])

    def config(self) -> TrainConfig:
        """The TrainConfig of the current choices (raises ValueError when inconsistent)."""
        minutes = PRESETS[max(0, self.preset_group.checkedId())][1]
        if not self.advanced.isChecked():
            return TrainConfig(minutes=minutes)
        scratch = self.start_from.currentIndex() == 1
        by_epochs = self.budget_kind.currentText() == "epochs"
        return TrainConfig(
            backbone=self.backbone.currentText(), pretrained=not scratch,
            resolution=self.resolution.value() or None,
            batch_size=self.batch_size.value() or None,
            temperature=self.temperature.value() or None,
            minutes=None if by_epochs else self.budget.value(),
            epochs=int(self.budget.value()) if by_epochs else None,
            device=self.device.currentData())

    def _choices_changed(self) -> None:
        """The session's training settings follow the choices: a scan draws the starting
        map with them, so that a later training reuses its embeddings."""
        try:
            cfg = self.config()
        except ValueError:
            cfg = None
        self.session.set_train_settings(cfg)

    def start(self) -> None:
        """Train with the current choices, or tell why they do not work together."""
        try:
            cfg = self.config()
        except ValueError as exc:
            self.session.messages.warn("These training settings do not work together",
                                       str(exc))
            return
        self.session.start_training(cfg)

    def _resume(self) -> None:
        if self._last_config is not None and not self._running:
            self.session.start_training(self._last_config)

    def _cancel(self) -> None:
        if self.session.cancel_training():
            self.stage.setText("Cancelling after this step…")

    # run state ----------------------------------------------------------------------------
    def _follow(self, worker: Worker, cfg: TrainConfig) -> None:
        """Show the progress and the outcome of the session's training run ``worker``."""
        self.run_started(cfg)
        worker.progress.connect(self.show_progress)
        worker.returned.connect(self.run_finished)
        worker.cancelled.connect(self.run_cancelled)
        worker.errored.connect(lambda message, _tb: self.run_failed(message))

    def _map_changed(self) -> None:
        data = self.session.data
        if data is not None and not self._running:
            self.show_last_run(data.run.report)

    def run_started(self, cfg: TrainConfig) -> None:
        self._running = True
        self._last_config = cfg
        self._steps, self._losses = [], []
        self.raw_curve.setData([], [])
        self.smooth_curve.setData([], [])
        self.plot.hide()
        self._set_verdict("", "")
        self.stage.setText("Starting…")
        self.bar.setValue(0)
        self.append_log(f"started: {self._describe(cfg)}")
        self._resumable = False
        self._update_buttons()

    def show_progress(self, event: Progress) -> None:
        fraction = event.values.get("fraction", event.fraction) \
            if event.stage is Stage.TRAIN else event.fraction
        self.stage.setText(event.stage.label)
        self.bar.setValue(int(1000 * fraction))
        parts = [event.message] if event.message else []
        if "images_per_s" in event.values:
            parts.append(f"{event.values['images_per_s']:.0f} images/s")
        parts.append(f"{format_seconds(event.eta_s)} left")
        self.detail.setText("  ·  ".join(parts))
        if event.stage in (Stage.TRAIN, Stage.ADAPT) and "loss" in event.values:
            self._steps.append(event.done)
            self._losses.append(float(event.values["loss"]))
            self._draw_loss()

    def _draw_loss(self) -> None:
        steps = np.array(self._steps, np.float64)
        losses = np.array(self._losses, np.float64)
        self.raw_curve.setData(steps, losses)
        smooth = np.empty_like(losses)
        acc = losses[0]
        for i, value in enumerate(losses):  # exponential moving average, a few hundred points
            acc = 0.9 * acc + 0.1 * value
            smooth[i] = acc
        self.smooth_curve.setData(steps, smooth)
        self.plot.show()

    def show_last_run(self, report: RunReport) -> None:
        """Summarise a finished run (the one the map shows) without touching the log."""
        line = (f"Last run: {report.images.embedded} photos embedded · "
                f"{report.clusters} clusters")
        if report.training is not None:
            line += (f" · {report.training.epochs} epochs at "
                     f"{report.training.images_per_s:.0f} images/s")
        self.detail.setText(line)
        text = report.verdict()
        if report.cut:
            text += "\nCut to fit the time budget: " + "; ".join(report.cut) + "."
        self._set_verdict(text, report.details())

    def _set_verdict(self, text: str, details: str) -> None:
        self.verdict.setText(text)
        self.details.setText(details)
        self.details_button.setVisible(bool(details))
        self.details.setVisible(bool(details) and self.details_button.isChecked())

    def run_finished(self, report: RunReport) -> None:
        self._running = False
        self._resumable = False
        self.show_last_run(report)
        self.stage.setText("Done")
        self.bar.setValue(1000)
        self.append_log(f"finished in {sum(report.stage_seconds.values()):.0f} s on "
                        f"{report.device}")
        if report.check is not None:
            self.append_log(report.verdict())
        for cut in report.cut:
            self.append_log(f"cut to fit the budget: {cut}")
        for item in report.images.failed_files[:50]:
            self.append_log(f"skipped {item.path}: {item.reason}")
        self._update_buttons()

    def run_cancelled(self) -> None:
        self._running = False
        self._resumable = True
        self.stage.setText("Cancelled: Resume continues from the last checkpoint")
        self.append_log("cancelled")
        self._update_buttons()

    def run_failed(self, message: str) -> None:
        self._running = False
        self._resumable = self._last_config is not None
        self.stage.setText("Stopped by an error")
        self.append_log(f"error: {message}")
        self._update_buttons()

    def append_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    def _update_buttons(self) -> None:
        self.start_button.setEnabled(not self._running)
        self.cancel_button.setEnabled(self._running)
        self.resume_button.setEnabled(not self._running and self._resumable)

    @staticmethod
    def _describe(cfg: TrainConfig) -> str:
        budget = f"{cfg.epochs} epochs" if cfg.epochs is not None else \
            f"{cfg.minutes if cfg.minutes is not None else 5:g} min"
        start = "pretrained" if cfg.pretrained else "from scratch"
        return f"{cfg.backbone or 'default encoder'}, {start}, {budget}, device {cfg.device}"

