"""The headless command line (``photoatlas index ...``, ``python -m photoatlas.core.cli``)."""
