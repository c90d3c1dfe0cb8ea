"""How every demonlab process logs: at ``DEMONLAB_LOG_LEVEL`` (WARNING by default), to stderr.

A tiny module of its own so the CLI (which must start fast) and the study driver (which the job
layer starts without the CLI) configure logging the same way without importing each other.
"""

from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def configure_logging() -> None:
    """Configure the root logger once per process (a second call changes nothing)."""
    logging.basicConfig(level=os.environ.get("DEMONLAB_LOG_LEVEL", "WARNING"), format=LOG_FORMAT)
