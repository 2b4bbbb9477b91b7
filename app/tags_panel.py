"""Few-shot tags: tag a few photos, let a probe on the embeddings propose the tag for the
rest with a confidence, accept or reject the proposals in bulk."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from photoatlas.core.organize.tags import (
    DEFAULT_MIN_CONFIDENCE,
    Suggestion,
    list_tags,
    remove_tag,
    set_tag,
    tagged,
)

from .gallery import ROW_ROLE, PhotoGrid
from .session import Session
from .thumbnails import ThumbnailStore
from .widgets import hint_label

NAME_ROLE = Qt.ItemDataRole.UserRole + 1


class TagsPanel(QWidget):
    """Tags of the open library; the window runs ``suggest`` on a worker and hands the
    proposals back through ``show_suggestions``."""

    tag_requested = Signal()  # the window asks the user for a name
    suggest_requested = Signal(str, float)  # tag name, minimum confidence
    export_requested = Signal()

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

        self.tag_button.clicked.connect(self.tag_requested)
        self.untag_button.clicked.connect(self._untag_selection)
        self.show_button.clicked.connect(self._show_tagged)
        self.suggest_button.clicked.connect(self._suggest)
        self.accept_button.clicked.connect(self._accept)
        self.reject_button.clicked.connect(self._reject)
        self.export_button.clicked.connect(self.export_requested)
        self.proposals.clicked.connect(
            lambda index: session.set_current(int(index.data(ROW_ROLE))))
        self.proposals.photos.modelReset.connect(self._update_buttons)
        self.proposals.selectionModel().selectionChanged.connect(self._update_buttons)
        session.library_changed.connect(self.refresh)
        session.map_changed.connect(self.refresh)
        self.refresh()

    # tags ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        current = self.current_tag()
        self.tags.clear()
        library = self.session.library
        if library is not None:
            for tag in list_tags(library):
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

    def _selected_ids(self) -> list[int]:
        data = self.session.data
        if data is None:
            return []
        return [int(i) for i in data.run.image_ids[self.session.selection]]

    def tag_selection(self, name: str) -> int:
        """Tag the selected photos with ``name`` (raises ValueError for an empty name)."""
        ids = self._selected_ids()
        if not ids:
            return 0
        count = set_tag(self.session.library, name, ids)
        self.refresh()
        self._select_tag(name.strip())
        self.status.setText(f"Tagged {count} photo(s) “{name.strip()}”. Suggest proposes "
                            "it for similar photos.")
        return count

    def _select_tag(self, name: str) -> None:
        for i in range(self.tags.count()):
            if self.tags.item(i).data(NAME_ROLE) == name:
                self.tags.setCurrentRow(i)

    def _untag_selection(self) -> None:
        name, ids = self.current_tag(), self._selected_ids()
        if name and ids:
            removed = remove_tag(self.session.library, name, ids)
            self.status.setText(f"Removed “{name}” from {removed} photo(s).")
            self.refresh()

    def _show_tagged(self) -> None:
        name, data = self.current_tag(), self.session.data
        if name and data is not None:
            wanted = set(tagged(self.session.library, name))
            rows = [r for r, i in enumerate(data.run.image_ids) if int(i) in wanted]
            self.session.select(rows, "replace")

    # proposals ----------------------------------------------------------------------------
    def _suggest(self) -> None:
        name = self.current_tag()
        if name:
            self.status.setText(f"Looking for photos like those tagged “{name}”…")
            self.suggest_requested.emit(name, self.min_confidence.value())

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
        data = self.session.data
        if not rows or self.suggested_for is None or data is None:
            return
        set_tag(self.session.library, self.suggested_for,
                [int(data.run.image_ids[r]) for r in rows], source)
        decided = set(rows)
        keep = [int(r) for r in self.proposals.photos.rows if int(r) not in decided]
        paths = [str(data.run.paths[r]) for r in keep]
        scores = self.proposals.photos.scores or []
        score_of = dict(zip(map(int, self.proposals.photos.rows), scores, strict=True))
        self.proposals.photos.set_photos(keep, data.run.image_ids[keep], paths,
                                         [score_of[int(r)] for r in keep])
        verb = "Accepted" if source == "accepted" else "Rejected"
        self.status.setText(f"{verb} {len(rows)} proposal(s) for “{self.suggested_for}”.")
        self.refresh()

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
