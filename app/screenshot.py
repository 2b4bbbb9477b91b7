"""Save a screenshot of the window on a real library: ``make screenshot``.

Indexes FOLDER into the library first when it has no map yet (a short training run), then
opens the window, picks a photo of the largest cluster, zooms the map around it until
the points become thumbnails, and saves the window as a PNG.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication


def wait(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def ensure_index(folder: Path, library_dir: Path, minutes: float) -> None:
    from photoatlas.core.cli.commands import main as cli_main
    from photoatlas.core.library.library import Library
    from photoatlas.core.storage import LibraryError

    with Library(library_dir) as library:
        try:
            library.current_run()
            return
        except LibraryError:
            pass
    code = cli_main(["index", str(folder), "--library", str(library_dir), "--minutes",
                     str(minutes)])
    if code != 0:
        raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m photoatlas.app.screenshot")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--library", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshot.png"))
    parser.add_argument("--minutes", type=float, default=1.0,
                        help="training budget when the library has no map yet")
    args = parser.parse_args(argv)
    ensure_index(args.folder, args.library, args.minutes)

    from .gui import make_app
    from .main_window import MainWindow

    app = make_app()
    settings = QSettings(str(args.library / "screenshot-settings.ini"),
                         QSettings.Format.IniFormat)
    settings.clear()  # a fresh layout, whatever a previous screenshot left
    window = MainWindow(args.library, settings=settings)
    window.resize(1600, 1000)
    window.show()
    wait(app, 1.0)
    data = window.session.data
    sizes = data.cluster_sizes()
    biggest = max(sizes, key=sizes.get)
    row = data.representatives[biggest][0]
    window.session.select(np.array([row]), "replace")
    window.docks["similar"].raise_()
    # Zoom around the chosen photo until its neighbourhood is drawn as thumbnails.
    x, y = window.map.to_screen(data.run.xy[row:row + 1])[0]
    window.map.pan_pixels(window.map.width() / 2 - x, window.map.height() / 2 - y)
    while len(window.map.visible_rows()) > 120:
        window.map.zoom(1.15)
        window.map.render_points()
    # The library's folder is this machine's, not the reader's: leave it out of the picture.
    window.statusBar().clearMessage()
    for _ in range(3):  # thumbnails and previews arrive from the loader threads
        window.map.repaint()
        window.thumbnails.wait_idle()
        wait(app, 0.5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.out)):
        print(f"could not write {args.out}", file=sys.stderr)
        return 1
    print(f"saved {args.out}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
