"""The event list: the map's photos grouped by when they were taken, each with its dates,
photo count and main clusters (what and when). Choosing an event selects its photos."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QFormLayout,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from photoatlas.core.organize.events import Event

from .map_data import palette
from .session import Session
from .widgets import hint_label

EVENT_ROLE = Qt.ItemDataRole.UserRole + 1


class EventsPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        self.hint = hint_label("")
        layout.addWidget(self.hint)
        form = QFormLayout()
        self.gap = QDoubleSpinBox()
        self.gap.setRange(0.25, 24 * 30)
        self.gap.setDecimals(2)
        self.gap.setSuffix(" h")
        self.gap.setValue(session.event_gap_hours)
        self.gap.setToolTip("A longer pause between two photos starts a new event")
        form.addRow("New event after a gap of", self.gap)
        layout.addLayout(form)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        layout.addWidget(self.list)
        self._filling = False
        self.gap.editingFinished.connect(lambda: session.set_event_gap(self.gap.value()))
        self.list.itemSelectionChanged.connect(self._chosen)
        session.map_changed.connect(self.refresh)
        session.events_changed.connect(self.refresh)
        session.names_changed.connect(self.refresh)

    def refresh(self) -> None:
        self._filling = True
        self.list.clear()
        events = self.session.events()
        colors = palette(len(events))
        for k, event in enumerate(events):
            item = QListWidgetItem(self._label(event))
            item.setData(EVENT_ROLE, k)
            item.setToolTip(self._tooltip(event))
            item.setForeground(QColor.fromRgba(int(colors[k])).lighter(130))
            self.list.addItem(item)
        self._filling = False
        dated = sum(e.dated for e in events)
        total = sum(e.size for e in events)
        if not events:
            self.hint.setText("Events appear once photos are on the map.")
        elif dated < total:
            self.hint.setText(f"{len(events)} events. {total - dated} of {total} photos have no "
                              "capture time in their EXIF and count by their file's date.")
        else:
            self.hint.setText(f"{len(events)} events by capture time.")

    def _label(self, event: Event) -> str:
        names = ", ".join(self.session.cluster_name(c) for c, _ in event.clusters[:2])
        noun = "photo" if event.size == 1 else "photos"
        return f"{event.dates()} · {event.size} {noun}" + (f" · {names}" if names else "")

    def _tooltip(self, event: Event) -> str:
        lines = [f"Event {event.number}: {event.size} photos, {event.dated} with a capture time"]
        lines += [f"{self.session.cluster_name(c)}: {n}" for c, n in event.clusters]
        return "\n".join(lines)

    def _chosen(self) -> None:
        if self._filling:
            return
        events = self.session.events()
        chosen = [events[item.data(EVENT_ROLE)] for item in self.list.selectedItems()]
        if chosen:
            self.session.select(np.concatenate([e.rows for e in chosen]), "replace")
