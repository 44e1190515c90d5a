"""Messages of the library and the command line: the ``autoencoders`` logger.

Status lines (epoch summaries, stages, streaming notes, skipped experiments) are
``logging`` records of the logger ``"autoencoders"``. By default they are written, as
plain text, to stderr through ``tqdm.write`` so that they never break a progress bar;
``configure(level)`` sets the level (the CLI's ``-q`` is WARNING, ``-v`` DEBUG). An
application with its own logging set-up can take them over::

    logging.getLogger("autoencoders").handlers.clear()
    logging.getLogger("autoencoders").propagate = True
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("autoencoders")


class TqdmHandler(logging.Handler):
    """Writes each record with ``tqdm.write`` to the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure(level: int = logging.INFO) -> None:
    """Plain messages at ``level`` and above to stderr (replaces this module's handler)."""
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, TqdmHandler)]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


if not logger.handlers:
    configure()
