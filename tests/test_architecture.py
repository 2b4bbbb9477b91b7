"""The engine in core/ never imports Qt; the headless CLI path never imports Qt either."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "shiboken6", "pyqtgraph")

_REPORT_QT = f"""
import json, sys
loaded = sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r})
print(json.dumps(loaded))
"""


def _run_fresh(code: str) -> list[str]:
    """Run ``code`` + the Qt report in a fresh interpreter; return the Qt modules loaded."""
    proc = subprocess.run([sys.executable, "-c", code + _REPORT_QT], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(REPO_ROOT / "core")],
                                                        prefix="photoatlas.core.")
                  if not m.name.endswith("__main__"))


def test_core_modules_discovered():
    modules = _core_modules()
    for expected in ("learn.loss", "encode.model", "cli.commands", "library.scan",
                     "learn.train", "atlas.layout", "organize.duplicates", "pipeline.index"):
        assert f"photoatlas.core.{expected}" in modules


def test_core_imports_no_qt():
    imports = "\n".join(f"import {name}" for name in ["photoatlas.core", *_core_modules()])
    loaded = _run_fresh(imports + "\n")
    assert loaded == [], f"core pulled in Qt modules: {loaded}"


def test_the_windows_model_imports_no_widgets():
    """The session and what it owns are models: Qt's objects and signals, no view."""
    code = "".join(f"import photoatlas.app.{name}\n" for name in (
        "session", "library_tags", "jobs", "settings", "map_data", "commands"))
    loaded = _run_fresh(code)
    assert loaded and not {"PySide6.QtGui", "PySide6.QtWidgets", "pyqtgraph"} & set(loaded)


def test_headless_cli_path_imports_no_qt():
    code = (
        "import photoatlas.app.__main__\n"
        "import photoatlas.core.cli.commands\n"
        "parser = photoatlas.core.cli.commands.build_parser()\n"
        "args = parser.parse_args(['index', '/tmp/photos', '--epochs', '1'])\n"
        "assert args.command == 'index'\n"
        "try:\n"
        "    photoatlas.app.__main__.main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0\n"
    )
    loaded = _run_fresh(code)
    assert loaded == [], f"the headless CLI path pulled in Qt modules: {loaded}"


def test_only_the_catalog_speaks_sql():
    """The catalog owns the schema and every query: no other module of core or app reaches
    for its connection or writes a table of its own."""
    offenders = []
    for folder in ("core", "app"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            if path.name == "catalog.py":
                continue
            text = path.read_text(encoding="utf-8")
            if ".conn." in text or "catalog.conn" in text or "CREATE TABLE" in text:
                offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []


def test_every_cli_command_reaches_the_cli_without_the_window():
    """`photoatlas albums ...` is the CLI's albums, not a window that cannot open."""
    import argparse

    from photoatlas.app.__main__ import HEADLESS_COMMANDS
    from photoatlas.core.cli.commands import build_parser

    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) <= HEADLESS_COMMANDS


def test_no_import_cycle_between_modules():
    """Every module of the package imports only modules that never import it back, directly
    or through others, lazy imports inside functions included (grimp's graph)."""
    import grimp

    graph = grimp.build_graph("photoatlas")
    modules = sorted(m for m in graph.modules if m.startswith("photoatlas."))
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(imported, module):
                cycles.append(f"{module} -> {imported}")
    assert cycles == []


def test_no_function_is_a_chapter():
    """Functions in core/ and app/ fit on a screen or two: none over 100 lines."""
    long = []
    for folder in ("core", "app"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > 100:
                        long.append(f"{path.relative_to(REPO_ROOT)}:{node.name} ({lines})")
    assert long == []
