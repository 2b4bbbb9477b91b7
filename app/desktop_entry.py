"""``photoatlas --install-desktop-entry``: the menu entry and icon of the desktop, written
where the XDG specifications say a user's own applications go ($XDG_DATA_HOME, by default
~/.local/share): applications/photoatlas.desktop and icons/hicolor/scalable/apps/photoatlas.svg.

A file already there is replaced only when an earlier install wrote it (its entry carries
X-PhotoAtlas-Installer); anything else is left alone and named, unless --force, which keeps
it beside as <name>.bak. No Qt here: it works on a machine where the window cannot open yet.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .resources import resource

DESKTOP_NAME = "photoatlas.desktop"
ICON_NAME = "photoatlas.svg"
MARKER = "X-PhotoAtlas-Installer"


@dataclass(frozen=True)
class Written:
    path: Path
    state: str  # "installed", "updated", "unchanged", "kept yours" or "replaced"
    backup: Path | None = None


def data_home(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME when it is an absolute path (the spec ignores others), else
    ~/.local/share."""
    environ = os.environ if environ is None else environ
    value = environ.get("XDG_DATA_HOME", "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / ".local/share"


def launch_command() -> str:
    """The Exec line's command: this installation's photoatlas script, absolute, so the
    menu finds it without the venv on PATH."""
    script = Path(sys.executable).parent / "photoatlas"
    if script.is_file() and os.access(script, os.X_OK):
        return f"{_quote(str(script))} gui"
    return f"{_quote(sys.executable)} -m photoatlas.app gui"


def _quote(arg: str) -> str:
    # Desktop entry quoting: double quotes around arguments with reserved characters,
    # backslash before " ` $ and \ inside them.
    if not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def desktop_entry(command: str) -> str:
    """resources/photoatlas.desktop with its Exec line running ``command``."""
    lines = []
    for line in resource(DESKTOP_NAME).read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = f"Exec={command}"
            lines.append(f"TryExec={shlex.split(command)[0]}")
        lines.append(line)
    lines.append(f"{MARKER}=1")
    return "\n".join(lines) + "\n"


def _write(path: Path, content: bytes, ours: bool, force: bool) -> Written:
    if not path.exists():
        state, backup = "installed", None
    elif path.read_bytes() == content:
        return Written(path, "unchanged")
    elif ours:
        state, backup = "updated", None
    elif force:
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
        state = "replaced"
    else:
        return Written(path, "kept yours")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
    return Written(path, state, backup)


def install(target: Path | None = None, command: str | None = None,
            force: bool = False) -> list[Written]:
    """Write the desktop entry and icon under ``target`` (default: data_home()); what
    happened to each file."""
    target = target or data_home()
    entry_path = target / "applications" / DESKTOP_NAME
    icon_path = target / "icons" / "hicolor" / "scalable" / "apps" / ICON_NAME
    # The icon is ours to replace when the entry beside it is: both come from one install.
    ours = entry_path.is_file() and f"\n{MARKER}=" in entry_path.read_text(
        encoding="utf-8", errors="replace")
    entry = desktop_entry(command or launch_command()).encode()
    written = [_write(entry_path, entry, ours, force),
               _write(icon_path, resource("icon.svg").read_bytes(), ours, force)]
    if shutil.which("update-desktop-database") and written[0].state != "kept yours":
        # Menus of some desktops read this cache; the entry works without it.
        subprocess.run(["update-desktop-database", str(entry_path.parent)],
                       capture_output=True, check=False, timeout=30)
    return written


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(
        prog="photoatlas --install-desktop-entry",
        description="Add PhotoAtlas to the desktop's application menu (this user only).")
    parser.add_argument("--force", action="store_true",
                        help="replace files of the same name that PhotoAtlas did not write "
                        "(each is kept as <name>.bak)")
    args = parser.parse_args(list(argv))
    written = install(force=args.force)
    for item in written:
        note = f" (yours kept as {item.backup})" if item.backup else ""
        print(f"{item.state:>10}: {item.path}{note}")
    if any(item.state == "kept yours" for item in written):
        print("A file there was not written by PhotoAtlas, so it was left as it is; "
              "'photoatlas --install-desktop-entry --force' replaces it and keeps a .bak.",
              file=sys.stderr)
        return 1
    print("PhotoAtlas is in the application menu (Graphics / Photography). To remove it, "
          "delete the two files above.")
    return 0
