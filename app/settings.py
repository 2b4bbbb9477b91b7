"""What the window remembers between sessions besides its layout: the libraries opened last,
kept with QSettings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

MAX_RECENT = 8
_KEY = "libraries/recent"


class RecentLibraries(QObject):
    """The recently opened libraries, the last one first."""

    changed = Signal()

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings

    def paths(self) -> list[str]:
        value = self.settings.value(_KEY, [])
        return [value] if isinstance(value, str) else list(value or [])

    def last(self) -> str | None:
        recent = self.paths()
        return recent[0] if recent else None

    def remember(self, root: Path) -> None:
        """Put ``root`` first, keeping at most MAX_RECENT."""
        recent = [str(root)] + [r for r in self.paths() if r != str(root)]
        self.settings.setValue(_KEY, recent[:MAX_RECENT])
        self.changed.emit()
