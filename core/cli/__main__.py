"""``python -m photoatlas.core.cli``: the headless command line."""

import sys

from photoatlas.core.cli.commands import main

sys.exit(main())
