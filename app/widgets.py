"""Small widgets shared by the panels."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel


def hint_label(text: str = "") -> QLabel:
    """A wrapped, quieter label for explanations and status lines (styled in style.qss)."""
    label = QLabel(text)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label
