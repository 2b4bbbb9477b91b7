"""The training panel turns the user's choices into a TrainConfig and shows progress."""

from __future__ import annotations

from photoatlas.app.session import Session
from photoatlas.app.training_panel import TrainingPanel, format_seconds
from photoatlas.core.jobs import Progress, Stage
from photoatlas.core.learn.config import TrainConfig


def test_presets_and_advanced_settings_make_the_config(qtbot) -> None:
    panel = TrainingPanel(Session())
    qtbot.addWidget(panel)
    assert panel.config() == TrainConfig(minutes=5.0)
    panel.preset_group.button(2).setChecked(True)
    assert panel.config().minutes == 45.0
    assert panel.advanced_box.isHidden()
    panel.advanced.setChecked(True)
    assert not panel.advanced_box.isHidden()
    panel.start_from.setCurrentIndex(1)
    panel.backbone.setCurrentText("resnet18_half")
    panel.resolution.setValue(32)
    panel.budget_kind.setCurrentText("epochs")
    panel.budget.setValue(3)
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    cfg = panel.config()
    assert (cfg.backbone, cfg.pretrained, cfg.resolution, cfg.epochs, cfg.minutes,
            cfg.device) == ("resnet18_half", False, 32, 3, None, "cpu")
    # Back to a pretrained start: a backbone without ImageNet weights is replaced.
    panel.start_from.setCurrentIndex(0)
    assert panel.config().pretrained and panel.config().backbone != "resnet18_half"
    panel.backbone.setCurrentText("efficientnet_lite2")  # the larger pretrained encoder
    assert panel.config().backbone == "efficientnet_lite2"


def test_progress_shows_stage_eta_speed_and_the_loss_curve(qtbot) -> None:
    panel = TrainingPanel(Session())
    qtbot.addWidget(panel)
    panel.run_started(TrainConfig(minutes=1.0))
    assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    for step in range(1, 6):
        panel.show_progress(Progress(Stage.TRAIN, step, 0, f"epoch {step}", {
            "loss": 5.0 - step / 2, "images_per_s": 120.0, "fraction": step / 10}, 90.0))
    assert panel.stage.text() == Stage.TRAIN.label
    assert panel.bar.value() == 500
    assert "120 images/s" in panel.detail.text() and "1 min 30 s left" in panel.detail.text()
    assert list(panel.raw_curve.getData()[1]) == [4.5, 4.0, 3.5, 3.0, 2.5]
    panel.run_cancelled()
    assert panel.resume_button.isEnabled() and panel.start_button.isEnabled()
    assert format_seconds(None) == "estimating…" and format_seconds(3725) == "1 h 02 min"


def test_the_choices_are_the_sessions_training_settings(qtbot) -> None:
    """A scan draws its starting map with them, so that a later training reuses it."""
    session = Session()
    panel = TrainingPanel(session)
    qtbot.addWidget(panel)
    assert session.train_settings == panel.config() == TrainConfig(minutes=5.0)
    panel.advanced.setChecked(True)
    panel.start_from.setCurrentIndex(1)
    panel.backbone.setCurrentText("resnet18_half")
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    assert session.train_settings == panel.config()
    # From scratch: the starting map is the default encoder's, on the chosen device.
    assert session.start_map_config() == TrainConfig(device="cpu")
