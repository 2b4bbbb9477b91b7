"""``photoatlas --install-desktop-entry`` writes the menu entry and icon under
$XDG_DATA_HOME, updates its own files and never silently replaces the user's."""

from __future__ import annotations

import configparser
import shlex
import sys
from pathlib import Path

from photoatlas.app.__main__ import main
from photoatlas.app.desktop_entry import MARKER, install
from photoatlas.app.resources import resource


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in desktop entries
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_installs_entry_and_icon_under_xdg_data_home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["--install-desktop-entry"]) == 0
    entry_path = tmp_path / "data" / "applications" / "photoatlas.desktop"
    icon = tmp_path / "data" / "icons" / "hicolor" / "scalable" / "apps" / "photoatlas.svg"
    entry = read_entry(entry_path)
    assert entry["Type"] == "Application" and entry["Name"] == "PhotoAtlas"
    assert entry["Icon"] == "photoatlas" and entry["Terminal"] == "false"
    assert entry[MARKER] == "1"
    # Exec runs this installation's window, by absolute path (the menu has no venv on PATH).
    command = shlex.split(entry["Exec"])
    assert Path(command[0]).is_absolute() and command[-1] == "gui"
    assert Path(entry["TryExec"]) == Path(command[0]) and Path(command[0]).exists()
    assert icon.read_bytes() == resource("icon.svg").read_bytes()
    assert "installed" in capsys.readouterr().out
    # Again: nothing to do.
    assert [w.state for w in install(tmp_path / "data")] == ["unchanged", "unchanged"]


def test_exec_line_runs_this_installations_console_script(tmp_path):
    """Exec names the ``photoatlas`` script beside this Python, whose entry point is the
    window's (app.__main__:main); the script itself is not run (importing Qt and torch in
    a child would take the better part of a minute on a loaded CPU)."""
    install(tmp_path)
    entry = read_entry(tmp_path / "applications" / "photoatlas.desktop")
    command = shlex.split(entry["Exec"])
    if Path(command[0]).name == "photoatlas":
        assert Path(command[0]).parent == Path(sys.executable).parent
        assert "from photoatlas.app.__main__ import main" in Path(command[0]).read_text()
    else:  # no console script installed: the module is run directly
        assert command[:3] == [sys.executable, "-m", "photoatlas.app"]


def test_an_earlier_install_is_updated(tmp_path):
    install(tmp_path, command="/old/place/photoatlas gui")
    written = install(tmp_path, command="/new/place/photoatlas gui")
    assert [w.state for w in written] == ["updated", "unchanged"]
    entry = read_entry(tmp_path / "applications" / "photoatlas.desktop")
    assert entry["Exec"] == "/new/place/photoatlas gui"
    assert not list(tmp_path.rglob("*.bak"))


def test_the_users_own_files_are_kept_unless_forced(tmp_path, monkeypatch, capsys):
    entry_path = tmp_path / "applications" / "photoatlas.desktop"
    icon = tmp_path / "icons" / "hicolor" / "scalable" / "apps" / "photoatlas.svg"
    for path, text in ((entry_path, "[Desktop Entry]\nName=Mine\nExec=mine\n"),
                       (icon, "<svg>mine</svg>")):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["--install-desktop-entry"]) == 1
    captured = capsys.readouterr()
    assert "kept yours" in captured.out and "--force" in captured.err
    assert entry_path.read_text() == "[Desktop Entry]\nName=Mine\nExec=mine\n"
    assert icon.read_text() == "<svg>mine</svg>"

    assert main(["--install-desktop-entry", "--force"]) == 0
    assert read_entry(entry_path)["Name"] == "PhotoAtlas"
    assert entry_path.with_name("photoatlas.desktop.bak").read_text().startswith(
        "[Desktop Entry]\nName=Mine")
    assert icon.with_name("photoatlas.svg.bak").read_text() == "<svg>mine</svg>"


def test_relative_xdg_data_home_is_ignored(tmp_path, monkeypatch):
    from photoatlas.app.desktop_entry import data_home

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    assert data_home() == tmp_path / ".local" / "share"
