"""The check before the window: missing system libraries and a missing display are named,
with the install command, before anything loads Qt's GUI libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from photoatlas.app.platform_check import (
    install_commands,
    package_manager,
    uses_xcb,
    window_problem,
)
from tests.conftest import REPO_ROOT

LDD_OUTPUT = """\tlinux-vdso.so.1 (0x00007ffc)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f51)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibEGL.so.1 => /lib/x86_64-linux-gnu/libEGL.so.1 (0x00007f52)
\tlibxcb-icccm.so.4 => not found
"""


def fake_ldd(tmp_path: Path, output: str) -> Path:
    """An ldd that answers ``output`` for any file, as ldd does on a machine lacking what
    it lists as "not found"."""
    answer = tmp_path / "ldd-output.txt"
    answer.write_text(output)
    ldd = tmp_path / "bin" / "ldd"
    ldd.parent.mkdir(exist_ok=True)
    ldd.write_text(f"#!/bin/sh\ncat '{answer}'\n")
    ldd.chmod(0o755)
    return ldd


def os_release(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "os-release"
    path.write_text(text)
    return path


def test_missing_libraries_are_named_with_this_distributions_command(tmp_path):
    problem = window_problem({"DISPLAY": ":0"}, "linux", tmp_path / "libqxcb.so",
                             str(fake_ldd(tmp_path, LDD_OUTPUT)),
                             os_release(tmp_path, 'ID=ubuntu\nID_LIKE="debian"\n'))
    assert problem is not None
    lines = problem.splitlines()
    assert lines[1:3] == ["    libxcb-cursor.so.0", "    libxcb-icccm.so.4"]
    assert "libEGL.so.1" not in problem  # found, so not reported
    command = lines[lines.index("Install them with:") + 1].strip()
    assert command == "sudo apt-get install libxcb-cursor0 libxcb-icccm4"
    assert "sudo dnf install xcb-util-cursor xcb-util-wm" in problem
    assert "sudo pacman -S --needed xcb-util-cursor xcb-util-wm" in problem


def test_fedora_gets_dnf_first_and_unknown_distributions_get_all_three(tmp_path):
    ldd = str(fake_ldd(tmp_path, "\tlibEGL.so.1 => not found\n"))
    fedora = window_problem({"DISPLAY": ":0"}, "linux", tmp_path / "p.so", ldd,
                            os_release(tmp_path, "ID=fedora\n"))
    assert fedora.splitlines()[2:4] == ["Install it with:", "    sudo dnf install libglvnd-egl"]
    unknown = window_problem({"DISPLAY": ":0"}, "linux", tmp_path / "p.so", ldd,
                             tmp_path / "no-os-release")
    for command in ("sudo apt-get install libegl1", "sudo dnf install libglvnd-egl",
                    "sudo pacman -S --needed libglvnd"):
        assert command in unknown


def test_package_manager_and_commands(tmp_path):
    assert package_manager(os_release(tmp_path, "ID=arch\n")) == "pacman"
    assert package_manager(os_release(tmp_path, 'ID=pop\nID_LIKE="ubuntu debian"\n')) == "apt"
    assert package_manager(os_release(tmp_path, "ID=gentoo\n")) is None
    # Several sonames of one package: the package once.
    assert install_commands(["libxcb-shape.so.0", "libxcb-xkb.so.1"])["dnf"] == \
        "sudo dnf install libxcb"


def test_no_display_is_said_when_the_libraries_are_there(tmp_path):
    ldd = str(fake_ldd(tmp_path, LDD_OUTPUT.replace("not found", "/lib/x.so (0x1)")))
    problem = window_problem({}, "linux", tmp_path / "p.so", ldd)
    assert problem is not None and "DISPLAY is not set" in problem
    # Nothing listens at this display: the X connection fails as Qt's would.
    assert "no X server answers" in window_problem({"DISPLAY": ":987"}, "linux",
                                                   tmp_path / "p.so", ldd)


def test_other_platforms_are_not_checked(tmp_path):
    ldd = str(fake_ldd(tmp_path, LDD_OUTPUT))
    for env in ({"QT_QPA_PLATFORM": "offscreen"}, {"QT_QPA_PLATFORM": "wayland"},
                {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}):
        assert not uses_xcb(env)
        assert window_problem(env, "linux", tmp_path / "p.so", ldd) is None
    assert uses_xcb({"QT_QPA_PLATFORM": "xcb:nograb"}) and uses_xcb({"DISPLAY": ":0"})
    assert window_problem({}, "darwin", tmp_path / "p.so", ldd) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb check is Linux's")
def test_photoatlas_exits_with_the_message_before_loading_qt(tmp_path):
    """``photoatlas`` (the window) on a machine that lacks libxcb-cursor: exit status 1, the
    message on stderr, and Qt's GUI library never loaded (it would abort the process)."""
    ldd = fake_ldd(tmp_path, LDD_OUTPUT)
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(PATH=f"{ldd.parent}{os.pathsep}{env['PATH']}", DISPLAY=":0")
    code = ("import sys\nfrom photoatlas.app.__main__ import main\nrc = main([])\n"
            "print('PySide6.QtGui' in sys.modules)\nsys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip() == "False"
    assert "PhotoAtlas cannot open its window" in done.stderr
    assert "libxcb-cursor.so.0" in done.stderr and "libxcb-cursor0" in done.stderr
