"""The search box above the map: words -> photos (core.organize.word_search), shown as the selection
(highlighted on the map, best first in the gallery), to refine with the existing "More like
these" / "Not like these" and "Tag these" actions beside it. Ctrl+F focuses it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCompleter, QHBoxLayout, QLabel, QLineEdit, QWidget

from photoatlas.core.organize.vocabulary import vocabulary

from .session import Session

# Photos a search selects at most: more is not browsable in the gallery anyway.
RESULTS = 500


class SearchBar(QWidget):
    """A line edit completing the known words, and a line saying what the search found."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Find photos by words: dog, beach, church, bicycle…")
        self.edit.setClearButtonEnabled(True)
        self.edit.setMinimumWidth(260)
        completer = QCompleter(list(vocabulary().known_words()), self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.edit.setCompleter(completer)
        self.edit.returnPressed.connect(self.search)
        self.status = QLabel("")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.edit)
        layout.addWidget(self.status, 1)

    def focus(self) -> None:
        self.edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.edit.selectAll()

    def search(self) -> None:
        """Search the words typed; select what they find (best first), or say why not."""
        words = self.edit.text().split()
        if not words:
            return
        if self.session.data is None or self.session.showing_other:
            self.status.setText("No map to search yet" if self.session.data is None else
                                "Go back to the kept map (Ctrl+B) to search it")
            return
        query, rows = self.session.search_words(words, RESULTS)
        explained = query.explain(vocabulary()).replace("\n", "; ")
        self.status.setToolTip(explained)
        if not query.ok:
            self.status.setText(explained)
            return
        self.session.select_ranked(rows)
        found = f"{len(rows)} photo(s)" if len(rows) else "No photo shows it clearly"
        self.status.setText(f"{found} · {explained}")
