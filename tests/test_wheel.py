"""The wheel a user would install: built from the repository's files, installed into a fresh
virtual environment, it provides ``photoatlas`` with its packages under one namespace and its
package data (the theme), and indexes photos headless. Dependencies (torch, Qt, ...) come from
this test run's environment through a path file, so nothing is downloaded."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("app", "core", "resources", "pyproject.toml", "README.md")


def _run(command: list[str], cwd: Path) -> str:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{command} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:  # build from a copy: building writes build/ and egg-info beside it
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(root / "dist"), str(source)], root)
    wheel = next((root / "dist").glob("photoatlas-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
          str(wheel)], root)
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     root).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def test_the_wheel_installs_one_namespace_with_its_resources(installed: Path,
                                                             tmp_path: Path) -> None:
    code = ("import importlib.util, photoatlas.core, photoatlas.app\n"
            "from photoatlas.app.resources import resource\n"
            "print(photoatlas.core.__file__)\n"
            "print(resource('style.qss'))\n"
            "print(importlib.util.find_spec('core'), importlib.util.find_spec('app'))\n")
    core_file, style, leaked = _run([str(installed / "python"), "-c", code],
                                    tmp_path).splitlines()
    site = str(installed.parent)
    assert core_file.startswith(site) and style.startswith(site)
    assert Path(style).read_text(encoding="utf-8").strip()  # the theme, not an empty file
    assert leaked == "None None"  # no top-level `core` or `app` of ours
    assert "index" in _run([str(installed / "photoatlas"), "--help"], tmp_path)


def test_the_installed_command_indexes_photos_headless(installed: Path, photo_dir: Path,
                                                       tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for wnid in sorted(p.name for p in photo_dir.iterdir() if p.is_dir())[:2]:
        for path in sorted((photo_dir / wnid).iterdir())[:4]:
            shutil.copy2(path, photos / f"{wnid}_{path.name}")
    library = tmp_path / "library"
    out = _run([str(installed / "photoatlas"), "index", str(photos), "--library", str(library),
                "--map-only", "--device", "cpu"], tmp_path)
    assert "8 photos embedded, 0 could not be read" in out
    assert list((library / "runs").glob("*/atlas.npz"))
