"""One message box at a time: a message that arrives while another is open waits until that
one is closed (two window-modal boxes opened together stack, the second's text over the
first's), and a message already open or waiting is not queued twice."""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMessageBox, QWidget

Message = tuple[QMessageBox.Icon, str, str, str]  # icon, title, text, details


class MessageQueue(QObject):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent = parent
        self._waiting: deque[Message] = deque()
        self._shown: Message | None = None
        self.box: QMessageBox | None = None  # the box on screen, if any

    def show(self, icon: QMessageBox.Icon, title: str, text: str, details: str = "") -> None:
        message = (icon, title, text, details)
        if message == self._shown or message in self._waiting:
            return
        self._waiting.append(message)
        if self.box is None:
            self._next()

    def warn(self, title: str, text: str) -> None:
        self.show(QMessageBox.Icon.Warning, title, text)

    def inform(self, title: str, text: str, details: str = "") -> None:
        self.show(QMessageBox.Icon.Information, title, text, details)

    def waiting(self) -> int:
        """Messages queued behind the one on screen."""
        return len(self._waiting)

    def _next(self) -> None:
        if not self._waiting:
            self._shown = None
            return
        self._shown = icon, title, text, details = self._waiting.popleft()
        box = QMessageBox(icon, title, text, parent=self._parent)
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(self._closed)
        self.box = box
        box.open()

    def _closed(self) -> None:
        if self.box is not None:
            self.box.deleteLater()
        self.box = None
        self._next()
