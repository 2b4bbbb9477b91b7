"""Before the window starts on Linux: can Qt's X11 platform plugin (xcb) load, and is there
a display to connect to? If not, say exactly which system libraries are missing and the one
command that installs them, instead of Qt's own abort ("Could not load the Qt platform
plugin "xcb" ... xcb-cursor0 or libxcb-cursor0 is needed", whatever is really missing).

Nothing here imports Qt: importing PySide6.QtGui itself fails when libEGL or libfontconfig
is missing, and the point is to explain that failure before it happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# soname -> (Debian/Ubuntu, Fedora, Arch) package. Every library the PySide6 xcb plugin and
# Qt's GUI libraries load from the system (from ``ldd libqxcb.so``), plus libxcb-xinerama,
# which the plugin loads on demand.
PACKAGES: dict[str, tuple[str, str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil",
                                "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
    "libX11.so.6": ("libx11-6", "libX11", "libx11"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd"),
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libglvnd"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx", "libglvnd"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl", "libglvnd"),
    "libGLdispatch.so.0": ("libglvnd0", "libglvnd", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
}
# (package manager, how to call it, which distributions, column of PACKAGES)
MANAGERS = (
    ("apt", "sudo apt-get install", "Debian, Ubuntu", 0),
    ("dnf", "sudo dnf install", "Fedora", 1),
    ("pacman", "sudo pacman -S --needed", "Arch", 2),
)
_FAMILIES = {
    "apt": {"debian", "ubuntu", "linuxmint", "pop", "raspbian", "elementary", "neon", "kali"},
    "dnf": {"fedora", "rhel", "centos", "rocky", "almalinux", "nobara"},
    "pacman": {"arch", "manjaro", "endeavouros", "garuda"},
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """The xcb platform plugin of the installed PySide6 (found without importing it)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def missing_libraries(library: Path, ldd: str = "ldd") -> list[str]:
    """Sonames that ``library`` (or what it loads) needs and the system lacks, from ldd;
    [] when ldd is not there to ask."""
    try:
        out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(set(_NOT_FOUND.findall(out)))


def package_manager(os_release: Path = Path("/etc/os-release")) -> str | None:
    """"apt", "dnf" or "pacman" for this distribution (ID and ID_LIKE of os-release)."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip("\"'").lower().split()
    for name in ids:  # ID first: Ubuntu is ID=ubuntu ID_LIKE=debian
        for manager, family in _FAMILIES.items():
            if name in family:
                return manager
    return None


def install_commands(sonames: Sequence[str]) -> dict[str, str]:
    """The install command per package manager ("apt", "dnf", "pacman") for ``sonames``."""
    out = {}
    for manager, command, _, column in MANAGERS:
        packages = dict.fromkeys(PACKAGES[s][column] for s in sonames if s in PACKAGES)
        if packages:
            out[manager] = f"{command} {' '.join(packages)}"
    return out


def can_connect(display: str) -> bool:
    """Whether an X server answers at ``display`` (what Qt's xcb plugin does first)."""
    name = ctypes.util.find_library("xcb") or "libxcb.so.1"
    try:
        xcb = ctypes.CDLL(name)
    except OSError:
        return True  # no libxcb to ask with: the missing-library check reports that
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    failed = xcb.xcb_connection_has_error(connection)
    xcb.xcb_disconnect(connection)
    return failed == 0


def uses_xcb(environ: Mapping[str, str]) -> bool:
    """Whether Qt will start on its xcb platform: QT_QPA_PLATFORM says so, or is unset
    outside a Wayland session (where Qt 6 starts on Wayland)."""
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return not (environ.get("XDG_SESSION_TYPE") == "wayland" and environ.get("WAYLAND_DISPLAY"))


def library_message(missing: Sequence[str], manager: str | None) -> str:
    """What to tell the user when ``missing`` sonames keep the window from opening."""
    noun = "a system library that is" if len(missing) == 1 else \
        f"{len(missing)} system libraries that are"
    lines = [f"PhotoAtlas cannot open its window: Qt's X11 platform plugin (xcb) needs {noun} "
             "not installed:"]
    lines += [f"    {soname}" for soname in missing]
    commands = install_commands(missing)
    here = [m for m in MANAGERS if m[0] == manager and m[0] in commands]
    others = [m for m in MANAGERS if m not in here and m[0] in commands]
    them = "it" if len(missing) == 1 else "them"
    if here:
        lines += [f"Install {them} with:", f"    {commands[here[0][0]]}"]
    for name, _, distros, _ in others:
        lines.append(f"  ({distros}: {commands[name]})" if here else
                     f"Install {them} on {distros} with:\n    {commands[name]}")
    unknown = [s for s in missing if s not in PACKAGES]
    if unknown:
        lines.append("and the package that provides " + ", ".join(unknown) + ".")
    lines.append("Then start PhotoAtlas again. The command line (photoatlas index, similar, "
                 "export, ...) needs none of this.")
    return "\n".join(lines)


def window_problem(environ: Mapping[str, str] | None = None, platform: str = sys.platform,
                   plugin: Path | None = None, ldd: str = "ldd",
                   os_release: Path = Path("/etc/os-release")) -> str | None:
    """Why the window cannot open here, in words for the user, or None when it can (or
    when the platform Qt will use is not xcb, which this does not check)."""
    environ = os.environ if environ is None else environ
    if not platform.startswith("linux") or not uses_xcb(environ):
        return None
    plugin = plugin or xcb_plugin()
    missing = missing_libraries(plugin, ldd) if plugin is not None else []
    if missing:
        return library_message(missing, package_manager(os_release))
    display = environ.get("DISPLAY", "")
    if not display:
        return ("PhotoAtlas cannot open its window: there is no display (DISPLAY is not set). "
                "Start it from a desktop session, over 'ssh -X', or in a virtual display "
                "with 'xvfb-run -a make run'. The command line (photoatlas index, similar, "
                "export, ...) works without one.")
    if not can_connect(display):
        return (f"PhotoAtlas cannot open its window: no X server answers at display "
                f"{display!r} (or it refuses this user). Check that the desktop session is "
                "running and that DISPLAY and XAUTHORITY are those of your session.")
    return None
