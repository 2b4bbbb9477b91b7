"""Few-shot tags: tag a few photos, let a probe on the embeddings propose the tag for the
rest with a confidence, accept or reject the proposals in bulk. The writes and the proposals
are jobs of the session's tags (app/library_tags.py); the panel shows what they did."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from photoatlas.core.organize.tags import DEFAULT_MIN_CONFIDENCE, Suggestion

from .gallery import ROW_ROLE, PhotoGrid
from .library_tags import TagChange
from .session import Session
from .thumbnails import ThumbnailStore
from .widgets import hint_label

NAME_ROLE = Qt.ItemDataRole.UserRole + 1


class TagsPanel(QWidget):
    """Tags of the open library, and the proposals of one of them."""

    def __init__(self, session: Session, thumbnails: ThumbnailStore,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.suggested_for: str | None = None
        layout = QVBoxLayout(self)
        self.tags = QListWidget()
        self.tags.setMaximumHeight(150)
        layout.addWidget(self.tags)
        row = QHBoxLayout()
        self.tag_button = QPushButton("Tag selection…")
        self.untag_button = QPushButton("Untag selection")
        self.show_button = QPushButton("Show tagged")
        for button in (self.tag_button, self.untag_button, self.show_button):
            row.addWidget(button)
        layout.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Propose above"))
        self.min_confidence = QDoubleSpinBox()
        self.min_confidence.setRange(0.0, 1.0)
        self.min_confidence.setSingleStep(0.05)
        self.min_confidence.setValue(DEFAULT_MIN_CONFIDENCE)
        row.addWidget(self.min_confidence)
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("Propose this tag for similar photos")
        row.addWidget(self.suggest_button)
        layout.addLayout(row)
        self.status = hint_label("Select photos on the map and tag a few of them.")
        layout.addWidget(self.status)
        self.proposals = PhotoGrid(thumbnails)
        layout.addWidget(self.proposals, 1)
        row = QHBoxLayout()
        self.accept_button = QPushButton("Accept all")
        self.accept_button.setToolTip("Accept the selected proposals, or all when none "
                                      "is selected")
        self.reject_button = QPushButton("Reject selected")
        self.export_button = QPushButton("Export CSV…")
        for button in (self.accept_button, self.reject_button, self.export_button):
            row.addWidget(button)
        layout.addLayout(row)

        self.tag_button.clicked.connect(self.ask_tag_selection)
        self.untag_button.clicked.connect(self._untag_selection)
        self.show_button.clicked.connect(self._show_tagged)
        self.suggest_button.clicked.connect(self._suggest)
        self.accept_button.clicked.connect(self._accept)
        self.reject_button.clicked.connect(self._reject)
        self.export_button.clicked.connect(self._choose_csv)
        self.proposals.clicked.connect(
            lambda index: session.set_current(int(index.data(ROW_ROLE))))
        self.proposals.photos.modelReset.connect(self._update_buttons)
        self.proposals.selectionModel().selectionChanged.connect(self._update_buttons)
        session.library_changed.connect(self.refresh)
        session.map_changed.connect(self.refresh)
        session.tags.changed.connect(self._tags_changed)
        session.tags.suggested.connect(self.show_suggestions)
        self.refresh()

    # tags ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        current = self.current_tag()
        self.tags.clear()
        for tag in self.session.tags.summaries():
            item = QListWidgetItem(f"{tag.name}   ({tag.user} tagged, {tag.accepted} "
                                   f"accepted, {tag.rejected} rejected)")
            item.setData(NAME_ROLE, tag.name)
            self.tags.addItem(item)
            if tag.name == current:
                self.tags.setCurrentItem(item)
        if self.tags.currentItem() is None and self.tags.count():
            self.tags.setCurrentRow(0)
        self._update_buttons()

    def current_tag(self) -> str | None:
        item = self.tags.currentItem()
        return item.data(NAME_ROLE) if item is not None else None

    def ask_tag_selection(self) -> None:
        """Ask for a tag name and give it to the selected photos."""
        count = len(self.session.selection)
        if not count:
            self.session.messages.warn("Nothing selected", "Select photos on the map to tag "
                                       "them.")
            return
        name, ok = QInputDialog.getText(self, "Tag selection", f"Tag for {count} photo(s):",
                                        text=self.current_tag() or "")
        if ok:
            self.session.tags.tag_selection(name)

    def _select_tag(self, name: str) -> None:
        for i in range(self.tags.count()):
            if self.tags.item(i).data(NAME_ROLE) == name:
                self.tags.setCurrentRow(i)

    def _untag_selection(self) -> None:
        name = self.current_tag()
        if name:
            self.session.tags.untag_selection(name)

    def _show_tagged(self) -> None:
        name = self.current_tag()
        if name and self.session.data is not None:
            self.session.select(self.session.tags.rows_tagged(name), "replace")

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export tags as CSV", "tags.csv",
                                              "CSV files (*.csv)")
        if path:
            self.session.tags.export_csv(Path(path))

    def _tags_changed(self, change: TagChange) -> None:
        """A tag write went through: list the tags again and say what it did."""
        self.refresh()
        if change.source == "user":
            self._select_tag(change.name)
            self.status.setText(f"Tagged {change.count} photo(s) “{change.name}”. Suggest "
                                "proposes it for similar photos.")
        elif change.source == "removed":
            self.status.setText(f"Removed “{change.name}” from {change.count} photo(s).")
        elif change.name == self.suggested_for:
            self._drop_proposals(change.image_ids)
            verb = "Accepted" if change.source == "accepted" else "Rejected"
            self.status.setText(f"{verb} {len(change.image_ids)} proposal(s) for "
                                f"“{change.name}”.")

    # proposals ----------------------------------------------------------------------------
    def _suggest(self) -> None:
        name = self.current_tag()
        if name:
            self.status.setText(f"Looking for photos like those tagged “{name}”…")
            self.session.tags.suggest(name, self.min_confidence.value())

    def show_suggestions(self, name: str, suggestions: list[Suggestion]) -> None:
        data = self.session.data
        if data is None:
            return
        rows = self.session.rows_of_paths([s.path for s in suggestions])
        score = {s.path: s.confidence for s in suggestions}
        self.suggested_for = name
        self.proposals.photos.set_photos(rows, data.run.image_ids[rows],
                                         [str(data.run.paths[r]) for r in rows],
                                         [score[str(data.run.paths[r])] for r in rows])
        self.status.setText(f"{len(rows)} photo(s) proposed for “{name}”, most confident "
                            "first. Accept them, or reject the wrong ones first.")

    def _proposal_rows(self, selected_only: bool) -> list[int]:
        if selected_only:
            return self.proposals.selected_rows()
        return [int(r) for r in self.proposals.photos.rows]

    def _decide(self, rows: list[int], source: str) -> None:
        if rows and self.suggested_for is not None:
            self.session.tags.decide(self.suggested_for, rows, source)

    def _drop_proposals(self, image_ids: tuple[int, ...]) -> None:
        """Take the photos the user answered for out of the proposals."""
        photos = self.proposals.photos
        decided = set(image_ids)
        keep = [n for n, i in enumerate(photos.image_ids) if int(i) not in decided]
        scores = [photos.scores[n] for n in keep] if photos.scores is not None else None
        photos.set_photos(photos.rows[keep], photos.image_ids[keep],
                          [photos.paths[n] for n in keep], scores)

    def _accept(self) -> None:
        selected = self.proposals.selected_rows()
        self._decide(selected or self._proposal_rows(False), "accepted")

    def _reject(self) -> None:
        self._decide(self.proposals.selected_rows(), "rejected")

    def _update_buttons(self) -> None:
        has_tag = self.current_tag() is not None
        self.untag_button.setEnabled(has_tag)
        self.show_button.setEnabled(has_tag)
        self.suggest_button.setEnabled(has_tag)
        proposals = self.proposals.photos.rowCount() > 0
        self.accept_button.setEnabled(proposals)
        self.reject_button.setEnabled(bool(self.proposals.selected_rows()))
        self.export_button.setEnabled(self.tags.count() > 0)
