"""The Help menu's texts: the keyboard shortcuts and what PhotoAtlas is."""

from __future__ import annotations

SHORTCUTS = (
    ("Ctrl+O", "Add a photo folder"), ("Ctrl+Shift+O", "Open a library"),
    ("Ctrl+T", "Start training"), ("Ctrl+E", "Copy the selection to a folder"),
    ("Ctrl+F", "Find photos by words"), ("Ctrl+Shift+F", "Find photos similar to a file"),
    ("F / Home", "Fit the map"),
    ("+ / −, wheel", "Zoom the map"), ("Drag", "Pan (or lasso / rectangle in those modes)"),
    ("P / L / R", "Pan, lasso or rectangle mode"), ("Ctrl/Shift + click or drag",
                                                   "Add to the selection"),
    ("Esc", "Clear the selection"), ("Double-click", "Open the photo in your viewer"),
)
ABOUT = ("<h3>PhotoAtlas</h3><p>Organizes photo folders with no labels: it adapts an image "
         "encoder to your own photos with contrastive learning, maps them and finds similar "
         "ones.</p><p>Your photos are only ever read.</p>")


def shortcuts_table() -> str:
    """The shortcuts as an HTML table, for a message box."""
    rows = "".join(f"<tr><td><b>{keys}</b></td><td>&nbsp;&nbsp;{what}</td></tr>"
                   for keys, what in SHORTCUTS)
    return f"<table>{rows}</table>"
