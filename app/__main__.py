"""Entry point of the ``photoatlas`` console script.

A subcommand other than ``gui`` goes straight to the headless CLI without importing Qt,
so ``photoatlas index`` works on a server with no display and no Qt libraries. Before the
window, app.platform_check says exactly what keeps it from opening (missing system
libraries, no display) where Qt would abort with a misleading message.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Every subcommand of photoatlas.core.cli (a test keeps the two in step; importing the CLI
# here would load torch before the window's own checks).
HEADLESS_COMMANDS = {"index", "update", "export", "similar", "duplicates", "tag", "suggest",
                     "tags", "query", "clusters", "albums", "xmp", "events", "search", "-h",
                     "--help"}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in HEADLESS_COMMANDS:
        from photoatlas.core.cli.commands import main as cli_main

        return cli_main(args)
    if args and args[0] == "gui":
        args = args[1:]
    if args and args[0] == "--install-desktop-entry":
        from photoatlas.app.desktop_entry import main as install_main

        return install_main(args[1:])
    if not {"-h", "--help"} & set(args):
        from photoatlas.app.platform_check import window_problem

        problem = window_problem()
        if problem is not None:
            print(problem, file=sys.stderr)
            return 1
    from photoatlas.app.gui import run_gui

    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
