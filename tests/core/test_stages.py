"""Stages: one name per step of a job, and one set of words for people."""

from __future__ import annotations

import json

from photoatlas.core.jobs import Progress, Stage


def test_every_stage_has_words_for_people() -> None:
    labels = {stage: stage.label for stage in Stage}
    assert all(label and label[0].isupper() for label in labels.values())
    assert Stage.CHECK.label == "Checking whether training helped"


def test_a_stage_prints_and_serialises_as_its_name() -> None:
    event = Progress(Stage.DECODE, 1, 4, "1/4 photos")
    assert f"{event.stage:>7}" == " decode" and str(event.stage) == "decode"
    assert json.dumps({"stage": event.stage}) == '{"stage": "decode"}'
    assert event.stage == "decode" and Stage("decode") is Stage.DECODE
